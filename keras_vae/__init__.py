"""Variational autoencoders for Keras 3, with TensorFlow Probability distributions.

The package imports TensorFlow on first use of any of its names, not on `import keras_vae`,
when the command line imports it, so `keras-vae --help` answers at once. Imported anywhere
else, it registers its Keras-serializable classes at once, so `keras.saving.load_model` reads a
`.keras` file right after `import keras_vae`.

Example:

>>> import keras_vae as kv
>>> vae = kv.VAE(kv.networks.MLP([500], "tanh"), kv.networks.MLP([500], "tanh"), latent_dim=20)
"""

import importlib
import os
import sys

__all__ = [
    "VAE",
    "LatentLayer",
    "bits_per_dim",
    "callbacks",
    "conditions",
    "data",
    "diagnostics",
    "distribute",
    "estimators",
    "likelihoods",
    "networks",
    "objectives",
    "posteriors",
    "priors",
]

# Where each public name lives. Importing `keras_vae.model` registers every Keras-serializable
# class of the package: the model imports each family, network and estimator.
_SOURCES = {
    "VAE": "keras_vae.model",
    "LatentLayer": "keras_vae.latent_layer",
    "bits_per_dim": "keras_vae.objectives",
    **{
        name: f"keras_vae.{name}"
        for name in __all__
        if name not in ("VAE", "LatentLayer", "bits_per_dim")
    },
}


def __getattr__(name):
    # One module at a time: a module that imports a sibling while loading gets just that one.
    if name not in _SOURCES:
        raise AttributeError(f"module 'keras_vae' has no attribute {name!r}")
    module = importlib.import_module(_SOURCES[name])
    globals()[name] = module if _SOURCES[name].endswith(f".{name}") else getattr(module, name)
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(__all__))


# `keras-vae` (or `python -m keras_vae`, whose argv[0] reads "-m" while the package imports)
# loads what each command needs; everyone else gets the classes registered on import.
if os.path.basename(getattr(sys, "argv", None) and sys.argv[0] or "") not in ("keras-vae", "-m"):
    from keras_vae import (  # noqa: E402
        callbacks,
        conditions,
        data,
        diagnostics,
        distribute,
        estimators,
        likelihoods,
        networks,
        objectives,
        posteriors,
        priors,
    )
    from keras_vae.latent_layer import LatentLayer  # noqa: E402
    from keras_vae.model import VAE  # noqa: E402
    from keras_vae.objectives import bits_per_dim  # noqa: E402
