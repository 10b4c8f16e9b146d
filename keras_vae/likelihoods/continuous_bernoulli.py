"""p(x|z) = ContinuousBernoulli(logits(z)) per data dimension."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.likelihoods.likelihood import Likelihood

__all__ = ["ContinuousBernoulli"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli, a proper density on [0, 1].

    Bernoulli cross-entropy on grey levels is not a log-density: it lacks the
    normalizing constant that depends on the logits. The continuous Bernoulli
    adds it (Loaiza-Ganem & Cunningham, 2019), so its ELBO is a bound on
    log p(x) for data in [0, 1].

    Example:

    >>> import numpy as np
    >>> likelihood = ContinuousBernoulli()
    >>> likelihood.build((None, 16), (4,))
    >>> parameters = likelihood(np.zeros((2, 16), "float32"))
    >>> likelihood.mean(parameters).shape
    TensorShape([2, 4])
    """

    support = (0.0, 1.0)

    def parameters(self, raw):
        return {"logits": raw[..., 0]}

    def distribution(self, parameters):
        return tfd.Independent(
            tfd.ContinuousBernoulli(logits=parameters["logits"]),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def mean(self, parameters):
        # mean = p / (2p - 1) + 1 / (2 atanh(1 - 2p)). With logits l, 2p - 1 = tanh(l / 2)
        # and 2 atanh(1 - 2p) = -l; near l = 0 the two terms cancel in float32, so use the
        # series 1/2 + l/12 - l^3/720 + l^5/30240 there (error below 1e-6).
        logits = parameters["logits"]
        small = keras.ops.abs(logits) < 0.3
        safe = tf.where(small, tf.ones_like(logits), logits)
        exact = keras.ops.sigmoid(safe) / keras.ops.tanh(safe / 2.0) - 1.0 / safe
        squared = logits * logits
        series = 0.5 + logits * (1.0 / 12.0 - squared * (1.0 / 720.0 - squared / 30240.0))
        return tf.where(small, series, exact)
