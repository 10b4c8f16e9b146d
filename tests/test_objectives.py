"""The bounds, KL terms and likelihood densities against closed forms and Monte Carlo."""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import run_model_saving_test, tiny_vae

import keras_vae as kv
from keras_vae import objectives

tfd = tfp.distributions

POSTERIORS = {
    "diagonal_normal": kv.posteriors.DiagonalNormal,
    "full_covariance_normal": kv.posteriors.FullCovarianceNormal,
}
PRIORS = {
    "standard_normal": kv.priors.StandardNormal,
    "mixture_of_normals": lambda: kv.priors.MixtureOfNormals(3),
    "vamp_prior": lambda: kv.priors.VampPrior(5),
}


def posterior_and_prior(posterior, prior, latent_dim=3, batch=4):
    """q(z|x) for a random batch and p(z) from an untrained VAE."""
    keras.utils.set_random_seed(0)
    vae = tiny_vae(latent_dim=latent_dim, posterior=POSTERIORS[posterior](), prior=PRIORS[prior]())
    x = (np.random.rand(batch, 6) < 0.5).astype("float32")
    return vae.encode(x), vae.prior_distribution()


def monte_carlo_kl(posterior, prior, num_samples, seed=1):
    """log q(z) - log p(z) at z ~ q: its mean and standard error, per example."""
    samples = posterior.sample(num_samples, seed=seed)  # (num_samples, batch, latent_dim)
    log_ratios = (posterior.log_prob(samples) - prior.log_prob(samples)).numpy().astype("float64")
    return samples, log_ratios.mean(0), log_ratios.std(0) / math.sqrt(num_samples)


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("posterior", POSTERIORS)
def test_has_closed_form_kl(posterior, prior):
    q, p = posterior_and_prior(posterior, prior)
    # TFP registers KL(MVN || MVN) only; mixtures fall back to Monte Carlo.
    assert objectives.has_closed_form_kl(q, p) == (prior == "standard_normal")


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_closed_form_kl_equals_monte_carlo(posterior):
    q, p = posterior_and_prior(posterior, "standard_normal")
    closed_form = objectives.kl_divergence(q, p, samples=None).numpy()
    assert closed_form.shape == (4,)
    assert (closed_form > 0).all()
    _, mean, standard_error = monte_carlo_kl(q, p, 200_000)
    np.testing.assert_array_less(np.abs(closed_form - mean), 4 * standard_error + 1e-4)


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_monte_carlo_kl_converges_to_closed_form(posterior):
    q, p = posterior_and_prior(posterior, "standard_normal")
    closed_form = objectives.kl_divergence(q, p, samples=None).numpy()
    # The same N(0, I), as a one-component mixture: TFP has no analytic KL for it.
    hidden = tfd.MixtureSameFamily(
        tfd.Categorical(logits=[0.0]), tfd.MultivariateNormalDiag(tf.zeros([1, 3]), tf.ones([1, 3]))
    )
    assert not objectives.has_closed_form_kl(q, hidden)
    for num_samples in (100, 100_000):
        samples, _, standard_error = monte_carlo_kl(q, p, num_samples)
        estimate = objectives.kl_divergence(q, hidden, samples).numpy()
        np.testing.assert_array_less(np.abs(estimate - closed_form), 4 * standard_error + 1e-4)
    assert (standard_error < 0.01).all()


def test_monte_carlo_kl_of_mixture_prior_equals_quadrature():
    q, p = posterior_and_prior("diagonal_normal", "mixture_of_normals", latent_dim=1)
    # Spread the components so that the mixture is far from Gaussian.
    mixture = p.components_distribution
    p = tfd.MixtureSameFamily(
        p.mixture_distribution,
        tfd.MultivariateNormalDiag([[-2.0], [0.5], [3.0]], mixture.scale.diag),
    )
    samples, mean, standard_error = monte_carlo_kl(q, p, 200_000)
    estimate = objectives.kl_divergence(q, p, samples).numpy()
    np.testing.assert_allclose(estimate, mean, rtol=1e-3)  # float32 mean of 200k terms

    grid = np.linspace(-20.0, 20.0, 40_001, dtype="float32")[:, None, None]  # (points, 1, 1)
    log_q = q.log_prob(grid).numpy().astype("float64")  # (points, batch)
    log_p = p.log_prob(grid).numpy().astype("float64")  # (points, 1)
    quadrature = np.trapezoid(np.exp(log_q) * (log_q - log_p), grid[:, 0, 0], axis=0)
    np.testing.assert_array_less(np.abs(estimate - quadrature), 4 * standard_error + 1e-3)


@pytest.fixture(scope="module")
def data():
    return (np.random.default_rng(0).random((5, 6)) < 0.5).astype("float32")


def test_iwae_with_one_sample_is_the_elbo_of_that_sample(data):
    # With a mixture prior the KL is Monte Carlo, over the same sample as the bound.
    keras.utils.set_random_seed(0)
    vae = tiny_vae(prior=kv.priors.MixtureOfNormals(3))
    noise = tf.random.stateless_normal((1, 5, 2), seed=(1, 2))
    terms = vae.terms(data, 1, noise=noise, log_weights=True)
    np.testing.assert_allclose(
        objectives.iwae_bound(terms["log_weights"]), terms["elbo"], rtol=1e-5, atol=1e-5
    )


def test_iwae_with_one_sample_is_unbiased_for_the_closed_form_elbo(data):
    keras.utils.set_random_seed(0)
    vae = tiny_vae()
    num_samples = 20_000
    noise = tf.random.stateless_normal((num_samples, 5, 2), seed=(1, 2))
    terms = vae.terms(data, num_samples, noise=noise, log_weights=True)
    # iwae_1 of each sample: log p(x|z) + log p(z) - log q(z|x).
    iwae_1 = np.stack([objectives.iwae_bound(terms["log_weights"][i : i + 1]) for i in range(100)])
    np.testing.assert_allclose(iwae_1, terms["log_weights"][:100], rtol=1e-6)

    # Same samples: mean_i iwae_1 - elbo = KL_closed - KL_monte_carlo, exactly.
    posterior = vae.encode(data)
    z = vae.posterior.reparameterize(vae.posterior_parameters(data), noise)
    prior = vae.prior_distribution()
    monte_carlo = tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), 0)
    difference = tf.reduce_mean(terms["log_weights"], 0) - terms["elbo"]
    np.testing.assert_allclose(difference, terms["kl"] - monte_carlo, atol=1e-4)

    # ... which vanishes as the samples grow.
    log_weights = terms["log_weights"].numpy().astype("float64")
    standard_error = log_weights.std(0) / math.sqrt(num_samples)
    np.testing.assert_array_less(np.abs(difference), 4 * standard_error + 1e-4)


def test_iwae_bound_matches_numpy_and_jensen():
    log_weights = np.random.default_rng(1).normal(-1000.0, 5.0, size=(50, 7)).astype("float32")
    bound = objectives.iwae_bound(tf.constant(log_weights)).numpy()
    shifted = log_weights.astype("float64") - log_weights.max(0)
    expected = log_weights.max(0) + np.log(np.exp(shifted).mean(0))
    np.testing.assert_allclose(bound, expected, rtol=1e-6)
    assert (bound >= log_weights.mean(0)).all()
    assert (bound <= log_weights.max(0)).all()


def test_log_density_ratio():
    posterior = tfd.MultivariateNormalDiag([[0.5], [0.0]], [[0.3], [2.0]])
    prior = tfd.MultivariateNormalDiag([0.0], [1.0])
    samples = np.array([[[0.1], [-1.0]]])
    # log N(z; m, s) by hand, in float64.
    log_normal = lambda z, m, s: -0.5 * np.log(2 * np.pi) - np.log(s) - 0.5 * ((z - m) / s) ** 2  # noqa: E731
    expected = log_normal(samples[..., 0], np.array([0.5, 0.0]), np.array([0.3, 2.0]))
    expected -= log_normal(samples[..., 0], 0.0, 1.0)
    ratio = objectives.log_density_ratio(posterior, prior, samples.astype("float32"))
    np.testing.assert_allclose(ratio, expected, rtol=1e-5)


def test_bits_per_dim():
    log_likelihood = np.array([-80.0, -100.0, -543.2])
    expected = -log_likelihood / (784 * np.log(2.0))
    np.testing.assert_allclose(kv.bits_per_dim(log_likelihood, 784), expected, rtol=1e-6)
    np.testing.assert_allclose(
        kv.bits_per_dim(tf.constant(log_likelihood, tf.float32), 784), expected, rtol=1e-6
    )
    assert float(kv.bits_per_dim(-10 * math.log(2.0), 10)) == pytest.approx(1.0)


def test_bits_per_dim_of_a_fair_coin_is_one():
    likelihood = kv.likelihoods.Bernoulli()
    likelihood.build((None, 4), (3, 5))
    distribution = likelihood.distribution({"logits": tf.zeros((2, 3, 5))})
    x = (np.random.default_rng(0).random((2, 3, 5)) < 0.5).astype("float32")
    np.testing.assert_allclose(kv.bits_per_dim(distribution.log_prob(x), 15), 1.0, rtol=1e-6)


def test_continuous_bernoulli_mean():
    logits = np.concatenate(
        [
            np.linspace(-0.4, 0.4, 8001),  # across the Taylor-series switch at |l| = 0.3
            [0.0, 0.3, -0.3, 0.3 + 1e-6, -0.3 - 1e-6, 1e-8, -1e-8],
            np.geomspace(0.2, 1e4, 200),
            -np.geomspace(0.2, 1e4, 200),
        ]
    )
    likelihood = kv.likelihoods.ContinuousBernoulli()
    mean = likelihood.mean({"logits": tf.constant(logits, tf.float32)}).numpy()
    expected = tfd.ContinuousBernoulli(logits=tf.constant(logits, tf.float64)).mean().numpy()
    # float32 loses ~eps / |l| to cancellation just outside the series' range.
    np.testing.assert_allclose(mean, expected, rtol=0, atol=1e-5)
    assert ((mean > 0) & (mean < 1)).all()
    assert (np.diff(mean[:4001]) > 0).all()


def test_continuous_bernoulli_is_a_density_with_that_mean():
    likelihood = kv.likelihoods.ContinuousBernoulli()
    likelihood.build((None, 4), (1,))
    parameters = {"logits": tf.constant([[-30.0], [-2.0], [-0.01], [0.0], [0.3], [7.0]])}
    distribution = likelihood.distribution(parameters)
    x = np.linspace(0.0, 1.0, 200_001, dtype="float64")
    density = np.exp(distribution.log_prob(x[:, None, None].astype("float32")).numpy())
    np.testing.assert_allclose(np.trapezoid(density, x, axis=0), 1.0, rtol=1e-4)
    np.testing.assert_allclose(
        np.trapezoid(density * x[:, None], x, axis=0),
        likelihood.mean(parameters)[:, 0],
        rtol=1e-4,
    )


def test_bernoulli_log_prob_is_binary_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 5.0, size=(4, 3, 5))
    logits[0, 0, :] = [-100.0, -30.0, 0.0, 30.0, 100.0]
    x = np.concatenate([rng.random((2, 3, 5)) < 0.5, rng.random((2, 3, 5))]).astype("float32")
    likelihood = kv.likelihoods.Bernoulli()
    likelihood.build((None, 4), (3, 5))
    parameters = {"logits": tf.constant(logits, tf.float32)}
    log_prob = likelihood.distribution(parameters).log_prob(x).numpy()
    # -BCE = x log(sigmoid(l)) + (1 - x) log(1 - sigmoid(l)), in stable float64.
    expected = -(x * np.logaddexp(0.0, -logits) + (1 - x) * np.logaddexp(0.0, logits))
    np.testing.assert_allclose(log_prob, expected.sum((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(likelihood.mean(parameters), 1 / (1 + np.exp(-logits)), atol=1e-7)
    # The family's fused log_prob, as the model calls it: samples of z broadcast against x.
    samples = {"logits": tf.stack([parameters["logits"]] * 2)}  # (num_samples, batch, 3, 5)
    np.testing.assert_allclose(likelihood.log_prob(samples, x), [log_prob] * 2, rtol=1e-6)


@pytest.mark.parametrize("scale", ["predicted", "learned", 0.5])
def test_normal_log_prob(scale):
    keras.utils.set_random_seed(0)
    likelihood = kv.likelihoods.Normal(scale=scale, min_scale=0.01)
    likelihood.build((None, 8), (3, 2))
    parameters = likelihood(np.random.normal(size=(4, 8)).astype("float32"))
    loc = parameters["loc"].numpy().astype("float64")
    sigma = parameters["scale"].numpy().astype("float64")
    assert loc.shape == sigma.shape == (4, 3, 2)
    if scale == "learned":
        np.testing.assert_allclose(sigma, 1.01, rtol=1e-4)  # softplus(0.5413) + min_scale
    elif scale == "predicted":
        assert (sigma > 0.01).all() and np.ptp(sigma) > 0
    else:
        np.testing.assert_allclose(sigma, 0.5)
    x = np.random.normal(size=(4, 3, 2)).astype("float32")
    log_prob = likelihood.distribution(parameters).log_prob(x).numpy()
    expected = -0.5 * np.log(2 * np.pi) - np.log(sigma) - 0.5 * ((x - loc) / sigma) ** 2
    np.testing.assert_allclose(log_prob, expected.sum((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(likelihood.mean(parameters), loc, rtol=1e-6)


# === Objective controls: free bits and beta ===


def test_free_bits_loss_equals_the_hand_computed_value():
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(0).random((64, 6)) < 0.4).astype("float32")
    vae = tiny_vae(latent_dim=4, seed=2, beta=0.5)
    parameters = vae.posterior_parameters(x)
    loc, scale = (parameters[name].numpy().astype("float64") for name in ("loc", "scale"))
    kl = 0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale)  # (batch, latent_dim)
    means = kl.mean(axis=0)
    free_bits = float(np.median(means))  # two dimensions below the floor, two above
    assert (means < free_bits).sum() == 2 and (means > free_bits).sum() == 2

    keras.utils.set_random_seed(0)  # the same initial weights
    vae = tiny_vae(latent_dim=4, seed=2, beta=0.5, free_bits=free_bits)
    np.testing.assert_allclose(vae.posterior_parameters(x)["loc"], loc, rtol=1e-6)
    history = vae.fit(x, batch_size=64, epochs=1, verbose=0, shuffle=False).history
    expected = 0.5 * np.maximum(free_bits, means).sum() - history["reconstruction"][0]
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)
    # The bound reported is the true one: the KL unfloored.
    assert history["kl"][0] == pytest.approx(kl.sum(axis=1).mean(), rel=1e-5)


def test_free_bits_gradient_leaves_floored_dimensions_alone():
    kl = tf.Variable([[0.1, 2.0, 0.2], [0.3, 4.0, 0.9]])
    with tf.GradientTape() as tape:
        floored = objectives.free_bits_kl(kl, 0.5)
    # Dimension 0 (mean 0.2) is floored; 2 (mean 0.55) and 1 are above it, and their
    # batch mean is max(0.5, 0.2) + max(0.5, 3.0) + max(0.5, 0.55).
    np.testing.assert_allclose(floored, [0.5 + 2.0 + 0.2, 0.5 + 4.0 + 0.9], rtol=1e-6)
    assert float(tf.reduce_mean(floored)) == pytest.approx(0.5 + 3.0 + 0.55)
    np.testing.assert_array_equal(tape.gradient(floored, kl), [[0, 1, 1], [0, 1, 1]])


@pytest.mark.parametrize(
    "options, received",
    [
        ({"objective": "iwae", "num_samples": 2}, "objective='iwae'"),
        ({"estimator": "stl"}, "estimator='stl'"),
        ({"posterior": kv.posteriors.FullCovarianceNormal()}, "posterior=FullCovarianceNormal"),
        ({"prior": kv.priors.MixtureOfNormals(2)}, "prior=MixtureOfNormals"),
    ],
)
def test_free_bits_refused_without_a_closed_form_per_dimension(options, received):
    with pytest.raises(ValueError, match=f"Received: free_bits=0.5 with .*{re.escape(received)}"):
        kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), 2, free_bits=0.5, **options)
    with pytest.raises(ValueError, match="Received: free_bits=-1"):
        kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), 2, free_bits=-1)


def test_beta_is_saved_with_the_model(tmp_path):
    x = (np.random.default_rng(0).random((16, 6)) < 0.4).astype("float32")
    vae = tiny_vae(free_bits=0.25, estimator="score_function")
    vae.fit(x, batch_size=16, verbose=0)
    vae.beta = 0.3
    loaded = run_model_saving_test(vae, x, tmp_path / "model.keras")
    assert float(loaded.beta) == pytest.approx(0.3)
    assert loaded.free_bits == 0.25
    assert loaded.get_config()["beta"] == pytest.approx(0.3)
