"""`keras-vae sample`: a PNG grid of generated examples."""

from keras_vae.cli.arguments import non_negative_float, output_file, positive_int, seed
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser("sample", help="write a grid of generated examples")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--output", required=True, type=output_file(".png"), help="a .png file")
    parser.add_argument("--num", type=positive_int, default=64)
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument(
        "--draw", action="store_true", help="draw x ~ p(x|z) instead of showing its mean"
    )
    parser.add_argument(
        "--temperature",
        type=non_negative_float,
        default=1.0,
        help="scale of the prior's noise (default 1; below 1: more typical samples)",
    )
    parser.set_defaults(run=run)


def run(args):
    from keras_vae import plots

    output = args.output
    vae = RunDir(args.run_dir).load_model()
    output.parent.mkdir(parents=True, exist_ok=True)
    plots.samples(
        vae, output, num=args.num, seed=args.seed, mean=not args.draw, temperature=args.temperature
    )
    print(f"wrote {output}")
    return 0
