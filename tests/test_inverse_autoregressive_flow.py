"""The inverse autoregressive flow posterior and its masked autoregressive network."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import check_every_runtime, mnist

import keras_vae as kv
from keras_vae import objectives
from keras_vae.networks import MADE
from keras_vae.presets import get_preset

IAF = kv.posteriors.InverseAutoregressiveFlow


def randomize(layer, seed, scale=0.5):
    """Random values in every weight of `layer`, the zero-initialized output layers too."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(scale * rng.standard_normal(weight.shape).astype("float32"))


@pytest.mark.parametrize("reverse", [False, True])
def test_made_outputs_depend_on_earlier_dimensions_and_the_context_only(reverse):
    made = MADE([5, 4], params=2, reverse=reverse)
    made.build((None, 3), (None, 2))
    randomize(made, seed=0)
    z = tf.constant(np.random.default_rng(1).standard_normal((1, 3)), tf.float32)
    context = tf.constant([[0.3, -0.7]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z, context])
        outputs = made(z, context)  # (1, 3, 2)
    through_z = tape.jacobian(outputs, z)[0, :, :, 0]  # (output, param, input)
    through_context = tape.jacobian(outputs, context)[0, :, :, 0]
    position = np.array([2, 1, 0]) if reverse else np.arange(3)
    earlier = position[None, :] < position[:, None]  # (output, input)
    for param in range(2):
        np.testing.assert_array_equal(np.abs(through_z[:, param]) > 0, earlier)
    assert np.all(np.abs(through_context) > 0)
    # A new network outputs zeros: a flow built on it is the identity.
    assert not np.any(MADE([4])(np.ones((2, 3), "float32")))


def test_made_and_flow_refuse_bad_arguments():
    with pytest.raises(ValueError, match=r"at least event_size - 1 = 4 units.*\[8, 3\]"):
        MADE([8, 3]).build((None, 5))
    made = MADE([4])
    made.build((None, 3))
    with pytest.raises(ValueError, match=r"Received: context=\(2, 5\) for a layer built without"):
        made(np.zeros((2, 3), "float32"), np.zeros((2, 5), "float32"))
    made = MADE([4])
    made.build((None, 3), (None, 5))
    with pytest.raises(ValueError, match="Received: context=None for a layer built with one"):
        made(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="Received: hidden_units=\\[\\]"):
        MADE([])
    with pytest.raises(ValueError, match="Received: hidden_units=64"):
        IAF(hidden_units=64)
    with pytest.raises(ValueError, match="Received: params=0"):
        MADE([4], params=0)
    with pytest.raises(ValueError, match="Received: num_flows=0"):
        IAF(num_flows=0)
    with pytest.raises(ValueError, match="Received: context_units=-1"):
        IAF(context_units=-1)
    with pytest.raises(ValueError, match="Received: min_scale=-1"):
        IAF(min_scale=-1)
    with pytest.raises(ValueError, match="at least event_size - 1 = 9"):
        kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), 10, posterior=IAF(hidden_units=[8]))(
            np.zeros((1, 4), "float32")
        )


def twin_vaes(latent_dim=3, data_dim=6):
    """A VAE with an identity flow posterior and one with `DiagonalNormal`, same weights."""
    vaes = [
        kv.VAE(
            kv.networks.MLP([8], "tanh"),
            kv.networks.MLP([8], "tanh"),
            latent_dim,
            posterior=posterior,
        )
        for posterior in (IAF(num_flows=2, hidden_units=[4], context_units=3), None)
    ]
    for vae in vaes:
        vae.build((None, data_dim))
    flow, diagonal = vaes
    randomize(flow, seed=2)
    for network in flow.posterior.networks:  # the output layers back to zero: the identity
        for weight in (network.kernels[-1], network.biases[-1], network.context_kernels[-1]):
            weight.assign(np.zeros(weight.shape, "float32"))
    for name in ("encoder", "decoder", "likelihood"):
        for target, source in zip(
            getattr(diagonal, name).weights, getattr(flow, name).weights, strict=True
        ):
            target.assign(source)
    # The flow's projection holds loc, scale, then the context: copy the first two.
    projection = flow.posterior.projection
    diagonal.posterior.projection.kernel.assign(projection.kernel[:, : 2 * latent_dim])
    diagonal.posterior.projection.bias.assign(projection.bias[: 2 * latent_dim])
    return flow, diagonal


def test_identity_flow_equals_diagonal_normal_exactly():
    flow, diagonal = twin_vaes()
    x = (np.random.default_rng(3).random((5, 6)) < 0.5).astype("float32")
    noise = tf.constant(np.random.default_rng(4).standard_normal((4, 5, 3)), tf.float32)
    _, flow_parameters, flow_z = flow.sample_posterior(x, noise=noise)
    _, diagonal_parameters, diagonal_z = diagonal.sample_posterior(x, noise=noise)
    for name in ("loc", "scale"):
        np.testing.assert_array_equal(flow_parameters[f"base_{name}"], diagonal_parameters[name])
    np.testing.assert_array_equal(flow_parameters["loc"], diagonal_parameters["loc"])
    np.testing.assert_array_equal(flow.reconstruct(x), diagonal.reconstruct(x))
    np.testing.assert_array_equal(flow_z, diagonal_z)
    expected = diagonal.posterior.distribution(diagonal_parameters).log_prob(diagonal_z)
    posterior = flow.posterior.distribution(flow_parameters)
    np.testing.assert_array_equal(posterior.log_prob(flow_z), expected)
    # A z it did not draw is inverted one dimension at a time: still the same.
    np.testing.assert_array_equal(posterior.log_prob(tf.identity(flow_z)), expected)
    flow_terms = flow.terms(x, noise=noise, log_weights=True)
    diagonal_terms = diagonal.terms(x, noise=noise, log_weights=True)
    for name in ("reconstruction", "log_weights"):
        np.testing.assert_array_equal(flow_terms[name], diagonal_terms[name])
    # Its KL is the Monte Carlo average of the log-ratio of the same draws.
    np.testing.assert_allclose(
        flow_terms["kl"],
        np.mean(flow_terms["reconstruction"] - flow_terms["log_weights"], axis=0),
        rtol=1e-5,
        atol=1e-5,
    )


def test_log_prob_is_the_change_of_variables_by_hand():
    posterior = IAF(num_flows=2, hidden_units=[6], context_units=2)
    posterior.build((None, 5), (3,))
    randomize(posterior, seed=5, scale=0.2)
    parameters = posterior(np.random.default_rng(6).standard_normal((2, 5)).astype("float32"))
    eps = tf.constant(np.random.default_rng(7).standard_normal((2, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(eps)
        z = posterior.reparameterize(parameters, eps[None])  # (1, 2, 3)
        first = z[0]
    jacobian = tape.batch_jacobian(first, eps).numpy()  # (2, 3, 3): dz/deps per example
    # log q(z) = log N(eps; 0, I) - log |det dz/deps|
    eps64 = eps.numpy().astype(np.float64)
    by_hand = -0.5 * np.sum(eps64**2 + np.log(2 * np.pi), axis=-1)
    by_hand -= np.linalg.slogdet(jacobian.astype(np.float64))[1]
    distribution = posterior.distribution(parameters)
    np.testing.assert_allclose(distribution.log_prob(z)[0], by_hand, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        distribution.log_prob(tf.identity(z))[0], by_hand, rtol=1e-5, atol=1e-4
    )
    # One step, as the docstring writes it: z_1 = (z_0 - shift) * exp(-log_scale).
    z0 = parameters["base_loc"] + parameters["base_scale"] * eps
    shift, log_scale = tf.unstack(posterior.networks[0](z0, parameters["context"]), axis=-1)
    z1 = (z0 - shift) * tf.exp(-log_scale)
    reversed_step = posterior.networks[1](z1, parameters["context"])
    z2 = (z1 - reversed_step[..., 0]) * tf.exp(-reversed_step[..., 1])
    np.testing.assert_allclose(z[0], z2, rtol=1e-5, atol=1e-6)
    # `loc` is the flow of `base_loc`: z at eps = 0.
    at_zero = posterior.reparameterize(parameters, tf.zeros((1, 2, 3)))
    np.testing.assert_allclose(parameters["loc"], at_zero[0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(parameters["loc"], parameters["base_loc"], atol=1e-3)
    # The sequential inverse recovers the base draw.
    inverse = posterior.bijector(parameters).inverse(tf.identity(z))
    np.testing.assert_allclose(inverse[0], z0, rtol=1e-4, atol=1e-5)


def test_preset_builds_the_aevb_networks_with_a_flow_posterior():
    vae = get_preset("iaf-mnist").build_model(objective="elbo", num_samples=1)
    reference = get_preset("aevb-mnist").build_model(objective="elbo", num_samples=1)
    assert isinstance(vae.posterior, IAF) and vae.posterior.num_flows == 2
    for network in ("encoder", "decoder"):
        for option in ("hidden_units", "activation"):
            assert getattr(getattr(vae, network), option) == getattr(
                getattr(reference, network), option
            )
    assert vae.latent_dim == reference.latent_dim


def test_held_distribution_holds_the_networks_weights_too():
    # STL and DReG evaluate log q(z|x) with phi held: the parameters and the networks.
    posterior = IAF(num_flows=2, hidden_units=[6], context_units=2)
    posterior.build((None, 5), (3,))
    randomize(posterior, seed=9, scale=0.2)
    features = np.random.default_rng(10).standard_normal((2, 5)).astype("float32")
    z = tf.constant(np.random.default_rng(11).standard_normal((1, 2, 3)), tf.float32)
    weights = [weight.value for network in posterior.networks for weight in network.weights]
    log_probs, gradients = {}, {}
    for held in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(z)
            parameters = posterior(features)
            if held:
                distribution = posterior.held_distribution(parameters)
            else:
                distribution = posterior.distribution(parameters)
            log_probs[held] = distribution.log_prob(z)
        gradients[held] = tape.gradient(log_probs[held], [z, parameters["base_loc"], *weights])
    np.testing.assert_allclose(log_probs[True], log_probs[False], rtol=1e-6)
    assert all(gradient is not None for gradient in gradients[False])
    assert np.any(gradients[True][0] != 0)  # the path through z remains
    assert all(gradient is None for gradient in gradients[True][1:])


def count_network_calls(monkeypatch):
    calls = []
    call = MADE.call
    monkeypatch.setattr(
        MADE, "call", lambda self, *args, **kwargs: calls.append(1) or call(self, *args, **kwargs)
    )
    return calls


@pytest.fixture(scope="module")
def trained_flow_vae():
    """A small flow VAE trained a few steps on binarized MNIST, and its data."""
    keras.utils.set_random_seed(0)
    vae = kv.VAE(
        kv.networks.MLP([32], "tanh"),
        kv.networks.MLP([32], "tanh"),
        latent_dim=4,
        posterior=IAF(num_flows=2, hidden_units=[8], context_units=4),
    )
    # Without XLA: compiling takes longer than these ten steps (test_families trains with it).
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    x = mnist("train", 500)
    history = vae.fit(x, batch_size=100, epochs=2, verbose=0)
    return vae, x, history


def test_model_trains_with_a_monte_carlo_kl_and_reloads(trained_flow_vae, tmp_path):
    vae, x, history = trained_flow_vae
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert not objectives.has_closed_form_kl(vae.encode(x[:2]), vae.prior_distribution())
    # The flow moved away from the identity.
    assert np.any(vae.posterior.networks[0].kernels[-1].numpy() != 0)
    # Saving, loading and training on: test_families. The loaded bounds are the same.
    path = tmp_path / "model.keras"
    vae.save(path)
    noise = tf.random.normal((3, 8, 4), seed=1)
    np.testing.assert_allclose(
        keras.saving.load_model(path).terms(x[:8], noise=noise)["elbo"],
        vae.terms(x[:8], noise=noise)["elbo"],
        rtol=1e-5,
    )


def test_bounds_take_log_q_from_the_draw_not_from_the_sequential_inverse(
    trained_flow_vae, monkeypatch
):
    vae, x, _ = trained_flow_vae
    calls = count_network_calls(monkeypatch)
    tf.function(lambda x: vae.terms(x, num_samples=2, log_weights=True)).get_concrete_function(
        tf.TensorSpec((None, 28, 28, 1))
    )
    # Per step: `loc` (z at eps = 0), the draw, and log |det| at the draw.
    assert len(calls) == 3 * vae.posterior.num_flows
    calls.clear()
    z = tf.zeros((1, 1, vae.latent_dim))
    parameters = vae.posterior_parameters(x[:1])
    calls.clear()
    vae.posterior.distribution(parameters).log_prob(z)
    assert len(calls) == (vae.latent_dim + 1) * vae.posterior.num_flows


def test_exports_match_the_model_in_tensorflow_litert_and_onnx(trained_flow_vae, tmp_path):
    vae, x, _ = trained_flow_vae
    expected = check_every_runtime(vae, x, tmp_path)
    assert sorted(expected["encode"]) == ["base_loc", "base_scale", "context", "loc"]


def test_flow_closes_the_gap_a_diagonal_gaussian_cannot_on_a_correlated_posterior():
    # A fixed linear-Gaussian model, x | z ~ N(W z + b, sigma^2 I), whose posterior has
    # precision I + W^T W / sigma^2, correlated by the nearly parallel columns of W.
    # The best diagonal Gaussian is log |diag| / |precision| / 2 nats below log p(x).
    rng = np.random.default_rng(8)
    column = rng.normal(size=6)
    weights = np.stack([column, column + 0.3 * rng.normal(size=6)], 1)  # (6, 2)
    bias, sigma = rng.normal(size=6), 1.0
    x = rng.normal(size=(1100, 2)) @ weights.T + bias + sigma * rng.normal(size=(1100, 6))
    x = x.astype("float32")
    marginal = weights @ weights.T + sigma**2 * np.eye(6)
    exact = tfd_log_prob(x[1000:], bias, marginal)
    precision = np.eye(2) + weights.T @ weights / sigma**2
    mean_field_gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    assert mean_field_gap > 0.8
    gaps = {}
    for name, posterior in {
        "diagonal": kv.posteriors.DiagonalNormal(),
        "flow": IAF(num_flows=2, hidden_units=[16], context_units=4),
    }.items():
        keras.utils.set_random_seed(0)
        vae = kv.VAE(
            keras.layers.Identity(),
            keras.layers.Identity(),
            2,
            posterior=posterior,
            likelihood=kv.likelihoods.Normal(scale=sigma, min_scale=0.0),
        )
        vae.build((None, 6))
        vae.likelihood.projection.kernel.assign(weights.T.astype("float32"))
        vae.likelihood.projection.bias.assign(bias.astype("float32"))
        vae.likelihood.trainable = False
        vae.compile(optimizer=keras.optimizers.Adam(0.01), jit_compile=False)  # tiny: no XLA
        vae.fit(x[:1000], batch_size=100, epochs=20, verbose=0)
        gaps[name] = float(np.mean(exact - vae.elbo(x[1000:], num_samples=200, seed=1)))
    # No diagonal Gaussian gets closer than the mean-field gap (up to Monte Carlo error); the
    # flow does on the same budget (measured: 1.83 and 0.22 nats, mean-field gap 0.84).
    assert gaps["diagonal"] > mean_field_gap - 0.05, (gaps, mean_field_gap)
    assert gaps["flow"] < 0.5 * mean_field_gap, (gaps, mean_field_gap)


def tfd_log_prob(x, loc, covariance):
    """log N(x; loc, covariance), float64."""
    difference = x.astype("float64") - loc
    solved = np.linalg.solve(covariance, difference.T).T
    logdet = np.linalg.slogdet(covariance)[1]
    return -0.5 * (np.sum(difference * solved, -1) + logdet + len(loc) * np.log(2 * np.pi))
