"""The conditional VAE: the condition reaches q(z|x, c) and p(x|z, c), at every entry point."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from helpers import run_serialization_test

import keras_vae as kv
from keras_vae import precision

tfd = tfp.distributions

NUM_CLASSES = 3
DATA_DIM = 6
LATENT_DIM = 2
# Each class is one fixed binary pattern: p(x|c) is learnable exactly, from c alone.
PATTERNS = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], "float32")


def labelled(num_examples, seed=0):
    labels = np.random.default_rng(seed).integers(0, NUM_CLASSES, num_examples)
    return PATTERNS[labels], labels


def make_cvae(condition=NUM_CLASSES, jit_compile=False, **kwargs):
    # Without XLA: compiling a step takes longer than a tiny model's steps (the command-line
    # test trains cvae-mnist with it).
    keras.utils.set_random_seed(0)
    vae = kv.VAE(
        kv.networks.MLP([16], "tanh"),
        kv.networks.MLP([16], "tanh"),
        LATENT_DIM,
        condition=condition,
        seed=3,
        **kwargs,
    )
    vae.build((None, DATA_DIM))
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    return vae


@pytest.fixture(scope="module")
def trained():
    """A conditional VAE trained on class patterns, and the history of its `fit(x, y)`."""
    vae = make_cvae()
    x, labels = labelled(512)
    history = vae.fit(x, labels, batch_size=64, epochs=15, verbose=0, shuffle=False)
    return vae, history


def test_conditions_round_trip_and_encode():
    one_hot = run_serialization_test(kv.conditions.OneHot(4), {"num_classes": 4})
    np.testing.assert_array_equal(one_hot(np.array([3.0, 0.0])), np.eye(4)[[3, 0]])
    features = run_serialization_test(kv.conditions.Features(2), {"dim": 2})
    np.testing.assert_array_equal(features(np.array([[1, -2]])), [[1.0, -2.0]])
    assert kv.conditions.get(5).num_classes == 5 and kv.conditions.get(None) is None


@pytest.mark.parametrize(
    "condition, values, message",
    [
        (
            kv.conditions.OneHot(3),
            [0, 3],
            r"integer labels in \[0, 2\]. Received: values such as \[3.0\]",
        ),
        (kv.conditions.OneHot(3), [0.5, 1], r"Received: values such as \[0.5\]"),
        (
            kv.conditions.OneHot(3),
            [[0], [1]],
            r"shape \(batch,\) .* Received: condition of shape \(2, 1\)",
        ),
        (kv.conditions.OneHot(3), [0, 1, 2], r"2 conditions. Received: condition of shape \(3,\)"),
        (kv.conditions.Features(2), [[0, np.nan], [1, 1]], r"finite values. Received: .*nan"),
        (kv.conditions.Features(2), ["a", "b"], r"Received: list"),
    ],
)
def test_condition_check_refuses(condition, values, message):
    with pytest.raises(ValueError, match=message):
        condition.check(values, batch_size=2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: kv.conditions.OneHot(0), "`num_classes` to be a positive integer"),
        (lambda: kv.conditions.get("label"), "Received: condition='label'"),
        (lambda: make_cvae(prior=kv.priors.VampPrior(4)), "Received: prior=VampPrior"),
    ],
)
def test_bad_condition_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bound_terms_against_a_hand_computation():
    """The model's terms equal q(z|x, c), p(x|z, c) and p(z) assembled by hand."""
    vae = make_cvae()
    x, labels = labelled(5, seed=1)
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[labels]
    noise = tf.random.stateless_normal((4, 5, LATENT_DIM), seed=[1, 2])
    terms = vae.terms({"x": x, "condition": labels}, noise=noise, log_weights=True)

    parameters = vae.posterior(tf.concat([vae.encoder(x), one_hot], -1))
    posterior = tfd.MultivariateNormalDiag(parameters["loc"], parameters["scale"])
    z = parameters["loc"] + parameters["scale"] * noise  # (4, 5, latent_dim)
    decoder_input = tf.concat([z, np.broadcast_to(one_hot, (4, 5, NUM_CLASSES))], -1)
    logits = vae.likelihood(vae.decoder(tf.reshape(decoder_input, (20, -1))))["logits"]
    log_likelihood = tf.reshape(
        tfd.Independent(tfd.Bernoulli(logits=logits), 1).log_prob(np.tile(x, (4, 1))), (4, 5)
    )
    prior = tfd.MultivariateNormalDiag(tf.zeros(LATENT_DIM))
    kl = tfd.kl_divergence(posterior, prior)
    np.testing.assert_allclose(terms["elbo"], np.mean(log_likelihood, 0) - kl, rtol=1e-5)
    log_weights = log_likelihood + prior.log_prob(z) - posterior.log_prob(z)
    np.testing.assert_allclose(terms["log_weights"], log_weights, rtol=1e-5, atol=1e-5)


def test_the_condition_reaches_encoder_and_decoder():
    vae = make_cvae()
    x = np.tile(PATTERNS[:1], (3, 1))
    labels = np.arange(NUM_CLASSES)
    loc = vae.posterior_parameters({"x": x, "condition": labels})["loc"].numpy()
    assert len({tuple(row) for row in loc.round(6)}) == NUM_CLASSES  # same x, three posteriors
    z = np.zeros((3, LATENT_DIM), "float32")
    logits = vae.likelihood_parameters(z, labels)["logits"].numpy()
    assert len({tuple(row) for row in logits.round(6)}) == NUM_CLASSES  # same z, three decodings


def test_fit_takes_the_condition_as_y_or_in_a_dict_or_a_dataset():
    """The same data in the three forms trains to the same weights."""
    x, labels = labelled(64)
    weights = []
    for fit in (
        lambda vae: vae.fit(x, labels, batch_size=16, epochs=1, verbose=0, shuffle=False),
        lambda vae: vae.fit({"x": x, "condition": labels}, batch_size=16, verbose=0, shuffle=False),
        lambda vae: vae.fit(tf.data.Dataset.from_tensor_slices((x, labels)).batch(16), verbose=0),
    ):
        vae = make_cvae()
        fit(vae)
        weights.append([w.numpy() for w in vae.trainable_weights])
    for other in weights[1:]:
        for expected, actual in zip(weights[0], other, strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_trained_model_samples_each_class_and_scores_its_own_condition_higher(trained):
    vae, history = trained
    assert history.history["elbo"][-1] > history.history["elbo"][0] + 1.0
    for label in range(NUM_CLASSES):
        means = vae.sample(8, seed=label, mean=True, condition=label).numpy()
        np.testing.assert_array_equal(means > 0.5, np.broadcast_to(PATTERNS[label] > 0.5, (8, 6)))
    x = np.repeat(PATTERNS, 2, axis=0)
    right = np.repeat(np.arange(NUM_CLASSES), 2)
    wrong = (right + 1) % NUM_CLASSES
    log_likelihood = vae.log_likelihood(x, num_samples=200, seed=0, condition=right)
    assert np.all(log_likelihood > vae.log_likelihood(x, num_samples=200, seed=0, condition=wrong))
    # The bounds in chunks equal those in one piece, and the evaluation's ELBO the elbo's.
    chunked = vae.iwae_bound(x, 64, memory_budget=60_000, seed=1, condition=right)
    np.testing.assert_allclose(chunked, vae.iwae_bound(x, 64, seed=1, condition=right), atol=1e-4)
    evaluated = vae.evaluate(x, right, verbose=0, return_dict=True)["elbo"]
    elbo = vae.elbo({"x": x, "condition": right}, num_samples=2000, seed=2)
    assert evaluated == pytest.approx(float(np.mean(elbo)), abs=0.2)


def test_gradient_variance_of_a_conditional_model(trained):
    vae, _ = trained
    x, labels = labelled(8, seed=3)
    stats = kv.diagnostics.gradient_variance(
        vae, x, ["reparameterization", "stl"], num_draws=3, condition=labels
    )
    for groups in stats.values():
        summary = groups["encoder"].summary()
        assert np.isfinite(summary["total_variance"]) and summary["total_variance"] > 0


def test_mixed_float16_terms_match_float32_and_train():
    x, labels = labelled(16)
    inputs = {"x": x, "condition": labels}
    with precision.policy("mixed_float16"):
        mixed = make_cvae()
    reference = make_cvae()
    reference.set_weights(mixed.get_weights())
    assert mixed.encoder(x).dtype == "float16"
    noise = np.random.default_rng(1).standard_normal((2, 16, LATENT_DIM)).astype("float32")
    terms = mixed.terms(inputs, noise=noise, log_weights=True)
    expected = reference.terms(inputs, noise=noise, log_weights=True)
    for key in terms:
        assert terms[key].dtype == tf.float32
        np.testing.assert_allclose(terms[key], expected[key], rtol=5e-3, atol=0.05)
    history = mixed.fit(x, labels, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_keras_file_round_trip(trained, tmp_path):
    vae, _ = trained
    vae.save(tmp_path / "cvae.keras")
    loaded = keras.saving.load_model(tmp_path / "cvae.keras")
    assert json.dumps(loaded.get_config()) == json.dumps(vae.get_config())
    assert isinstance(loaded.condition, kv.conditions.OneHot)
    x, labels = labelled(8, seed=5)
    inputs = {"x": x, "condition": labels}
    np.testing.assert_allclose(loaded(inputs), vae(inputs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        loaded.elbo(inputs, seed=4), vae.elbo(inputs, seed=4), rtol=1e-5, atol=1e-5
    )
    iterations = int(loaded.optimizer.iterations)
    loaded.fit(x, labels, batch_size=8, verbose=0)
    assert int(loaded.optimizer.iterations) == iterations + 1


def test_features_condition():
    vae = make_cvae(condition=kv.conditions.Features(2))
    x, _ = labelled(16)
    side = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    history = vae.fit(x, side, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert vae.sample(4, condition=side[0], seed=1).shape == (4, DATA_DIM)
    with pytest.raises(ValueError, match=r"shape \(batch, 2\)"):
        vae.elbo(x, condition=side[:, :1])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda vae, x, y: vae.fit(x, verbose=0), "Expected a condition for this conditional VAE"),
        (lambda vae, x, y: vae.elbo(x), "Received: no condition"),
        (
            lambda vae, x, y: vae.fit({"x": x, "condition": y}, y, verbose=0),
            "and a separate condition",
        ),
        (lambda vae, x, y: vae.fit({"x": x, "label": y}, verbose=0), r"keys \['label', 'x'\]"),
        (lambda vae, x, y: vae.fit(x, y + 1, verbose=0), r"in \[0, 2\]. Received: values such"),
        (
            lambda vae, x, y: vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(4), verbose=0),
            r"Expected a dataset of \(x, condition\)",
        ),
        (
            lambda vae, x, y: vae.evaluate(
                tf.data.Dataset.from_tensor_slices((x, y * 2)).batch(4), verbose=0
            ),
            r"integer labels in \[0, 2\]. Received: values in \[0, 4\]",
        ),
        (lambda vae, x, y: vae.sample(3, condition=y), "3 conditions"),
        (lambda vae, x, y: vae.sample(3), "Received: no condition"),
    ],
)
def test_conditional_model_refuses(call, message):
    vae = make_cvae()
    x, labels = labelled(8)
    with pytest.raises(ValueError, match=message):
        call(vae, x, labels)


def test_unconditional_model_refuses_a_condition():
    vae = make_cvae(condition=None)
    x, labels = labelled(8)
    with pytest.raises(ValueError, match="Expected no `y`.*build it with `condition=`"):
        vae.fit(x, labels, verbose=0)
    with pytest.raises(ValueError, match="Expected no `condition`"):
        vae.elbo(x, condition=labels)
    with pytest.raises(ValueError, match="Expected no `condition`"):
        vae.sample(2, condition=1)
    with pytest.raises(ValueError, match=r"Expected no `condition`.*shape \(8,\)"):
        vae.decode(np.zeros((8, LATENT_DIM), "float32"), condition=labels)
