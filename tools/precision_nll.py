"""Test NLL of the AEVB MNIST model trained in float32 and in mixed_bfloat16, over seeds.

Trains the `aevb-mnist` model (MLP 784-500-20 tanh, Bernoulli, Adam 1e-3, batch 100)
for `--epochs` on the MNIST training images binarized once with a fixed seed, under
each precision and each of `--seeds`, then estimates -log p(x) by importance sampling
(k = `--num-samples`) on the first `--test-examples` test images, binarized once.
The run-to-run spread is the standard deviation of the NLL over seeds within one
precision; the two precisions agree when their means differ by less than it (and by
less than twice the standard error of their difference).

    python tools/precision_nll.py [--epochs 5] [--seeds 0 1 2] [--num-samples 1000]
        [--test-examples 1000] [--precisions float32 mixed_bfloat16] [--data-dir DIR]

Prints one JSON object; progress goes to stderr. Training seconds are wall-clock
times, comparable only on an otherwise idle machine (see `tools/benchmark.py` for
the speed comparison itself).
"""

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchmark import DEFAULT_DATA_DIR, binarized_mnist, environment, log, read_idx  # noqa: E402

from keras_vae import precision  # noqa: E402
from keras_vae.presets import get_preset  # noqa: E402


def binarized_test_images(num_examples, data_dir, seed=1):
    images = read_idx(pathlib.Path(data_dir) / "t10k-images-idx3-ubyte.gz")[:num_examples]
    probabilities = images.reshape(len(images), -1).astype("float32") / 255.0
    uniform = np.random.default_rng(seed).random(probabilities.shape, dtype="float32")
    return (uniform < probabilities).astype("float32")


def train_and_evaluate(policy, seed, x_train, x_test, args):
    keras.utils.set_random_seed(seed)
    with precision.policy(policy):
        vae = get_preset("aevb-mnist").build_model(seed=seed)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    started = time.perf_counter()
    history = vae.fit(x_train, batch_size=100, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - started
    nll = -vae.log_likelihood(x_test, num_samples=args.num_samples, seed=seed).numpy()
    return {
        "seed": seed,
        "train_seconds": seconds,
        "final_train_loss": float(history.history["loss"][-1]),
        "test_nll": float(nll.mean()),
        "test_nll_standard_error": float(nll.std(ddof=1) / math.sqrt(len(nll))),
    }


def summarize(runs):
    nlls = [run["test_nll"] for run in runs]
    return {
        "runs": runs,
        "test_nll_mean": statistics.mean(nlls),
        "test_nll_spread_std_over_seeds": statistics.stdev(nlls) if len(nlls) > 1 else None,
        "train_seconds_median": statistics.median(run["train_seconds"] for run in runs),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-samples", type=int, default=1000, help="k of the NLL estimate")
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["float32", "mixed_bfloat16"],
        choices=precision.PRECISIONS,
    )
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="MNIST IDX .gz files")
    args = parser.parse_args(argv)
    x_train = binarized_mnist(args.train_examples, args.data_dir)
    x_test = binarized_test_images(args.test_examples, args.data_dir)
    results = {}
    for policy in args.precisions:
        runs = []
        for seed in args.seeds:
            runs.append(train_and_evaluate(policy, seed, x_train, x_test, args))
            log(f"{policy} seed {seed}: {json.dumps(runs[-1])}")
        results[policy] = summarize(runs)
    report = {
        "benchmark": "test NLL after equal training, AEVB MNIST, by precision",
        "environment": environment(),
        "settings": vars(args),
        "results": results,
    }
    if len(results) == 2:
        first, second = (results[name] for name in args.precisions)
        spreads = [s["test_nll_spread_std_over_seeds"] for s in (first, second)]
        difference = second["test_nll_mean"] - first["test_nll_mean"]
        report["difference_of_means"] = difference
        if None not in spreads:
            spread = math.sqrt((spreads[0] ** 2 + spreads[1] ** 2) / 2)
            standard_error = spread * math.sqrt(2 / len(args.seeds))
            report["run_to_run_spread"] = spread
            report["agree_within_spread"] = abs(difference) < spread
            report["agree_within_two_standard_errors"] = abs(difference) < 2 * standard_error
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
