"""Two stochastic layers: configuration, refusals, training, saving and every export target.

The bounds themselves are checked against the exact linear-Gaussian model in
`test_linear_gaussian_two_layers.py`; the SavedModel signatures of the
`two_layers` kind, in a process without keras_vae, in `test_export.py`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import exported, trained_vae
from helpers import run_model_saving_test, run_serialization_test

import keras_vae as kv
from keras_vae.export import (
    SIGNATURES,
    TOLERANCES,
    LiteRTModel,
    compare,
    compare_onnx,
    convert_saved_model,
    export_onnx,
    failures,
    read_model_card,
)
from keras_vae.export.onnx import ONNX_TOLERANCE
from keras_vae.presets import get_preset


def two_layer_vae(**kwargs):
    layer = kv.LatentLayer(2, kv.networks.MLP([8], "tanh"), kv.networks.MLP([8], "tanh"))
    return kv.VAE(
        kv.networks.MLP([8], "tanh"), kv.networks.MLP([8]), 3, latent_layers=[layer], **kwargs
    )


def test_latent_layer_config_round_trip():
    layer = kv.LatentLayer(4, kv.networks.MLP([8, 6]), kv.networks.MLP([5]))
    revived = run_serialization_test(layer, {"latent_dim": 4})
    assert revived.encoder.hidden_units == [8, 6] and revived.decoder.hidden_units == [5]
    config = two_layer_vae().get_config()
    revived = kv.VAE.from_config(config)
    assert [layer.latent_dim for layer in revived.latent_layers] == [2]
    assert revived.get_config() == config


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"latent_layers": [kv.networks.MLP([4])]}, "list of `keras_vae.LatentLayer`"),
        ({"prior": kv.priors.VampPrior(5)}, "prior=VampPrior"),
        ({"prior": kv.priors.MixtureOfNormals(3)}, "prior=MixtureOfNormals"),
        ({"free_bits": 0.5}, "1 latent_layers"),
        ({"condition": 10}, "condition=None with `latent_layers`"),
    ],
)
def test_refuses_what_the_layers_cannot_hold(arguments, message):
    if "latent_layers" in arguments:
        with pytest.raises(ValueError, match=message):
            kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), 3, **arguments)
        return
    with pytest.raises(ValueError, match=message):
        two_layer_vae(**arguments)


def test_latent_layer_refuses_a_bad_size():
    with pytest.raises(ValueError, match="Received: latent_dim=-3"):
        kv.LatentLayer(-3, kv.networks.MLP([8]), kv.networks.MLP([8]))


def test_held_log_q_has_gradients_for_z_only():
    # STL and DReG evaluate log q(z|x) with phi held: every inference weight, the layers' too.
    keras.utils.set_random_seed(0)
    vae = two_layer_vae()
    x = (np.random.default_rng(0).random((8, 7)) < 0.5).astype("float32")
    vae.build((None, 7))
    layer = vae.latent_layers[0]
    phi = [
        variable
        for part in (vae.encoder, vae.posterior, layer.encoder, layer.posterior)
        for variable in part.trainable_variables
    ]
    z = tf.constant(np.random.default_rng(1).normal(size=(3, 8, 5)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        parameters = vae.posterior_parameters(x)
        held = vae.held_posterior_distribution(parameters).log_prob(z)
        log_q = vae.posterior_distribution(parameters).log_prob(z)
    np.testing.assert_allclose(held, log_q, rtol=1e-6)
    assert all(gradient is None for gradient in tape.gradient(held, phi))
    assert all(np.any(gradient != 0) for gradient in tape.gradient(log_q, phi))
    # The gradient through z is kept: log q(z_2|z_1) depends on z_1 through the network.
    np.testing.assert_allclose(tape.gradient(held, z), tape.gradient(log_q, z), rtol=1e-5)


def test_shapes_sampling_and_a_dreg_step_that_trains_every_layer():
    keras.utils.set_random_seed(0)
    vae = two_layer_vae(objective="iwae", num_samples=4, estimator="dreg")
    x = (np.random.default_rng(0).random((32, 7)) < 0.5).astype("float32")
    vae.build((None, 7))
    assert vae.latent_size == 5
    assert vae.encode(x).event_shape == (5,) and vae.encode(x).batch_shape == (32,)
    z = vae.encode(x).sample(6, seed=1)  # (6, 32, 5)
    assert vae.decode(z).batch_shape == (6, 32)
    assert vae.posterior_parameters(x)["loc"].shape == (32, 3)  # q(z_1|x)'s
    assert vae.sample(4, seed=2).shape == (4, 7)
    # The prior's chain: z_1 = loc(z_2) + scale(z_2) * eps_1, so z_1 depends on z_2.
    samples = vae.prior_distribution().sample(2000, seed=3).numpy()
    assert abs(samples[:, 3:].std() - 1.0) < 0.1  # z_2 ~ N(0, I)

    before = [variable.numpy() for variable in vae.trainable_variables]
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)  # one step: no XLA
    vae.fit(x, batch_size=32, epochs=1, verbose=0)
    for variable, old in zip(vae.trainable_variables, before, strict=True):
        assert not np.array_equal(variable.numpy(), old), variable.path


def test_keras_file_round_trip_keeps_the_bounds(tmp_path):
    vae, x = trained_vae("two_layers")
    loaded = run_model_saving_test(vae, x[:16], tmp_path / "two_layers.keras")
    noise = np.random.default_rng(0).standard_normal((3, 16, vae.latent_size)).astype("float32")
    # `loaded` trained one more step in the round trip: compare a copy of its weights.
    revived = keras.saving.load_model(tmp_path / "two_layers.keras")
    for name, value in vae.terms(x[:16], noise=noise).items():
        np.testing.assert_allclose(revived.terms(x[:16], noise=noise)[name], value, rtol=1e-5)
    assert loaded.latent_layers[0].latent_dim == 2


def test_litert_runs_every_signature_with_builtins_only():
    folder = exported("two_layers")
    _, x = trained_vae("two_layers")
    model = LiteRTModel(convert_saved_model(folder, SIGNATURES))
    assert model.signature_names == sorted(SIGNATURES)
    errors = compare(model, folder, x[:20], SIGNATURES, batch_sizes=(1, 20))
    assert failures(errors, TOLERANCES["float32"]) == []
    assert model.input_shapes("sample") == {"eps": (-1, 5)}
    assert model.input_shapes("decode") == {"z": (-1, 3)}
    card = read_model_card(folder)
    assert (card["latent_dim"], card["latent_size"]) == (3, 5)
    assert [layer["config"]["latent_dim"] for layer in card["latent_layers"]] == [2]


def test_onnxruntime_matches_the_saved_model(tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    vae, x = trained_vae("two_layers")
    paths = export_onnx(vae, tmp_path)
    errors = compare_onnx(paths, exported("two_layers"), x[:20], batch_sizes=(1, 20))
    assert failures(errors, ONNX_TOLERANCE) == []


def test_iwae2_mnist_preset_has_burda_architecture():
    vae = get_preset("iwae2-mnist").build_model(objective="iwae", num_samples=5)
    vae.build((None, 28, 28, 1))
    (layer,) = vae.latent_layers
    assert (vae.latent_dim, layer.latent_dim, vae.latent_size) == (100, 50, 150)
    assert vae.encoder.hidden_units == [200, 200] and vae.decoder.hidden_units == [200, 200]
    assert layer.encoder.hidden_units == [100, 100] and layer.decoder.hidden_units == [100, 100]
    assert vae.encoder.activation == "tanh" and layer.encoder.activation == "tanh"
    assert vae.objective == "iwae" and vae.num_samples == 5
    # Dense layers (inputs, units): q(z_1|x) 784-200-200-(loc, scale of 100), q(z_2|z_1)
    # 100-100-100-(50, 50), p(z_1|z_2) 50-100-100-(100, 100), p(x|z_1) 100-200-200-784.
    dense = [(784, 200), (200, 200), (200, 200), (100, 100), (100, 100), (100, 100)]
    dense += [(50, 100), (100, 100), (100, 200), (100, 200), (200, 200), (200, 784)]
    trainable = sum(int(np.prod(variable.shape)) for variable in vae.trainable_variables)
    assert trainable == sum((inputs + 1) * units for inputs, units in dense)
