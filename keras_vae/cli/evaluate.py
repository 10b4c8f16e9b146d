"""`keras-vae evaluate`: ELBO, IWAE bounds and log p(x) of a trained run."""

import json

from keras_vae.cli.arguments import data_dirs, output_file, positive_float, positive_int
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser("evaluate", help="bounds on log p(x) for a trained run")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument(
        "--num-samples",
        type=positive_int,
        default=5000,
        help="importance samples for log p(x) (default 5000)",
    )
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument(
        "--max-examples", type=positive_int, help="evaluate the first N examples only"
    )
    parser.add_argument("--batch-size", type=positive_int, default=100)
    parser.add_argument(
        "--memory-budget",
        type=positive_float,
        default=1.0,
        help="GiB the tensors of one compiled chunk of examples x samples may take (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    # Checked while parsing, not after an evaluation that may take hours.
    parser.add_argument(
        "--output", type=output_file(), help="also write the results to this JSON file"
    )
    parser.add_argument("--manual-dir", help="default: the run's")
    parser.add_argument("--data-dir", help="default: the run's")
    parser.set_defaults(run=run)


def run(args):
    from keras_vae import data
    from keras_vae.evaluation import evaluate_bounds

    run_dir = RunDir(args.run_dir)
    config = run_dir.read_json(run_dir.config)
    vae = run_dir.load_model()
    # A fixed seed: the same binarization of the evaluation data every time.
    dataset = data.load(
        config["dataset"],
        split=args.split,
        preprocessing=config["preprocessing"],
        batch_size=args.batch_size,
        seed=1,
        validation_size=config["validation_size"],
        with_labels=config.get("condition", "none") == "label",
        **data_dirs(args, config),
    )
    results = evaluate_bounds(
        vae,
        dataset,
        num_samples=args.num_samples,
        memory_budget=int(args.memory_budget * 2**30),
        max_examples=args.max_examples,
        verbose=0 if args.json else 1,
    )
    results["split"] = args.split
    if args.output:
        run_dir.write_json(args.output, results)
    if run_dir.metrics.exists():
        metrics = run_dir.read_json(run_dir.metrics)
        run_dir.write_json(run_dir.metrics, {**metrics, "evaluation": results})
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results.items():
            print(
                f"{name:>16}  {value:.4f}" if isinstance(value, float) else f"{name:>16}  {value}"
            )
    return 0
