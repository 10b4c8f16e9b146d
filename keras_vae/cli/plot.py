"""`keras-vae plot`: reconstructions, the latent manifold, traversals, latents."""

from keras_vae.choices import FIGURES
from keras_vae.cli.arguments import data_dirs, output_file, positive_int
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser("plot", help="write a figure of a trained run")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--kind", required=True, choices=FIGURES)
    parser.add_argument("--output", required=True, type=output_file(".png"), help="a .png file")
    parser.add_argument("--num", type=positive_int, default=32, help="examples (reconstructions)")
    parser.add_argument("--manual-dir", help="default: the run's")
    parser.add_argument("--data-dir", help="default: the run's")
    parser.set_defaults(run=run)


def test_examples(config, args, count, with_labels):
    """The first `count` test examples, and their labels (None unless asked for)."""
    import numpy as np

    from keras_vae import data

    batch = data.take(
        config["dataset"],
        count,
        preprocessing=config["preprocessing"],
        seed=1,
        with_labels=with_labels,
        **data_dirs(args, config),
    )
    x, labels = batch if with_labels else (batch, None)
    return np.asarray(x), labels


def run(args):
    from keras_vae import plots

    output = args.output
    run_dir = RunDir(args.run_dir)
    vae = run_dir.load_model()
    conditional = vae.condition is not None
    if conditional and args.kind in ("manifold", "traversals"):
        raise ValueError(
            f"plot --kind {args.kind} decodes without a condition; this run is conditional "
            "on the label: write samples per class with `keras-vae sample`."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.kind == "manifold":
        plots.manifold(vae, output)
    else:
        config = run_dir.read_json(run_dir.config)
        count = {"latents": 2000, "traversals": 1}.get(args.kind, args.num)
        x, labels = test_examples(
            config, args, count, with_labels=args.kind == "latents" or conditional
        )
        x = vae.join_inputs(x, labels)  # a conditional VAE encodes x with its label
        if args.kind == "reconstructions":
            plots.reconstructions(vae, x, output)
        elif args.kind == "traversals":
            plots.traversals(vae, x, output)
        else:
            from keras_vae.data import label_names

            plots.latents(vae, x, labels, output, label_names(config["dataset"]))
    print(f"wrote {output}")
    return 0
