"""Benchmarks `keras_vae.VAE.fit` against a VAE in the keras.io example's structure.

It measures, in the same run, whether `fit` on the AEVB MNIST model (MLP 784-500-20,
tanh, Bernoulli, batch 100, numpy arrays in) is at least as fast as a VAE written
like the keras.io "Variational AutoEncoder" example (an encoder Model ending in a
`Sampling` layer, a sigmoid decoder Model, binary cross-entropy and the closed-form
KL in a custom `train_step`), given the same architecture and the same array.

Both models are trained in one process, one epoch at a time in turn
(keras_vae, baseline, baseline, keras_vae, ...) so drift in machine speed hits
both. Each repeat builds fresh models and trains them `--epochs` epochs; the
first epoch (tracing and warm-up) is discarded and the rest are timed by a
callback. The reported throughput is the median over repeats of each repeat's
mean steady-state epoch time; `paired_epoch_ratio_median` compares epochs run
back to back, the steadier figure on a busy machine.

The baseline is the one place here with model maths: it is the yardstick, and
it is kept as close to the keras.io example as the architecture allows.

    python tools/benchmark_fit.py [--epochs 3] [--repeats 3] [--examples 60000]
        [--jit-compile {false,true,both}] [--batch-size 100] [--data-dir DIR]

Prints one JSON object to stdout; progress goes to stderr.
"""

import argparse
import gzip
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

import keras_vae as kv  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
HIDDEN_UNITS = 500
LATENT_DIM = 20
LEARNING_RATE = 1e-3


def log(message):
    print(message, file=sys.stderr, flush=True)


# === Data ===


def read_idx(path):
    """Reads a gzipped IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as file:
        data = file.read()
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"Expected an IDX file. Received: {path} with magic {data[:4].hex()}")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    dtype, ndim = np.dtype(dtypes[data[2]]), data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)


def binarized_mnist(data_dir, num_examples, seed=0):
    """The first `num_examples` training images, binarized once with a fixed seed.

    Returns float32 `(num_examples, 28, 28, 1)` in {0, 1}: each pixel is 1 with
    probability intensity / 255 (the static binarization of the AEVB protocol).
    """
    images = read_idx(pathlib.Path(data_dir) / "train-images-idx3-ubyte.gz")[:num_examples]
    probabilities = images.astype("float32")[..., None] / 255.0
    uniform = np.random.default_rng(seed).random(probabilities.shape, dtype="float32")
    return (uniform < probabilities).astype("float32")


# === The keras.io example's VAE, with the AEVB architecture ===


class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class BaselineVAE(keras.Model):
    """The keras.io example's `VAE`: encoder, decoder and a custom `train_step`."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


def build_baseline(data_shape):
    encoder_inputs = keras.Input(shape=data_shape)
    x = layers.Flatten()(encoder_inputs)
    x = layers.Dense(HIDDEN_UNITS, activation="tanh")(x)
    z_mean = layers.Dense(LATENT_DIM, name="z_mean")(x)
    z_log_var = layers.Dense(LATENT_DIM, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")

    latent_inputs = keras.Input(shape=(LATENT_DIM,))
    x = layers.Dense(HIDDEN_UNITS, activation="tanh")(latent_inputs)
    x = layers.Dense(int(np.prod(data_shape)), activation="sigmoid")(x)
    decoder_outputs = layers.Reshape(data_shape)(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
    return BaselineVAE(encoder, decoder)


def build_keras_vae(data_shape):
    del data_shape  # keras_vae builds from the data in `fit`.
    return kv.VAE(
        kv.networks.MLP([HIDDEN_UNITS], "tanh"),
        kv.networks.MLP([HIDDEN_UNITS], "tanh"),
        latent_dim=LATENT_DIM,
    )


MODELS = {"keras_vae": build_keras_vae, "baseline": build_baseline}


# === Timing ===


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time and the process CPU time of every epoch.

    CPU time barely counts the time other processes hold the cores, so it
    is the steadier measure of the work a model does on a shared machine.
    """

    def __init__(self):
        super().__init__()
        self.seconds = []
        self.cpu_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.cpu_seconds.append(time.process_time() - self.cpu_start)


def compiled_models(data_shape, jit_compile, seed):
    models = {}
    for name, build in MODELS.items():
        keras.utils.set_random_seed(seed)
        models[name] = build(data_shape)
        models[name].compile(
            optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=jit_compile
        )
    return models


def run_repeat(x, epochs, batch_size, jit_compile, seed):
    """Fresh models, trained one epoch at a time in turn: A B, B A, A B ...

    Alternating single epochs (a later `fit` reuses the traced train function)
    exposes both models to the same drift in machine load; swapping who goes
    first each epoch cancels any advantage of going first.
    """
    models = compiled_models(x.shape[1:], jit_compile, seed)
    timers = {name: EpochTimer() for name in models}
    losses = {}
    for epoch in range(epochs):
        order = list(models) if epoch % 2 == 0 else list(reversed(models))
        for name in order:
            history = models[name].fit(
                x,
                batch_size=batch_size,
                initial_epoch=epoch,
                epochs=epoch + 1,
                verbose=0,
                callbacks=[timers[name]],
            )
            losses[name] = float(history.history["loss"][-1])
    # Keras quietly falls back to no XLA for models it deems unsupported: record what ran.
    return {
        name: {
            "seconds": timers[name].seconds,
            "cpu_seconds": timers[name].cpu_seconds,
            "loss": losses[name],
            "jit_compile": bool(model.jit_compile),
        }
        for name, model in models.items()
    }


def steady(values):
    """Mean over the epochs after the first (which includes tracing)."""
    return statistics.fmean(values[1:])


def summarize(runs, num_examples):
    per_repeat = [steady(run["seconds"]) for run in runs]
    median = statistics.median(per_repeat)
    return {
        "examples_per_second": num_examples / median,
        "median_epoch_seconds": median,
        "best_epoch_seconds": min(min(run["seconds"][1:]) for run in runs),
        "examples_per_cpu_second": num_examples
        / statistics.median(steady(run["cpu_seconds"]) for run in runs),
        "steady_epoch_seconds_per_repeat": per_repeat,
        "epoch_seconds": [run["seconds"] for run in runs],
        "epoch_cpu_seconds": [run["cpu_seconds"] for run in runs],
        "final_loss": [run["loss"] for run in runs],
        "jit_compile_effective": all(run["jit_compile"] for run in runs),
    }


def paired_ratio(runs, key):
    """Median over epochs run back to back of baseline time / keras_vae time."""
    return statistics.median(
        baseline / ours
        for ours_run, baseline_run in zip(runs["keras_vae"], runs["baseline"], strict=True)
        for ours, baseline in zip(ours_run[key][1:], baseline_run[key][1:], strict=True)
    )


def benchmark(x, epochs, repeats, batch_size, jit_compile):
    runs = {name: [] for name in MODELS}
    for repeat in range(repeats):
        for name, run in run_repeat(x, epochs, batch_size, jit_compile, repeat).items():
            runs[name].append(run)
            log(
                f"jit_compile={jit_compile} repeat {repeat + 1}/{repeats} {name}: "
                f"epochs [{', '.join(f'{s:.2f}' for s in run['seconds'])}] s, "
                f"cpu [{', '.join(f'{s:.2f}' for s in run['cpu_seconds'])}] s, "
                f"loss {run['loss']:.2f}"
            )
    results = {name: summarize(runs[name], len(x)) for name in MODELS}
    results["ratio_keras_vae_over_baseline"] = (
        results["keras_vae"]["examples_per_second"] / results["baseline"]["examples_per_second"]
    )
    # Ratios of epochs run back to back cancel slow drift better than ratios of medians.
    results["paired_epoch_ratio_median"] = paired_ratio(runs, "seconds")
    results["paired_epoch_cpu_ratio_median"] = paired_ratio(runs, "cpu_seconds")
    return results


# === Entry point ===


def machine_info():
    cpu_model = platform.processor() or "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per repeat; the first is discarded"
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh models per model kind")
    parser.add_argument("--examples", type=int, default=60000, help="training images used")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--jit-compile",
        choices=("false", "true", "both"),
        default="false",
        help="XLA in compile(); `false` is what `auto` resolves to on CPU",
    )
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="MNIST IDX .gz files")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first is discarded); got {args.epochs}")
    if args.repeats < 1 or args.examples < args.batch_size:
        parser.error("--repeats must be positive and --examples at least --batch-size")
    return args


def main(argv=None):
    args = parse_args(argv)
    x = binarized_mnist(args.data_dir, args.examples)
    log(f"data: {x.shape} {x.dtype} from {args.data_dir}")
    modes = {"false": [False], "true": [True], "both": [False, True]}[args.jit_compile]
    started, load_before = time.perf_counter(), os.getloadavg()
    results = {
        f"jit_compile={str(jit).lower()}": benchmark(
            x, args.epochs, args.repeats, args.batch_size, jit
        )
        for jit in modes
    }
    report = {
        "benchmark": "fit, AEVB MNIST MLP 784-500-20 tanh Bernoulli vs keras.io-structure VAE",
        "settings": {
            "epochs": args.epochs,
            "repeats": args.repeats,
            "examples": len(x),
            "batch_size": args.batch_size,
            "steps_per_epoch": -(-len(x) // args.batch_size),
            "jit_compile": args.jit_compile,
            "learning_rate": LEARNING_RATE,
        },
        "machine": machine_info(),
        # Other processes' load skews both models; paired ratios are the robust figure then.
        "loadavg_1_5_15min": {"start": load_before, "end": os.getloadavg()},
        "results": results,
        "total_seconds": time.perf_counter() - started,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
