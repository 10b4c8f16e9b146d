"""A conditional VAE's exports: every signature takes the condition, in TF, LiteRT and ONNX."""

import atexit
import functools
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae as kv
from keras_vae.export import (
    SIGNATURES,
    TOLERANCES,
    LiteRTModel,
    compare,
    compare_onnx,
    convert_saved_model,
    export_onnx,
    export_saved_model,
    failures,
)
from keras_vae.export.onnx import ONNX_TOLERANCE

NUM_CLASSES = 3


@functools.cache
def trained():
    """A tiny conditional VAE trained a few steps, its data with labels, and its export."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, 64)
    x = (rng.random((64, 5)) < 0.2 + 0.3 * labels[:, None]).astype("float32")
    vae = kv.VAE(
        kv.networks.MLP([8], "tanh"),
        kv.networks.MLP([8], "tanh"),
        latent_dim=2,
        condition=kv.conditions.OneHot(NUM_CLASSES),
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)  # tiny: XLA costs more
    vae.fit(x, labels, batch_size=32, epochs=2, verbose=0)
    folder = export_saved_model(vae, _tmp() / "saved", SIGNATURES)
    return vae, {"x": x[:7], "condition": labels[:7].astype("float32")}, folder


@functools.cache
def _tmp():
    folder = Path(tempfile.mkdtemp(prefix="keras-vae-conditional-export-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def test_saved_model_signatures_take_the_condition_and_match_the_model():
    vae, data, folder = trained()
    loaded = tf.saved_model.load(str(folder))
    for name in SIGNATURES:
        inputs = loaded.signatures[name].structured_input_signature[1]
        assert inputs["condition"].shape.as_list() == [None], name
    x, condition = data["x"], data["condition"]
    signatures = loaded.signatures
    reconstruction = signatures["serving_default"](x=x, condition=condition)["reconstruction"]
    np.testing.assert_allclose(reconstruction, vae(data), atol=1e-5)
    encoded = signatures["encode"](x=x, condition=condition)
    np.testing.assert_allclose(encoded["loc"], vae.posterior_parameters(data)["loc"], atol=1e-5)
    z = np.random.default_rng(1).standard_normal((7, 2)).astype("float32")
    decoded = vae.likelihood_parameters(z, condition)["logits"]
    np.testing.assert_allclose(
        signatures["decode"](z=z, condition=condition)["logits"], decoded, atol=1e-5
    )
    # The standard-normal prior's z is its noise.
    sampled = signatures["sample"](eps=z, condition=condition)
    np.testing.assert_allclose(sampled["logits"], decoded, atol=1e-5)
    eps = np.random.default_rng(2).standard_normal((7, 3, 2)).astype("float32")
    elbo = signatures["elbo"](x=x, eps=eps, condition=condition)["elbo"]
    terms = vae.terms(data, noise=np.transpose(eps, (1, 0, 2)))
    np.testing.assert_allclose(elbo, terms["elbo"], rtol=1e-5, atol=1e-5)
    # Another label gives another decoding: the condition is not ignored.
    other = signatures["decode"](z=z, condition=(condition + 1) % NUM_CLASSES)["logits"]
    assert np.abs(np.asarray(other) - np.asarray(decoded)).max() > 1e-3
    card = json.loads((folder / "assets" / "model_card.json").read_text())
    assert card["condition"] == {"shape": [-1], "bounds": [0.0, 2.0], "integer": True}


@pytest.mark.parametrize("bad", [3.0, 0.5, -1.0, np.nan])
def test_saved_model_refuses_a_label_it_has_no_class_for(bad):
    _, data, folder = trained()
    decode = tf.saved_model.load(str(folder)).signatures["decode"]
    condition = np.array([0.0, bad], "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="whole numbers and in \\[0, 2\\]"):
        decode(z=np.zeros((2, 2), "float32"), condition=condition)


def test_litert_runs_every_signature_with_builtins_and_checks_the_condition():
    _, data, folder = trained()
    litert = LiteRTModel(convert_saved_model(folder, SIGNATURES))
    errors = compare(litert, folder, data, SIGNATURES, batch_sizes=(1, None))
    assert failures(errors, TOLERANCES["float32"]) == []
    assert sorted(errors) == sorted(SIGNATURES)
    with pytest.raises(ValueError, match="`condition` of signature 'decode' to be finite whole"):
        litert("decode", z=np.zeros((1, 2)), condition=np.array([3.0]))
    int8 = LiteRTModel(convert_saved_model(folder, ["decode"], "int8", representative_data=data))
    errors = compare(int8, folder, data, ["decode"], batch_sizes=(None,))
    assert failures(errors, TOLERANCES["int8"]) == []


def test_onnx_encode_and_decode_take_the_condition():
    vae, data, folder = trained()
    paths = export_onnx(vae, _tmp() / "onnx")
    errors = compare_onnx(paths, folder, data)
    assert failures(errors, ONNX_TOLERANCE) == []
    assert sorted(errors) == ["decode", "encode"]


def test_converted_checks_need_the_condition():
    _, data, folder = trained()
    litert = LiteRTModel(convert_saved_model(folder, ["encode"]))
    with pytest.raises(ValueError, match="Expected data with its condition"):
        compare(litert, folder, data["x"], ["encode"])


def test_serving_client_sends_the_condition(tmp_path, monkeypatch, capsys):
    """`tools/serving_client.py --condition` against the export, TF Serving's part stubbed."""
    vae, _, folder = trained()
    loaded = tf.saved_model.load(str(folder))
    spec = importlib.util.spec_from_file_location(
        "serving_client", Path(__file__).resolve().parents[1] / "tools/serving_client.py"
    )
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)

    class SavedModelClient:  # what TF Serving answers, from the SavedModel itself
        def __init__(self, *args):
            pass

        def metadata(self):
            definitions = {
                name: {
                    "inputs": {
                        key: {
                            "tensor_shape": {"dim": [{"size": str(size or -1)} for size in s.shape]}
                        }
                        for key, s in function.structured_input_signature[1].items()
                    }
                }
                for name, function in loaded.signatures.items()
            }
            return {"metadata": {"signature_def": {"signature_def": definitions}}}

        def predict(self, name, inputs):
            outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
            return {key: value.numpy() for key, value in outputs.items()}

    monkeypatch.setattr(client, "RestClient", SavedModelClient)
    output = tmp_path / "samples.npz"
    arguments = ["--model", "cvae", "--output", str(output), "sample", "--num", "3", "--seed", "0"]
    assert client.main(["--condition", "2", *arguments]) == 0
    eps = client.prior_noise(3, vae.latent_dim, seed=0)["eps"]
    expected = vae.likelihood_parameters(eps, np.full(3, 2.0))["logits"]
    np.testing.assert_allclose(np.load(output)["logits"], expected, atol=1e-5)
    assert client.main(arguments) == 2
    assert "Expected --condition for this conditional model" in capsys.readouterr().err
    assert client.main(["--condition", "1,2", *arguments]) == 2
    assert "Received: 2 values" in capsys.readouterr().err
