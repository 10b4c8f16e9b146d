"""TFLite conversion: builtin ops only, LiteRT outputs against the SavedModel per quantization."""

import shutil

import numpy as np
import pytest
from export_helpers import exported, mnist

from keras_vae.cli import main
from keras_vae.export import (
    QUANTIZATIONS,
    TOLERANCES,
    LiteRTModel,
    compare,
    convert_saved_model,
    failures,
)

ALL = ["serving_default", "encode", "decode", "sample", "elbo"]


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_litert_matches_the_saved_model_within_the_stated_tolerance(quantization):
    folder = exported("mnist_mlp")
    # int8 activations cannot hold the ELBO's sum of per-pixel log-probabilities.
    names = ALL[:-1] if quantization == "int8" else ALL
    model = convert_saved_model(
        folder, names, quantization, representative_data=mnist("train", 200)
    )
    litert = LiteRTModel(model)
    assert litert.signature_names == sorted(names)
    # Batch 1 and a larger batch: the runner resizes the dynamic batch.
    errors = compare(litert, folder, mnist("test", 100), names, batch_sizes=(1, 100))
    assert failures(errors, TOLERANCES[quantization]) == []
    assert sorted(errors["sample"]) == ["logits", "mean", "z"]


def test_quantization_shrinks_the_file():
    folder = exported("mnist_mlp")
    sizes = {
        quantization: len(
            convert_saved_model(
                folder, quantization=quantization, representative_data=mnist("train", 20)
            )
        )
        for quantization in QUANTIZATIONS
    }
    assert sizes["float16"] < 0.75 * sizes["float32"]
    assert sizes["dynamic-int8"] < 0.5 * sizes["float32"]
    assert sizes["int8"] < 0.5 * sizes["float32"]


def test_bad_requests_raise_clear_errors():
    folder = exported("mnist_mlp")
    with pytest.raises(ValueError, match="representative_data"):
        convert_saved_model(folder, quantization="int8")
    with pytest.raises(ValueError, match="without `elbo`"):
        convert_saved_model(folder, ["elbo"], "int8", representative_data=mnist("train", 2))
    with pytest.raises(ValueError, match="quantization"):
        convert_saved_model(folder, quantization="int4")
    with pytest.raises(ValueError, match="Expected signatures among"):
        convert_saved_model(folder, ["transcode"])
    litert = LiteRTModel(convert_saved_model(folder, ["encode"]))
    with pytest.raises(ValueError, match=r"shape \(batch, 28, 28, 1\)"):
        litert("encode", x=np.zeros((2, 784)))
    with pytest.raises(ValueError, match="Expected inputs"):
        litert("encode", z=np.zeros((2, 4)))


def test_cli_converts_and_prints_size_and_errors(tmp_path, capsys):
    data = tmp_path / "test.npy"
    np.save(data, mnist("test", 50))
    output = tmp_path / "vae.tflite"
    args = [
        "convert",
        "--saved-model",
        str(exported("mnist_mlp").parent),
        "--output",
        str(output),
        "--data",
        str(data),
        "--quantization",
        "float16",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "encode/loc: max abs error" in printed and "decode/mean: max abs error" in printed
    assert f"wrote {output} (" in printed and "MB, float16" in printed
    assert LiteRTModel(output).signature_names == ["decode", "encode"]


def test_cli_rejects_data_of_the_wrong_shape_on_one_line(tmp_path, capsys):
    data = tmp_path / "flat.npy"
    np.save(data, mnist("test", 5).reshape(5, 784))
    output = tmp_path / "vae.tflite"
    args = [
        "convert",
        "--saved-model",
        str(exported("mnist_mlp")),
        "--output",
        str(output),
        "--data",
        str(data),
    ]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "Expected examples of shape (batch, 28, 28, 1)" in error and "(5, 784)" in error
    assert not output.exists()


def test_litert_model_refuses_what_the_saved_model_refuses():
    folder = exported("mnist_mlp")
    model = convert_saved_model(folder, ["elbo", "sample"])
    litert = LiteRTModel(model)
    assert litert.support == [0, 1]  # carried in the file's metadata
    x = mnist("test", 4)
    eps = np.random.default_rng(0).standard_normal((4, 3, 4)).astype(np.float32)
    bad = {
        "to be finite and in \\[0, 1\\]. Received: values from -3.0 to -3.0": {
            "x": np.full_like(x, -3.0),
            "eps": eps,
        },
        "to be finite and in \\[0, 1\\]. Received: values from nan": {
            "x": np.full_like(x, np.nan),
            "eps": eps,
        },
        "`eps` of signature 'elbo' to have a non-empty axis 1": {"x": x, "eps": eps[:, :0]},
        "to share their batch size": {"x": x, "eps": eps[:1]},
    }
    interpreter_elbo = litert.interpreter.get_signature_runner("elbo")
    for message, inputs in bad.items():
        with pytest.raises(ValueError, match=message):
            litert("elbo", **inputs)
    with pytest.raises(ValueError, match="`eps` of signature 'sample' to be finite"):
        litert("sample", eps=np.full((2, 4), np.inf, np.float32))
    # What the file itself does without the checks (see the README): a number for
    # data outside the support, NaN for an empty sample axis.
    outside = interpreter_elbo(
        **bad["to be finite and in \\[0, 1\\]. Received: values from -3.0 to -3.0"]
    )
    assert np.isfinite(outside["elbo"]).all()
    empty = interpreter_elbo(x=x, eps=eps[:, :0])
    assert np.isnan(empty["elbo"]).all()


def test_litert_model_without_metadata_checks_all_but_the_support(tmp_path):
    folder = exported("mnist_mlp")
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare, ignore=shutil.ignore_patterns("model_card.json"))
    litert = LiteRTModel(convert_saved_model(bare, ["encode"]))
    assert litert.support is None
    litert("encode", x=np.full((2, 28, 28, 1), -3.0))  # the support is unknown
    with pytest.raises(ValueError, match="to be finite"):
        litert("encode", x=np.full((2, 28, 28, 1), np.nan))
