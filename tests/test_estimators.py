"""Gradient estimators: where they apply, training and saving with each."""

import re

import keras
import numpy as np
import pytest
from helpers import run_model_saving_test, run_serialization_test, tiny_vae

import keras_vae as kv
from keras_vae import estimators

# The objective each estimator is tested with.
SETTINGS = {
    "reparameterization": {"objective": "elbo"},
    "stl": {"objective": "elbo"},
    "score_function": {"objective": "elbo"},
    "dreg": {"objective": "iwae", "num_samples": 3},
}


def binary_data(num=64, dim=6, seed=0):
    return (np.random.default_rng(seed).random((num, dim)) < 0.4).astype("float32")


@pytest.mark.parametrize("name", estimators.ESTIMATORS)
def test_trains_reports_the_bound_and_round_trips(name, tmp_path):
    keras.utils.set_random_seed(0)
    x = binary_data()
    vae = tiny_vae(estimator=name, seed=1, **SETTINGS[name])
    assert isinstance(vae.estimator, estimators.ESTIMATORS[name])
    history = vae.fit(x, batch_size=16, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    if name != "dreg":  # the ELBO objective: the loss is minus the ELBO
        np.testing.assert_allclose(history["loss"], -np.asarray(history["elbo"]), rtol=1e-5)
    loaded = run_model_saving_test(vae, x, tmp_path / "model.keras")
    assert type(loaded.estimator) is type(vae.estimator)


def test_score_function_config_round_trip():
    init_kwargs = {"running_average": False, "baseline_units": 7, "decay": 0.5}
    revived = run_serialization_test(estimators.ScoreFunction(**init_kwargs), init_kwargs)
    assert revived.baseline is not None


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("dreg", {}, "objective in ('iwae',) with estimator='dreg'"),
        ("stl", {"objective": "iwae"}, "biased for the IWAE bound"),
        ("score_function", {"objective": "iwae"}, "objective in ('elbo',)"),
    ],
)
def test_refused_where_it_does_not_apply(name, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), 2, estimator=name, **options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"running_average": 1}, "Received: running_average=1"),
        ({"baseline_units": 0}, "Received: baseline_units=0"),
        ({"decay": 1.0}, "Received: decay=1.0"),
    ],
)
def test_score_function_bad_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        estimators.ScoreFunction(**options)


def test_unknown_estimator():
    with pytest.raises(ValueError, match=re.escape("Received: estimator='reinforce'")):
        kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), 2, estimator="reinforce")


def test_score_function_learns_a_clearly_better_elbo():
    # Two clusters of binary patterns: a 2-d latent explains them, a random model does not.
    rng = np.random.default_rng(0)
    patterns = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], "float32")
    x = patterns[rng.integers(0, 2, 256)]
    x = np.where(rng.random(x.shape) < 0.05, 1 - x, x).astype("float32")
    keras.utils.set_random_seed(0)
    vae = tiny_vae(estimator="score_function", seed=1)
    before = float(np.mean(vae.elbo(x, num_samples=20, seed=0)))
    vae.fit(x, batch_size=32, epochs=15, verbose=0)
    after = float(np.mean(vae.elbo(x, num_samples=20, seed=0)))
    # At initialization about 6 log 2 = 4.2 nats per example; the data's entropy is about 2.
    print(f"score function ELBO: {before:.2f} -> {after:.2f} nats")
    assert after > before + 1.0, (before, after)
