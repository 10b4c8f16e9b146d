"""`keras-vae diagnose`: the variance and SNR of gradient estimators on a trained run."""

from pathlib import Path

from keras_vae.cli.arguments import data_dirs, non_negative_int, output_file, positive_int
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "diagnose", help="gradient variance and SNR of each estimator, at the run's weights"
    )
    parser.add_argument("--run-dir", required=True)
    parser.add_argument(
        "--estimators",
        help="comma-separated estimators (default: those that apply to the run's objective)",
    )
    parser.add_argument(
        "--num-draws", type=positive_int, default=100, help="gradient draws (default 100)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=100, help="examples per draw")
    parser.add_argument(
        "--baseline-batches",
        type=non_negative_int,
        default=200,
        help="training batches to fit a new score-function estimator's baselines (default 200)",
    )
    parser.add_argument(
        "--output", type=output_file(".png"), help="the PNG (default: RUN/gradient_variance.png)"
    )
    parser.add_argument("--manual-dir", help="default: the run's")
    parser.add_argument("--data-dir", help="default: the run's")
    parser.set_defaults(run=run)


def run(args):
    import itertools

    from keras_vae import data, diagnostics, estimators, plots

    if args.num_draws < 2:
        raise ValueError(f"--num-draws must be at least 2; got {args.num_draws}.")
    run_dir = RunDir(args.run_dir)
    config = run_dir.read_json(run_dir.config)
    vae = run_dir.load_model()
    load = dict(
        name=config["dataset"],
        preprocessing=config["preprocessing"],
        validation_size=config["validation_size"],
        **data_dirs(args, config),
    )
    x = data.take(count=args.batch_size, seed=1, **load).numpy()
    if args.estimators:
        names = args.estimators.split(",")
    else:
        names = [n for n, cls in estimators.ESTIMATORS.items() if vae.objective in cls.objectives]
    chosen = {}
    for name in names:
        if name == vae.estimator.identifier:  # keeps the baselines it learned in training
            chosen[name] = vae.estimator
            continue
        chosen[name] = diagnostics.prepared(vae, name)
        if chosen[name].weights:  # baselines, fitted at the run's weights
            batches = data.load(split="train", batch_size=args.batch_size, seed=2, **load)
            batches = (b.numpy() for b in itertools.islice(batches, args.baseline_batches))
            diagnostics.fit_baselines(vae, chosen[name], batches)
    statistics = diagnostics.gradient_variance(vae, x, chosen, num_draws=args.num_draws)
    print(f"{'estimator':<20} {'group':<11} {'parameters':>10} {'variance':>12} {'mean SNR':>10}")
    for label, groups in statistics.items():
        for group, stats in groups.items():
            summary = stats.summary()
            print(
                f"{label:<20} {group:<11} {summary['parameters']:>10} "
                f"{summary['total_variance']:>12.4g} {summary['mean_snr']:>10.4g}"
            )
    output = Path(args.output) if args.output else run_dir.root / "gradient_variance.png"
    title = f"{run_dir.root.name}: {args.num_draws} draws on {args.batch_size} test examples"
    plots.gradient_variance(statistics, output, title=title)
    print(f"figure in {output}")
    return 0
