"""Two stochastic layers, linear and Gaussian: the bounds against the exact marginal likelihood.

With identity networks, a standard normal prior on z_2 and constant scales,
the model with one `LatentLayer` is

    z_2 ~ N(0, I),  z_1 | z_2 ~ N(A z_2 + a, diag(s^2)),  x | z_1 ~ N(W z_1 + b, diag(sigma^2))
    so  x ~ N(W a + b, W (A A^T + diag(s^2)) W^T + diag(sigma^2))

and q(z_1|x) q(z_2|z_1), with q(z_2|z_1) = N(C z_1 + c, diag(t^2)), is a joint
Gaussian over (z_1, z_2): log p(x), log p(z), log q(z|x) and the ELBO are known
exactly. The scales of both links are made constant (their projections'
scale columns held at zero); training only makes q a good proposal, and every
parameter is read back through the model, so the checks hold for the
parameters the model has.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import keras_vae as kv

tfd = tfp.distributions

DATA_DIM, Z1, Z2 = 6, 3, 2
NUM_TRAIN, NUM_TEST = 2000, 100


def two_layer_data(num_examples, seed=0):
    rng = np.random.default_rng(seed)
    upper = rng.normal(size=(Z1, Z2))
    weights = rng.normal(size=(DATA_DIM, Z1))
    z2 = rng.normal(size=(num_examples, Z2))
    z1 = z2 @ upper.T + 0.5 * rng.normal(size=(num_examples, Z1))
    x = z1 @ weights.T + rng.normal(size=DATA_DIM) + 0.4 * rng.normal(size=(num_examples, DATA_DIM))
    return x.astype("float32")


@pytest.fixture(scope="module")
def data():
    x = two_layer_data(NUM_TRAIN + NUM_TEST)
    return x[:NUM_TRAIN], x[NUM_TRAIN:]


@pytest.fixture(scope="module")
def vae(data):
    keras.utils.set_random_seed(0)
    layer = kv.LatentLayer(Z2, keras.layers.Identity(), keras.layers.Identity())
    vae = kv.VAE(
        keras.layers.Identity(),
        keras.layers.Identity(),
        Z1,
        likelihood=kv.likelihoods.Normal(scale="learned"),
        latent_layers=[layer],
        seed=1,
    )
    vae.build((None, DATA_DIM))
    for family in (layer.prior, layer.posterior):
        # Constant scales, kept through training: linear-Gaussian links.
        kernel = family.projection.kernel
        mask = np.ones(kernel.shape, "float32")
        mask[:, kernel.shape[1] // 2 :] = 0.0
        kernel.assign(kernel * mask)
        kernel.constraint = lambda weights, mask=mask: weights * mask
    epochs, batch_size = 20, 100
    learning_rate = keras.optimizers.schedules.CosineDecay(0.05, epochs * NUM_TRAIN // batch_size)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate))
    vae.fit(data[0], batch_size=batch_size, epochs=epochs, verbose=0)
    return vae


def affine(function, size):
    """M, m and the scale of `function(z) = N(M z + m, diag(scale^2))`, read at 0 and e_j."""
    origin = function(tf.zeros((1, size)))
    offset = origin["loc"][0].numpy().astype("float64")
    units = function(tf.eye(size))["loc"].numpy().astype("float64")
    return (units - offset).T, offset, origin["scale"][0].numpy().astype("float64")


def model_parameters(vae):
    """The matrices of the generative model and of q(z_2|z_1), read through the model."""
    layer = vae.latent_layers[0]

    def likelihood(z):
        parameters = vae.likelihood_parameters(z)
        return {"loc": parameters["loc"], "scale": vae.decode(z).stddev()}

    return {
        "likelihood": affine(likelihood, Z1),  # W, b, sigma
        "prior": affine(layer.prior_parameters, Z2),  # A, a, s
        "posterior": affine(layer.posterior_parameters, Z1),  # C, c, t
    }


def joint_prior(vae):
    """p(z_1, z_2) as mean and covariance over z = concat(z_1, z_2)."""
    upper, offset, scale = model_parameters(vae)["prior"]
    mean = np.concatenate([offset, np.zeros(Z2)])
    covariance = np.block([[upper @ upper.T + np.diag(scale**2), upper], [upper.T, np.eye(Z2)]])
    return mean, covariance


def joint_posterior(vae, x):
    """q(z_1, z_2|x) as means `(batch, Z1 + Z2)` and covariances."""
    upper, offset, scale = model_parameters(vae)["posterior"]
    parameters = vae.posterior_parameters(x)
    loc = parameters["loc"].numpy().astype("float64")
    variance = parameters["scale"].numpy().astype("float64") ** 2
    means = np.concatenate([loc, loc @ upper.T + offset], axis=1)
    covariances = []
    for row in variance:
        first = np.diag(row)
        covariances.append(
            np.block(
                [
                    [first, first @ upper.T],
                    [upper @ first, upper @ first @ upper.T + np.diag(scale**2)],
                ]
            )
        )
    return means, np.stack(covariances)


def exact_log_likelihood(vae, x):
    weights, bias, scale = model_parameters(vae)["likelihood"]
    mean, covariance = joint_prior(vae)
    marginal_mean = weights @ mean[:Z1] + bias
    marginal_covariance = weights @ covariance[:Z1, :Z1] @ weights.T + np.diag(scale**2)
    marginal = tfd.MultivariateNormalTriL(marginal_mean, tf.linalg.cholesky(marginal_covariance))
    return marginal.log_prob(x.astype("float64")).numpy()


def expected_gaussian_log_density(projection, offset, variance, mean, covariance):
    """E_u[log N(P u + r; 0, diag(variance))] for u ~ N(mean, covariance), per example."""
    residual = mean @ projection.T + offset  # (batch, dims)
    spread = np.einsum("di,bij,dj->bd", projection, covariance, projection)
    return np.sum(
        -0.5 * np.log(2 * np.pi * variance) - (residual**2 + spread) / (2 * variance), axis=-1
    )


def exact_elbo(vae, x):
    """E_q[log p(x, z_1, z_2)] + H[q] in closed form, per example."""
    parameters = model_parameters(vae)
    weights, bias, sigma = parameters["likelihood"]
    upper, offset, scale = parameters["prior"]
    mean, covariance = joint_posterior(vae, x)
    x = x.astype("float64")
    zeros = np.zeros((DATA_DIM, Z2))
    likelihood = expected_gaussian_log_density(
        np.hstack([-weights, zeros]), x - bias, sigma**2, mean, covariance
    )
    link = expected_gaussian_log_density(
        np.hstack([np.eye(Z1), -upper]), -offset, scale**2, mean, covariance
    )
    top = expected_gaussian_log_density(
        np.hstack([np.zeros((Z2, Z1)), np.eye(Z2)]), 0.0, np.ones(Z2), mean, covariance
    )
    entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * covariance)[1]
    return likelihood + link + top + entropy


def test_links_are_affine_with_constant_scales(vae):
    z = np.random.default_rng(1).normal(size=(5, Z1 + Z2)).astype("float32")
    parameters = model_parameters(vae)
    layer = vae.latent_layers[0]
    for name, function, inputs in (
        ("likelihood", lambda z: vae.likelihood_parameters(z), z),  # sees z_1 only
        ("prior", layer.prior_parameters, z[:, Z1:]),
        ("posterior", layer.posterior_parameters, z[:, :Z1]),
    ):
        matrix, offset, scale = parameters[name]
        outputs = function(inputs)
        np.testing.assert_allclose(
            outputs["loc"], inputs[:, : matrix.shape[1]] @ matrix.T + offset, atol=1e-4
        )
        if "scale" in outputs:
            np.testing.assert_allclose(
                outputs["scale"], np.broadcast_to(scale, (5, len(scale))), rtol=1e-6
            )


def test_log_densities_of_the_chains_are_the_joint_gaussians(vae, data):
    x = data[1][:5]
    z = np.random.default_rng(2).normal(size=(4, 5, Z1 + Z2)).astype("float32")
    mean, covariance = joint_prior(vae)
    exact_prior = tfd.MultivariateNormalFullCovariance(mean, covariance).log_prob(z)
    np.testing.assert_allclose(vae.prior_distribution().log_prob(z), exact_prior, atol=1e-4)
    means, covariances = joint_posterior(vae, x)
    exact_posterior = tfd.MultivariateNormalFullCovariance(means, covariances).log_prob(z)
    np.testing.assert_allclose(vae.encode(x).log_prob(z), exact_posterior, atol=1e-3)


def test_log_likelihood_is_exact(vae, data):
    x = data[1]
    estimate = vae.log_likelihood(x, num_samples=5000).numpy()
    exact = exact_log_likelihood(vae, x)
    np.testing.assert_array_less(np.abs(estimate - exact), 0.05)
    assert np.abs(estimate - exact).mean() < 0.01


def test_elbo_is_below_the_exact_log_likelihood(vae, data):
    x = data[1]
    exact = exact_log_likelihood(vae, x)
    closed_form = exact_elbo(vae, x)
    # log p(x) - elbo = KL(q(z_1, z_2|x) || p(z_1, z_2|x)) >= 0 for every example.
    np.testing.assert_array_less(closed_form, exact + 1e-4)
    assert (exact - closed_form).mean() > 1e-3  # q is not the exact posterior: a real gap

    # The Monte Carlo ELBO (sampled KL included) averaged over 2000 draws per example:
    # its errors are ~0.003 nats per example, ~0.0003 on the mean.
    estimate = vae.elbo(x, num_samples=2000, seed=0).numpy()
    np.testing.assert_allclose(estimate, closed_form, atol=0.03)
    assert abs(estimate.mean() - closed_form.mean()) < 0.003


def test_iwae_bound_increases_with_num_samples(vae, data):
    x = data[1]
    exact = exact_log_likelihood(vae, x).mean()
    means, standard_errors = [], []
    for num_samples in (1, 5, 50, 500):
        repeats = np.array(
            [vae.iwae_bound(x, num_samples, seed=seed).numpy().mean() for seed in range(6)]
        )
        means.append(repeats.mean())
        standard_errors.append(repeats.std(ddof=1) / math.sqrt(len(repeats)))
    for k in range(3):
        tolerance = 3 * math.hypot(standard_errors[k], standard_errors[k + 1])
        assert means[k + 1] >= means[k] - tolerance, (means, standard_errors)
    assert means[0] < exact - 0.01  # k = 1, the ELBO: strictly below
    assert means[-1] <= exact + 3 * standard_errors[-1]
    assert abs(means[-1] - exact) < 0.01
