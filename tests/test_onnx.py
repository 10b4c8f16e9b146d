"""ONNX export of `encode` and `decode`, run with onnxruntime against the SavedModel."""

import numpy as np
import pytest
from export_helpers import exported, make_run_dir, mnist, trained_vae

from keras_vae.cli import main
from keras_vae.export import compare_onnx, export_onnx, failures, run_onnx
from keras_vae.export.onnx import ONNX_TOLERANCE

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("kind", ["mnist_mlp", "full_normal_mixture"])
def test_onnxruntime_matches_the_saved_model(kind, tmp_path):
    vae, x = trained_vae(kind)
    paths = export_onnx(vae, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["decode.onnx", "encode.onnx"]
    errors = compare_onnx(paths, exported(kind), x[:20], batch_sizes=(1, 20))
    assert failures(errors, ONNX_TOLERANCE) == []
    expected = {"loc", "scale"} if kind == "mnist_mlp" else {"loc", "scale_tril"}
    assert set(run_onnx(paths["encode"], x=x[:3])) == expected


def test_only_encode_and_decode(tmp_path):
    vae, _ = trained_vae("mnist_mlp")
    with pytest.raises(ValueError, match="ONNX signatures"):
        export_onnx(vae, tmp_path, ["sample"])


def test_cli_exports_onnx_and_checks_it(tmp_path, capsys):
    run_dir = make_run_dir(tmp_path / "run")
    data = tmp_path / "test.npy"
    np.save(data, mnist("test", 30))
    assert main(["export", "--run-dir", str(run_dir), "--format", "onnx", "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime vs SavedModel on 30 examples" in printed
    assert "encode/loc: max abs error" in printed and "EXCEEDED" not in printed
    assert (run_dir / "onnx" / "encode.onnx").exists()
