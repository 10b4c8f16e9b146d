"""Mixed precision: networks in float16 or bfloat16, densities and exports in float32.

Under a mixed policy Keras keeps the weights in float32 and runs each layer
in the compute dtype. A VAE's networks and the families' projections follow
it; the families return their parameters in float32, so every log-density,
KL, log-weight and logsumexp is float32 (a bfloat16 sum over 784 pixels has
about 3 significant digits). Under `mixed_float16` Keras wraps the optimizer
in a `LossScaleOptimizer` and `VAE.train_step` scales the loss through it.
"""

import contextlib
import functools

import keras

from keras_vae.choices import PRECISIONS

__all__ = ["PRECISIONS", "float32_compute", "in_float32", "policy"]


@contextlib.contextmanager
def policy(precision):
    """Sets Keras's global dtype policy to `precision` for the models built inside.

    Layers take the policy when they are constructed and keep it (it is in
    their config, so a loaded model keeps it too); the global policy is
    restored on exit.

    Example:

    >>> import keras_vae as kv
    >>> with policy("mixed_bfloat16"):
    ...     vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.encoder.compute_dtype, vae.encoder.variable_dtype
    ('bfloat16', 'float32')
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"Expected `precision` to be one of {PRECISIONS}. Received: precision={precision!r}"
        )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def float32_compute(model):
    """Runs every layer of `model` in float32 inside the block, then restores its policy.

    Exports trace their graphs this way (see `in_float32`).
    """
    # `_flatten_layers` is Keras's own walk over nested layers (the model included).
    layers = list(model._flatten_layers())
    policies = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = "float32"
        yield model
    finally:
        for layer, previous in zip(layers, policies, strict=True):
            layer.dtype_policy = previous


def in_float32(model, function):
    """`function`, run with the layers of `model` in float32 whenever it is called or traced.

    Exported signatures compute in float32 whatever the training policy: the
    weights are float32 already, and TFLite's builtin kernels have no
    bfloat16 (a reduced-precision `.tflite` is the converter's `"float16"`
    quantization instead).
    """

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with float32_compute(model):
            return function(*args, **kwargs)

    return wrapped
