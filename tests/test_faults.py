"""`keras-vae train` killed at each fault point (`keras_vae.faults`), then run again.

One run directory is killed at one point after another (each command after a kill
is the same command armed at the next point, so it first recovers from the last
kill), then run unarmed to the end and compared with a run never interrupted: the
same files, each epoch once in `history.csv`, metrics written, the backup gone.
Chaining keeps the module to a few processes; each kill is checked on its own.

Two chains: kills during training retrain the epochs after the last backup, whose
data order and noise start afresh, so there the final weights differ by chance
(the number of optimizer steps is the same); kills after the last epoch's backup
resume without training, so there the final weights and test metrics are bit for
bit those of the uninterrupted run.
"""

import json
import math
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_cli import (
    ENV,
    KERAS_VAE,
    NOISE,
    TIMEOUT,
    assert_usage_error,
    history_rows,
    stderr_lines,
)

from keras_vae import faults
from keras_vae.run_dir import RunDir

EPOCHS, STEPS = 3, 2

# Each chain's points in the order the run reaches them, with the hit to kill at.
CHAINS = {
    "during-training": [
        ("config", 1),
        ("backup-weights", 1),  # The first backup: nothing committed yet.
        ("backup-rotate", 1),  # The second epoch's backup moves the first aside.
        ("history", 2),  # Logged, not yet committed: the rerun drops the row.
        ("backup-metadata", 1),  # The last epoch's commit record.
    ],
    "after-training": [
        ("backup-done", EPOCHS),  # The last epoch is committed.
        ("model", 1),
        ("train-end", 1),
        ("evaluation", 1),
        ("metrics", 1),
        ("finish", 1),
    ],
}
POINTS = {point: (chain, hit) for chain, points in CHAINS.items() for point, hit in points}


def train_args(run_dir, data_dir):
    return (
        *("train", "--run-dir", run_dir, "--epochs", EPOCHS, "--steps-per-epoch", STEPS),
        *("--batch-size", 1000, "--seed", 5, "--data-dir", data_dir, "--verbose", 0),
        *("--max-examples", EPOCHS * STEPS * 1000),  # what the steps use, and no more to decode
        # What a fault leaves does not depend on the compiler; XLA's compilations would take
        # longer than these runs' steps (`test_cli.py` trains with the defaults).
        *("--jit-compile", "false"),
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
    """`{point: result}` of each kill, `{chain: result}` of each final rerun, and "reference"."""
    root = tmp_path_factory.mktemp("faults")

    def chain(name):
        results = {}
        for point, hit in CHAINS[name]:
            results[point] = train(root / name, tfds_data_dir, f"{point}:{hit}")
            if results[point].returncode != -signal.SIGKILL:
                break  # The test of this point reports it.
        results[name] = train(root / name, tfds_data_dir)
        return results

    def reference_then(name):
        return {"reference": train(root / "reference", tfds_data_dir), **chain(name)}

    with ThreadPoolExecutor(max_workers=2) as executor:
        futures = [executor.submit(chain, "during-training")]
        futures.append(executor.submit(reference_then, "after-training"))
        yield root, {k: v for future in futures for k, v in future.result().items()}


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_point(runs, point):
    _, results = runs
    _, hit = POINTS[point]
    assert point in results, "an earlier kill of the chain failed"
    killed = results[point]
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert f"keras-vae: fault point {point!r} (hit {hit}): killed" in killed.stderr


@pytest.mark.parametrize("chain", CHAINS)
def test_rerun_matches_an_uninterrupted_run(runs, chain):
    root, results = runs
    reference, run_dir = RunDir(root / "reference"), RunDir(root / chain)
    assert results["reference"].returncode == 0, results["reference"].stderr
    rerun = results[chain]
    if chain == "after-training":
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
    assert int(run_dir.load_model().optimizer.iterations) == EPOCHS * STEPS
    if chain == "after-training":
        for mine, theirs in zip(weights(run_dir), weights(reference), strict=True):
            np.testing.assert_array_equal(mine, theirs)
        expected = json.loads(reference.metrics.read_text())["test"]
        assert metrics["test"] == expected


def test_divergence_is_one_line_and_no_metrics(tmp_path, tfds_data_dir):
    # Adam moves every weight by about the learning rate per step: at 1e30 the loss overflows.
    run_dir = RunDir(tmp_path / "run")
    args = [*train_args(run_dir.root, tfds_data_dir), "--learning-rate", "1e30"]
    result = subprocess.run(
        [str(KERAS_VAE), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 1, result.stderr
    (line,) = stderr_lines(result)
    assert line.startswith("keras-vae: error: training diverged: the loss was ")
    assert re.search(r"at epoch 1, step \d+; the initial weights are kept", line), line
    assert "try a lower --learning-rate than 1e+30 in a new --run-dir" in line
    assert not run_dir.metrics.exists()
    assert all(np.isfinite(w).all() for w in weights(run_dir))


def test_ctrl_c_then_the_same_command_resumes(tmp_path, tfds_data_dir):
    run_dir, epochs = RunDir(tmp_path / "run"), 10
    args = [str(KERAS_VAE), *map(str, train_args(run_dir.root, tfds_data_dir))]
    args[args.index("--epochs") + 1] = str(epochs)
    args[args.index("--max-examples") + 1] = str(epochs * STEPS * 1000)
    record = run_dir.backup / "training_metadata.json"
    with open(tmp_path / "stderr", "w+") as stderr:
        process = subprocess.Popen(
            args,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # As from a shell: pytest-xdist's workers ignore SIGINT, and children inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + TIMEOUT
        while not record.exists():  # Interrupt once an epoch is backed up.
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 130
        stderr.seek(0)
        lines = [line for line in stderr.read().splitlines() if line and not NOISE.match(line)]
    assert lines == ["keras-vae: interrupted; the same command resumes"]
    assert 1 <= json.loads(record.read_text())["epoch"] < epochs
    result = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert [int(row["epoch"]) for row in history_rows(run_dir.history)] == list(range(epochs))
    assert int(run_dir.load_model().optimizer.iterations) == epochs * STEPS
    assert run_dir.metrics.exists() and not run_dir.backup.exists()
