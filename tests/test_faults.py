"""`keras-vae train` killed at each fault point (`keras_vae.faults`), then run again.

Each test runs a tiny training armed at one point, checks that it died there by
SIGKILL, runs the same command unarmed and compares the run with one that was
never interrupted (a module fixture): the same files, each epoch once in
`history.csv`, metrics written, the backup gone. A kill after the last epoch's
backup resumes without training, so the final weights are bit for bit those of
the uninterrupted run; an earlier kill retrains the epochs after the last backup,
whose data order and noise start afresh, so there the weights differ by chance
(the number of optimizer steps is the same). Commands run two at a time.
"""

import json
import math
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_cli import ENV, KERAS_VAE, TIMEOUT, assert_usage_error, history_rows, stderr_lines

from keras_vae import faults
from keras_vae.run_dir import RunDir

EPOCHS, STEPS = 3, 2

# The hit of each point to kill at, and whether it comes after the last epoch's backup.
KILLS = {
    "config": (1, False),
    "backup-weights": (1, False),  # The first backup: nothing committed yet.
    "backup-rotate": (1, False),  # The second epoch's backup moves the first aside.
    "backup-metadata": (EPOCHS, False),  # The last epoch's commit record.
    "history": (EPOCHS, False),  # Logged, not yet committed: the rerun drops the row.
    "backup-done": (EPOCHS, True),
    "model": (1, True),
    "train-end": (1, True),
    "evaluation": (1, True),
    "metrics": (1, True),
    "finish": (1, True),
}


def train_args(run_dir, data_dir):
    return (
        *("train", "--run-dir", run_dir, "--epochs", EPOCHS, "--steps-per-epoch", STEPS),
        *("--batch-size", 1000, "--seed", 5, "--data-dir", data_dir, "--verbose", 0),
    )


def train(run_dir, data_dir, fault=None):
    env = {**ENV, faults.ENV: fault} if fault else ENV
    return subprocess.run(
        [str(KERAS_VAE), *map(str, train_args(run_dir, data_dir))],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def listing(run_dir):
    """The run's files, as paths relative to it (TensorBoard event files by folder only)."""
    paths = set()
    for path in run_dir.root.rglob("*"):
        relative = path.relative_to(run_dir.root)
        paths.add(str(relative.parent if "tfevents" in path.name else relative))
    return paths


def weights(run_dir):
    return [w.numpy() for w in run_dir.load_model().weights]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_data_dir):
    """`{name: (killed, rerun)}` of every point, and the uninterrupted run under "reference"."""
    root = tmp_path_factory.mktemp("faults")

    def kill_and_rerun(point):
        run_dir = root / point
        hit, _ = KILLS[point]
        killed = train(run_dir, tfds_data_dir, f"{point}:{hit}")
        return killed, train(run_dir, tfds_data_dir)

    with ThreadPoolExecutor(max_workers=2) as executor:
        futures = {"reference": executor.submit(train, root / "reference", tfds_data_dir)}
        futures.update({point: executor.submit(kill_and_rerun, point) for point in KILLS})
        yield root, {name: future.result() for name, future in futures.items()}


def test_reference_run(runs):
    root, results = runs
    assert results["reference"].returncode == 0, results["reference"].stderr


@pytest.mark.parametrize("point", KILLS)
def test_killed_at_point_then_rerun(runs, point):
    root, results = runs
    killed, rerun = results[point]
    hit, after_last_backup = KILLS[point]
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert f"keras-vae: fault point {point!r} (hit {hit}): killed" in killed.stderr

    run_dir, reference = RunDir(root / point), RunDir(root / "reference")
    if point == "finish":
        # Killed once metrics.json was written: the run is finished, the rerun says so and
        # removes the backup the kill left.
        assert_usage_error(rerun, "holds a finished run")
    else:
        assert rerun.returncode == 0, rerun.stderr
        assert stderr_lines(rerun) == []
    assert listing(run_dir) == listing(reference)
    assert not run_dir.backup.exists()
    assert [int(row["epoch"]) for row in history_rows(run_dir.history)] == list(range(EPOCHS))
    metrics = json.loads(run_dir.metrics.read_text())
    assert math.isfinite(metrics["test"]["elbo"]) and metrics["epochs"] == EPOCHS
    vae = run_dir.load_model()
    assert int(vae.optimizer.iterations) == EPOCHS * STEPS
    if after_last_backup:
        for mine, theirs in zip(weights(run_dir), weights(reference), strict=True):
            np.testing.assert_array_equal(mine, theirs)
        expected = json.loads(reference.metrics.read_text())["test"]
        assert metrics["test"] == pytest.approx(expected, rel=1e-5)

