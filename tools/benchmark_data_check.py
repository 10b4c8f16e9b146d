"""Measures what checking every batch of a dataset costs `fit`, side by side in one process.

`VAE.fit` checks each batch of a `tf.data` dataset (finite, in the likelihood's
support) with an op appended to the input pipeline
(`keras_vae.validation.checked_batches`), outside the compiled step. This
trains two copies of the AEVB MNIST model (MLP 784-500-20 tanh, Bernoulli,
batch 100) through Keras's own `fit`, one on the plain dataset and one on the
checked one, an epoch at a time in turn (plain, checked, checked, plain, ...),
so drift in machine speed hits both; the first epoch of each (tracing) is
discarded. It also times reading the two datasets alone, which bounds the
check's cost if it ran serially with the step.

    python tools/benchmark_data_check.py [--epochs 7] [--examples 20000] [--data-dir DIR]

Prints one JSON object to stdout; progress goes to stderr.
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from benchmark import DEFAULT_DATA_DIR, binarized_mnist, log  # noqa: E402

from keras_vae.presets import get_preset  # noqa: E402
from keras_vae.validation import checked_batches  # noqa: E402

BATCH_SIZE = 100


def make_vae(data_shape, weights=None):
    vae = get_preset("aevb-mnist").build_model(seed=0)
    vae.build((None, *data_shape))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    if weights is not None:
        vae.set_weights(weights)
    return vae


def epoch_seconds(vae, dataset):
    start = time.perf_counter()
    keras.Model.fit(vae, dataset, epochs=1, verbose=0)  # Keras's fit: no check of its own.
    return time.perf_counter() - start


def read_seconds(dataset, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in dataset:
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    args = parser.parse_args()

    x = binarized_mnist(args.examples, args.data_dir)
    plain = tf.data.Dataset.from_tensor_slices(x).batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
    models = {"plain": make_vae(x.shape[1:])}
    models["checked"] = make_vae(x.shape[1:], models["plain"].get_weights())
    datasets = {"plain": plain, "checked": checked_batches(models["checked"], plain)}
    steps = len(x) // BATCH_SIZE

    times = {name: [] for name in models}
    for epoch in range(args.epochs):
        order = ("plain", "checked") if epoch % 2 == 0 else ("checked", "plain")
        for name in order:
            seconds = epoch_seconds(models[name], datasets[name])
            times[name].append(seconds)
            log(f"epoch {epoch} {name}: {seconds:.2f} s")
    steady = {name: values[1:] for name, values in times.items()}  # Drop tracing.
    paired = [c / p for p, c in zip(steady["plain"], steady["checked"], strict=True)]
    step_ms = 1000 * statistics.median(steady["plain"]) / steps
    reads = {name: read_seconds(dataset) for name, dataset in datasets.items()}
    check_ms = 1000 * (reads["checked"] - reads["plain"]) / steps
    print(
        json.dumps(
            {
                "model": "aevb-mnist (MLP 784-500-20 tanh, Bernoulli)",
                "batch_size": BATCH_SIZE,
                "steps_per_epoch": steps,
                "epoch_seconds": times,
                "step_ms_plain": step_ms,
                "step_ms_checked": 1000 * statistics.median(steady["checked"]) / steps,
                "paired_epoch_ratio_median": statistics.median(paired),
                "check_overhead_percent": 100 * (statistics.median(paired) - 1),
                "read_ms_per_batch": {n: 1000 * s / steps for n, s in reads.items()},
                "check_ms_per_batch_serial": check_ms,
                "check_percent_of_step_if_serial": 100 * check_ms / step_ms,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "load_average": os.getloadavg(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
