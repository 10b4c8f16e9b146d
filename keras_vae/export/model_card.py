"""A JSON model card shipped in an export's `assets/`: what the model takes, is and scored."""

import importlib.metadata
import json
from pathlib import Path

import keras

__all__ = ["MODEL_CARD", "make_model_card", "read_model_card"]

MODEL_CARD = "model_card.json"


def make_model_card(model, signatures, data=None, metrics=None):
    """A JSON-able description of an exported `VAE`.

    Args:
        model: The exported, built `VAE`.
        signatures: `{name: {"inputs": {name: spec}, "outputs": {name: spec}}}`,
            each spec a `{"shape": [...], "dtype": ...}` with `-1` for dynamic sizes.
        data: The data protocol, e.g. `{"dataset": "mnist", "preprocessing": "dynamic"}`.
        metrics: Test metrics, e.g. `{"elbo": -98.2, ...}`, in nats.

    Returns:
        A dict: input shape, dtype and support (`[low, high]` of the
        likelihood, null for the real line), latent size, the families and networks
        (class names and configs), data protocol, metrics, keras-vae version
        and signatures.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.build((None, 4))
    >>> make_model_card(vae, {})["families"]["prior"]["class_name"]
    'StandardNormal'
    """
    return {
        "input": {
            "shape": [-1, *model.data_shape],
            "dtype": "float32",
            "support": _support(model.likelihood.support),
        },
        "latent_dim": model.latent_dim,
        # The stochastic layers above z_1, and the size of z = concat(z_1, ...) that `eps` takes.
        "latent_layers": [_describe(layer) for layer in model.latent_layers],
        "latent_size": model.latent_size,
        # What the signatures' `condition` input takes, for a conditional VAE.
        "condition": None if model.condition is None else model.condition.describe(),
        "families": {
            name: _describe(getattr(model, name))
            for name in ("prior", "posterior", "likelihood", "encoder", "decoder")
        },
        "data": data,
        "metrics": metrics,
        "keras_vae_version": _version(),
        "signatures": signatures,
    }


def read_model_card(saved_model_dir):
    """The model card of an exported SavedModel version folder."""
    path = Path(saved_model_dir) / "assets" / MODEL_CARD
    if not path.exists():
        raise FileNotFoundError(
            f"Expected a model card at {path}: is {saved_model_dir} a keras-vae export?"
        )
    return json.loads(path.read_text())


def _describe(layer):
    serialized = keras.saving.serialize_keras_object(layer)
    return {"class_name": serialized["class_name"], "config": serialized["config"]}


def _support(support):
    return None if support is None else [float(value) for value in support]


def _version():
    try:
        return importlib.metadata.version("keras-vae")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
