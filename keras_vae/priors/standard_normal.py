"""p(z) = N(0, I)."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.priors.prior import Prior

__all__ = ["StandardNormal"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class StandardNormal(Prior):
    """The standard normal prior of the AEVB paper.

    With a Gaussian posterior, KL(q(z|x) || p(z)) has a closed form. At
    temperature T, `sample` draws z = T * eps: z ~ N(0, T^2 I).

    Example:

    >>> prior = StandardNormal()
    >>> prior.build(2, (4,))
    >>> prior.distribution(encode=None).sample(3).shape
    TensorShape([3, 2])
    """

    def distribution(self, encode):
        return tfd.MultivariateNormalDiag(
            loc=tf.zeros([self.latent_dim]), scale_diag=tf.ones([self.latent_dim])
        )
