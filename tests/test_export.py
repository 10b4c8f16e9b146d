"""SavedModel export: signatures served by TensorFlow alone, versions, atomicity, model card."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from export_helpers import (
    KINDS,
    expected_outputs,
    exported,
    make_inputs,
    make_run_dir,
    trained_vae,
)

import keras_vae as kv
from keras_vae.cli import main
from keras_vae.export import (
    SIGNATURES,
    export_saved_model,
    latest_version,
    next_version,
    read_model_card,
)

# Runs signatures of exports with TensorFlow only: importing keras_vae or
# tensorflow_probability raises, and neither may be loaded at the end. Requests
# are keyed by (folder, signature, ...); a refused request gives the error's
# class name and message instead of the outputs.
FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["keras_vae"] = None
    sys.modules["tensorflow_probability"] = None
    import numpy as np
    import tensorflow as tf

    requests = np.load(sys.argv[1], allow_pickle=True).item()
    results, models = {}, {}
    for key, inputs in requests.items():
        folder, signature = key[:2]
        if folder not in models:
            models[folder] = tf.saved_model.load(folder)
        function = models[folder].signatures[signature]
        try:
            outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        except tf.errors.OpError as error:
            results[key] = f"{type(error).__name__}: {error.message}"
            continue
        results[key] = {name: value.numpy() for name, value in outputs.items()}
    np.save(sys.argv[2], results, allow_pickle=True)
    loaded = [name for name in ("keras_vae", "tensorflow_probability")
              if sys.modules.get(name) is not None]
    assert not loaded, loaded
    """
)


def run_in_fresh_process(requests, folder):
    """The results of `FRESH_PROCESS` on `requests`, files in `folder`."""
    np.save(folder / "requests.npy", requests, allow_pickle=True)
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, folder / "requests.npy", folder / "results.npy"],
        check=True,
        cwd=folder,
    )
    return np.load(folder / "results.npy", allow_pickle=True).item()


def test_signatures_match_the_model_in_a_process_without_keras_vae(tmp_path):
    requests, expected = {}, {}
    for kind in KINDS:
        vae, x = trained_vae(kind)
        for signature in SIGNATURES:
            inputs = make_inputs(vae, signature, x[:5])
            key = (str(exported(kind)), signature)
            requests[key] = inputs
            expected[key] = expected_outputs(vae, signature, inputs)
    results = run_in_fresh_process(requests, tmp_path)
    for key, outputs in expected.items():
        assert sorted(results[key]) == sorted(outputs), key
        for name, value in outputs.items():
            np.testing.assert_allclose(
                results[key][name], value, rtol=1e-5, atol=1e-5, err_msg=f"{key} {name}"
            )


def test_mixture_sample_takes_uniform_input_and_picks_every_component():
    vae, x = trained_vae("full_normal_mixture")
    card = read_model_card(exported("full_normal_mixture"))
    assert sorted(card["signatures"]["sample"]["inputs"]) == ["eps", "u"]
    inputs = make_inputs(vae, "sample", x[:30])
    inputs["eps"] = np.zeros_like(inputs["eps"])
    z = expected_outputs(vae, "sample", inputs)["z"]
    # With zero noise z is a component's location: three components, three values.
    assert len(np.unique(z.round(5), axis=0)) == 3


def test_saved_model_cli_lists_signatures_with_dynamic_batch():
    cli = Path(sys.executable).with_name("saved_model_cli")
    folder = exported("mnist_mlp")
    shown = subprocess.run(
        [cli, "show", "--all", "--dir", folder], check=True, capture_output=True, text=True
    ).stdout
    for signature in SIGNATURES:
        assert f"signature_def['{signature}']" in shown
    assert "shape: (-1, 28, 28, 1)" in shown  # x
    assert "shape: (-1, 4)" in shown  # z, eps, loc, scale
    assert "shape: (-1, -1, 4)" in shown  # elbo's eps


def test_versions_count_up_and_ignore_other_entries(tmp_path):
    vae, _ = trained_vae("mnist_mlp")
    model_dir = tmp_path / "mnist"
    (model_dir / "notes").mkdir(parents=True)
    (model_dir / "README.md").write_text("not a version")
    assert next_version(model_dir) == 1
    assert export_saved_model(vae, model_dir, ["encode"]) == model_dir / "1"
    assert export_saved_model(vae, model_dir, ["decode"]) == model_dir / "2"
    assert latest_version(model_dir) == 2
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "README.md", "notes"]
    assert oct((model_dir / "2").stat().st_mode & 0o777) == oct(0o755)


def test_failed_export_leaves_no_version_and_no_temporary_folder(tmp_path, monkeypatch):
    vae, _ = trained_vae("mnist_mlp")
    archive_class = type(keras.export.ExportArchive())
    write_out = archive_class.write_out

    def write_then_fail(self, filepath, *args, **kwargs):
        write_out(self, filepath, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(archive_class, "write_out", write_then_fail)
    model_dir = tmp_path / "mnist"
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(vae, model_dir, ["encode"])
    assert list(model_dir.iterdir()) == []


def test_model_card_describes_the_export():
    card = read_model_card(exported("mnist_mlp"))
    assert card["input"] == {"shape": [-1, 28, 28, 1], "dtype": "float32", "support": [0, 1]}
    assert card["latent_dim"] == 4
    assert card["families"]["posterior"]["class_name"] == "DiagonalNormal"
    assert card["families"]["likelihood"]["class_name"] == "Bernoulli"
    assert card["data"] == {"dataset": "mnist", "preprocessing": "dynamic"}
    assert sorted(card["signatures"]) == sorted(SIGNATURES)
    assert card["signatures"]["elbo"]["inputs"]["eps"]["shape"] == [-1, -1, 4]
    assert card["signatures"]["decode"]["outputs"]["mean"]["shape"] == [-1, 28, 28, 1]
    assert card["keras_vae_version"]


def test_sample_needs_a_prior_sampled_from_input_noise():
    class LaplacePrior(kv.priors.Prior):
        def distribution(self, encode):
            laplace = tfp.distributions.Laplace(np.zeros(self.latent_dim, "float32"), 1.0)
            return tfp.distributions.Independent(laplace, 1)

    vae = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), latent_dim=2, prior=LaplacePrior())
    vae.build((None, 3))
    with pytest.raises(ValueError, match="without the `sample` signature"):
        kv.export.signatures(vae, ["sample"])
    assert sorted(kv.export.signatures(vae, ["encode", "elbo"])) == ["elbo", "encode"]


def test_cli_exports_a_run_with_its_data_protocol_and_metrics(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path / "run", metrics={"test": {"elbo": -150.0}})
    model_dir = tmp_path / "saved_models" / "mnist"
    args = [
        "export",
        "--run-dir",
        str(run_dir),
        "--model-dir",
        str(model_dir),
        "--signatures",
        "encode",
        "decode",
    ]
    assert main(args) == 0
    assert "exported version 1" in capsys.readouterr().out
    card = read_model_card(model_dir / "1")
    assert card["metrics"] == {"elbo": -150.0}
    # The run's data dirs go with its data protocol, for `convert` to check on the same data.
    assert card["data"] == {
        "dataset": "mnist",
        "preprocessing": "dynamic",
        "data_dir": None,
        "manual_dir": None,
    }
    assert sorted(card["signatures"]) == ["decode", "encode", "serving_default"]


def test_cli_reports_a_missing_run_on_one_line(tmp_path, capsys):
    code = main(["export", "--run-dir", str(tmp_path / "none"), "--model-dir", str(tmp_path)])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "config.json" in error


def _diverged_vae():
    """A small built VAE with a NaN in its decoder's kernel."""
    vae = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), latent_dim=2)
    vae.build((None, 3))
    kernel = vae.decoder.dense_layers[0].kernel
    kernel.assign(np.where(np.eye(*kernel.shape) > 0, np.nan, kernel.numpy()))
    return vae


def test_models_with_non_finite_weights_are_refused(tmp_path):
    vae = _diverged_vae()
    message = r"finite weights\. Received: NaN or infinity in vae\w*/mlp\w*/dense_0/kernel \(1 of"
    with pytest.raises(ValueError, match=message):
        export_saved_model(vae, tmp_path / "saved")
    with pytest.raises(ValueError, match=message):
        kv.export.export_onnx(vae, tmp_path / "onnx")
    with pytest.raises(ValueError, match=message):
        vae.save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match=message):
        vae.export(tmp_path / "keras")
    assert [path.name for path in tmp_path.rglob("*")] == []
    # A SavedModel written around the check: conversion refuses it.
    archive, _ = kv.export.build_archive(vae, ["encode", "decode"])
    archive.write_out(str(tmp_path / "1"), verbose=False)
    with pytest.raises(ValueError, match="NaN or infinity in .*kernel"):
        kv.export.convert_saved_model(tmp_path / "1")


def test_cli_refuses_to_export_or_convert_a_diverged_model_on_one_line(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path / "run")
    keras.Model.save(_diverged_vae(), run_dir / "model.keras")  # as a diverged run left it
    code = main(["export", "--run-dir", str(run_dir), "--model-dir", str(tmp_path / "saved")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "finite weights" in error
    assert not (tmp_path / "saved" / "1").exists()
    vae = _diverged_vae()
    archive, described = kv.export.build_archive(vae, ["encode", "decode"])
    version = tmp_path / "saved" / "1"
    archive.write_out(str(version), verbose=False)
    card = kv.export.make_model_card(vae, described)
    (version / "assets" / "model_card.json").write_text(json.dumps(card))
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    output = tmp_path / "vae.tflite"
    args = ["convert", "--saved-model", str(version), "--output", str(output)]
    assert main([*args, "--data", str(tmp_path / "x.npy")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "finite weights" in error
    assert not output.exists()


def test_keras_export_works_right_after_fit(tmp_path):
    keras.utils.set_random_seed(0)
    vae = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), latent_dim=2)
    vae.compile(optimizer="adam")
    x = (np.random.rand(8, 3, 2) < 0.5).astype("float32")
    vae.fit(x, batch_size=8, epochs=1, verbose=0)  # never called on data
    vae.export(tmp_path / "keras", verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "keras"))
    np.testing.assert_allclose(
        loaded.serve(tf.constant(x)), vae.reconstruct(x), rtol=1e-6, atol=1e-6
    )


KILLED_EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    import keras_vae as kv
    import keras_vae.export

    def write_then_die(self, filepath, *args, **kwargs):
        write_out(self, filepath, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    archive_class = type(keras.export.ExportArchive())
    write_out = archive_class.write_out
    archive_class.write_out = write_then_die
    vae = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), latent_dim=2)
    vae.build((None, 3))
    kv.export.export_saved_model(vae, sys.argv[1], ["encode"])
    """
)


def test_export_removes_work_folders_of_killed_exports_only(tmp_path):
    model_dir = tmp_path / "mnist"
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORT, model_dir], check=False)
    assert killed.returncode == -9
    (left,) = model_dir.iterdir()
    assert left.name.startswith(".tmp-") and (left / "saved_model.pb").exists()
    # The work folder of an export still running in another process stays.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = model_dir / f".tmp-{sleeper.pid}-abcd1234"
        running.mkdir()
        vae, _ = trained_vae("mnist_mlp")
        export_saved_model(vae, model_dir, ["encode"])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(path.name for path in model_dir.iterdir()) == sorted(["1", running.name])


def _bad_requests(vae, x):
    """`{(signature, case): (inputs, expected error text)}` that every export must refuse."""
    good = {name: make_inputs(vae, name, x[:4]) for name in SIGNATURES}
    flat = x[:4].reshape(4, -1)
    requests = {}
    for name in ("serving_default", "encode", "elbo"):
        # Flat, and the last two axes merged: (4, 784) and (4, 28, 28) for MNIST.
        for case, shape in (("flat", flat.shape), ("merged", (4, *x.shape[1:-2], -1))):
            inputs = {**good[name], "x": flat.reshape(shape)}
            requests[name, case] = (inputs, "is not compatible with expected shape")
        inputs = {**good[name], "x": np.full_like(x[:4], np.nan)}
        requests[name, "nan"] = (inputs, f"input `x` of signature `{name}` to be finite")
    # Same number of values, another layout: a reshape would accept it.
    reversed_shape = x[:4].reshape(4, *reversed(x.shape[1:]))
    requests["serving_default", "reversed"] = ({"x": reversed_shape}, "expected shape")
    eps = good["elbo"]["eps"]
    requests["elbo", "no samples"] = (
        {**good["elbo"], "eps": eps[:, :0]},
        "input `eps` of signature `elbo` to have a non-empty axis 1",
    )
    requests["elbo", "batch"] = (
        {**good["elbo"], "eps": eps[:1]},
        "input `eps` of signature `elbo` to have the batch size of `x`",
    )
    z = good["decode"]["z"]
    requests["decode", "latent size"] = ({"z": z[:, :-1]}, "expected shape")
    requests["decode", "inf"] = ({"z": np.full_like(z, np.inf)}, "`z` of signature `decode`")
    requests["sample", "nan"] = (
        {**good["sample"], "eps": np.full_like(good["sample"]["eps"], np.nan)},
        "`eps` of signature `sample` to be finite",
    )
    return requests


def test_signatures_refuse_what_the_model_cannot_score_in_a_process_without_keras_vae(
    tmp_path,
):
    requests, expected = {}, {}
    for kind in ("mnist_mlp", "full_normal_mixture"):
        vae, x = trained_vae(kind)
        for (signature, case), (inputs, text) in _bad_requests(vae, x).items():
            key = (str(exported(kind)), signature, case)
            requests[key] = {name: np.asarray(value, np.float32) for name, value in inputs.items()}
            expected[key] = text
    # Outside the support of the Bernoulli likelihood: x = -3 would score as most normal.
    mnist_vae, mnist_x = trained_vae("mnist_mlp")
    folder = str(exported("mnist_mlp"))
    elbo = make_inputs(mnist_vae, "elbo", mnist_x[:4])
    for signature in ("serving_default", "encode", "elbo"):
        inputs = make_inputs(mnist_vae, signature, mnist_x[:4])
        requests[folder, signature, "support"] = {**inputs, "x": np.full_like(elbo["x"], -3)}
        expected[folder, signature, "support"] = (
            f"input `x` of signature `{signature}` to be finite and in [0, 1]. "
            "Received: values from] [-3] [to] [-3]"
        )
    requests[folder, "serving_default", "14x56"] = {"x": elbo["x"].reshape(4, 14, 56, 1)}
    expected[folder, "serving_default", "14x56"] = "expected shape [?,28,28,1]"
    # A mixture prior's `u` is a probability.
    mixture_vae, mixture_x = trained_vae("full_normal_mixture")
    inputs = make_inputs(mixture_vae, "sample", mixture_x[:4])
    inputs["u"] = inputs["u"] + 1.5
    key = (str(exported("full_normal_mixture")), "sample", "u")
    requests[key] = inputs
    expected[key] = "input `u` of signature `sample` to be finite and in [0, 1]"
    results = run_in_fresh_process(requests, tmp_path)
    for key, text in expected.items():
        assert isinstance(results[key], str), f"{key} was accepted"
        assert results[key].startswith("InvalidArgumentError: "), (key, results[key])
        assert text in results[key], (key, results[key])
    # Inside the support, and an empty batch, are served.
    assert mnist_vae.likelihood.support == (0.0, 1.0)
    accepted = {
        (folder, "elbo", "binary"): elbo,
        (folder, "elbo", "empty batch"): {"x": elbo["x"][:0], "eps": elbo["eps"][:0]},
    }
    results = run_in_fresh_process(accepted, tmp_path)
    assert np.isfinite(results[folder, "elbo", "binary"]["elbo"]).all()
    assert results[folder, "elbo", "empty batch"]["elbo"].shape == (0,)
