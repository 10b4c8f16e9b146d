"""p(x|z) = a mixture of logistics discretized to the 256 values of 8-bit pixels."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.likelihoods.likelihood import Likelihood
from keras_vae.validation import check_non_negative, check_positive_int

__all__ = ["DiscretizedLogisticMixture"]

tfd = tfp.distributions

# Pixel values are the integers 0..MAX_VALUE.
MAX_VALUE = 255


@keras.saving.register_keras_serializable(package="keras_vae")
class DiscretizedLogisticMixture(Likelihood):
    """A discretized mixture of logistics per 8-bit value (Salimans et al., 2017, PixelCNN++).

    Each data dimension (pixel channel) takes the integer values 0..255. With
    K logistics of weight w_k, location loc_k and scale s_k (in pixel units),
    value v takes the mass of its bin [v - 0.5, v + 0.5], and the edge values
    take the tails:

        P(x = v)   = sum_k w_k [sigmoid((v + 0.5 - loc_k) / s_k) - sigmoid((v - 0.5 - loc_k) / s_k)]
        P(x = 0)   = sum_k w_k sigmoid((0.5 - loc_k) / s_k)
        P(x = 255) = sum_k w_k [1 - sigmoid((254.5 - loc_k) / s_k)]

    so the 256 probabilities sum to 1. Built from TFP: a `MixtureSameFamily`
    of `QuantizedDistribution(Logistic(loc - 0.5, scale), low=0, high=255)`;
    `log_prob` computes the same numbers in closed form, with ops that stay
    finite after TFLite conversion.
    Channels are independent given z (the decoder already sees all of z, so
    PixelCNN++'s autoregressive channel coupling is not used). The network
    predicts locations on [-1, 1] and scales relative to that range, as in
    PixelCNN++: loc = 127.5 * (1 + raw_loc), scale = 127.5 * (softplus(raw) +
    min_scale). Report log p(x) in bits per dimension with
    `keras_vae.bits_per_dim`.

    Args:
        num_components: Number of logistics K per data dimension.
        min_scale: Lower bound of the scales, relative to the half-range 127.5.

    Example:

    >>> import numpy as np
    >>> likelihood = DiscretizedLogisticMixture(num_components=3)
    >>> likelihood.build((None, 16), (4,))
    >>> parameters = likelihood(np.zeros((2, 16), "float32"))
    >>> values = np.arange(256, dtype="float32")[:, None, None] * np.ones((1, 2, 4), "float32")
    >>> probabilities = np.exp(likelihood.distribution(parameters).distribution.log_prob(values))
    >>> bool(np.allclose(probabilities.sum(0), 1.0, atol=1e-4))
    True
    """

    support = (0.0, float(MAX_VALUE))
    integer = True  # the data boundary refuses values between the 256 levels

    def __init__(self, num_components=5, min_scale=1e-3, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("num_components", num_components)
        check_non_negative("min_scale", min_scale)
        self.num_components = num_components
        self.min_scale = min_scale
        self.num_params = 3 * num_components

    def parameters(self, raw):
        logits, raw_loc, raw_scale = keras.ops.split(raw, 3, axis=-1)  # (..., K) each
        half_range = MAX_VALUE / 2
        return {
            "logits": logits,
            "loc": half_range * (1.0 + raw_loc),
            "scale": half_range * (keras.ops.softplus(raw_scale) + self.min_scale),
        }

    def components(self, parameters):
        """The K discretized logistics of each dimension: batch shape `(..., K)`."""
        # QuantizedDistribution gives y the mass of (y - 1, y]; the shift centres it on y.
        return tfd.QuantizedDistribution(
            tfd.Logistic(loc=parameters["loc"] - 0.5, scale=parameters["scale"]),
            low=0.0,
            high=float(MAX_VALUE),
        )

    def mixture(self, parameters):
        """The mixture of each data dimension: batch shape `parameters["loc"].shape[:-1]`."""
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=parameters["logits"]),
            components_distribution=self.components(parameters),
        )

    def distribution(self, parameters):
        return tfd.Independent(
            self.mixture(parameters), reinterpreted_batch_ndims=len(self.event_shape)
        )

    def log_prob(self, parameters, x):
        # TFP's log_prob in closed form, with ops that stay finite after TFLite conversion
        # (its softplus overflows to inf beyond ~88), on the event flattened to one axis
        # (TFLite broadcasts up to rank 5: sample, batch, event and mixture axes). A bin
        # (v - 0.5, v + 0.5] of a logistic, with u, l its edges in units of the scale s:
        #   sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(-(u - l))),  u - l = 1/s
        # so log P = log_sigmoid(u) + log_sigmoid(-l) + log(-expm1(-1/s)), no cancellation;
        # the edge values keep only their inner factor: log_sigmoid(u) at 0, log_sigmoid(-l)
        # at 255.
        def flatten(value, trailing=()):  # (..., *event_shape, *trailing) -> (..., size, ...)
            leading = tf.shape(value)[: tf.rank(value) - len(self.event_shape) - len(trailing)]
            return tf.reshape(value, tf.concat([leading, [self.event_size, *trailing]], 0))

        flat = {name: flatten(value, (self.num_components,)) for name, value in parameters.items()}
        x = flatten(tf.cast(x, tf.float32))[..., None]  # (..., event_size, 1)
        inverse_scale = 1.0 / flat["scale"]
        upper = (x + 0.5 - flat["loc"]) * inverse_scale
        lower = (x - 0.5 - flat["loc"]) * inverse_scale
        log_upper, log_lower = log_sigmoid(upper), log_sigmoid(-lower)
        interior = log_upper + log_lower + tf.math.log(-tf.math.expm1(-inverse_scale))
        log_mass = tf.where(x <= 0, log_upper, tf.where(x >= MAX_VALUE, log_lower, interior))
        log_weights = tf.nn.log_softmax(flat["logits"], axis=-1)
        return tf.reduce_sum(tf.reduce_logsumexp(log_weights + log_mass, axis=-1), axis=-1)

    def mean(self, parameters):
        # E[x] = sum_{t=0}^{254} P(x > t) exactly, with P(x > t) = sigmoid((loc - t - 0.5) / s)
        # per logistic: a loop over the 255 thresholds keeps memory at one (..., K) tensor.
        loc, scale = parameters["loc"] - 0.5, parameters["scale"]
        means = tf.foldl(
            lambda total, threshold: total + tf.sigmoid((loc - threshold) / scale),
            tf.range(float(MAX_VALUE)),
            initializer=tf.zeros_like(loc),
        )
        weights = tf.nn.softmax(parameters["logits"], axis=-1)
        return tf.reduce_sum(weights * means, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_components": self.num_components,
            "min_scale": self.min_scale,
        }


def log_sigmoid(t):
    """log(sigmoid(t)) = min(t, 0) - log(1 + exp(-|t|)): finite for every finite t."""
    return tf.minimum(t, 0.0) - tf.math.log1p(tf.exp(-tf.abs(t)))
