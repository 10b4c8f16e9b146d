"""p(x|z) = N(loc(z), diag(scale^2))."""

import keras
import tensorflow_probability as tfp

from keras_vae.likelihoods.likelihood import Likelihood
from keras_vae.validation import check_non_negative

__all__ = ["Normal"]

tfd = tfp.distributions

SCALES = ("predicted", "learned")


@keras.saving.register_keras_serializable(package="keras_vae")
class Normal(Likelihood):
    """Independent Gaussian observations.

    Args:
        scale: How the standard deviations are set: `"predicted"` by the
            decoder for each example (the AEVB paper's Gaussian decoder),
            `"learned"` as one weight per data dimension (factor analysis when
            the decoder is linear), or a positive float held fixed.
        min_scale: Lower bound of predicted and learned scales.

    Example:

    >>> import numpy as np
    >>> likelihood = Normal(scale="learned")
    >>> likelihood.build((None, 16), (4,))
    >>> parameters = likelihood(np.zeros((2, 16), "float32"))
    >>> sorted(parameters)
    ['loc', 'scale']
    """

    def __init__(self, scale="predicted", min_scale=1e-3, **kwargs):
        super().__init__(**kwargs)
        fixed = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        if not (scale in SCALES or (fixed and scale > 0)):
            raise ValueError(
                f"Expected `scale` to be one of {SCALES} or a positive float. "
                f"Received: scale={scale!r}"
            )
        check_non_negative("min_scale", min_scale)
        self.scale = scale
        self.min_scale = min_scale
        self.num_params = 2 if scale == "predicted" else 1

    def build(self, features_shape, event_shape):
        super().build(features_shape, event_shape)
        if self.scale == "learned":
            # softplus(0.5413) = 1: start at unit scale.
            self.raw_scale = self.add_weight(
                shape=self.event_shape,
                initializer=keras.initializers.Constant(0.5413),
                autocast=False,  # a scale of the density: float32 under mixed precision too
                name="raw_scale",
            )

    def parameters(self, raw):
        loc = raw[..., 0]
        if self.scale == "predicted":
            scale = keras.ops.softplus(raw[..., 1]) + self.min_scale
        elif self.scale == "learned":
            scale = keras.ops.softplus(self.raw_scale) + self.min_scale
            scale = keras.ops.broadcast_to(scale, keras.ops.shape(loc))
        else:
            scale = keras.ops.full_like(loc, self.scale)
        return {"loc": loc, "scale": scale}

    def distribution(self, parameters):
        return tfd.Independent(
            tfd.Normal(loc=parameters["loc"], scale=parameters["scale"]),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def mean(self, parameters):
        return parameters["loc"]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "min_scale": self.min_scale}
