"""p(z) = (1/K) sum_k q(z | u_k) with learned pseudo-inputs u_k (VampPrior)."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.priors.prior import Prior
from keras_vae.validation import check_positive_int

__all__ = ["VampPrior"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class VampPrior(Prior):
    """The variational mixture of posteriors prior (Tomczak & Welling, 2018).

    K pseudo-inputs, learned like data, are pushed through the encoder; the
    prior is the uniform mixture of their posteriors, so it adapts to the
    aggregate posterior. KL(q || p) is estimated by Monte Carlo. At
    temperature T, `sample` picks a pseudo-input u_k uniformly and draws from
    q(z|u_k) with its noise scaled by T (z = loc(u_k) + T * scale(u_k) * eps
    for a diagonal Gaussian posterior); T = 0 gives the pseudo-inputs' means.

    Args:
        num_components: Number of pseudo-inputs K.
        pseudo_input_mean: Mean of the pseudo-inputs' initial values.
        pseudo_input_stddev: Their initial standard deviation.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2,
    ...              prior=VampPrior(num_components=5))
    >>> vae.build((None, 4))
    >>> vae.prior_distribution().log_prob([[0.0, 0.0]]).shape
    TensorShape([1])
    """

    def __init__(
        self, num_components=500, pseudo_input_mean=0.05, pseudo_input_stddev=0.01, **kwargs
    ):
        super().__init__(**kwargs)
        check_positive_int("num_components", num_components)
        self.num_components = num_components
        self.pseudo_input_mean = pseudo_input_mean
        self.pseudo_input_stddev = pseudo_input_stddev

    def build(self, latent_dim, data_shape):
        super().build(latent_dim, data_shape)
        self.pseudo_inputs = self.add_weight(
            shape=(self.num_components, *self.data_shape),
            initializer=keras.initializers.RandomNormal(
                self.pseudo_input_mean, self.pseudo_input_stddev
            ),
            name="pseudo_inputs",
        )

    def distribution(self, encode):
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.zeros([self.num_components])),
            components_distribution=encode(self.pseudo_inputs),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_components": self.num_components,
            "pseudo_input_mean": self.pseudo_input_mean,
            "pseudo_input_stddev": self.pseudo_input_stddev,
        }
