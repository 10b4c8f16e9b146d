"""Each estimator's gradient against closed forms, on a linear Gaussian model.

    p(z) = N(0, I),  p(x|z) = N(W z + b, sigma^2 I),  q(z) = N(mu, diag(s^2))

with one example x, and q's parameters the posterior projection's biases
(its kernel is zero). With r = x - W mu - b, the ELBO's gradient is

    d elbo / d mu = W^T r / sigma^2 - mu
    d elbo / d s  = -diag(W^T W) s / sigma^2 - s + 1 / s
    d elbo / d b  = r / sigma^2
    d elbo / d W  = (r mu^T - W diag(s^2)) / sigma^2

and, as z = mu + s * eps enters linearly, the reparameterization and STL
gradients in mu and b are linear in eps, with covariances (A = W^T W / sigma^2)

    reparameterization:  d/d mu: A S^2 A,   d/d b: W S^2 W^T / sigma^4
    STL:                 d/d mu: M M^T,  M = S^-1 - (A + I) S

(M = 0 when q is the exact posterior: STL's gradient then has no variance).
"""

import keras
import numpy as np
import pytest

import keras_vae as kv
from keras_vae import diagnostics, estimators

DATA, LATENT, SIGMA, MIN_SCALE = 3, 2, 0.7, 1e-4
NUM_DRAWS = 2000
RNG = np.random.default_rng(0)
X = RNG.normal(size=(1, DATA)).astype("float32")
W = RNG.normal(size=(DATA, LATENT))
B = RNG.normal(size=DATA)
MU = np.array([0.3, -0.5])
S = np.array([0.6, 1.2])


def linear_gaussian_vae(estimator, mu=MU, s=S, weights=W, **options):
    vae = kv.VAE(
        keras.layers.Identity(),
        keras.layers.Identity(),
        LATENT,
        likelihood=kv.likelihoods.Normal(scale=SIGMA),
        posterior=kv.posteriors.DiagonalNormal(min_scale=MIN_SCALE),
        estimator=estimator,
        seed=3,
        **options,
    )
    vae.build((None, DATA))
    raw_scale = np.log(np.expm1(s - MIN_SCALE))  # softplus^-1
    vae.posterior.projection.set_weights(
        [np.zeros((DATA, 2 * LATENT)), np.concatenate([mu, raw_scale])]
    )
    vae.likelihood.projection.set_weights([weights.T, B])
    return vae


def elbo_gradients(mu=MU, s=S, weights=W):
    """The closed-form gradients of the ELBO, in the order of `flat_parameters`."""
    residual = X[0] - weights @ mu - B
    d_mu = weights.T @ residual / SIGMA**2 - mu
    d_s = -np.diag(weights.T @ weights) * s / SIGMA**2 - s + 1 / s
    d_raw = d_s * (1 - np.exp(-(s - MIN_SCALE)))  # softplus' = sigmoid = 1 - exp(-softplus)
    d_weights = (np.outer(residual, mu) - weights * s**2) / SIGMA**2
    return {"mu": d_mu, "raw_scale": d_raw, "b": residual / SIGMA**2, "W": d_weights.T.ravel()}


def flat_parameters(statistics, attribute):
    """A statistic of `gradient_variance`, split as `elbo_gradients`."""
    posterior = getattr(statistics["posterior"], attribute)[DATA * 2 * LATENT :]  # the bias
    likelihood = getattr(statistics["likelihood"], attribute)
    return {
        "mu": posterior[:LATENT],
        "raw_scale": posterior[LATENT:],
        "W": likelihood[: LATENT * DATA],
        "b": likelihood[LATENT * DATA :],
    }


def assert_unbiased(statistics, expected, z=5.0):
    """The mean of the draws of -grad loss is `expected` within `z` standard errors."""
    means = flat_parameters(statistics, "mean")
    variances = flat_parameters(statistics, "variance")
    for name, value in expected.items():
        error = np.sqrt(variances[name] / statistics["posterior"].num_draws)
        np.testing.assert_array_less(np.abs(-means[name] - value), z * error + 1e-5, name)


def assert_variance(actual, expected, z=5.0):
    """A sample variance of NUM_DRAWS draws against its value, within `z` standard errors."""
    relative_error = np.sqrt(2 / (NUM_DRAWS - 1))
    np.testing.assert_allclose(actual, expected, rtol=z * relative_error)


ELBO_ESTIMATORS = {
    "reparameterization": "reparameterization",
    "stl": "stl",
    # The baselines are not fitted: the estimator is unbiased whatever they are.
    "score_function": None,  # the model's own, with its baseline network
    "score_function_bare": estimators.ScoreFunction(running_average=False, baseline_units=None),
}


def weights(vae):
    return {w.path: w.numpy().copy() for w in vae.weights if "seed_generator" not in w.path}


@pytest.fixture(scope="module")
def elbo_statistics():
    keras.utils.set_random_seed(0)
    vae = linear_gaussian_vae("score_function")
    before = weights(vae)
    chosen = {**ELBO_ESTIMATORS, "score_function": vae.estimator}  # the model's own
    statistics = diagnostics.gradient_variance(vae, X, chosen, num_draws=NUM_DRAWS)
    # At fixed weights: the model's, and its estimator's baselines, are left as they were.
    after = weights(vae)
    assert before.keys() == after.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(value, after[path], err_msg=path)
    return statistics


@pytest.mark.parametrize("name", ELBO_ESTIMATORS)
def test_elbo_estimators_are_unbiased(elbo_statistics, name):
    assert_unbiased(elbo_statistics[name], elbo_gradients())


def test_reparameterization_variance_is_analytic(elbo_statistics):
    variances = flat_parameters(elbo_statistics["reparameterization"], "variance")
    a = W.T @ W / SIGMA**2
    assert_variance(variances["mu"], np.diag(a @ np.diag(S**2) @ a))
    assert_variance(variances["b"], np.diag(W @ np.diag(S**2) @ W.T) / SIGMA**4)


def test_stl_variance_is_analytic(elbo_statistics):
    a = W.T @ W / SIGMA**2
    m = np.diag(1 / S) - (a + np.eye(LATENT)) @ np.diag(S)
    variances = flat_parameters(elbo_statistics["stl"], "variance")
    assert_variance(variances["mu"], np.diag(m @ m.T))


def test_score_function_is_noisier_and_its_baselines_help(elbo_statistics):
    def variance(name):
        return elbo_statistics[name]["posterior"].variance.sum()

    assert variance("score_function_bare") > 10 * variance("reparameterization")
    # Fitted baselines reduce the variance; checked here with a running average alone.
    keras.utils.set_random_seed(0)
    vae = linear_gaussian_vae("reparameterization")
    estimator = estimators.ScoreFunction(baseline_units=None, decay=0.5)
    diagnostics.fit_baselines(vae, estimator, [X] * 30)
    baseline = diagnostics.gradient_variance(vae, X, [estimator], num_draws=1000)
    assert baseline["score_function"]["posterior"].variance.sum() < variance("score_function_bare")


def test_stl_has_no_variance_at_the_exact_posterior():
    # Orthogonal columns: the exact posterior N(mu*, (I + W^T W / sigma^2)^-1) is diagonal.
    weights = np.linalg.qr(W)[0] * [1.5, 0.8]
    precision = np.eye(LATENT) + weights.T @ weights / SIGMA**2
    mu = np.linalg.solve(precision, weights.T @ (X[0] - B)) / SIGMA**2
    s = 1 / np.sqrt(np.diag(precision))
    vae = linear_gaussian_vae("reparameterization", mu=mu, s=s, weights=weights)
    statistics = diagnostics.gradient_variance(vae, X, ["stl", "reparameterization"], 200)
    stl = flat_parameters(statistics["stl"], "variance")
    reparameterization = flat_parameters(statistics["reparameterization"], "variance")
    np.testing.assert_allclose(stl["mu"], 0.0, atol=1e-8)
    assert (reparameterization["mu"] > 0.1).all()
    # And its mean is the exact gradient, zero in mu at the optimum.
    np.testing.assert_allclose(flat_parameters(statistics["stl"], "mean")["mu"], 0.0, atol=1e-4)


def test_dreg_expectation_is_the_iwae_gradient():
    keras.utils.set_random_seed(0)
    vae = linear_gaussian_vae("dreg", objective="iwae", num_samples=4)
    statistics = diagnostics.gradient_variance(
        vae, X, ["dreg", "reparameterization"], num_draws=NUM_DRAWS
    )
    for group in ("posterior", "likelihood"):
        dreg, iwae = statistics["dreg"][group], statistics["reparameterization"][group]
        error = np.sqrt((dreg.variance + iwae.variance) / NUM_DRAWS)
        np.testing.assert_array_less(np.abs(dreg.mean - iwae.mean), 5 * error + 1e-5, group)
    # The IWAE gradient differs from the ELBO's: the test can tell them apart.
    elbo = -flat_parameters(statistics["reparameterization"], "mean")["mu"]
    assert np.abs(elbo - elbo_gradients()["mu"]).max() > 0.05
    # DReG's encoder gradient is less noisy than the reparameterized IWAE gradient's.
    assert (
        statistics["dreg"]["posterior"].variance.sum()
        < statistics["reparameterization"]["posterior"].variance.sum()
    )


def test_gradient_variance_of_another_objective_and_bad_arguments():
    vae = linear_gaussian_vae("reparameterization")
    # The IWAE bound with k = 1 is the ELBO, estimated with a Monte Carlo KL.
    statistics = diagnostics.gradient_variance(
        vae, X, ["dreg"], num_draws=1000, objective="iwae", num_samples=1
    )
    assert_unbiased(statistics["dreg"], elbo_gradients())
    assert vae.objective == "elbo"
    with pytest.raises(ValueError, match="Received: num_draws=1"):
        diagnostics.gradient_variance(vae, X, num_draws=1)
    with pytest.raises(ValueError, match="Received: estimator='dreg'"):
        diagnostics.gradient_variance(vae, X, ["dreg"], num_draws=2)


def test_diagnose_prints_a_table_and_writes_a_figure(tmp_path, tfds_data_dir, capsys):
    from keras_vae.cli import main
    from keras_vae.run_dir import RunDir

    run_dir = RunDir(tmp_path / "run")
    keras.utils.set_random_seed(0)
    vae = kv.VAE(kv.networks.MLP([8], "tanh"), kv.networks.MLP([8], "tanh"), 2)
    vae.build((None, 28, 28, 1))
    run_dir.root.mkdir()
    vae.save(run_dir.model)
    config = {"dataset": "mnist", "preprocessing": "dynamic", "validation_size": 0}
    run_dir.write_json(run_dir.config, {**config, "data_dir": str(tfds_data_dir)})
    argv = ["diagnose", "--run-dir", str(run_dir.root), "--num-draws", "3", "--batch-size", "4"]
    assert main([*argv, "--baseline-batches", "2"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    # An ELBO model: reparameterization, score function and STL, each in four groups.
    table = {(row[0], row[1]): row[2:] for row in rows[1:] if len(row) == 5}
    assert {estimator for estimator, _ in table} == {"reparameterization", "score_function", "stl"}
    assert table["stl", "decoder"][0] == str(2 * 8 + 8)  # a Dense from 2 latents to 8 units
    assert table["stl", "encoder"][0] == str(28 * 28 * 8 + 8)
    assert all(float(variance) > 0 for _, variance, _ in table.values())
    assert (run_dir.root / "gradient_variance.png").stat().st_size > 1000
    assert main([*argv, "--estimators", "dreg"]) == 2
    assert "estimator='dreg'" in capsys.readouterr().err
