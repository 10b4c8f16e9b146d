"""p(z) = sum_k w_k N(loc_k, diag(scale_k^2)) with learned w, loc and scale."""

import keras
import tensorflow_probability as tfp

from keras_vae.priors.prior import Prior
from keras_vae.validation import check_non_negative, check_positive_int

__all__ = ["MixtureOfNormals"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class MixtureOfNormals(Prior):
    """A learned mixture of diagonal Gaussians.

    Mixture weights are softmax(logits), scales softplus(raw) + min_scale.
    KL(q || p) has no closed form: the model estimates it by Monte Carlo.
    At temperature T, `sample` picks k ~ Categorical(w) as usual and draws
    z = loc_k + T * scale_k * eps: each component narrowed (T < 1) around its
    mean, the weights unchanged; T = 0 gives the component means.

    Args:
        num_components: Number of mixture components K.
        min_scale: Lower bound of the component scales.

    Example:

    >>> prior = MixtureOfNormals(num_components=3)
    >>> prior.build(2, (4,))
    >>> prior.distribution(encode=None).log_prob([[0.0, 0.0]]).shape
    TensorShape([1])
    """

    def __init__(self, num_components=10, min_scale=1e-3, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("num_components", num_components)
        check_non_negative("min_scale", min_scale)
        self.num_components = num_components
        self.min_scale = min_scale

    def build(self, latent_dim, data_shape):
        super().build(latent_dim, data_shape)
        shape = (self.num_components, self.latent_dim)
        self.logits = self.add_weight(
            shape=(self.num_components,), initializer="zeros", name="logits"
        )
        # Spread the components so they do not start identical (and stay so).
        self.loc = self.add_weight(shape=shape, initializer="random_normal", name="loc")
        self.raw_scale = self.add_weight(
            shape=shape, initializer=keras.initializers.Constant(0.5413), name="raw_scale"
        )

    def distribution(self, encode):
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=self.logits),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=self.loc, scale_diag=keras.ops.softplus(self.raw_scale) + self.min_scale
            ),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_components": self.num_components,
            "min_scale": self.min_scale,
        }
