"""Factor analysis as a VAE: the bounds against the exact marginal likelihood.

With linear (identity) networks, a standard normal prior and a learned
per-dimension scale, the VAE is factor analysis:

    z ~ N(0, I),  x | z ~ N(W z + b, diag(sigma^2)),  so  x ~ N(b, W W^T + diag(sigma^2))

and log p(x) is known exactly. W, b and sigma are read back through `decode`,
so the checks hold for whatever parameters training reached; training only
makes q(z|x) a good proposal (the exact posterior is Gaussian, with a
covariance independent of x).
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae as kv

tfd = tfp.distributions

DATA_DIM, LATENT_DIM = 6, 2
NUM_TRAIN, NUM_TEST = 2000, 200


def factor_analysis_data(num_examples, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(DATA_DIM, LATENT_DIM))
    bias = rng.normal(size=DATA_DIM)
    scale = rng.uniform(0.3, 0.8, size=DATA_DIM)
    z = rng.normal(size=(num_examples, LATENT_DIM))
    noise = rng.normal(size=(num_examples, DATA_DIM))
    return (z @ weights.T + bias + scale * noise).astype("float32")


@pytest.fixture(scope="module")
def data():
    x = factor_analysis_data(NUM_TRAIN + NUM_TEST)
    return x[:NUM_TRAIN], x[NUM_TRAIN:]


@pytest.fixture(scope="module", params=["diagonal_normal", "full_covariance_normal"])
def vae(request, data):
    keras.utils.set_random_seed(0)
    posterior = {
        "diagonal_normal": kv.posteriors.DiagonalNormal,
        "full_covariance_normal": kv.posteriors.FullCovarianceNormal,
    }[request.param]()
    vae = kv.VAE(
        keras.layers.Identity(),
        keras.layers.Identity(),
        LATENT_DIM,
        posterior=posterior,
        likelihood=kv.likelihoods.Normal(scale="learned"),
        seed=1,
    )
    epochs, batch_size = 20, 100
    learning_rate = keras.optimizers.schedules.CosineDecay(0.05, epochs * NUM_TRAIN // batch_size)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate))
    vae.fit(data[0], batch_size=batch_size, epochs=epochs, verbose=0)
    return vae


def decoder_parameters(vae):
    """W, b and sigma of p(x|z) = N(W z + b, diag(sigma^2)), read through `decode`."""
    origin = vae.decode(tf.zeros((1, LATENT_DIM)))
    bias = origin.mean()[0].numpy().astype("float64")
    scale = origin.stddev()[0].numpy().astype("float64")
    units = vae.decode(tf.eye(LATENT_DIM)).mean().numpy().astype("float64")
    weights = (units - bias).T  # (data_dim, latent_dim)
    return weights, bias, scale


def exact_log_likelihood(vae, x):
    weights, bias, scale = decoder_parameters(vae)
    covariance = weights @ weights.T + np.diag(scale**2)
    marginal = tfd.MultivariateNormalTriL(bias, tf.linalg.cholesky(covariance))
    return marginal.log_prob(x.astype("float64")).numpy()


def exact_elbo(vae, x):
    """E_q[log p(x|z)] - KL(q || N(0, I)) in closed form, per example."""
    weights, bias, scale = decoder_parameters(vae)
    posterior = vae.encode(x)
    loc = posterior.mean().numpy().astype("float64")  # (batch, latent_dim)
    covariance = posterior.covariance().numpy().astype("float64")  # (batch, latent, latent)
    residual = x - loc @ weights.T - bias
    spread = np.einsum("di,bij,dj->bd", weights, covariance, weights)  # diag(W S W^T)
    reconstruction = np.sum(
        -0.5 * np.log(2 * np.pi) - np.log(scale) - (residual**2 + spread) / (2 * scale**2), -1
    )
    trace = np.trace(covariance, axis1=1, axis2=2)
    kl = 0.5 * (trace + np.sum(loc**2, -1) - LATENT_DIM - np.linalg.slogdet(covariance)[1])
    return reconstruction - kl


def test_decoder_is_affine_with_constant_scale(vae):
    weights, bias, scale = decoder_parameters(vae)
    z = np.random.default_rng(1).normal(size=(5, LATENT_DIM)).astype("float32")
    likelihood = vae.decode(z)
    np.testing.assert_allclose(likelihood.mean(), z @ weights.T + bias, atol=1e-4)
    np.testing.assert_allclose(likelihood.stddev(), np.broadcast_to(scale, (5, DATA_DIM)))


def test_log_likelihood_is_exact(vae, data):
    x = data[1]
    estimate = vae.log_likelihood(x, num_samples=5000).numpy()
    exact = exact_log_likelihood(vae, x)
    # Per example: with q close to the exact posterior the importance weights
    # barely vary, and 5000 of them leave errors of ~0.005 nats.
    np.testing.assert_array_less(np.abs(estimate - exact), 0.05)
    assert np.abs(estimate - exact).mean() < 0.01


def test_elbo_is_below_the_exact_log_likelihood(vae, data):
    x = data[1]
    exact = exact_log_likelihood(vae, x)
    closed_form = exact_elbo(vae, x)
    # log p(x) - elbo = KL(q(z|x) || p(z|x)) >= 0 for every example.
    np.testing.assert_array_less(closed_form, exact + 1e-4)

    draws = np.stack([vae.elbo(x).numpy() for _ in range(20)])  # (draws, batch)
    means = draws.mean(1)
    standard_error = means.std(ddof=1) / math.sqrt(len(means))
    assert means.mean() <= exact.mean() + 3 * standard_error
    assert abs(means.mean() - closed_form.mean()) < 3 * standard_error


def test_iwae_bound_increases_with_num_samples(vae, data):
    x = data[1]
    exact = exact_log_likelihood(vae, x).mean()
    means, standard_errors = [], []
    for num_samples in (1, 5, 50, 500):
        repeats = np.array([vae.iwae_bound(x, num_samples).numpy().mean() for _ in range(10)])
        means.append(repeats.mean())
        standard_errors.append(repeats.std(ddof=1) / math.sqrt(len(repeats)))
    for k in range(3):
        tolerance = 3 * math.hypot(standard_errors[k], standard_errors[k + 1])
        assert means[k + 1] >= means[k] - tolerance, (means, standard_errors)
    assert means[-1] <= exact + 3 * standard_errors[-1]
    assert abs(means[-1] - exact) < 0.01
