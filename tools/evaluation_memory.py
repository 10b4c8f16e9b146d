"""Peak resident memory of the evaluation `keras-vae evaluate` runs, on a preset's model.

Reads MNIST test images from their IDX file, binarizes them with a fixed seed,
and runs `keras_vae.evaluation.evaluate_bounds` (ELBO, IWAE-5, IWAE-50 and
log p(x) with k = `--num-samples`) on a preset's untrained model in batches
of `--batch-size`; memory and speed do not depend on the weights. Prints one
JSON object with the process's peak resident set (`ru_maxrss`).

    python tools/evaluation_memory.py --images t10k-images-idx3-ubyte.gz --preset conv-mnist
"""

import argparse
import gzip
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_vae import importance  # noqa: E402
from keras_vae.evaluation import evaluate_bounds  # noqa: E402
from keras_vae.presets import get_preset  # noqa: E402


def read_idx_images(path, count):
    with gzip.open(path, "rb") as file:
        data = np.frombuffer(file.read(), np.uint8)
    num, rows, cols = (int.from_bytes(data[i : i + 4].tobytes(), "big") for i in (4, 8, 12))
    return data[16:].reshape(num, rows, cols, 1)[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="MNIST t10k-images-idx3-ubyte.gz")
    parser.add_argument("--preset", default="conv-mnist")
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--memory-budget", type=float, default=1.0, help="GiB")
    args = parser.parse_args()

    images = read_idx_images(args.images, args.max_examples)
    rng = np.random.default_rng(1)
    x = (rng.random(images.shape) < images / 255.0).astype("float32")
    vae = get_preset(args.preset).build_model(seed=0)
    vae.build((None, *x.shape[1:]))
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(args.batch_size)
    budget = int(args.memory_budget * 2**30)
    batch = min(args.batch_size, args.max_examples)
    plan = importance.plan_chunks(vae, batch, args.num_samples, budget)
    start = time.perf_counter()
    results = evaluate_bounds(
        vae,
        dataset,
        args.num_samples,
        memory_budget=budget,
        max_examples=args.max_examples,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "preset": args.preset,
                "num_samples": args.num_samples,
                "num_examples": results["num_examples"],
                "batch_size": args.batch_size,
                "memory_budget_bytes": budget,
                "chunk": {"examples": plan.examples, "samples": plan.samples},
                "bytes_per_row_estimate": importance.row_bytes(vae)[1],
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                "seconds": round(seconds, 1),
                "nll": round(results["nll"], 2),
                "load_average": [round(load, 2) for load in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
