"""Regenerates the README's result figures and table row from a finished run.

    python tools/readme_results.py --run-dir runs/aevb-mnist --figures-dir tools/figures

writes `<preset>-samples.png` and `<preset>-reconstructions.png` into the figures folder and
prints one JSON object: the run's settings, its test metrics, the evaluation bounds (from the
`--evaluation` file, else the newest `keras-vae evaluate` results in `metrics.json`), and the
README table row built from them.
"""

import argparse
import contextlib
import json
import platform
import sys
from pathlib import Path

from keras_vae import cli
from keras_vae.run_dir import RunDir


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def table_row(config, metrics, evaluation):
    return (
        f"| `{config['preset']}` | {config['epochs']} | {metrics['train_seconds']:.0f} s "
        f"| {metrics['test']['elbo']:.2f} | {evaluation['iwae_50']:.2f} "
        f"| {evaluation['nll']:.2f} ± {evaluation['nll_stderr']:.2f} "
        f"| {evaluation['bits_per_dim']:.4f} | {evaluation['num_examples']} |"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--figures-dir", required=True)
    parser.add_argument("--evaluation", help="a JSON file of `keras-vae evaluate --output`")
    args = parser.parse_args(argv)

    run_dir = RunDir(args.run_dir)
    config = run_dir.read_json(run_dir.config)
    metrics = run_dir.read_json(run_dir.metrics)
    evaluation = (
        json.loads(Path(args.evaluation).read_text())
        if args.evaluation
        else metrics.get("evaluation")
    )
    if evaluation is None:
        sys.exit(f"{run_dir.root} has no evaluation: run `keras-vae evaluate` first")
    figures = Path(args.figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    preset = config["preset"]
    # The commands' own output goes to stderr: stdout carries one JSON object.
    for command in (
        ["sample", "--output", str(figures / f"{preset}-samples.png")],
        [
            "plot",
            "--kind",
            "reconstructions",
            "--output",
            str(figures / f"{preset}-reconstructions.png"),
        ],
    ):
        with contextlib.redirect_stdout(sys.stderr):
            status = cli.main([command[0], "--run-dir", str(run_dir.root), *command[1:]])
        if status != 0:
            sys.exit(f"keras-vae {command[0]} failed")
    print(
        json.dumps(
            {
                "config": config,
                "test": metrics["test"],
                "train_seconds": metrics["train_seconds"],
                "evaluation": evaluation,
                "machine": {"cpu": cpu_model(), "python": platform.python_version()},
                "readme_row": table_row(config, metrics, evaluation),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
