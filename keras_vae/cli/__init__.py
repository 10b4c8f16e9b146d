"""The `keras-vae` command line: train, evaluate, sample, plot, export and convert.

Each subcommand lives in its own module with `add_parser(subparsers)`, which
registers its flags and sets `run(args)`. Errors are one line on stderr and
exit code 2; `--debug` shows the traceback.
"""

import argparse
import importlib
import sys

__all__ = ["main"]

COMMANDS = ("train", "evaluate", "sample", "plot", "export", "convert")


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def build_parser():
    parser = Parser(prog="keras-vae", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"keras_vae.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return args.run(args) or 0
    except KeyboardInterrupt:
        # Every file is written atomically and each epoch is backed up: the run resumes.
        print("keras-vae: interrupted; the same command resumes", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as error:
        if debug:
            raise
        message = " ".join(str(error).split())
        print(
            message if message.startswith("keras-vae") else f"keras-vae: error: {message}",
            file=sys.stderr,
        )
        return 2
