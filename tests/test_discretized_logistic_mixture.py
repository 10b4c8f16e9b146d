"""The discretized logistic mixture likelihood on 8-bit data: masses, edges, mean, exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import check_every_runtime
from helpers import load_mnist

import keras_vae as kv

DLM = kv.likelihoods.DiscretizedLogisticMixture
VALUES = np.arange(256, dtype="float64")


def hand_probabilities(logits, loc, scale):
    """P(x = v) for v = 0..255 by the formulas of the docstring, in float64: `(256, ...)`."""
    logits, loc, scale = (np.asarray(a, "float64") for a in (logits, loc, scale))
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    edges = np.concatenate(
        [[-np.inf], VALUES[:-1] + 0.5, [np.inf]]
    )  # bin v: (edges[v], edges[v+1]]
    shape = (-1,) + (1,) * loc.ndim

    def cdf(t):
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-(t.reshape(shape) - loc) / scale))

    masses = cdf(edges[1:]) - cdf(edges[:-1])  # (256, ..., K)
    return (masses * weights).sum(-1)


def parameters(likelihood_raw, num_components):
    """A built likelihood on one data dimension and its parameters from raw values."""
    likelihood = DLM(num_components=num_components)
    likelihood.build((None, 3 * num_components), (1,))
    return likelihood, likelihood.parameters(tf.constant(likelihood_raw, tf.float32))


@pytest.fixture(scope="module")
def extreme():
    """Parameters of 7 examples x 3 components: inside the range, past both edges, tiny and
    huge scales."""
    logits = [[0.0, 1.0, -1.0]] * 7
    raw_loc = [
        [0.0, 0.3, -0.5],  # inside
        [-1.5, -1.2, -3.0],  # below 0: mass on the left edge
        [1.4, 2.0, 1.1],  # above 255
        [-0.21, 0.5, 0.9],  # tiny scales (below)
        [0.0, 0.0, 0.0],  # huge scales
        [-1.0, 1.0, 0.0],  # on the edges exactly
        [0.33, -0.77, 0.1],
    ]
    raw_scale = [[0.0] * 3, [-4.0] * 3, [-4.0] * 3, [-12.0] * 3, [6.0] * 3, [-4.0] * 3, [-2.0] * 3]
    raw = np.stack([logits, raw_loc, raw_scale], -1).transpose(0, 2, 1).reshape(7, 1, 9)
    return parameters(raw.astype("float32"), 3)


def test_probabilities_of_the_256_values_sum_to_one_and_match_the_hand_computation(extreme):
    likelihood, params = extreme
    mixture = likelihood.distribution(params).distribution  # per dimension, batch (7, 1)
    log_probs = mixture.log_prob(tf.constant(VALUES[:, None, None], tf.float32))  # (256, 7, 1)
    probabilities = np.exp(np.asarray(log_probs, "float64"))
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=2e-5)
    hand = hand_probabilities(params["logits"], params["loc"], params["scale"])
    np.testing.assert_allclose(probabilities, hand, atol=2e-6)
    # Where the mass is, the log-probabilities match in relative terms too.
    large = hand > 1e-3
    np.testing.assert_allclose(np.asarray(log_probs)[large], np.log(hand[large]), atol=2e-3)
    assert np.isfinite(np.asarray(log_probs)).all()


def test_edge_bins_take_the_tails(extreme):
    likelihood, params = extreme
    mixture = likelihood.distribution(params).distribution
    below, above = np.exp(mixture.log_prob(tf.constant([[[0.0]], [[255.0]]])))  # (7, 1) each
    # Locations far below 0 (example 1) or above 255 (example 2): the edge value takes it all.
    assert below[1, 0] > 0.999 and above[2, 0] > 0.999
    # By hand: P(0) = sum_k w_k sigmoid((0.5 - loc_k) / s_k), P(255) = sum_k w_k sigmoid(...).
    weights = tf.nn.softmax(params["logits"]).numpy()
    loc, scale = params["loc"].numpy(), params["scale"].numpy()
    tail_low = (weights / (1 + np.exp(-(0.5 - loc) / scale))).sum(-1)
    tail_high = (weights / (1 + np.exp(-(loc - 254.5) / scale))).sum(-1)
    np.testing.assert_allclose(below, tail_low, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(above, tail_high, rtol=1e-4, atol=1e-7)
    # A logistic centred on an edge (example 5): the edge value takes its whole half, not
    # the mass of one bin's width.
    assert below[5, 0] > 0.5 * weights[5, 0, 0] and above[5, 0] > 0.5 * weights[5, 0, 1]


def test_mean_is_the_exact_mean_of_the_256_values(extreme):
    likelihood, params = extreme
    hand = hand_probabilities(params["logits"], params["loc"], params["scale"])
    np.testing.assert_allclose(
        likelihood.mean(params), np.tensordot(VALUES, hand, axes=1), rtol=1e-5, atol=2e-3
    )


def test_gradients_stay_finite_at_tiny_scales_and_far_locations(extreme):
    likelihood, params = extreme
    raw = tf.Variable(tf.zeros((7, 1, 9)))
    with tf.GradientTape() as tape:
        params = likelihood.parameters(raw + tf.constant(-12.0, shape=(7, 1, 9)))
        log_prob = likelihood.distribution(params).log_prob(tf.fill((7, 1), 255.0))
    assert np.isfinite(log_prob.numpy()).all()
    assert np.isfinite(tape.gradient(log_prob, raw).numpy()).all()


def test_refuses_bad_arguments_and_data_between_levels():
    with pytest.raises(ValueError, match=r"num_components=0"):
        DLM(num_components=0)
    with pytest.raises(ValueError, match=r"min_scale=-1"):
        DLM(min_scale=-1)
    vae = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), 2, likelihood=DLM(2))
    with pytest.raises(ValueError, match=r"whole numbers.*Received: 1 fractional values among 6"):
        vae.elbo(np.array([[0, 1, 2], [3, 4.5, 255]], "float32"))
    with pytest.raises(ValueError, match=r"Expected data in \[0.0, 255.0\]"):
        vae.elbo(np.array([[0, 1, 256]], "float32"))
    batches = tf.data.Dataset.from_tensor_slices(np.full((4, 3), 0.5, "float32")).batch(2)
    with pytest.raises(ValueError, match=r"Received: 6 fractional values among 6"):
        vae.compile(optimizer="adam")
        vae.fit(batches, epochs=1, verbose=0)


# === A small model on 8-bit MNIST digits ===


@pytest.fixture(scope="module")
def trained_dlm_vae():
    keras.utils.set_random_seed(0)
    x = np.round(load_mnist("train")[:512, ::2, ::2] * 255.0)[..., None]  # (512, 14, 14, 1)
    vae = kv.VAE(
        kv.networks.MLP([32], "tanh"),
        kv.networks.MLP([32], "tanh"),
        latent_dim=3,
        likelihood=DLM(num_components=2),
    )
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = vae.fit(x.astype("uint8"), batch_size=64, epochs=3, verbose=0)
    return vae, x.astype("float32"), history


def test_trains_on_uint8_and_reports_bits_per_dim(trained_dlm_vae, tmp_path):
    vae, x, history = trained_dlm_vae
    elbo = history.history["elbo"]
    assert elbo[-1] > elbo[0] + 50, elbo  # nats per image, out of ~196 * 8 * log 2
    log_likelihood = vae.log_likelihood(x[:16], num_samples=20, seed=0)
    bits = float(np.mean(kv.bits_per_dim(log_likelihood, 14 * 14)))
    # Bounded by the 8 bits of a uniform pixel, well under it for digits (mostly 0s).
    assert 0.0 < bits < 8.0, bits
    from helpers import run_model_saving_test

    loaded = run_model_saving_test(vae, x[:16], tmp_path / "dlm.keras")
    assert loaded.likelihood.num_components == 2


def test_exports_match_the_model_in_tensorflow_litert_and_onnx(trained_dlm_vae, tmp_path):
    vae, x, _ = trained_dlm_vae
    expected = check_every_runtime(vae, x, tmp_path, tolerance=(1e-3, 1e-4))
    assert sorted(expected["decode"]) == ["loc", "logits", "mean", "scale"]


def test_preset_models_8bit_fashion_mnist():
    from keras_vae.presets import get_preset

    preset = get_preset("dlm-fashion-mnist")
    assert (preset.dataset, preset.preprocessing) == ("fashion_mnist", "8bit")
    vae = preset.build_model(seed=0)
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("uint8")
    elbo = np.asarray(vae.elbo(x, seed=1))
    assert isinstance(vae.likelihood, DLM) and vae.likelihood.num_components == 5
    assert elbo.shape == (4,) and np.isfinite(elbo).all()
    # The encoder sees [-1, 1]: its first layer rescales the 8-bit pixels.
    rescaled = vae.encoder.layers[0](np.array([[0.0, 127.5, 255.0]]))
    np.testing.assert_allclose(rescaled, [[-1.0, 0.0, 1.0]])
