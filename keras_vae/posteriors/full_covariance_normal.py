"""q(z|x) = N(loc(x), L(x) L(x)^T) with a lower-triangular L."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.posteriors.posterior import Posterior

__all__ = ["FullCovarianceNormal"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class FullCovarianceNormal(Posterior):
    """Gaussian posterior with a full covariance, through its Cholesky factor.

    The network predicts `loc` and the `latent_dim * (latent_dim + 1) / 2`
    entries of a lower-triangular `scale_tril`; its diagonal goes through
    `softplus(.) + min_scale` so that `scale_tril` is a valid Cholesky factor.

    Args:
        min_scale: Lower bound of the diagonal of `scale_tril`.

    Example:

    >>> import numpy as np
    >>> posterior = FullCovarianceNormal()
    >>> posterior.build((None, 8), (3,))
    >>> parameters = posterior(np.zeros((2, 8), "float32"))
    >>> tuple(parameters["scale_tril"].shape)
    (2, 3, 3)
    """

    def params_shape(self):
        size = self.event_size
        return (size + size * (size + 1) // 2,)

    def parameters(self, raw):
        size = self.event_size
        loc, raw_tril = raw[..., :size], raw[..., size:]
        tril = tfp.math.fill_triangular(raw_tril)  # (batch, latent_dim, latent_dim)
        # The diagonal by masking rather than diag_part, which TFLite has no builtin for.
        diagonal = tf.reduce_sum(tril * tf.eye(size), axis=-1)
        diagonal = keras.ops.softplus(diagonal) + self.min_scale
        return {"loc": loc, "scale_tril": tf.linalg.set_diag(tril, diagonal)}

    def distribution(self, parameters):
        return tfd.MultivariateNormalTriL(
            loc=parameters["loc"], scale_tril=parameters["scale_tril"]
        )

    def reparameterize(self, parameters, noise):
        # (..., batch, latent_dim): L @ noise for each sample.
        return parameters["loc"] + tf.linalg.matvec(parameters["scale_tril"], noise)
