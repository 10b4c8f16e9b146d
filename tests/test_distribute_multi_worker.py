"""Multi-worker training: two worker processes on 127.0.0.1, joined by `TF_CONFIG`.

Each test starts a two-worker cluster of fresh interpreters: this file run as a
script (`python test_distribute_multi_worker.py`), or the `keras-vae train`
command line. Every process is bounded in time and killed at the end.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_distribute import DATA_DIM, compare_evaluate, compare_step, make_vae

REPO = Path(__file__).resolve().parents[1]
MANUAL_DIR = REPO.parent / "shared" / "data"
WORKER_TIMEOUT = 240  # Seconds; a worker whose peer died may hang in a collective.

pytestmark = pytest.mark.skipif(
    not (MANUAL_DIR / "mnist").is_dir(), reason=f"MNIST not found in {MANUAL_DIR}"
)


# === A cluster of local processes ===


class Cluster:
    """Two worker processes on free local ports; `TF_CONFIG` has `worker` tasks only."""

    def __init__(self, log_dir, size=2):
        sockets = [socket.socket() for _ in range(size)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        self.addresses = [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
        for sock in sockets:
            sock.close()
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes = []
        self.runs = 0

    def start(self, argv_of_worker):
        """Starts worker `i` with `argv_of_worker(i)`; restarting reuses the same addresses."""
        self.runs += 1
        self.processes = []
        for index in range(len(self.addresses)):
            tf_config = {
                "cluster": {"worker": self.addresses},
                "task": {"type": "worker", "index": index},
            }
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps(tf_config),
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "CUDA_VISIBLE_DEVICES": "",
                "KERAS_VAE_MANUAL_DIR": str(MANUAL_DIR),
            }
            log = open(self.log(index), "w")  # noqa: SIM115 (closed with the process)
            process = subprocess.Popen(
                argv_of_worker(index),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
            process.log_file = log
            self.processes.append(process)

    def log(self, index, run=None):
        return self.log_dir / f"run{run or self.runs}-worker{index}.log"

    def wait(self, timeout=WORKER_TIMEOUT):
        """Exit codes; kills every worker still running after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                break
        self.kill()
        return [process.returncode for process in self.processes]

    def kill(self, index=None):
        processes = self.processes if index is None else [self.processes[index]]
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process.log_file.close()

    def output(self, index, run=None):
        return self.log(index, run).read_text()


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path / "logs")
    yield cluster
    if cluster.processes:
        cluster.kill()


# === Sharding and metrics, through tf.distribute directly ===

NUM_EXAMPLES, BATCH_SIZE = 60, 10


def measure_shards():
    """Run by each worker: what it sees of the data, its metrics and one step."""
    import keras

    import keras_vae as kv
    from keras_vae.data import _pipeline

    strategy = kv.distribute.get_strategy("multi_worker")
    worker = kv.distribute.worker_info(strategy)
    # The command line's pipeline (cache, shuffle, batch, binarize) on examples labelled
    # by their index, shuffled with the same seed on every worker.
    images = np.random.default_rng(0).integers(0, 256, (NUM_EXAMPLES, DATA_DIM, 1, 1), "uint8")
    examples = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": np.arange(NUM_EXAMPLES)}
    )
    dataset = _pipeline(examples, "dynamic", BATCH_SIZE, True, 3, False, with_labels=True)
    distributed = strategy.experimental_distribute_dataset(kv.distribute.shard_by_data(dataset))
    epochs = []
    for _ in range(2):
        seen = []
        for _, labels in distributed:
            (labels,) = strategy.experimental_local_results(labels)
            seen.append([int(label) for label in labels])
        epochs.append(seen)

    # Metrics of 97 examples in global batches of 32 (the last splits 1/0), and one
    # SGD step on a global batch of 33 (17/16), against one device on all the data.
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(1).random((97, DATA_DIM)) < 0.4).astype("float32")
    strategies = (kv.distribute.get_strategy("default"), strategy)
    initial = make_vae(strategy).get_weights()
    step = compare_step(strategies, initial, x[:33])
    step.pop("weights")  # Compared here already; arrays are not part of the printed results.
    evaluations = compare_evaluate(strategies, initial, x)
    metrics = dict(zip(("local", "distributed"), evaluations, strict=True))

    with strategy.scope():
        vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), 2, seed=5)
        vae.build((None, DATA_DIM))
    (noise,) = strategy.experimental_local_results(strategy.run(vae.standard_normal, ((1, 4, 2),)))

    # Backups of the same epoch resume; of different epochs, raise on every worker.
    backup_checks = []
    for epoch in (2, 2 + worker.task_id):
        backup_dir = Path(tempfile.mkdtemp())
        callback = kv.distribute.BackupAndRestore(str(backup_dir))
        callback.set_model(vae)
        callback.on_epoch_end(epoch - 1)  # A backup of `epoch` epochs.
        try:
            callback.on_train_begin()
            backup_checks.append("resumed")
        except RuntimeError as error:
            backup_checks.append(str(error))
        shutil.rmtree(backup_dir)
    results = {
        "is_chief": worker.is_chief,
        "num_replicas": strategy.num_replicas_in_sync,
        "epochs": epochs,
        "metrics": metrics,
        **step,
        "noise": noise.numpy().tolist(),
        "backup_checks": backup_checks,
    }
    print("RESULTS " + json.dumps(results, default=float))


def test_workers_split_each_global_batch_and_aggregate_metrics(cluster):
    cluster.start(lambda index: [sys.executable, __file__])
    assert cluster.wait() == [0, 0], cluster.output(0)[-3000:] + cluster.output(1)[-3000:]
    chief, other = (
        json.loads(line.removeprefix("RESULTS "))
        for line in (
            [line for line in cluster.output(i).splitlines() if line.startswith("RESULTS ")][-1]
            for i in range(2)
        )
    )
    print(json.dumps({"chief": chief, "other": other}, indent=1))
    assert chief["is_chief"] and not other["is_chief"]
    assert chief["num_replicas"] == other["num_replicas"] == 2

    # Each worker gets half of every global batch; together they see each example once.
    for chief_epoch, other_epoch in zip(chief["epochs"], other["epochs"], strict=True):
        assert len(chief_epoch) == len(other_epoch) == NUM_EXAMPLES // BATCH_SIZE
        for mine, theirs in zip(chief_epoch, other_epoch, strict=True):
            assert len(mine) == len(theirs) == BATCH_SIZE // 2
            assert not set(mine) & set(theirs)
        seen = [label for batch in chief_epoch + other_epoch for label in batch]
        assert sorted(seen) == list(range(NUM_EXAMPLES))
    # Reshuffled every epoch.
    assert chief["epochs"][0] != chief["epochs"][1]

    # Metrics over both workers' shares equal those of one device over all the data.
    for results in (chief, other):
        for name in ("elbo", "kl", "loss"):
            local = results["metrics"]["local"][name]
            assert results["metrics"]["distributed"][name] == pytest.approx(local, rel=1e-5)
        # One step on two workers equals one step on one device (measured: about 3e-8).
        assert results["max_weight_difference"] < 1e-6
        assert results["max_update"] > 1e-3
        assert results["backup_checks"][0] == "resumed"
        assert "backups hold different epochs ([2, 3]" in results["backup_checks"][1]
    # Replica ids run over all workers, so the workers draw different noise.
    assert np.all(np.array(chief["noise"]) != np.array(other["noise"]))


# === The command line ===


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """MNIST prepared once: workers preparing it at once into one folder would race."""
    import keras_vae as kv

    data_dir = tmp_path_factory.mktemp("tfds")
    kv.data.load("mnist", split="test", manual_dir=MANUAL_DIR, data_dir=str(data_dir))
    return data_dir


def train_argv(run_dir, data_dir, epochs, steps_per_epoch):
    return [
        *(sys.executable, "-m", "keras_vae", "train", "--strategy", "multi_worker"),
        *("--run-dir", str(run_dir), "--data-dir", str(data_dir), "--verbose", "2"),
        *("--epochs", str(epochs), "--steps-per-epoch", str(steps_per_epoch)),
        *("--validation-size", "1000", "--seed", "0"),
        *("--max-examples", "30000"),  # at most 3 epochs of 100 steps of 100
    ]


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


def elbo_on_test_split(vae, data_dir, num=2000):
    import keras_vae as kv

    test = kv.data.load("mnist", split="test", batch_size=500, seed=1, data_dir=str(data_dir))
    return vae.evaluate(test.take(num // 500), verbose=0, return_dict=True)["elbo"]


CHIEF_FILES = {"config.json", "history.csv", "logs", "metrics.json", "model.keras"}


def test_multi_worker_training_from_the_command_line(cluster, tmp_path, data_dir):
    import keras

    from keras_vae.presets import get_preset
    from keras_vae.run_dir import RunDir

    # On one machine a shared run directory cannot show who wrote what, so each
    # worker gets its own, as on a cluster without a shared file system.
    run_dirs = [tmp_path / "chief", tmp_path / "worker1"]
    started = time.perf_counter()
    cluster.start(lambda index: train_argv(run_dirs[index], data_dir, 3, 50))
    exit_codes = cluster.wait()
    seconds = time.perf_counter() - started
    print(f"two workers, 150 steps: {seconds:.0f} s wall")
    assert exit_codes == [0, 0], cluster.output(0)[-3000:] + cluster.output(1)[-3000:]

    assert {path.name for path in run_dirs[0].iterdir()} == CHIEF_FILES
    # The other worker wrote nothing but its backup, deleted at the end of training.
    assert not run_dirs[1].exists() or not any(run_dirs[1].iterdir())
    assert [row["epoch"] for row in history(run_dirs[0])] == [0, 1, 2]
    # Both workers logged the same, globally aggregated, metrics.
    assert cluster.output(0).count("val_elbo") == cluster.output(1).count("val_elbo") == 3
    last_epoch = [
        [line for line in cluster.output(i).splitlines() if "val_elbo" in line][-1]
        for i in range(2)
    ]
    assert last_epoch[0].split("step - ")[1] == last_epoch[1].split("step - ")[1]

    trained = RunDir(run_dirs[0]).load_model()
    keras.utils.set_random_seed(0)
    initial = get_preset("aevb-mnist").build_model(seed=0)
    initial.build((None, 28, 28, 1))
    initial.compile()
    trained_elbo = elbo_on_test_split(trained, data_dir)
    initial_elbo = elbo_on_test_split(initial, data_dir)
    print(f"test ELBO {initial_elbo:.1f} at initialization, {trained_elbo:.1f} trained")
    assert trained_elbo > initial_elbo + 200  # Measured: about -553 and -160.
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["test"]["elbo"] == pytest.approx(trained_elbo, abs=3)


def backup_epoch(backup_dir):
    try:
        return json.loads((backup_dir / "training_metadata.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_a_restarted_cluster_resumes_from_the_backups(cluster, tmp_path, data_dir):
    run_dir = tmp_path / "run"  # Shared, as on a cluster with a shared file system.
    backups = [run_dir / "backup-worker-0", run_dir / "backup-worker-1"]
    argv = train_argv(run_dir, data_dir, epochs=4, steps_per_epoch=40)
    cluster.start(lambda index: argv)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while min(backup_epoch(backup) for backup in backups) < 2:
        assert time.monotonic() < deadline, "no backup of epoch 2"
        assert all(process.poll() is None for process in cluster.processes), cluster.output(0)
        time.sleep(0.1)
    cluster.kill(1)
    killed = time.monotonic()
    # The chief waits for its peer in the next collective: give it a bound, then kill it too.
    try:
        code = cluster.processes[0].wait(5)
        print(f"chief exited with {code} {time.monotonic() - killed:.0f} s after its peer died")
    except subprocess.TimeoutExpired:
        print("chief still running 5 s after its peer died")
    cluster.kill()
    resumed_from = backup_epoch(backups[0])
    assert backup_epoch(backups[1]) == resumed_from < 4
    print(f"killed during epoch {resumed_from}: resuming from the backups of epoch {resumed_from}")
    assert not (run_dir / "metrics.json").exists()
    # An epoch is logged, then committed by its backup: the kill may fall in between.
    logged = [row["epoch"] for row in history(run_dir)]
    assert logged in (list(range(resumed_from)), list(range(resumed_from + 1)))

    cluster.start(lambda index: argv)
    assert cluster.wait() == [0, 0], cluster.output(0)[-3000:] + cluster.output(1)[-3000:]
    # Keras counts epochs from one: the restarted workers begin after the backed-up ones.
    for index in range(2):
        first_epoch = next(
            line for line in cluster.output(index).splitlines() if line.startswith("Epoch ")
        )
        assert first_epoch == f"Epoch {resumed_from + 1}/4"
    rows = history(run_dir)
    # Every epoch once: a restart from scratch would log epoch 0 again.
    assert [row["epoch"] for row in rows] == list(range(4))
    # From the backed-up weights: the first resumed epoch trains on from the last one.
    assert rows[resumed_from]["loss"] < rows[resumed_from - 1]["loss"] + 5
    assert rows[resumed_from]["loss"] < rows[0]["loss"] - 50
    assert (run_dir / "metrics.json").exists()
    assert not any(backup.exists() for backup in backups)


if __name__ == "__main__":
    measure_shards()
