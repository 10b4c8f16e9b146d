"""Mixed precision: every family trains, saves, exports and converts under float16 and bfloat16."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_model_saving_test
from test_families import MODELS as FAMILY_MODELS

import keras_vae as kv
from keras_vae import precision
from keras_vae.export import (
    TOLERANCES,
    LiteRTModel,
    compare,
    convert_saved_model,
    export_saved_model,
    failures,
)

# Relative error of a float16 / bfloat16 network's outputs (10 and 7 bits of mantissa).
RTOL = {"mixed_float16": 5e-3, "mixed_bfloat16": 4e-2}


def mlps():
    return dict(encoder=kv.networks.MLP([8], "tanh"), decoder=kv.networks.MLP([8], "tanh"))


# test_families' models hold every prior, posterior and likelihood; the conv one adds the
# convolutional networks and the Bernoulli likelihood.
MODELS = {
    **{
        name: lambda kwargs=kwargs: {**mlps(), **kwargs()} for name, kwargs in FAMILY_MODELS.items()
    },
    "conv_bernoulli": lambda: dict(
        encoder=kv.networks.ConvEncoder(filters=[4, 4], dense_units=8),
        decoder=kv.networks.ConvDecoder((8, 8), filters=[4, 4]),
    ),
}


def data_for(name):
    shape = (8, 8, 1) if name.startswith("conv") else (3, 2)
    return (np.random.default_rng(0).random((16, *shape)) < 0.5).astype("float32")


def build(name, policy, x, optimizer=None):
    """The model `name` under `policy`, built for `x` and compiled, with fixed initial weights."""
    keras.utils.set_random_seed(1)
    with precision.policy(policy):
        vae = kv.VAE(latent_dim=2, seed=3, **MODELS[name]())
        vae.build(x.shape)
    vae.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2), jit_compile=False)
    return vae


def float32_copy(name, vae, x):
    reference = build(name, "float32", x)
    reference.set_weights(vae.get_weights())
    return reference


def check_against_float32(name, vae, x, policy):
    """The networks compute in the reduced dtype; the terms are float32 and match float32's."""
    compute_dtype = policy.removeprefix("mixed_")
    assert vae.encoder(x).dtype == compute_dtype
    assert vae.posterior.projection.compute_dtype == compute_dtype
    noise = np.random.default_rng(1).standard_normal((2, len(x), 2)).astype("float32")
    terms = vae.terms(x, noise=noise, log_weights=True)
    assert {value.dtype for value in terms.values()} == {tf.float32}
    # The same weights in float32 give the same terms within the reduced dtype's rounding.
    reference = float32_copy(name, vae, x).terms(x, noise=noise, log_weights=True)
    for key in terms:
        np.testing.assert_allclose(terms[key], reference[key], rtol=RTOL[policy], atol=0.05)


@pytest.mark.parametrize("name", MODELS)
def test_bfloat16_fit_evaluate_predict_and_save(name, tmp_path):
    x = data_for(name)
    vae = build(name, "mixed_bfloat16", x)
    check_against_float32(name, vae, x, "mixed_bfloat16")
    history = vae.fit(x, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    evaluated = vae.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    assert np.isfinite(list(evaluated.values())).all()
    predicted = vae.predict(x, batch_size=8, verbose=0)
    assert predicted.dtype == np.float32 and predicted.shape == x.shape
    loaded = run_model_saving_test(vae, x, tmp_path / "model.keras")
    # Nested layers keep the policy from the file, whatever the global policy at load time.
    layers = [*loaded.encoder._flatten_layers(), *loaded.likelihood._flatten_layers()]
    assert {layer.dtype_policy.name for layer in layers if hasattr(layer, "kernel")} == {
        "mixed_bfloat16"
    }


@pytest.mark.parametrize("name", MODELS)
def test_float16_fit(name):
    # Saving, evaluating and exporting do not depend on the reduced dtype: bfloat16 tests them.
    x = data_for(name)
    vae = build(name, "mixed_float16", x)
    check_against_float32(name, vae, x, "mixed_float16")
    # Eight steps: the first may overflow in float16, and the loss scale optimizer skips
    # them while it lowers the scale from 2 ** 15.
    history = vae.fit(x, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(vae.optimizer.iterations) > 0


def test_float16_scales_the_loss_and_unscales_the_gradients():
    name = "iwae_normal_predicted"
    x = data_for(name)
    vae = build(name, "mixed_float16", x, optimizer=keras.optimizers.SGD(0.1))
    assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
    reference = float32_copy(name, vae, x)
    reference.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)  # as `build`
    before = reference.get_weights()
    for model in (vae, reference):
        model.seed_generator.state.assign([0, 7])  # the same noise for both steps
        model.fit(x, batch_size=len(x), epochs=1, verbose=0)
    # Plain SGD: a step without scaling, or without unscaling, would differ by 2 ** 15.
    for weight, expected, start in zip(
        vae.get_weights(), reference.get_weights(), before, strict=True
    ):
        np.testing.assert_allclose(weight - start, expected - start, rtol=0.05, atol=2e-4)
    assert float(vae.optimizer.dynamic_scale) == 2.0**15  # no overflow, so no change


@pytest.mark.parametrize("name", ["mixture_full_normal_learned", "conv_bernoulli"])
def test_exports_compute_in_float32_and_convert_to_tflite(name, tmp_path):
    x = data_for(name)
    vae = build(name, "mixed_bfloat16", x)
    vae.fit(x, batch_size=8, epochs=1, verbose=0)
    folder = export_saved_model(vae, tmp_path / "saved_model")
    # The graph runs the float32 weights in float32: it matches a float32 copy to float32
    # rounding (oneDNN picks other convolution algorithms), not to bfloat16's 1e-2.
    reference = float32_copy(name, vae, x)
    loaded = tf.saved_model.load(str(folder))
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](x=tf.constant(x))["reconstruction"],
        reference.reconstruct(x),
        rtol=1e-4,
        atol=1e-5,
    )
    assert vae.encoder.compute_dtype == "bfloat16"  # the model itself is left as it was
    # The full-covariance elbo needs non-builtin ops in float32 too.
    names = ["serving_default", "encode", "decode", "sample"]
    if isinstance(vae.posterior, kv.posteriors.DiagonalNormal):
        names.append("elbo")
    litert = LiteRTModel(convert_saved_model(folder, names))
    errors = compare(litert, folder, x, names)
    assert failures(errors, TOLERANCES["float32"]) == []


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="Expected `precision` to be one of"):
        with precision.policy("float8"):
            pass
    assert keras.config.dtype_policy().name == "float32"


def test_cli_trains_under_the_precision_it_records(tmp_path, tfds_data_dir):
    from keras_vae.cli import main
    from keras_vae.run_dir import RunDir

    run_dir = RunDir(tmp_path / "run")
    argv = ["train", "--run-dir", str(run_dir.root), "--precision", "mixed_bfloat16"]
    argv += ["--epochs", "1", "--steps-per-epoch", "3", "--data-dir", str(tfds_data_dir)]
    argv += ["--max-examples", "300"]
    assert main([*argv, "--verbose", "0"]) == 0
    assert run_dir.read_json(run_dir.config)["precision"] == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    vae = run_dir.load_model()
    assert vae.decoder.compute_dtype == "bfloat16"
    assert np.isfinite(run_dir.read_json(run_dir.metrics)["test"]["elbo"])
