"""Atomic writes (`keras_vae.files`) and the fault points (`keras_vae.faults`) that kill them."""

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_vae

from keras_vae import faults, files

PACKAGE = Path(faults.__file__).parent


def test_write_json_replaces_the_file_whole(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    files.write_json(path, {"b": 1, "a": [1.5]})
    assert json.loads(path.read_text()) == {"a": [1.5], "b": 1}
    assert path.read_text().startswith('{\n  "a"')  # indented, sorted: diffable
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch\n0\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with files.atomic_path(path) as partial:
            partial.write_text("epoch\n")
            raise RuntimeError("disk full")
    assert path.read_text() == "epoch\n0\n"
    assert sorted(os.listdir(tmp_path)) == ["history.csv"]


def test_a_folder_is_written_whole(tmp_path):
    target = tmp_path / "1"
    with files.atomic_path(target) as partial:
        (partial / "variables").mkdir(parents=True)
        (partial / "saved_model.pb").write_bytes(b"pb")
    assert (target / "saved_model.pb").read_bytes() == b"pb"
    assert sorted(os.listdir(tmp_path)) == ["1"]


def test_save_model_and_weights_keep_their_formats(tmp_path):
    vae = tiny_vae((4,))
    files.save_model(vae, tmp_path / "model.keras")
    files.save_weights(vae, tmp_path / "latest.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["latest.weights.h5", "model.keras"]
    other = tiny_vae((4,))
    other.load_weights(tmp_path / "latest.weights.h5")
    for mine, theirs in zip(vae.weights, other.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_remove_partials(tmp_path):
    (tmp_path / ".partial.model.keras").write_text("half")
    (tmp_path / ".partial.1").mkdir()
    (tmp_path / "model.keras").write_text("whole")
    files.remove_partials(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]


def test_a_fault_point_kills_mid_write_on_its_hit(tmp_path):
    # Armed at the second write of metrics.json: the first lands, the second dies before
    # its rename, leaving the first file intact and the partial one beside it.
    script = (
        "import sys; from keras_vae import files\n"
        "files.write_json(sys.argv[1], {'write': 1}, fault='metrics')\n"
        "files.write_json(sys.argv[1], {'write': 2}, fault='metrics')\n"
        "print('survived')\n"
    )
    path = tmp_path / "metrics.json"
    env = {**os.environ, faults.ENV: "metrics:2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "survived" not in result.stdout
    assert "keras-vae: fault point 'metrics' (hit 2): killed" in result.stderr
    assert json.loads(path.read_text()) == {"write": 1}
    assert json.loads(files.partial_path(path).read_text()) == {"write": 2}
    files.write_json(path, {"write": 3})  # The next write replaces the stale partial.
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


@pytest.mark.parametrize("value", ["nosuch", "metrics:0", "metrics:x", ":1"])
def test_a_misspelt_fault_is_refused(value):
    with pytest.raises(ValueError, match=f"Received: {faults.ENV}="):
        faults._parse(value)
    assert faults._parse("metrics:3") == ("metrics", 3)
    assert faults._parse("") is None


def called_points():
    """Every point name the package passes to `faults.point` or as a `fault=` argument."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if getattr(function, "attr", None) == "point" and node.args:
                names.add(node.args[0])
            names.update(keyword.value for keyword in node.keywords if keyword.arg == "fault")
    return {name.value for name in names if isinstance(name, ast.Constant)} - {None}


def test_every_point_is_named_once_and_used():
    assert called_points() == set(faults.POINTS)
