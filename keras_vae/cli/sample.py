"""`keras-vae sample`: a PNG grid of generated examples."""

from keras_vae import plots
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser("sample", help="write a grid of generated examples")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--output", required=True, help="a .png file")
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draw", action="store_true", help="draw x ~ p(x|z) instead of showing its mean"
    )
    parser.set_defaults(run=run)


def check_output(path):
    if not str(path).endswith(".png"):
        raise ValueError(f"--output must be a .png file; got {path}.")


def run(args):
    check_output(args.output)
    if args.num < 1:
        raise ValueError(f"--num must be positive; got {args.num}.")
    vae = RunDir(args.run_dir).load_model()
    plots.samples(vae, args.output, num=args.num, seed=args.seed, mean=not args.draw)
    print(f"wrote {args.output}")
    return 0
