"""The inference API: embeddings, interpolation, tempered sampling, anomaly scores."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import tiny_vae

import keras_vae as kv
from keras_vae.priors.temperature import tempered_sample

tfd = tfp.distributions

DATA_SHAPE = (12,)


def binary_data(num_examples, seed=0):
    """One of three fixed binary prototypes per example, with 5% of the pixels flipped."""
    prototypes = np.random.default_rng(0).random((3, *DATA_SHAPE)) < 0.5
    rng = np.random.default_rng(seed)
    flips = rng.random((num_examples, *DATA_SHAPE)) < 0.05
    return (prototypes[rng.integers(0, 3, num_examples)] ^ flips).astype("float32")


@pytest.fixture(scope="module")
def trained_vae():
    keras.utils.set_random_seed(0)
    vae = tiny_vae(data_shape=DATA_SHAPE, latent_dim=2, units=16, seed=3)
    vae.fit(binary_data(600), batch_size=50, epochs=15, verbose=0)
    return vae


# === Tempered sampling ===


def test_tempered_normal_scales_the_spread_around_the_mean():
    prior = tfd.MultivariateNormalDiag(loc=[2.0, -1.0], scale_diag=[1.0, 3.0])
    z = np.asarray(tempered_sample(prior, 40000, temperature=0.5, seed=(1, 2)))
    np.testing.assert_allclose(z.mean(0), [2.0, -1.0], atol=0.03)
    np.testing.assert_allclose(z.std(0), [0.5, 1.5], rtol=0.02)
    full = tfd.MultivariateNormalTriL(loc=[0.0, 0.0], scale_tril=[[1.0, 0.0], [0.8, 0.6]])
    z = np.asarray(tempered_sample(full, 40000, temperature=2.0, seed=(3, 4)))
    np.testing.assert_allclose(np.cov(z.T), 4.0 * np.array([[1.0, 0.8], [0.8, 1.0]]), atol=0.1)
    # T = 0: the mean itself; T = 1: exactly an ordinary draw with the same seed.
    np.testing.assert_array_equal(tempered_sample(prior, 3, 0.0, seed=(1, 2)), [[2.0, -1.0]] * 3)
    np.testing.assert_array_equal(
        tempered_sample(prior, 3, 1.0, seed=(1, 2)), prior.sample(3, seed=(1, 2))
    )


def test_tempered_mixture_narrows_components_and_keeps_weights():
    loc = np.array([[-10.0, 0.0], [10.0, 5.0]], "float32")
    mixture = tfd.MixtureSameFamily(
        tfd.Categorical(probs=[0.25, 0.75]),
        tfd.MultivariateNormalDiag(loc=loc, scale_diag=[[1.0, 2.0], [2.0, 1.0]]),
    )
    z = np.asarray(tempered_sample(mixture, 40000, temperature=0.5, seed=(5, 6)))
    second = z[:, 0] > 0  # components far apart: the sign tells which one drew z
    assert abs(second.mean() - 0.75) < 0.01
    np.testing.assert_allclose(z[~second].std(0), [0.5, 1.0], rtol=0.03)
    np.testing.assert_allclose(z[second].std(0), [1.0, 0.5], rtol=0.03)
    modes = np.asarray(tempered_sample(mixture, 100, temperature=0.0, seed=(5, 6)))
    assert {tuple(row) for row in modes} == {tuple(row) for row in loc}


def test_tempered_transformed_distribution_tempers_its_base():
    shift = tfp.bijectors.Shift([3.0, 3.0])
    prior = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), 2), tfp.bijectors.Chain([shift, tfp.bijectors.Exp()])
    )
    z = np.asarray(tempered_sample(prior, 20000, temperature=0.5, seed=(7, 8)))
    np.testing.assert_allclose(np.log(z - 3.0).std(0), [0.5, 0.5], rtol=0.03)


def prior_modes(vae):
    """The points a T = 0 draw of z may take: the means of p(z)'s components."""
    prior = vae.prior_distribution()
    if isinstance(prior, tfd.MixtureSameFamily):
        return np.asarray(prior.components_distribution.mean())
    return np.asarray(prior.mean())[None]


PRIORS = {
    "StandardNormal": kv.priors.StandardNormal,
    "MixtureOfNormals": lambda: kv.priors.MixtureOfNormals(3),
    "VampPrior": lambda: kv.priors.VampPrior(4),
}


@pytest.mark.parametrize("prior", PRIORS)
def test_every_prior_samples_at_a_temperature(prior):
    keras.utils.set_random_seed(1)
    vae = tiny_vae(data_shape=DATA_SHAPE, latent_dim=2, prior=PRIORS[prior]())
    # T = 0: every z is a mode of p(z), one of its components' means, and not always the same.
    z = np.asarray(tempered_sample(vae.prior_distribution(), 200, 0.0, seed=(0, 1)))
    modes = prior_modes(vae)
    distances = np.abs(z[:, None] - modes[None]).max(-1)  # (200, num_modes)
    np.testing.assert_allclose(distances.min(-1), 0.0, atol=1e-6)
    assert len(set(distances.argmin(-1))) == len(modes)
    # T = 1.5: draws spread 1.5 times as far from their component's mean as at T = 1.
    spread = {}
    for temperature in (1.0, 1.5):
        z = np.asarray(tempered_sample(vae.prior_distribution(), 20000, temperature, seed=(2, 3)))
        spread[temperature] = np.abs(z[:, None] - modes[None]).sum(-1).min(-1).mean()
    if prior == "StandardNormal":  # exactly: the same noise, scaled
        np.testing.assert_allclose(spread[1.5], 1.5 * spread[1.0], rtol=1e-5)
    else:  # nearest mean is not always the drawn component's: loosely
        assert spread[1.5] > 1.2 * spread[1.0]
    # Through the model: T = 0 decodes the modes; T = 1 is the untempered sampler.
    x = np.asarray(vae.sample(100, seed=2, mean=True, temperature=0.0))
    decoded_modes = np.asarray(vae.decode_mean(modes))
    np.testing.assert_allclose(
        np.abs(x[:, None] - decoded_modes[None]).max(-1).min(-1), 0.0, atol=1e-5
    )
    assert vae.sample(5, seed=2, temperature=0.3).shape == (5, *DATA_SHAPE)


def test_temperature_errors_name_what_was_received():
    with pytest.raises(ValueError, match=r"Received: a Laplace at temperature=0.5"):
        tempered_sample(tfd.Laplace(0.0, 1.0), 3, temperature=0.5)
    assert tempered_sample(tfd.Laplace(0.0, 1.0), 3).shape == (3,)  # T = 1 needs no noise
    for bad in (-1.0, float("nan"), float("inf"), "hot", True):
        with pytest.raises(ValueError, match=r"Expected `temperature` to be a finite number"):
            tempered_sample(tfd.Normal(0.0, 1.0), 3, temperature=bad)


# === Embeddings, encoder model, interpolation ===


def test_embed_and_encoder_model_give_the_posterior_means(trained_vae, tmp_path):
    x = binary_data(50, seed=1)
    means = np.asarray(trained_vae.posterior_parameters(x)["loc"])
    np.testing.assert_allclose(trained_vae.embed(x, batch_size=7), means, rtol=1e-5, atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(16)
    np.testing.assert_allclose(trained_vae.embed(dataset), means, rtol=1e-5, atol=1e-6)
    weighted = tf.data.Dataset.from_tensor_slices((x, None, np.ones(50))).batch(16)
    np.testing.assert_allclose(trained_vae.embed(weighted), means, rtol=1e-5, atol=1e-6)

    encoder = trained_vae.encoder_model()
    assert type(encoder).__name__ == "Functional"  # a plain Keras model, for downstream use
    np.testing.assert_allclose(encoder(x), means, rtol=1e-5, atol=1e-6)
    encoder.save(tmp_path / "encoder.keras")
    loaded = keras.saving.load_model(tmp_path / "encoder.keras")
    np.testing.assert_allclose(loaded(x), means, rtol=1e-5, atol=1e-6)
    # It shares the VAE's weights: no copy goes stale as the VAE trains on.
    assert {id(w) for w in encoder.weights} <= {id(w) for w in trained_vae.weights}


def test_embed_refuses_bad_input(trained_vae):
    dataset = tf.data.Dataset.from_tensor_slices(binary_data(8)).batch(4)
    with pytest.raises(ValueError, match=r"Expected `batch_size=None` with a dataset"):
        trained_vae.embed(dataset, batch_size=4)
    with pytest.raises(ValueError, match=r"Expected data of shape \(batch, 12\).*\(3, 5\)"):
        trained_vae.embed(np.zeros((3, 5), "float32"))
    with pytest.raises(ValueError, match=r"Expected data in \[0.0, 1.0\]"):
        trained_vae.embed(np.full((3, 12), 2.0, "float32"))
    with pytest.raises(ValueError, match=r"Expected `batch_size` to be a positive integer"):
        trained_vae.embed(binary_data(3), batch_size=0)
    bad_batches = tf.data.Dataset.from_tensor_slices(np.full((8, 12), np.nan, "float32")).batch(4)
    with pytest.raises(ValueError, match=r"Expected finite data"):
        trained_vae.embed(bad_batches)
    unbuilt = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), latent_dim=2)
    with pytest.raises(ValueError, match=r"Expected a built model for encoder_model"):
        unbuilt.encoder_model()


def test_interpolate_runs_from_one_reconstruction_to_the_other(trained_vae):
    x1, x2 = binary_data(4, seed=2), binary_data(4, seed=3)
    path = np.asarray(trained_vae.interpolate(x1, x2, steps=5))
    assert path.shape == (4, 5, *DATA_SHAPE)
    np.testing.assert_allclose(path[:, 0], trained_vae.reconstruct(x1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(path[:, -1], trained_vae.reconstruct(x2), rtol=1e-5, atol=1e-6)
    start, end = trained_vae.embed(x1), trained_vae.embed(x2)
    middle = trained_vae.decode_mean(tf.constant(0.5 * (start + end)))
    np.testing.assert_allclose(path[:, 2], middle, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"Expected `steps` to be at least 2.*steps=1"):
        trained_vae.interpolate(x1, x2, steps=1)
    with pytest.raises(ValueError, match=r"x1 of shape \(4, 12\) and x2 of shape \(3, 12\)"):
        trained_vae.interpolate(x1, x2[:3])


# === Anomaly scores ===


def test_anomaly_score_is_the_negative_bound_and_flags_outliers(trained_vae):
    x = binary_data(40, seed=4)
    elbo = np.asarray(trained_vae.elbo(x, 1, seed=9))
    np.testing.assert_allclose(trained_vae.anomaly_score(x, seed=9), -elbo, rtol=1e-5)
    nll = -np.asarray(trained_vae.log_likelihood(x, 16, seed=9))
    np.testing.assert_allclose(trained_vae.anomaly_score(x, 16, seed=9), nll, rtol=1e-5)
    # A dataset's batches and an array's are scored alike, batch i with seed + i.
    by_batch = trained_vae.anomaly_score(x, 16, batch_size=20, seed=9)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(20)
    np.testing.assert_allclose(trained_vae.anomaly_score(dataset, 16, seed=9), by_batch, rtol=1e-5)

    # Uniformly random pixels are far from the three prototypes the model learned.
    outliers = (np.random.default_rng(5).random((40, *DATA_SHAPE)) < 0.5).astype("float32")
    outlier_scores = trained_vae.anomaly_score(outliers, 16, seed=1)
    assert np.median(outlier_scores) > np.median(nll) + 2.0
    auc = (outlier_scores[:, None] > nll[None]).mean()
    assert auc > 0.95, auc
    with pytest.raises(ValueError, match=r"Expected `num_samples` to be a positive integer"):
        trained_vae.anomaly_score(x, num_samples=0)


def test_latents_legend_names_the_classes(trained_vae):
    from keras_vae import data, plots

    names = data.label_names("fashion_mnist")
    assert names[:2] == ["T-shirt/top", "Trouser"] and len(names) == 10
    assert data.label_names("binarized_mnist") is None  # no labels
    labels = np.array([0, 3, 3, 9, 0, 3])
    figure = plots.latents_figure(trained_vae, binary_data(6), labels, names)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["T-shirt/top", "Dress", "Ankle boot"]
    figure = plots.latents_figure(trained_vae, binary_data(6), labels)
    assert [text.get_text() for text in figure.axes[0].get_legend().get_texts()] == ["0", "3", "9"]


def test_conditional_models_take_the_condition():
    keras.utils.set_random_seed(2)
    vae = tiny_vae(data_shape=DATA_SHAPE, latent_dim=2, condition=3)
    x, labels = binary_data(8, seed=6), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    inputs = {"x": x, "condition": labels.astype("float32")}
    means = np.asarray(vae.posterior_parameters(inputs)["loc"])
    np.testing.assert_allclose(vae.embed(x, condition=labels), means, rtol=1e-5, atol=1e-6)
    pairs = tf.data.Dataset.from_tensor_slices((x, labels)).batch(3)
    np.testing.assert_allclose(vae.embed(pairs), means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vae.encoder_model()(inputs), means, rtol=1e-5, atol=1e-6)
    # The label changes the embedding: it reaches the encoder.
    assert not np.allclose(vae.embed(x, condition=(labels + 1) % 3), means)

    path = np.asarray(vae.interpolate(x[:4], x[4:], steps=3, condition=labels[:4]))
    first = vae.reconstruct({"x": x[:4], "condition": labels[:4].astype("float32")})
    np.testing.assert_allclose(path[:, 0], first, rtol=1e-5, atol=1e-6)
    assert path.shape == (4, 3, *DATA_SHAPE)

    scores = vae.anomaly_score(x, 8, condition=labels, seed=4)
    nll = -np.asarray(vae.log_likelihood(x, 8, seed=4, condition=labels))
    np.testing.assert_allclose(scores, nll, rtol=1e-5)
    by_batch = vae.anomaly_score(x, 8, batch_size=3, condition=labels, seed=4)
    np.testing.assert_allclose(vae.anomaly_score(pairs, 8, seed=4), by_batch, rtol=1e-5)
    with pytest.raises(ValueError, match=r"Expected a condition for this conditional VAE"):
        vae.embed(x)
    with pytest.raises(ValueError, match=r"Expected no `condition`"):
        tiny_vae(data_shape=DATA_SHAPE).embed(x, condition=labels)


def test_a_latent_hierarchy_is_tempered_in_every_layer():
    keras.utils.set_random_seed(3)
    layer = kv.LatentLayer(2, kv.networks.MLP([8], "tanh"), kv.networks.MLP([8], "tanh"))
    vae = tiny_vae(data_shape=DATA_SHAPE, latent_dim=3, latent_layers=[layer])
    prior = vae.prior_distribution()  # over z = (z_1, z_2): 5 dimensions
    # T = 0: no noise in any layer, so z_2 at its prior mean and z_1 at p(z_1|z_2)'s.
    z = np.asarray(tempered_sample(prior, 4, 0.0, seed=(0, 1)))
    np.testing.assert_allclose(z, np.repeat(prior.bijector.forward(tf.zeros((1, 5))), 4, 0))
    np.testing.assert_array_equal(
        tempered_sample(prior, 4, 1.0, seed=(0, 1)), prior.sample(4, seed=(0, 1))
    )
    x = binary_data(6)
    assert vae.sample(6, seed=1, temperature=0.5).shape == (6, *DATA_SHAPE)
    embeddings = vae.embed(x)  # the mean of q(z_1|x), which the decoder sees
    np.testing.assert_allclose(embeddings, vae.posterior_parameters(x)["loc"], atol=1e-6)
    path = np.asarray(vae.interpolate(x[:3], x[3:], steps=4))
    np.testing.assert_allclose(path[:, -1], vae.reconstruct(x[3:]), rtol=1e-5, atol=1e-6)


def test_a_flow_posterior_embeds_the_point_it_decodes():
    keras.utils.set_random_seed(4)
    posterior = kv.posteriors.InverseAutoregressiveFlow(hidden_units=[4], context_units=3)
    vae = tiny_vae(data_shape=DATA_SHAPE, latent_dim=3, posterior=posterior)
    x = binary_data(6)
    loc = np.asarray(vae.posterior_parameters(x)["loc"])  # z at eps = 0, through the flow
    np.testing.assert_allclose(vae.embed(x), loc, atol=1e-6)
    np.testing.assert_allclose(vae.encoder_model()(x), loc, atol=1e-6)
    path = np.asarray(vae.interpolate(x[:3], x[3:], steps=3))
    np.testing.assert_allclose(path[:, 0], vae.reconstruct(x[:3]), rtol=1e-5, atol=1e-6)
