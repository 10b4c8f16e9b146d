"""`fit` and `evaluate` weight examples by `sample_weight` and refuse what they would ignore."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae as kv

DATA_DIM = 6


class ZeroNoiseVAE(kv.VAE):
    """z at the posterior mean: per-example terms are a function of the weights alone."""

    def sample_posterior(self, x, num_samples=1, noise=None):
        if noise is None:
            noise = tf.zeros((num_samples, tf.shape(x)[0], self.latent_dim))
        return super().sample_posterior(x, num_samples, noise)


def make_vae(optimizer=None):
    keras.utils.set_random_seed(0)
    vae = ZeroNoiseVAE(kv.networks.MLP([8], "tanh"), kv.networks.MLP([8], "tanh"), latent_dim=2)
    vae.build((None, DATA_DIM))
    vae.compile(optimizer=optimizer or keras.optimizers.SGD(0.1))
    return vae


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = (rng.random((10, DATA_DIM)) < 0.5).astype("float32")
    weights = rng.random(10).astype("float32") * 3
    return x, weights


def by_hand(vae, x, weights):
    """Keras's reductions of a weighted loss and weighted metrics, computed directly."""
    terms = {name: np.asarray(value) for name, value in vae.terms(x).items()}
    loss = -terms["elbo"]
    expected = {"loss": np.mean(weights * loss)}  # Keras's "sum_over_batch_size".
    for name in ("elbo", "reconstruction", "kl"):
        expected[name] = np.sum(weights * terms[name]) / np.sum(weights)
    return expected


def assert_logs(logs, expected):
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, rel=1e-5), name


def test_evaluate_weights_loss_and_metrics(data):
    x, weights = data
    vae = make_vae()
    expected = by_hand(vae, x, weights)
    # Unweighted, the loss would be the plain mean: the weights must change it.
    assert expected["loss"] != pytest.approx(float(np.mean(-vae.terms(x)["elbo"])), rel=1e-3)
    for batch_size in (10, 3):  # One batch, and batches of unequal weight totals.
        logs = vae.evaluate(
            x, sample_weight=weights, batch_size=batch_size, verbose=0, return_dict=True
        )
        assert_logs(logs, expected)
    dataset = tf.data.Dataset.from_tensor_slices((x, None, weights)).batch(4)
    assert_logs(vae.evaluate(dataset, verbose=0, return_dict=True), expected)


def test_fit_logs_the_weighted_loss_of_its_step(data):
    x, weights = data
    vae = make_vae()
    expected = by_hand(vae, x, weights)  # The step's terms use the weights before the update.
    history = vae.fit(x, sample_weight=weights, batch_size=len(x), epochs=1, verbose=0)
    assert_logs({name: values[0] for name, values in history.history.items()}, expected)


def test_integer_weights_act_as_repeated_examples(data):
    x, _ = data
    weights = np.array([2, 0, 1, 3, 0, 1, 1, 0, 2, 0], "float32")
    repeated = np.repeat(x, weights.astype(int), axis=0)
    assert len(repeated) == len(x)  # Same batch size, so the same "sum_over_batch_size".
    weighted, plain = make_vae(), make_vae()
    weighted.fit(x, sample_weight=weights, batch_size=len(x), epochs=1, verbose=0)
    plain.fit(repeated, batch_size=len(x), epochs=1, verbose=0)
    moved = False
    for a, b, initial in zip(
        weighted.get_weights(), plain.get_weights(), make_vae().get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        moved |= not np.allclose(a, initial)
    assert moved


def test_validation_data_with_weights(data):
    x, weights = data
    vae = make_vae(keras.optimizers.SGD(0.0))  # No update: val_ logs equal a direct evaluate.
    history = vae.fit(x, epochs=1, verbose=0, validation_data=(x, None, weights))
    expected = by_hand(vae, x, weights)
    assert_logs(
        {name[4:]: v[0] for name, v in history.history.items() if name[:4] == "val_"}, expected
    )


@pytest.mark.parametrize(
    "weights, message",
    [
        (
            np.ones(3),
            "Expected `sample_weight` of shape (10,), one weight per example. "
            "Received: sample_weight of shape (3,)",
        ),
        (np.full(10, -1.0), "Expected finite, non-negative sample weights"),
        (np.full(10, np.nan), "Expected finite, non-negative sample weights"),
        (np.array(["a"] * 10), "Expected real sample weights"),
    ],
)
def test_bad_sample_weights(data, weights, message):
    x, _ = data
    with pytest.raises(ValueError, match=re.escape(message)):
        make_vae().fit(x, sample_weight=weights, verbose=0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda vae, x: vae.fit(x, x, verbose=0), "Expected no `y`: this VAE models the data x"),
        (lambda vae, x: vae.evaluate(x, x[:, 0], verbose=0), "Received: y of type ndarray"),
        (
            lambda vae, x: vae.fit(x, class_weight={0: 1.0, 1: 2.0}, verbose=0),
            "Expected no `class_weight`",
        ),
        (
            lambda vae, x: vae.fit(
                tf.data.Dataset.from_tensor_slices((x, x[:, 0])).batch(5), verbose=0
            ),
            "Expected a dataset of x, (x,) or (x, None, sample_weight)",
        ),
        (
            lambda vae, x: vae.fit(x, validation_data=(x, x), verbose=0),
            "Expected no `y`",
        ),
        (lambda vae, x: vae.compile(optimizer="sgd", loss="mse"), "Expected `loss=None`"),
        (
            lambda vae, x: vae.compile(optimizer="sgd", metrics=["mae"]),
            "Expected `metrics=None`: a VAE's loss is its negative bound and it reports `loss`",
        ),
        (
            lambda vae, x: vae.compile(optimizer="sgd", weighted_metrics=["mae"]),
            "Received: weighted_metrics=['mae']",
        ),
    ],
    ids=[
        "fit_y",
        "evaluate_y",
        "class_weight",
        "dataset_y",
        "validation_y",
        "loss",
        "metrics",
        "weighted_metrics",
    ],
)
def test_ignored_arguments_are_refused(data, call, message):
    x, _ = data
    vae = make_vae()
    before = vae.get_weights()
    with pytest.raises(ValueError, match=re.escape(message)):
        call(vae, x)
    for a, b in zip(vae.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
