"""Variational autoencoders for Keras 3, with TensorFlow Probability distributions.

The package imports TensorFlow on first use of any of its names, not on `import keras_vae`,
so the command line answers `--help` at once. That first use also registers the package's
Keras-serializable classes, which `keras.saving.load_model` needs: touch a name (or import
`keras_vae.model`) before loading a `.keras` file in a fresh process.

Example:

>>> import keras_vae as kv
>>> vae = kv.VAE(kv.networks.MLP([500], "tanh"), kv.networks.MLP([500], "tanh"), latent_dim=20)
"""

import importlib

__all__ = [
    "VAE",
    "bits_per_dim",
    "callbacks",
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

# Where each public name lives; modules are loaded, and their classes registered, all at once.
_SOURCES = {
    "VAE": "keras_vae.model",
    "bits_per_dim": "keras_vae.objectives",
    **{name: f"keras_vae.{name}" for name in __all__ if name not in ("VAE", "bits_per_dim")},
}


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module 'keras_vae' has no attribute {name!r}")
    for public, source in _SOURCES.items():
        module = importlib.import_module(source)
        globals()[public] = module if source.endswith(f".{public}") else getattr(module, public)
    return globals()[name]


def __dir__():
    return sorted(set(globals()) | set(__all__))
