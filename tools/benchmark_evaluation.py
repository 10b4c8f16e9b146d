"""Throughput of `VAE.log_likelihood` and `VAE.iwae_bound` against the fp32 matmul ceiling.

Builds the AEVB MNIST model (MLP 784-500-20, tanh, Bernoulli; speed does not
depend on the weights), times `log_likelihood(x, k)` on a batch of binary
images and, in the same process and interleaved with it, `tf.matmul` at the
decoder's own shapes (the rows of one chunk x 20 -> 500 -> 784), and prints
one JSON object: decoder GFLOP/s of each, their ratio, and the time for the
10,000-image test set at k = 5000 projected from the batch (or measured with
`--full`).

    python tools/benchmark_evaluation.py
    python tools/benchmark_evaluation.py --memory-budget 0.25 --repeats 5
"""

import argparse
import json
import math
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_vae import importance  # noqa: E402
from keras_vae.presets import get_preset  # noqa: E402

TEST_SET = 10_000


def decoder_flops(vae):
    """Multiply-adds x 2 of one decoder row: every 2-D kernel of the decoder and likelihood."""
    kernels = [w for w in vae.decoder.weights + vae.likelihood.weights if len(w.shape) == 2]
    return 2 * sum(math.prod(w.shape) for w in kernels), [tuple(w.shape) for w in kernels]


def timed(function):
    """Wall seconds and CPU seconds (all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--memory-budget", type=float, default=1.0, help="GiB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also time the whole test set")
    args = parser.parse_args()

    vae = get_preset("aevb-mnist").build_model(seed=0)
    vae.build((None, 28, 28, 1))
    rng = np.random.default_rng(0)
    x = (rng.random((args.batch_size, 28, 28, 1)) < 0.13).astype("float32")
    budget = int(args.memory_budget * 2**30)
    flops_per_row, kernels = decoder_flops(vae)
    plan = importance.plan_chunks(vae, args.batch_size, args.num_samples, budget)
    rows = plan.examples * plan.samples

    # The ceiling: the decoder's matmuls alone, at the rows of one chunk.
    inputs = [tf.random.normal((rows, kernel[0])) for kernel in kernels]
    weights = [tf.random.normal(kernel) for kernel in kernels]
    matmuls = tf.function(lambda: [tf.matmul(a, w) for a, w in zip(inputs, weights, strict=True)])
    square = tf.random.normal((2048, 2048))
    matmul_2048 = tf.function(lambda: tf.matmul(square, square))

    cases = {
        "log_likelihood": (
            lambda: vae.log_likelihood(x, args.num_samples, budget, seed=0).numpy(),
            flops_per_row * args.batch_size * args.num_samples,
        ),
        "iwae_bound_50": (
            lambda: vae.iwae_bound(x, 50, budget, seed=0).numpy(),
            flops_per_row * args.batch_size * 50,
        ),
        "matmul_ceiling": (lambda: [m.numpy() for m in matmuls()], flops_per_row * rows),
        "matmul_2048": (lambda: matmul_2048().numpy(), 2 * 2048**3),
    }
    for function, _ in cases.values():
        function()  # compile
    times = {name: (math.inf, math.inf) for name in cases}
    for _ in range(args.repeats):  # interleaved, so that load on a shared machine hits all
        for name, (function, _) in cases.items():
            wall, cpu = timed(function)
            times[name] = (min(times[name][0], wall), min(times[name][1], cpu))
    gflops = {name: cases[name][1] / times[name][0] / 1e9 for name in cases}
    # Per CPU-second too: less sensitive to other processes taking the cores.
    cpu_gflops = {name: cases[name][1] / times[name][1] / 1e9 for name in cases}
    batch_time = times["log_likelihood"][0]
    results = {
        "model": "aevb-mnist (MLP 784-500-20, tanh, Bernoulli), float32",
        "num_samples": args.num_samples,
        "batch_size": args.batch_size,
        "memory_budget_bytes": budget,
        "chunk": {"examples": plan.examples, "samples": plan.samples, "rows": rows},
        "decoder_mflop_per_row": flops_per_row / 1e6,
        "gflops": {name: round(value, 1) for name, value in gflops.items()},
        "fraction_of_ceiling": {
            name: round(gflops[name] / gflops["matmul_ceiling"], 3)
            for name in ("log_likelihood", "iwae_bound_50")
        },
        "gflops_per_cpu_second": {name: round(value, 1) for name, value in cpu_gflops.items()},
        "fraction_of_ceiling_cpu_time": {
            name: round(cpu_gflops[name] / cpu_gflops["matmul_ceiling"], 3)
            for name in ("log_likelihood", "iwae_bound_50")
        },
        "seconds_per_batch": round(batch_time, 3),
        "projected_test_set_minutes": round(batch_time * TEST_SET / args.batch_size / 60, 2),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
    }
    if args.full:
        images = (rng.random((TEST_SET, 28, 28, 1)) < 0.13).astype("float32")
        start = time.perf_counter()
        for first in range(0, TEST_SET, args.batch_size):
            vae.log_likelihood(images[first : first + args.batch_size], args.num_samples, budget)
        results["measured_test_set_minutes"] = round((time.perf_counter() - start) / 60, 2)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
