"""The bounds on log p(x), as functions of distributions and samples.

With z_1..z_k ~ q(z|x) and log-weights log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):

    elbo = E_q[log p(x|z)] - KL(q(z|x) || p(z))
    iwae_k = log (1/k) sum_i w_i                 (Burda et al., 2016)
    elbo = iwae_1 <= iwae_k <= iwae_{k+1} <= log p(x)

and iwae_k with large k is the importance-sampled estimate of log p(x).

Training may weight the KL (beta, annealed by `keras_vae.callbacks.KLWarmup`)
and floor it per latent dimension (`free_bits_kl`); the bounds reported stay
the true ones.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.validation import check_non_negative

__all__ = [
    "beta_value",
    "beta_variable",
    "bits_per_dim",
    "bound_terms",
    "free_bits_kl",
    "has_closed_form_kl",
    "iwae_bound",
    "kl_divergence",
    "kl_per_dimension",
    "log_density_ratio",
]

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


def bound_terms(log_likelihood, posterior, prior, samples, log_weights=False):
    """Per-example bound terms from log p(x|z) at `samples` of q(z|x).

    Args:
        log_likelihood: log p(x|z) at `samples`, `(num_samples, batch)`.
        posterior: q(z|x), batch shape `(batch,)`.
        prior: p(z).
        samples: The draws z, `(num_samples, batch, latent_dim)`.
        log_weights: Whether to return the importance log-weights too.

    Returns:
        A dict of `(batch,)` tensors `elbo`, `reconstruction` and `kl`, and
        `log_weights` of shape `(num_samples, batch)` when asked for.
    """
    reconstruction = tf.reduce_mean(log_likelihood, axis=0)
    # Computed once when the log-weights need it, and reused by a Monte Carlo KL.
    log_ratio = log_density_ratio(posterior, prior, samples) if log_weights else None
    kl = kl_divergence(posterior, prior, samples, log_ratio=log_ratio)
    terms = {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}
    if log_weights:
        terms["log_weights"] = log_likelihood - log_ratio
    return terms


def kl_per_dimension(posterior_parameters):
    """KL(N(loc_j, scale_j^2) || N(0, 1)) for each latent dimension j, `(batch, latent_dim)`.

    The closed form 0.5 * (loc_j^2 + scale_j^2 - 1) - log scale_j, for a diagonal
    Gaussian posterior against the standard normal prior; its sum over j is the KL.
    """
    loc, scale = posterior_parameters["loc"], posterior_parameters["scale"]
    return tfd.kl_divergence(tfd.Normal(loc, scale), tfd.Normal(tf.zeros_like(loc), 1.0))


def free_bits_kl(kl_per_dim, free_bits):
    """The KL with a floor lambda on each dimension's batch average (Kingma et al., 2016).

    With KL_ij the KL of example i in latent dimension j and m_j its mean over
    the batch, the floored KL is sum_j max(lambda, m_j). It is returned per
    example as sum_j (KL_ij if m_j > lambda else lambda), whose batch mean is
    that sum: dimensions below the floor cost lambda and get no gradient, the
    others keep theirs. Under `tf.distribute` the batch is each replica's.

    Args:
        kl_per_dim: `(batch, latent_dim)`, as from `kl_per_dimension`.
        free_bits: The floor lambda, in nats per dimension.

    Returns:
        A `(batch,)` tensor.

    Example:

    >>> kl = tf.constant([[0.1, 2.0], [0.3, 4.0]])
    >>> free_bits_kl(kl, 0.5).numpy().tolist()
    [2.5, 4.5]
    """
    floor = tf.cast(free_bits, kl_per_dim.dtype)
    above = tf.reduce_mean(kl_per_dim, axis=0) > floor  # (latent_dim,)
    return tf.reduce_sum(tf.where(above, kl_per_dim, floor), axis=-1)


def beta_value(beta, check=False):
    """The number held by `beta`, a number or a `keras.Variable`; other values pass through.

    With `check`, raises `ValueError` unless it is a number >= 0.
    """
    if isinstance(beta, keras.Variable):
        beta = float(keras.ops.convert_to_numpy(beta.value))
    if check:
        check_non_negative("beta", beta)
    return beta


def beta_variable(beta):
    """A non-trainable float32 variable holding `beta`: `beta` itself if it is a variable.

    A callback assigns it between steps; a Python float would be captured when
    the training step is traced, and later changes ignored.
    """
    if isinstance(beta, keras.Variable):
        beta.trainable = False  # a KL weight is set, never learned
        return beta
    return keras.Variable(float(beta), dtype="float32", trainable=False, name="beta")


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
