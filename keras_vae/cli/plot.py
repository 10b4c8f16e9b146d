"""`keras-vae plot`: reconstructions, the latent manifold, traversals, latents."""

import numpy as np

from keras_vae import data, plots
from keras_vae.cli.sample import check_output
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser("plot", help="write a figure of a trained run")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--kind", required=True, choices=plots.KINDS)
    parser.add_argument("--output", required=True, help="a .png file")
    parser.add_argument("--num", type=int, default=32, help="examples (reconstructions)")
    parser.add_argument("--manual-dir")
    parser.add_argument("--data-dir")
    parser.set_defaults(run=run)


def test_examples(config, args, count, with_labels):
    """The first `count` test examples, and their labels (None unless asked for)."""
    batch = data.take(
        config["dataset"],
        count,
        preprocessing=config["preprocessing"],
        seed=1,
        with_labels=with_labels,
        manual_dir=args.manual_dir,
        data_dir=args.data_dir,
    )
    x, labels = batch if with_labels else (batch, None)
    return np.asarray(x), labels


def run(args):
    check_output(args.output)
    run_dir = RunDir(args.run_dir)
    vae = run_dir.load_model()
    if args.kind == "manifold":
        plots.manifold(vae, args.output)
    else:
        config = run_dir.read_json(run_dir.config)
        count = {"latents": 2000, "traversals": 1}.get(args.kind, args.num)
        x, labels = test_examples(config, args, count, with_labels=args.kind == "latents")
        if args.kind == "reconstructions":
            plots.reconstructions(vae, x, args.output)
        elif args.kind == "traversals":
            plots.traversals(vae, x, args.output)
        else:
            plots.latents(vae, x, labels, args.output)
    print(f"wrote {args.output}")
    return 0
