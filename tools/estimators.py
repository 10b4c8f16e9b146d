"""Measures the gradient estimators on the AEVB MNIST model, and trains with each.

Three measurements, all at fixed weights with `keras_vae.diagnostics.gradient_variance`
(draws of the gradient of the mean loss over one batch of test images), at
initialization and after training with the reparameterization gradient:

1. The inference network's (encoder and posterior projection) gradient
   variance, summed over its parameters, of the score function (without
   baselines, and with a running average and an input-dependent baseline fitted
   at those weights) and of STL, each divided by the reparameterization
   gradient's.
2. The inference network's mean SNR (|mean| / std per parameter, averaged) for
   the IWAE bound with k = 1, 5, 50, under reparameterization and DReG.
3. Test ELBO against training steps for each estimator, from the same
   initialization and seed, on the same budget; written as a figure.

    python tools/estimators.py [--steps 2000] [--eval-every 250] [--num-draws 100]
        [--figure tools/figures/estimators-elbo.png] [--manual-dir /work/shared/data]

Prints one JSON object to stdout; progress goes to stderr.
"""

import argparse
import contextlib
import itertools
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_vae as kv  # noqa: E402
from keras_vae import data, diagnostics, estimators  # noqa: E402
from keras_vae.presets import get_preset  # noqa: E402

INFERENCE = ("encoder", "posterior")
NETWORKS = ("encoder", "posterior", "decoder", "likelihood")
# Trained for the ELBO-against-steps figure, each from the same initial weights.
TRAINED = {
    "reparameterization": {},
    "stl": {"estimator": "stl"},
    "score_function": {"estimator": "score_function"},
    "score_function (no baselines)": {
        "estimator": estimators.ScoreFunction(running_average=False, baseline_units=None)
    },
    "iwae k=5, reparameterization": {"objective": "iwae", "num_samples": 5},
    "iwae k=5, dreg": {"objective": "iwae", "num_samples": 5, "estimator": "dreg"},
}


def log(message):
    print(message, file=sys.stderr, flush=True)


def inference_statistics(statistics):
    """The encoder's and posterior's statistics as one group."""
    parts = [statistics[group] for group in INFERENCE]
    return diagnostics.GradientStatistics(
        np.concatenate([p.mean for p in parts]),
        np.concatenate([p.variance for p in parts]),
        parts[0].num_draws,
    )


def variance_ratios(vae, x, batches, num_draws):
    """Inference-network gradient variance of each estimator over the reparameterization's."""
    fitted = diagnostics.fit_baselines(vae, estimators.ScoreFunction(), batches)
    bare = estimators.ScoreFunction(running_average=False, baseline_units=None)
    chosen = {
        "reparameterization": "reparameterization",
        "stl": "stl",
        "score_function (no baselines)": bare,
        "score_function (baselines)": fitted,
    }
    statistics = diagnostics.gradient_variance(vae, x, chosen, num_draws=num_draws)
    summaries = {
        label: inference_statistics(groups).summary() for label, groups in statistics.items()
    }
    reference = summaries["reparameterization"]["total_variance"]
    return {
        "total_variance": {label: s["total_variance"] for label, s in summaries.items()},
        "mean_snr": {label: s["mean_snr"] for label, s in summaries.items()},
        "ratio_to_reparameterization": {
            label: s["total_variance"] / reference for label, s in summaries.items()
        },
    }


def iwae_snr(vae, x, num_draws):
    """Inference-network mean SNR for the IWAE bound at k = 1, 5, 50."""
    results = {}
    for k in (1, 5, 50):
        statistics = diagnostics.gradient_variance(
            vae,
            x,
            ["reparameterization", "dreg"],
            num_draws=num_draws,
            draws_per_call=max(1, 2000 // (len(x) * k)),
            objective="iwae",
            num_samples=k,
        )
        results[f"k={k}"] = {
            label: inference_statistics(groups).summary()["mean_snr"]
            for label, groups in statistics.items()
        }
        log(f"  iwae k={k}: {results[f'k={k}']}")
    return results


def train_curves(initial, load, test_x, steps, eval_every, seed):
    """Test ELBO every `eval_every` steps for each estimator, and the trained models."""
    curves, models = {}, {}
    for label, options in TRAINED.items():
        keras.utils.set_random_seed(seed)
        vae = get_preset("aevb-mnist").build_model(seed=seed, **options)
        vae.build((None, *test_x.shape[1:]))
        for name in NETWORKS:
            getattr(vae, name).set_weights(initial[name])
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        batches = data.load(split="train", batch_size=100, shuffle=True, seed=seed, **load)
        batches = batches.repeat()
        curve, started = [], time.perf_counter()
        for done in range(0, steps + 1, eval_every):
            if done:
                vae.fit(batches, steps_per_epoch=eval_every, epochs=1, verbose=0)
            elbo = float(np.mean(vae.elbo(test_x, seed=0)))
            curve.append({"step": done, "test_elbo": elbo})
        seconds = time.perf_counter() - started
        final = curve[-1]["test_elbo"]
        log(f"  {label}: test ELBO {final:.2f} after {steps} steps ({seconds:.0f} s)")
        curves[label] = {"curve": curve, "seconds": seconds}
        models[label] = vae
    return curves, models


def plot_curves(curves, path, steps):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=100)
    for label, result in curves.items():
        points = result["curve"]
        final = points[-1]["test_elbo"]
        axis.plot(
            [p["step"] for p in points],
            [p["test_elbo"] for p in points],
            label=f"{label} ({final:.1f})",
        )
    axis.set_xlabel("training step (batch of 100)")
    axis.set_ylabel("test ELBO (nats, 1 sample per example)")
    highest = max(p["test_elbo"] for r in curves.values() for p in r["curve"])
    # The evaluation at initialization (about -540) and diverging runs fall below the frame.
    axis.set_ylim(-300, highest + 10)
    axis.set_title(f"AEVB MNIST, {steps} steps of Adam(1e-3), same initialization and seed")
    axis.legend(fontsize="small")
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial.png"
    figure.savefig(partial)
    os.replace(partial, path)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--num-draws", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100, help="test images per draw")
    parser.add_argument("--baseline-batches", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default="tools/figures/estimators-elbo.png")
    parser.add_argument("--manual-dir", default="/work/shared/data")
    parser.add_argument("--data-dir", help="TFDS data dir (default: a temporary folder)")
    args = parser.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="tfds-")
    load = dict(
        name="mnist", preprocessing="dynamic", manual_dir=args.manual_dir, data_dir=data_dir
    )
    with contextlib.redirect_stdout(sys.stderr):  # TFDS reports its preparation on stdout
        x = data.take(count=args.batch_size, seed=1, **load).numpy()
        test_x = data.take(count=2000, seed=1, **load).numpy()

    def training_batches():
        batches = data.load(split="train", batch_size=100, shuffle=True, seed=2, **load)
        return (b.numpy() for b in itertools.islice(batches, args.baseline_batches))

    keras.utils.set_random_seed(args.seed)
    vae = get_preset("aevb-mnist").build_model(seed=args.seed)
    vae.build((None, *x.shape[1:]))
    initial = {
        n: getattr(vae, n).get_weights() for n in ("encoder", "posterior", "decoder", "likelihood")
    }
    started = time.perf_counter()
    results = {"settings": vars(args), "initialization": {}, "trained": {}}
    for stage, model in (("initialization", vae), ("trained", None)):
        if model is None:
            log("training with each estimator")
            curves, models = train_curves(
                initial, load, test_x, args.steps, args.eval_every, args.seed
            )
            results["elbo_curves"] = curves
            model = models["reparameterization"]
            plot_curves(curves, args.figure, args.steps)
        log(f"{stage}: variance ratios")
        results[stage]["variance"] = variance_ratios(model, x, training_batches(), args.num_draws)
        log(f"  {results[stage]['variance']['ratio_to_reparameterization']}")
        log(f"{stage}: IWAE SNR")
        results[stage]["iwae_snr"] = iwae_snr(model, x, args.num_draws)
    results["seconds"] = time.perf_counter() - started
    results["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "keras_vae": kv.__name__,
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
