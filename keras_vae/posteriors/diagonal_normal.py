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

    def params_shape(self):
        return (2 * self.event_size,)

    def parameters(self, raw):
        loc, raw_scale = keras.ops.split(raw, 2, axis=-1)
        return {"loc": loc, "scale": keras.ops.softplus(raw_scale) + self.min_scale}

    def distribution(self, parameters):
        return tfd.MultivariateNormalDiag(loc=parameters["loc"], scale_diag=parameters["scale"])

    def reparameterize(self, parameters, noise):
        return parameters["loc"] + parameters["scale"] * noise
