"""Shapes and semantics of the VAE's public methods, training and evaluation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_vae

import keras_vae as kv

DATA_SHAPE = (4, 3, 1)
LATENT_DIM = 3
METRICS = {"loss", "elbo", "reconstruction", "kl"}


def binary_data(num_examples, seed=0):
    """Binary images with structure: one of four fixed prototypes, with 10% of pixels flipped."""
    prototypes = np.random.default_rng(0).random((4, *DATA_SHAPE)) < 0.5
    rng = np.random.default_rng(seed)
    flips = rng.random((num_examples, *DATA_SHAPE)) < 0.1
    return (prototypes[rng.integers(0, 4, num_examples)] ^ flips).astype("float32")


def make_vae(**kwargs):
    keras.utils.set_random_seed(0)
    kwargs = {"seed": 5, **kwargs}
    return tiny_vae(data_shape=DATA_SHAPE, latent_dim=LATENT_DIM, units=16, **kwargs)


def mean_and_standard_error(draws):
    draws = np.asarray(draws, "float64")
    return draws.mean(), draws.std(ddof=1) / math.sqrt(len(draws))


@pytest.fixture(scope="module")
def trained_vae():
    vae = make_vae()
    vae.fit(binary_data(512), batch_size=64, epochs=20, verbose=0)
    return vae


FAMILIES = {
    "diagonal_standard": (kv.posteriors.DiagonalNormal, kv.priors.StandardNormal),
    "full_mixture": (kv.posteriors.FullCovarianceNormal, lambda: kv.priors.MixtureOfNormals(3)),
    "diagonal_vamp": (kv.posteriors.DiagonalNormal, lambda: kv.priors.VampPrior(5)),
}


@pytest.mark.parametrize("families", FAMILIES)
def test_shapes(families):
    posterior, prior = FAMILIES[families]
    vae = make_vae(posterior=posterior(), prior=prior())
    batch, num_samples = 5, 7
    x = binary_data(batch)

    q = vae.encode(x)
    assert q.batch_shape == (batch,) and q.event_shape == (LATENT_DIM,)
    parameters = vae.posterior_parameters(x)
    assert parameters["loc"].shape == (batch, LATENT_DIM)
    if posterior is kv.posteriors.FullCovarianceNormal:
        assert parameters["scale_tril"].shape == (batch, LATENT_DIM, LATENT_DIM)
    else:
        assert parameters["scale"].shape == (batch, LATENT_DIM)
    p = vae.prior_distribution()
    assert p.batch_shape == () and p.event_shape == (LATENT_DIM,)

    z = tf.random.normal((num_samples, batch, LATENT_DIM))
    assert vae.likelihood_parameters(z)["logits"].shape == (num_samples, batch, *DATA_SHAPE)
    likelihood = vae.decode(z)
    assert likelihood.batch_shape == (num_samples, batch)
    assert likelihood.event_shape == DATA_SHAPE
    assert likelihood.log_prob(x).shape == (num_samples, batch)

    terms = vae.terms(x, num_samples, log_weights=True)
    assert set(terms) == {"elbo", "reconstruction", "kl", "log_weights"}
    assert terms["log_weights"].shape == (num_samples, batch)
    for name in ("elbo", "reconstruction", "kl"):
        assert terms[name].shape == (batch,)
    assert vae.elbo(x, num_samples).shape == (batch,)
    assert vae.iwae_bound(x, num_samples).shape == (batch,)
    assert vae.log_likelihood(x, num_samples=25, memory_budget=200_000).shape == (batch,)
    assert vae.reconstruct(x).shape == (batch, *DATA_SHAPE)
    assert vae.sample(3).shape == (3, *DATA_SHAPE)
    assert vae.sample(3, mean=True).shape == (3, *DATA_SHAPE)


def test_call_is_the_reconstruction(trained_vae):
    x = binary_data(8)
    reconstruction = trained_vae.reconstruct(x).numpy()
    np.testing.assert_allclose(trained_vae(x), reconstruction, rtol=1e-6)
    # The mean of p(x|z) at the mean of q(z|x).
    expected = trained_vae.decode(trained_vae.encode(x).mean()).mean()
    np.testing.assert_allclose(reconstruction, expected, rtol=1e-5, atol=1e-6)
    assert ((reconstruction > 0) & (reconstruction < 1)).all()


@pytest.mark.parametrize("prior", ["standard_normal", "mixture_of_normals"])
def test_terms_are_deterministic_given_noise(prior):
    vae = make_vae(prior=None if prior == "standard_normal" else kv.priors.MixtureOfNormals(3))
    x = binary_data(6)
    noise = tf.random.stateless_normal((4, 6, LATENT_DIM), seed=(1, 2))
    first, second = vae.terms(x, 4, noise=noise), vae.terms(x, 4, noise=noise)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    other = vae.terms(x, 4, noise=noise + 0.5)
    assert not np.allclose(first["reconstruction"], other["reconstruction"])
    np.testing.assert_allclose(
        first["elbo"], first["reconstruction"] - first["kl"], rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("prior", ["standard_normal", "mixture_of_normals"])
def test_several_samples_average(prior):
    vae = make_vae(prior=None if prior == "standard_normal" else kv.priors.MixtureOfNormals(3))
    x = binary_data(6)
    noise = tf.random.stateless_normal((5, 6, LATENT_DIM), seed=(3, 4))
    terms = vae.terms(x, 5, noise=noise)
    singles = [vae.terms(x, 1, noise=noise[i : i + 1]) for i in range(5)]
    for name in ("elbo", "reconstruction", "kl"):
        average = np.mean([single[name] for single in singles], axis=0)
        np.testing.assert_allclose(terms[name], average, rtol=1e-5, atol=1e-5)
    # The reconstruction term is log p(x|z) at z = loc + scale * noise.
    parameters = vae.posterior_parameters(x)
    z = parameters["loc"] + parameters["scale"] * noise
    expected = tf.reduce_mean(vae.decode(z).log_prob(x), 0)
    np.testing.assert_allclose(terms["reconstruction"], expected, rtol=1e-5)


def test_more_samples_reduce_the_variance(trained_vae):
    x = binary_data(64)
    one = [trained_vae.elbo(x, 1).numpy().mean() for _ in range(20)]
    many = [trained_vae.elbo(x, 16).numpy().mean() for _ in range(20)]
    assert np.var(many) < np.var(one) / 4
    mean_one, error_one = mean_and_standard_error(one)
    mean_many, error_many = mean_and_standard_error(many)
    assert abs(mean_one - mean_many) < 4 * math.hypot(error_one, error_many)


def test_bounds_are_ordered(trained_vae):
    x = binary_data(200, seed=1)
    elbo = mean_and_standard_error([trained_vae.elbo(x, 20).numpy().mean() for _ in range(10)])
    iwae = mean_and_standard_error([trained_vae.iwae_bound(x, 50).numpy().mean() for _ in range(5)])
    log_likelihood = trained_vae.log_likelihood(x, num_samples=1000).numpy()
    assert elbo[0] < iwae[0] - 3 * math.hypot(elbo[1], iwae[1])
    assert iwae[0] < log_likelihood.mean() + 3 * iwae[1] + 0.01


def test_sample(trained_vae):
    first = trained_vae.sample(16, seed=3).numpy()
    np.testing.assert_array_equal(first, trained_vae.sample(16, seed=3))
    assert not np.array_equal(first, trained_vae.sample(16, seed=4))
    assert not np.array_equal(trained_vae.sample(16), trained_vae.sample(16))
    assert set(np.unique(first)) <= {0.0, 1.0}

    mean = trained_vae.sample(16, seed=3, mean=True).numpy()
    np.testing.assert_array_equal(mean, trained_vae.sample(16, seed=3, mean=True))
    assert ((mean >= 0) & (mean <= 1)).all()
    assert len(np.unique(mean)) > 2


def test_fit_and_evaluate_report_per_example_metrics():
    vae = make_vae()
    x = binary_data(256)
    history = vae.fit(x, batch_size=64, epochs=3, verbose=0)
    assert set(history.history) == METRICS
    assert history.history["elbo"][-1] > history.history["elbo"][0]
    metrics = vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)
    assert set(metrics) == METRICS
    assert metrics["elbo"] == pytest.approx(metrics["reconstruction"] - metrics["kl"], abs=1e-4)
    assert metrics["loss"] == pytest.approx(-metrics["elbo"], abs=1e-4)
    assert metrics["kl"] > 0


def test_evaluate_elbo_is_the_mean_elbo_in_nats(trained_vae):
    x = binary_data(500, seed=2)
    evaluated = [
        trained_vae.evaluate(x, batch_size=100, verbose=0, return_dict=True)["elbo"]
        for _ in range(3)
    ]
    direct, standard_error = mean_and_standard_error(
        [trained_vae.elbo(x).numpy().mean() for _ in range(20)]
    )
    # Each evaluation is one draw of the same estimator as one direct draw.
    tolerance = 4 * standard_error * math.sqrt(20 / 3 + 1)
    assert abs(np.mean(evaluated) - direct) < tolerance
    # Per example, not per batch or per dimension.
    assert -np.prod(DATA_SHAPE) * math.log(2.0) < direct < 0


def test_beta_weights_the_training_loss_but_not_the_elbo():
    x = binary_data(128)
    vae, weighted = make_vae(), make_vae(beta=4.0)
    weighted.set_weights(vae.get_weights())
    assert float(weighted.beta) == 1.0  # beta is one of the weights,
    weighted.beta = 4.0  # so set it again.
    # Same weights and seed: the same noise, so the same bound terms.
    metrics = vae.evaluate(x, batch_size=128, verbose=0, return_dict=True)
    weighted_metrics = weighted.evaluate(x, batch_size=128, verbose=0, return_dict=True)
    for name in ("elbo", "reconstruction", "kl"):
        assert weighted_metrics[name] == pytest.approx(metrics[name], rel=1e-6)
    # Evaluation reports the bound itself, whatever beta.
    for logs in (metrics, weighted_metrics):
        assert logs["loss"] == pytest.approx(-logs["elbo"], rel=1e-6)

    # One step on one batch: the training loss is beta * KL - reconstruction.
    history = vae.fit(x, batch_size=128, epochs=1, verbose=0).history
    weighted_history = weighted.fit(x, batch_size=128, epochs=1, verbose=0).history
    for name in ("elbo", "reconstruction", "kl"):
        assert weighted_history[name][0] == pytest.approx(history[name][0], rel=1e-6)
    assert history["loss"][0] == pytest.approx(-history["elbo"][0], rel=1e-6)
    expected = -history["elbo"][0] + 3.0 * history["kl"][0]
    assert weighted_history["loss"][0] == pytest.approx(expected, rel=1e-5)

    # And so it changes the gradient.
    changed = [
        not np.allclose(a, b)
        for a, b in zip(vae.get_weights(), weighted.get_weights(), strict=True)
    ]
    assert any(changed)


def test_iwae_objective_trains_on_the_iwae_bound():
    x = binary_data(256)
    vae = make_vae(objective="iwae", num_samples=8)
    history = vae.fit(x, batch_size=64, epochs=4, verbose=0)
    assert set(history.history) == METRICS
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]

    losses = [
        vae.evaluate(x, batch_size=256, verbose=0, return_dict=True)["loss"] for _ in range(10)
    ]
    loss, loss_error = mean_and_standard_error(losses)
    bound, bound_error = mean_and_standard_error(
        [vae.iwae_bound(x, 8).numpy().mean() for _ in range(10)]
    )
    assert abs(loss + bound) < 4 * math.hypot(loss_error, bound_error)
    # The k = 8 bound, not the ELBO.
    elbo, elbo_error = mean_and_standard_error([vae.elbo(x).numpy().mean() for _ in range(10)])
    assert -loss > elbo + 4 * math.hypot(loss_error, elbo_error)


def test_training_noise_differs_between_steps():
    x = binary_data(64)
    vae = make_vae()
    vae.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    weights = vae.get_weights()
    history = vae.fit(x, batch_size=64, epochs=3, shuffle=False, verbose=0)
    for before, after in zip(weights, vae.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # Same weights, same batch: only the noise can change the loss.
    assert len(set(history.history["loss"])) == 3


def test_training_is_reproducible_with_a_seed():
    x = binary_data(64)
    histories = [make_vae().fit(x, batch_size=32, epochs=2, verbose=0).history for _ in range(2)]
    assert histories[0].keys() == histories[1].keys()
    for name, values in histories[0].items():
        np.testing.assert_allclose(histories[1][name], values, rtol=1e-6)
    # ... while another seed draws other noise.
    other = make_vae(seed=6).fit(x, batch_size=32, epochs=2, verbose=0).history
    assert not np.allclose(other["loss"], histories[0]["loss"], rtol=1e-4)


def test_evaluation_uses_num_samples(trained_vae):
    x = binary_data(64)
    averaged = make_vae(num_samples=16)
    averaged.set_weights(trained_vae.get_weights())
    spreads = []
    for vae in (trained_vae, averaged):
        elbos = [
            vae.evaluate(x, batch_size=64, verbose=0, return_dict=True)["elbo"] for _ in range(40)
        ]
        spreads.append(np.var(elbos))
    # 16 samples divide the variance by 16; the ratio of two variances of 40 draws
    # exceeds 4 times its expected value with probability about 1e-5 (F(39, 39)).
    assert spreads[1] < spreads[0] / 4


def test_public_methods_take_float64_and_numpy_integer_sizes():
    vae = kv.VAE(kv.networks.MLP([np.int64(8)]), kv.networks.MLP([8]), latent_dim=2, seed=0)
    x = (np.random.default_rng(0).random((4, 6)) < 0.5).astype("float64")
    for bound in (
        vae.elbo(x),
        vae.iwae_bound(x, 7),
        vae.log_likelihood(x, 30, memory_budget=200_000),
    ):
        assert bound.shape == (4,) and np.isfinite(bound).all()
    assert vae.encoder.get_config()["hidden_units"] == [8]


def test_sample_seeds_beyond_int32():
    vae = tiny_vae(seed=0)
    np.testing.assert_array_equal(vae.sample(3, seed=2**40), vae.sample(3, seed=2**40))
