"""Checks of model options and data, with errors that say what was expected."""

import numbers

import numpy as np
import tensorflow as tf

from keras_vae.choices import OBJECTIVES

__all__ = [
    "OBJECTIVES",
    "check_data",
    "check_finite_weights",
    "check_non_negative",
    "check_options",
    "check_positive_int",
]


def is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name, value):
    """Raises `ValueError` unless `value` is a positive integer."""
    if not (is_integer(value) and value > 0):
        raise ValueError(f"Expected `{name}` to be a positive integer. Received: {name}={value!r}")


def check_non_negative(name, value):
    """Raises `ValueError` unless `value` is a number >= 0."""
    if not (isinstance(value, numbers.Real) and value >= 0):
        raise ValueError(f"Expected `{name}` to be non-negative. Received: {name}={value!r}")


def check_options(latent_dim, beta, num_samples, objective):
    """Raises `ValueError` for model options outside their domain."""
    check_positive_int("latent_dim", latent_dim)
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Expected `objective` to be one of {OBJECTIVES}. Received: objective={objective!r}"
        )
    if not (isinstance(beta, numbers.Real) and beta >= 0):
        raise ValueError(f"Expected `beta` to be a non-negative number. Received: beta={beta!r}")
    if objective == "iwae" and beta != 1:
        raise ValueError(
            "Expected `beta=1` with objective='iwae': beta weights the KL term of the ELBO, "
            f"which the IWAE bound does not have. Received: beta={beta!r}"
        )
    check_positive_int("num_samples", num_samples)


def check_data(model, x):
    """Checks a batch or dataset against `model`, building the model from it if needed.

    Shapes are checked for arrays, tensors and `tf.data` datasets; values are
    checked against the likelihood's support for arrays and eager tensors.
    Returns `x` unchanged.
    """
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        shape = (spec[0] if isinstance(spec, tuple) else spec).shape
    elif isinstance(x, (np.ndarray, tf.Tensor)):
        shape = x.shape
    else:
        return x
    data_shape = tuple(shape[1:])
    if not model.built and None not in data_shape:
        model.build((None, *data_shape))
    expected = getattr(model, "data_shape", None)
    if expected is not None and data_shape != expected:
        raise ValueError(
            f"Expected data of shape (batch, {', '.join(map(str, expected))}) for this model. "
            f"Received: data of shape {tuple(shape)}."
        )
    support = model.likelihood.support
    if (
        support is not None
        and (isinstance(x, np.ndarray) or tf.executing_eagerly())
        and not (isinstance(x, tf.data.Dataset))
    ):
        low, high = float(np.min(x)), float(np.max(x))
        if low < support[0] or high > support[1]:
            raise ValueError(
                f"Expected data in [{support[0]}, {support[1]}] for the "
                f"{type(model.likelihood).__name__} likelihood. "
                f"Received: values in [{low}, {high}]."
            )
    return x


def check_finite_weights(model):
    """Raises `ValueError` if a floating-point weight of `model` holds NaN or infinity.

    Export, conversion and saving call it, so a diverged model is never
    published. `model` is anything with `variables`: a Keras model or layer,
    or a SavedModel loaded with `tf.saved_model.load`.

    Example:

    >>> import keras
    >>> layer = keras.layers.Dense(2, name="dense")
    >>> layer.build((None, 3))
    >>> _ = layer.bias.assign([0.0, float("nan")])
    >>> check_finite_weights(layer)
    Traceback (most recent call last):
    ...
    ValueError: Expected a model with finite weights. Received: NaN or infinity in dense/bias \
(1 of 2 weights).
    """
    variables = list(getattr(model, "variables", ()))
    # A loaded SavedModel holds its variables in its signatures' functions.
    for function in getattr(model, "signatures", {}).values():
        variables += function.variables
    unique = {id(v): v for v in variables}.values()
    weights = [v for v in unique if tf.as_dtype(v.dtype).is_floating]
    bad = [getattr(v, "path", v.name) for v in weights if not np.isfinite(np.asarray(v)).all()]
    if bad:
        raise ValueError(
            "Expected a model with finite weights. Received: NaN or infinity in "
            f"{', '.join(bad)} ({len(bad)} of {len(weights)} weights)."
        )
