"""Inverse autoregressive flow posterior against the diagonal Gaussian on MNIST, same budget.

Trains `aevb-mnist` (DiagonalNormal posterior) and `iaf-mnist` (the same networks with
an InverseAutoregressiveFlow posterior) from the same seed on the same data for the
same number of epochs, an epoch of each in turn so that both see the same machine
load. Then, on the MNIST test set binarized once (seed 1, as `keras-vae evaluate`):
the ELBO on every test image, and the IWAE bound (k=50) and importance-sampled log p(x)
on the first `--eval-examples`. Also measures what log q(z|x) costs the flow: the
bound terms of a batch with log q taken from the draw (TFP's bijector cache, as
training does) against the sequential inverse (latent_dim network calls per step),
each compiled with XLA, timed in turn in this process.

    python tools/iaf_mnist.py [--epochs 20] [--eval-examples 1000] [--num-samples 1000]
        [--manual-dir /work/shared/data]

Prints one JSON object to stdout; progress goes to stderr.
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_vae import data  # noqa: E402
from keras_vae.evaluation import evaluate_bounds  # noqa: E402
from keras_vae.presets import get_preset  # noqa: E402

PRESETS = ("aevb-mnist", "iaf-mnist")


def log(message):
    print(message, file=sys.stderr, flush=True)


def train(models, train_data, epochs):
    """Trains each model an epoch at a time, in turn; seconds and last loss per model."""
    seconds = {name: [] for name in models}
    history = {name: [] for name in models}
    for epoch in range(epochs):
        for name, vae in models.items():
            start = time.perf_counter()
            result = vae.fit(train_data, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
            seconds[name].append(time.perf_counter() - start)
            history[name].append(result.history["elbo"][-1])
            log(f"epoch {epoch + 1} {name}: train elbo {history[name][-1]:.2f}")
    return seconds, history


def log_q_cost(vae, x, repeats):
    """Median seconds of log q(z|x) at a batch of draws: from the draw, and by the inverse.

    Both compute the encoder, the draw z and log q(z|x), compiled with XLA; the first
    as the bounds do, the second at a copy of z, which the bijector has not seen.
    """

    def log_q(x, noise, copy):
        _, parameters, z = vae.sample_posterior(x, noise=noise)
        z = tf.identity(z) if copy else z
        return vae.posterior.distribution(parameters).log_prob(z)

    functions = {
        "from_draw": tf.function(lambda x, noise: log_q(x, noise, False), jit_compile=True),
        "by_inverse": tf.function(lambda x, noise: log_q(x, noise, True), jit_compile=True),
    }
    noise = tf.random.normal((1, len(x), vae.latent_dim), seed=0)
    outputs = {name: function(x, noise) for name, function in functions.items()}  # compile
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function(x, noise).numpy()
            times[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(values)) for name, values in times.items()}
    return {
        "seconds_median": medians,
        "ratio": medians["by_inverse"] / medians["from_draw"],
        "max_abs_difference_nats": float(
            np.max(np.abs(outputs["from_draw"] - outputs["by_inverse"]))
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--eval-examples", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--manual-dir", default="/work/shared/data")
    args = parser.parse_args()

    load = {"manual_dir": args.manual_dir}
    train_data = data.load("mnist", "train", "dynamic", 100, shuffle=True, seed=args.seed, **load)
    test_data = data.load("mnist", "test", "dynamic", 100, seed=1, **load)
    models = {}
    for name in PRESETS:
        preset = get_preset(name)
        keras.utils.set_random_seed(args.seed)  # the same initial encoder and decoder
        vae = preset.build_model(seed=args.seed)
        vae.compile(optimizer=keras.optimizers.Adam(preset.learning_rate))
        models[name] = vae

    seconds, history = train(models, train_data, args.epochs)
    results = {}
    for name, vae in models.items():
        elbos = np.concatenate([np.asarray(vae.elbo(x, seed=2)) for x in test_data])
        bounds = evaluate_bounds(
            vae,
            test_data,
            num_samples=args.num_samples,
            iwae_samples=(50,),
            max_examples=args.eval_examples,
            verbose=0,
        )
        results[name] = {
            "test_elbo": float(np.mean(elbos)),
            "test_elbo_stderr": float(np.std(elbos, ddof=1) / np.sqrt(len(elbos))),
            "test_examples": len(elbos),
            f"iwae_50_first_{args.eval_examples}": bounds["iwae_50"],
            f"log_likelihood_k{args.num_samples}_first_{args.eval_examples}": bounds[
                "log_likelihood"
            ],
            "nll_stderr": bounds["nll_stderr"],
            "train_elbo_per_epoch": [round(value, 3) for value in history[name]],
            "seconds_per_epoch_median": float(np.median(seconds[name])),
            "parameters": int(sum(np.prod(w.shape) for w in vae.trainable_weights)),
        }
        log(f"{name}: {results[name]['test_elbo']:.3f}")
    x = next(iter(test_data))
    results["log_q_cost_batch_of_100"] = log_q_cost(models["iaf-mnist"], x, args.repeats)
    print(
        json.dumps(
            {
                "command": "python " + " ".join(sys.argv),
                "epochs": args.epochs,
                "batch_size": 100,
                "results": results,
                "difference_test_elbo": results["iaf-mnist"]["test_elbo"]
                - results["aevb-mnist"]["test_elbo"],
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "load_average_at_end": os.getloadavg(),
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
