"""p(x|z) = Bernoulli(sigmoid(logits(z))) per data dimension."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.likelihoods.likelihood import Likelihood

__all__ = ["Bernoulli"]

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels, parameterized by logits.

    For binary data (binarized MNIST). `log_prob` is the negative sigmoid
    cross-entropy computed from the logits, which stays finite where
    `log(sigmoid(logits))` would not.

    Example:

    >>> import numpy as np
    >>> likelihood = Bernoulli()
    >>> likelihood.build((None, 16), (4,))
    >>> parameters = likelihood(np.zeros((2, 16), "float32"))
    >>> likelihood.distribution(parameters).log_prob(np.ones((2, 4), "float32")).shape
    TensorShape([2])
    """

    support = (0.0, 1.0)

    def parameters(self, raw):
        return {"logits": raw[..., 0]}

    def distribution(self, parameters):
        return tfd.Independent(
            tfd.Bernoulli(logits=parameters["logits"], dtype=tf.float32),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def log_prob(self, parameters, x):
        # TFP's Bernoulli.log_prob, as one fused op: XLA compiles it into a faster step.
        logits = parameters["logits"]
        cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.broadcast_to(x, tf.shape(logits)), logits=logits
        )
        return -tf.reduce_sum(cross_entropy, axis=list(range(-len(self.event_shape), 0)))

    def mean(self, parameters):
        return keras.ops.sigmoid(parameters["logits"])
