"""The bounds on log p(x), as functions of distributions and samples.

With z_1..z_k ~ q(z|x) and log-weights log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):

    elbo = E_q[log p(x|z)] - KL(q(z|x) || p(z))
    iwae_k = log (1/k) sum_i w_i                 (Burda et al., 2016)
    elbo = iwae_1 <= iwae_k <= iwae_{k+1} <= log p(x)

and iwae_k with large k is the importance-sampled estimate of log p(x).
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["bits_per_dim", "has_closed_form_kl", "iwae_bound", "kl_divergence", "log_density_ratio"]

tfd = tfp.distributions


def has_closed_form_kl(posterior, prior):
    """Whether TFP registers an analytic KL(posterior || prior)."""
    try:
        tfd.kl_divergence(posterior, prior)
    except NotImplementedError:
        return False
    return True


def log_density_ratio(posterior, prior, samples):
    """log q(z|x) - log p(z) at `samples`, `(num_samples, batch)`.

    The importance log-weights are `log p(x|z) - log_ratio`.
    """
    return posterior.log_prob(samples) - prior.log_prob(samples)


def kl_divergence(posterior, prior, samples, log_ratio=None):
    """KL(q || p) per example: in closed form where one exists, else Monte Carlo.

    Args:
        posterior: q(z|x), batch shape `(batch,)`.
        prior: p(z).
        samples: Reparameterized draws from `posterior`, `(num_samples, batch, latent_dim)`;
            the Monte Carlo estimate averages `log q(z) - log p(z)` over them.
        log_ratio: That log-ratio at `samples`, if already computed.

    Returns:
        A `(batch,)` tensor, in nats.

    Example:

    >>> q = tfd.MultivariateNormalDiag([[1.0]], [1.0])
    >>> p = tfd.MultivariateNormalDiag([0.0], [1.0])
    >>> float(kl_divergence(q, p, samples=None)[0])
    0.5
    """
    try:
        return tfd.kl_divergence(posterior, prior)
    except NotImplementedError:
        if log_ratio is None:
            log_ratio = log_density_ratio(posterior, prior, samples)
        return tf.reduce_mean(log_ratio, axis=0)


def iwae_bound(log_weights):
    """The IWAE bound log (1/k) sum_i w_i from log-weights of shape `(k, batch)`.

    Example:

    >>> float(iwae_bound(tf.math.log([[1.0], [3.0]]))[0]) == math.log(2.0)
    True
    """
    num_samples = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(num_samples)


def bits_per_dim(log_likelihood, num_dims):
    """Converts log-likelihoods in nats to bits per data dimension, -log2 p(x) / num_dims.

    Example:

    >>> round(float(bits_per_dim(-784 * math.log(2.0), 784)), 6)
    1.0
    """
    return -tf.convert_to_tensor(log_likelihood, tf.float32) / (num_dims * math.log(2.0))
