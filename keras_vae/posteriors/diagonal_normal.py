"""q(z|x) = N(loc(x), diag(scale(x)^2))."""

import keras
import tensorflow_probability as tfp

from keras_vae.posteriors.posterior import Posterior

__all__ = ["DiagonalNormal"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class DiagonalNormal(Posterior):
    """Gaussian posterior with a diagonal covariance (Kingma & Welling, 2014).

    `scale = softplus(raw) + min_scale`: softplus keeps the scale positive
    with gradients everywhere, the floor keeps `log_prob` finite.

    Args:
        min_scale: Lower bound of the standard deviations.

    Example:

    >>> import numpy as np
    >>> posterior = DiagonalNormal()
    >>> posterior.build((None, 8), (2,))
    >>> parameters = posterior(np.zeros((3, 8), "float32"))
    >>> tuple(parameters["scale"].shape)
    (3, 2)
    """

    def __init__(self, min_scale=1e-4, **kwargs):
        super().__init__(**kwargs)
        if not min_scale >= 0:
            raise ValueError(
                f"Expected `min_scale` to be non-negative. Received: min_scale={min_scale}"
            )
        self.min_scale = min_scale

    def params_shape(self):
        return (2 * self.event_size,)

    def parameters(self, raw):
        loc, raw_scale = keras.ops.split(raw, 2, axis=-1)
        return {"loc": loc, "scale": keras.ops.softplus(raw_scale) + self.min_scale}

    def distribution(self, parameters):
        return tfd.MultivariateNormalDiag(loc=parameters["loc"], scale_diag=parameters["scale"])

    def reparameterize(self, parameters, noise):
        return parameters["loc"] + parameters["scale"] * noise

    def get_config(self):
        return {**super().get_config(), "min_scale": self.min_scale}
