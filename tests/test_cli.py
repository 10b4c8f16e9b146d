"""End-to-end tests of the `keras-vae` command line, each command run as a subprocess.

One small run (aevb-mnist with `--latent-dim 2`, for the manifold plot; 2 epochs of 100
steps) is trained for the module and read by the evaluate, sample and plot commands. The
`commands` fixture starts every command at once, run two at a time: each spends seconds
importing TensorFlow on one core, so two keep a 2-core machine busy. Each test waits for its
command and checks the result. The resume test, which kills a run mid-training, runs its
own. Data come from a TFDS data dir prepared once per session in a tmp folder (conftest.py),
never from ~/tensorflow_datasets.
"""

import csv
import importlib.metadata
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_vae
from PIL import Image

from keras_vae.export import export_saved_model
from keras_vae.run_dir import RunDir

KERAS_VAE = Path(sys.executable).with_name("keras-vae")
TIMEOUT = 600  # Seconds per command: generous, as the machine may be shared.
EPOCHS, STEPS = 2, 100
MAX_EXAMPLES = EPOCHS * STEPS * 100  # the batches the steps take, and no more to decode

# No command may download: a proxy on a closed local port refuses every connection at once.
NO_NETWORK = {f"{scheme}_proxy": "http://127.0.0.1:9" for scheme in ("http", "https")}
ENV = {
    name: value
    for name, value in os.environ.items()
    if name.lower() not in ("keras_vae_manual_dir", "no_proxy", *NO_NETWORK)
}
# Nor fall back to TFDS's default data dir: a command reads the data dir its run recorded.
ENV.update(NO_NETWORK, TF_CPP_MIN_LOG_LEVEL="3", TFDS_DATA_DIR=f"{os.devnull}/tfds")

# Lines that are not the command's own and that TF_CPP_MIN_LOG_LEVEL does not silence: the
# banner and the `I0000 00:00:1795237722.369748  7806 port.cc:153] ...` records TF's C++
# runtime logs through absl on import, and the warning TFDS logs through Python's absl
# logger when it looks for a dataset in a fresh data dir.
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] "
    r"|WARNING:absl:Variant folder \S+ has no dataset_info\.json$"
)

# Each usage error's command, formatted with the case's own folders, and words of its message.
USAGE_ERRORS = {
    "epochs-abc": ("train --run-dir {run} --epochs abc", ["argument --epochs", "received 'abc'"]),
    "preset": ("train --run-dir {run} --preset nosuch", ["Unknown preset 'nosuch'", "aevb-mnist"]),
    "dataset": (
        "train --run-dir {run} --dataset nosuchdataset --data-dir {data}",
        ["name='nosuchdataset'"],
    ),
    "offline": (
        "train --run-dir {run} --dataset fashion_mnist --manual-dir {manual} --data-dir {data}",
        [
            "Dataset 'fashion_mnist' is not prepared",
            "(t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, "
            "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz)",
            "{manual}/fashion_mnist",
        ],
    ),
    "jpg": ("sample --run-dir {run} --output {run}/x.jpg", ["--output: expected a .png file"]),
    "no-run": ("sample --run-dir {run} --output {run}/x.png", ["run `keras-vae train` first"]),
    # Counts and rates: refused while parsing, naming the flag and the value.
    "seed": ("train --run-dir {run} --seed -1", ["argument --seed", "received '-1'"]),
    **{
        f"learning-rate-{value}": (
            f"train --run-dir {{run}} --learning-rate {value}",
            ["argument --learning-rate", f"received '{value}'"],
        )
        for value in ("0", "-0.001", "nan", "inf")
    },
    **{
        f"steps-per-epoch{value}": (
            f"train --run-dir {{run}} --steps-per-epoch {value}",
            ["argument --steps-per-epoch", f"received '{value}'"],
        )
        for value in ("0", "-2")
    },
    **{
        f"max-examples{value}": (
            f"evaluate --run-dir {{run}} --max-examples {value}",
            ["argument --max-examples", f"received '{value}'"],
        )
        for value in ("0", "-3")
    },
    "plot-num": (
        "plot --run-dir {run} --kind reconstructions --output {run}/x.png --num 0",
        ["argument --num", "received '0'"],
    ),
    **{
        f"{flag}-{value}": (
            f"train --run-dir {{run}} --{flag} {value}",
            [f"argument --{flag}", f"received '{value}'"],
        )
        for flag, value in (
            ("beta", "inf"),
            ("free-bits", "-1"),
            ("epochs", "0"),
            ("latent-dim", "0"),
        )
    },
    "condition-without-labels": (
        "train --run-dir {run} --dataset binarized_mnist --preprocessing static --condition label "
        "--data-dir {data}",
        ["'binarized_mnist', which has no labels"],
    ),
    "temperature": (
        "sample --run-dir {run} --output {run}/x.png --temperature -1",
        ["argument --temperature", "received '-1'"],
    ),
    "validation-size": (
        "train --run-dir {run} --validation-size -1",
        ["argument --validation-size", "received '-1'"],
    ),
    "convert-num-examples": (
        "convert --saved-model {run} --output {run}/x.tflite --num-examples 0",
        ["argument --num-examples", "received '0'"],
    ),
    # Outputs: checked before anything is computed, and nothing is left behind.
    "sample-under-a-file": (
        "sample --run-dir {run} --output {file}/x.png",
        ["argument --output", "{file} is a file, not a folder"],
    ),
    "plot-unwritable": (
        "plot --run-dir {run} --kind manifold --output {unwritable}/x.png",
        ["argument --output", "{unwritable} is not writable"],
    ),
    "evaluate-under-a-file": (
        "evaluate --run-dir {run} --output {file}/results.json",
        ["argument --output", "{file} is a file, not a folder"],
    ),
    "train-unwritable": (
        "train --run-dir {unwritable}/run",
        ["argument --run-dir", "{unwritable} is not writable"],
    ),
    "export-unwritable": (
        "export --run-dir {run} --model-dir {unwritable}/saved_models/vae",
        ["argument --model-dir", "{unwritable} is not writable"],
    ),
    "convert-to-a-folder": (
        "convert --saved-model {run} --output {manual}",
        ["argument --output", "is a folder"],
    ),
}

# Commands on damaged files (made in the `commands` fixture), and words of their message.
DAMAGED = {
    "truncated-model": ("sample --output {root}/x.png --run-dir", ["model.keras is damaged"]),
    "corrupt-config": ("evaluate --run-dir", ["config.json is damaged", "not JSON"]),
    **{
        f"truncated-{name}": (
            "convert --output {root}/x.tflite --saved-model",
            ["The SavedModel in", "is damaged", "export the run again"],
        )
        for name in ("saved_model.pb", "variables.index", "variables.data")
    },
}

# Each figure's command (besides --run-dir and --output) and its size in pixels.
FIGURES = {
    "sample": (
        ["sample", "--num", 64, "--temperature", 0.7],
        (448, 448),
    ),  # An 8x8 grid of 28x28 at scale 2.
    "reconstructions": (["plot", "--kind", "reconstructions"], (448, 448)),  # 32 pairs, 8 a row.
    "traversals": (["plot", "--kind", "traversals"], (616, 112)),  # 2 latents x 11 steps.
    "latents": (["plot", "--kind", "latents"], (600, 600)),  # 6x6 inches at 100 dpi.
}


def keras_vae(*args, python_m=False, env=ENV):
    """Runs `keras-vae ARGS` (or `python -m keras_vae ARGS`) to completion, or `TIMEOUT`."""
    program = [sys.executable, "-m", "keras_vae"] if python_m else [str(KERAS_VAE)]
    return subprocess.run(
        [*program, *map(str, args)], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


class Commands:
    """Commands run in the background, two at a time; `result(name)` waits for one."""

    def __init__(self, executor):
        self.executor = executor
        self.futures = {}

    def start(self, name, *args, after=None, python_m=False, env=ENV):
        def run():
            if after is not None:
                self.result(after)
            return keras_vae(*args, python_m=python_m, env=env)

        self.futures[name] = self.executor.submit(run)

    def result(self, name):
        return self.futures[name].result()


def train_args(run_dir, data_dir, epochs=EPOCHS):
    return (
        *("train", "--run-dir", run_dir, "--epochs", epochs, "--steps-per-epoch", STEPS),
        *("--learning-rate", 0.002, "--seed", 3, "--data-dir", data_dir, "--verbose", 2),
        *("--max-examples", MAX_EXAMPLES),
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def run_dir(root):
    """The module's trained run."""
    return RunDir(root / "run")


@pytest.fixture(scope="module")
def unwritable(root):
    """A folder nobody may write in: read-only, or, for root, whom modes do not stop, /sys."""
    folder = root / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    return Path("/sys")


def truncate(path):
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)


def damage(root, tiny):
    """The folders of the `DAMAGED` cases: a run or an export, each with one damaged file."""
    folders = {case: root / "damaged" / case for case in DAMAGED}
    for case in ("truncated-model", "corrupt-config"):
        folders[case].mkdir(parents=True)
        shutil.copy(tiny.model, folders[case])
    truncate(folders["truncated-model"] / "model.keras")
    (folders["corrupt-config"] / "config.json").write_text('{"dataset": "mnist",')
    version = export_saved_model(keras.saving.load_model(tiny.model), root / "damaged" / "export")
    files = {"saved_model.pb": "saved_model.pb", "variables.index": "variables/variables.index"}
    files["variables.data"] = "variables/variables.data-00000-of-00001"
    for name, file in files.items():
        shutil.copytree(version, folders[f"truncated-{name}"])
        truncate(folders[f"truncated-{name}"] / file)
    return folders


@pytest.fixture(scope="module")
def commands(root, run_dir, tfds_data_dir, unwritable):
    # An untrained model, for the damaged files and the manifold plot's refusal of 3 latents.
    tiny = RunDir(root / "tiny")
    tiny.root.mkdir()
    vae = tiny_vae((28, 28, 1), latent_dim=3)
    vae.optimizer.build(vae.trainable_variables)  # so loading it warns of no missing slots
    vae.save(tiny.model)
    (root / "figures").mkdir()
    damaged = damage(root, tiny)

    executor = ThreadPoolExecutor(max_workers=2)
    commands = Commands(executor)
    # Training first, and the commands that wait for it last, so none holds a worker idle.
    commands.start("train", *train_args(run_dir.root, tfds_data_dir), "--latent-dim", 2)
    for case, (command, _) in USAGE_ERRORS.items():
        paths = case_paths(root, case, unwritable)
        paths["manual"].mkdir(parents=True)
        paths["file"].write_text("a file, not a folder")
        commands.start(case, *[word.format(**paths) for word in command.split()])
    # Without TF_CPP_MIN_LOG_LEVEL: TensorFlow's start-up records must not reach stderr.
    loud = {name: value for name, value in ENV.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    for case, (command, _) in DAMAGED.items():
        commands.start(case, *command.format(root=root).split(), damaged[case], env=loud)
    commands.start("debug", "--debug", "train", "--run-dir", root / "debug", "--preset", "nosuch")
    commands.start("help", "--help", python_m=True)
    manifold = ("plot", "--kind", "manifold", "--output", root / "figures" / "manifold.png")
    commands.start("manifold-3", *manifold, "--run-dir", tiny.root)
    # The run's own data dir, recorded in its config.json.
    commands.start(
        "evaluate",
        *("evaluate", "--run-dir", run_dir.root, "--num-samples", 1000, "--max-examples", 200),
        "--json",
        after="train",
    )
    # A flag still overrides the run's data dir: here one with nothing prepared.
    empty = {name: root / "override" / name for name in ("data", "manual")}
    empty["manual"].mkdir(parents=True)
    commands.start(
        "evaluate-elsewhere",
        *("evaluate", "--run-dir", run_dir.root, "--num-samples", 10, "--max-examples", 7),
        *("--data-dir", empty["data"], "--manual-dir", empty["manual"]),
        after="train",
    )
    for name, (command, _) in FIGURES.items():
        output = root / "figures" / f"{name}.png"
        command = [*command, "--run-dir", run_dir.root, "--output", output]
        data = ["--data-dir", tfds_data_dir] if name == "latents" else []
        commands.start(name, *command, *data, after="train")
    commands.start("manifold", *manifold, "--run-dir", run_dir.root, after="train")
    commands.start("train-again", *train_args(run_dir.root, tfds_data_dir), after="train")
    conditional = root / "conditional"
    commands.start(
        "train-conditional",
        *("train", "--preset", "cvae-mnist", "--run-dir", conditional, "--epochs", 1),
        *("--steps-per-epoch", 20, "--data-dir", tfds_data_dir, "--verbose", 2),
        *("--max-examples", 2000, "--jit-compile", "false"),  # `train` runs the defaults
    )
    for name, command in {
        "sample-conditional": ("sample", "--num", 20, "--output", root / "figures" / "cvae.png"),
        "evaluate-conditional": ("evaluate", "--num-samples", 50, "--max-examples", 20, "--json"),
        "manifold-conditional": manifold,
    }.items():
        commands.start(name, *command, "--run-dir", conditional, after="train-conditional")
    try:
        yield commands
    finally:
        executor.shutdown(cancel_futures=True)


def case_paths(root, case, unwritable):
    """The folders (and a regular file) a `USAGE_ERRORS` case's command and words name."""
    paths = {name: root / case / name for name in ("run", "data", "manual", "file")}
    return {**paths, "unwritable": unwritable}


def stderr_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip() and not NOISE.match(line)]


def assert_usage_error(result, *words):
    """The CLI's contract: one line on stderr, exit code 2, no traceback, nothing on stdout."""
    lines = stderr_lines(result)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("keras-vae"), lines[0]
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def assert_png(path, size):
    with Image.open(path) as image:
        assert (image.format, image.size) == ("PNG", size)
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 0, "a blank image"


def history_rows(path):
    """The rows of a `history.csv`, but for a row still being written."""
    if not path.exists():
        return []
    text = path.read_text()
    return list(csv.DictReader(text[: text.rfind("\n") + 1].splitlines()))


def summaries(folder):
    """`{tag: [(step, value), ...]}` of the TensorBoard event files in `folder`."""
    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value))
    return found


def test_train_writes_the_run(commands, run_dir, tfds_data_dir):
    result = commands.result("train")
    assert result.returncode == 0, result.stderr
    assert json.loads(run_dir.config.read_text()) == {
        "preset": "aevb-mnist",
        "dataset": "mnist",
        "preprocessing": "dynamic",
        "epochs": EPOCHS,
        "batch_size": 100,
        "learning_rate": 0.002,
        "seed": 3,
        "objective": "elbo",
        "num_samples": 1,
        "validation_size": 0,
        "steps_per_epoch": STEPS,
        "jit_compile": "auto",
        "precision": "float32",
        "strategy": "default",
        "num_cpu_replicas": None,
        "manual_dir": None,
        "data_dir": str(Path(tfds_data_dir).resolve()),
        "estimator": "reparameterization",
        "beta": 1.0,
        "free_bits": 0.0,
        "kl_warmup_epochs": 0,
        "condition": "none",
        "latent_dim": 2,
        "max_examples": MAX_EXAMPLES,
    }

    vae = run_dir.load_model()
    assert vae.latent_dim == 2
    assert int(vae.optimizer.iterations) == EPOCHS * STEPS

    history = history_rows(run_dir.history)
    assert [int(row["epoch"]) for row in history] == list(range(EPOCHS))
    for row in history:
        assert math.isfinite(float(row["elbo"])) and math.isfinite(float(row["val_elbo"]))

    metrics = json.loads(run_dir.metrics.read_text())
    assert metrics["epochs"] == EPOCHS
    test_elbo = metrics["test"]["elbo"]
    assert math.isfinite(test_elbo) and test_elbo < 0
    # Without a hold-out the validation data are the test split and model.keras is the last
    # model: the two single-sample ELBOs over 10000 examples differ by Monte Carlo error only.
    assert test_elbo == pytest.approx(float(history[-1]["val_elbo"]), abs=1.0)
    assert f"test ELBO {test_elbo:.2f} nats after {EPOCHS} epochs" in result.stdout
    assert not run_dir.backup.exists()

    for folder in ("train", "validation"):
        scalars = summaries(run_dir.logs / folder)
        for tag in ("epoch_elbo", "epoch_kl", "epoch_loss", "epoch_reconstruction"):
            assert [step for step, _ in scalars[tag]] == list(range(EPOCHS)), (folder, tag)
    images = summaries(run_dir.logs / "images")
    # 64 samples, and 32 test examples beside their reconstructions: 8x8 grids of 28x28.
    for tag in ("samples", "reconstructions"):
        assert [step for step, _ in images[tag]] == list(range(EPOCHS)), tag
        width, height, *pngs = tf.make_ndarray(images[tag][-1][1].tensor)
        assert (int(width), int(height), len(pngs)) == (224, 224, 1)
        assert tf.io.decode_png(pngs[0]).shape == (224, 224, 1)


def test_train_refuses_a_finished_run(commands, run_dir):
    assert_usage_error(commands.result("train-again"), f"{run_dir.root} holds a finished run")


def test_train_resumes_after_a_kill(tmp_path, tfds_data_dir):
    run_dir = RunDir(tmp_path / "run")
    epochs = 4
    # Without XLA's compilations, which a kill does not depend on.
    args = (*train_args(run_dir.root, tfds_data_dir, epochs=epochs), "--jit-compile", "false")
    log = tmp_path / "killed.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [str(KERAS_VAE), *map(str, args)], env=ENV, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + TIMEOUT
            while len(history_rows(run_dir.history)) < 2:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "not 2 epochs before the timeout"
                time.sleep(0.05)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, "not killed while training"
    logged = len(history_rows(run_dir.history))
    assert 2 <= logged < epochs
    # An epoch is logged, then committed by its backup record: the kill may fall in between.
    done = json.loads((run_dir.backup / "training_metadata.json").read_text())["epoch"]
    assert done in (logged - 1, logged)
    assert not run_dir.metrics.exists()

    changed = (*train_args(run_dir.root, tfds_data_dir, epochs=epochs + 1), *args[-2:])
    assert_usage_error(keras_vae(*changed), "holds a run with other settings (epochs)")

    result = keras_vae(*args)
    assert result.returncode == 0, result.stderr
    # Keras announces the epochs it runs: only those left, numbered on from the killed run's.
    started = re.findall(rf"^Epoch (\d+)/{epochs}$", result.stdout, re.MULTILINE)
    assert started == [str(epoch) for epoch in range(done + 1, epochs + 1)]
    assert [int(row["epoch"]) for row in history_rows(run_dir.history)] == list(range(epochs))
    assert int(run_dir.load_model().optimizer.iterations) == epochs * STEPS
    assert run_dir.metrics.exists() and not run_dir.backup.exists()


def test_evaluate_json(commands, run_dir):
    result = commands.result("evaluate")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    results = json.loads(line)
    assert (results["num_examples"], results["num_samples"]) == (200, 1000)
    assert results["split"] == "test"
    assert results["nll"] == -results["log_likelihood"]
    assert results["bits_per_dim"] == pytest.approx(results["nll"] / (784 * math.log(2)))
    assert all(math.isfinite(results[name]) for name in ("elbo", "iwae_5", "iwae_50", "nll"))

    # In expectation elbo <= iwae_5 <= iwae_50 <= log_likelihood, itself an IWAE bound with
    # 1000 samples. On this model the Monte Carlo standard error of a 200-example mean is
    # about 0.5 nats for the single-sample ELBO (7 nats per example / sqrt(200)) and below
    # 0.2 nats for the others: 2 nats of slack is 4 standard errors. The gaps themselves are
    # about 4, 2 and 1 nats, and a mistake of sign or of nats per example would be hundreds.
    slack = 2.0
    assert results["elbo"] <= results["iwae_5"] + slack
    assert results["iwae_5"] <= results["iwae_50"] + slack
    assert results["iwae_50"] <= results["log_likelihood"] + slack
    assert results["nll"] <= -results["elbo"] + slack

    assert json.loads(run_dir.metrics.read_text())["evaluation"] == results


def test_a_data_dir_flag_overrides_the_runs(commands, root):
    manual = root / "override" / "manual"
    assert_usage_error(commands.result("evaluate-elsewhere"), "is not prepared", str(manual))


@pytest.mark.parametrize("name", FIGURES)
def test_figures(commands, root, name):
    result = commands.result(name)
    assert result.returncode == 0, result.stderr
    output = root / "figures" / f"{name}.png"
    assert result.stdout == f"wrote {output}\n"
    assert_png(output, FIGURES[name][1])


def test_manifold(commands, root):
    result = commands.result("manifold")
    assert result.returncode == 0, result.stderr
    assert_png(root / "figures" / "manifold.png", (1120, 1120))  # 20x20 of 28x28 at scale 2.


def test_manifold_needs_two_latent_dimensions(commands):
    assert_usage_error(commands.result("manifold-3"), "latent_dim=2", "latent_dim=3")


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors(commands, root, unwritable, case):
    paths = case_paths(root, case, unwritable)
    words = [word.format(**paths) for word in USAGE_ERRORS[case][1]]
    assert_usage_error(commands.result(case), *words)
    # A failed start leaves nothing behind that would refuse the corrected command.
    assert not (root / case / "run" / "config.json").exists()


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_files(commands, root, case):
    result = commands.result(case)
    assert_usage_error(result, *DAMAGED[case][1])
    # One line, though TF_CPP_MIN_LOG_LEVEL is unset: TensorFlow's start-up logs are silenced.
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert sorted(path.name for path in root.glob("x.*")) == []


def test_debug_shows_the_traceback(commands):
    result = commands.result("debug")
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: Unknown preset 'nosuch'" in result.stderr


def test_help_and_version_import_no_tensorflow():
    building = (
        # As the `keras-vae` script imports the package.
        "import sys; sys.argv[0] = 'keras-vae'; from keras_vae.cli import build_parser; "
        "build_parser(); "
        "print(sorted(name for name in ('tensorflow', 'keras', 'numpy') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", building], env=ENV, capture_output=True)
    assert result.stdout.decode().strip() == "[]", result.stderr
    for args in (["--help"], ["train", "--help"], ["--version"]):
        # The fastest of three: a shared machine slows some runs, never speeds one up.
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            result = keras_vae(*args)
            seconds.append(time.perf_counter() - started)
        print(f"keras-vae {' '.join(args)}: {min(seconds):.2f} s")
        assert result.returncode == 0 and result.stderr == "", result.stderr
        # Under a second on a quiet machine (0.3 s); 4.4-5 s when the parser imported TensorFlow.
        assert min(seconds) < 2.0
    assert result.stdout == f"keras-vae {importlib.metadata.version('keras-vae')}\n"


def test_python_m_keras_vae_help(commands):
    result = commands.result("help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: keras-vae")
    for command in ("train", "evaluate", "sample", "plot", "export", "convert"):
        assert command in result.stdout


def test_import_keras_vae_registers_its_classes_for_load_model(tmp_path):
    # The command line imports the package lazily; a library user must not notice.
    path = tmp_path / "tiny.keras"
    tiny_vae().save(path)
    loading = (
        f"import keras, keras_vae; print(type(keras.saving.load_model({str(path)!r})).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", loading], env=ENV, capture_output=True)
    assert result.stdout.decode().strip() == "VAE", result.stderr.decode()[-2000:]


def test_conditional_run(commands, root):
    """`--preset cvae-mnist` trains on (image, label); samples come one row per class."""
    result = commands.result("train-conditional")
    assert result.returncode == 0, result.stderr
    run_dir = RunDir(root / "conditional")
    assert json.loads(run_dir.config.read_text())["condition"] == "label"
    vae = run_dir.load_model()
    assert vae.condition.num_classes == 10
    assert commands.result("sample-conditional").returncode == 0
    assert_png(root / "figures" / "cvae.png", (2 * 28 * 2, 10 * 28 * 2))  # 10 classes x 2
    evaluation = json.loads(commands.result("evaluate-conditional").stdout)
    assert evaluation["num_examples"] == 20
    assert evaluation["elbo"] <= evaluation["iwae_50"] + 1.0 < 0
    assert_usage_error(commands.result("manifold-conditional"), "this run is conditional")
