"""The `keras-vae` command line: train, evaluate, sample, plot, export, convert and diagnose.

Each subcommand lives in its own module with `add_parser(subparsers)`, which registers its
flags and sets `run(args)`. Building the parser imports no TensorFlow (each `run` imports
what it needs), so `--help` answers at once. Expected failures (bad flags, bad or damaged
files, missing data) are one line on stderr and exit code 2; Ctrl-C is one line and exit
code 130; anything else is a bug and keeps its traceback. `--debug` shows every traceback.
"""

import os

# Before anything imports TensorFlow, whose C++ runtime reads it once, at start-up. Level 3
# also drops its error records (such as "failed call to cuInit" on a machine without a GPU):
# a failure reaches the user as a Python exception. Set the variable to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

__all__ = ["UsageError", "main"]

COMMANDS = ("train", "evaluate", "sample", "plot", "export", "convert", "diagnose")


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


# What a user can cause and fix: flags, files (missing, damaged, unwritable), data.
EXPECTED_ERRORS = (UsageError, ValueError, OSError)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


class Version(argparse.Action):
    """`--version`: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        import importlib.metadata

        try:
            version = importlib.metadata.version("keras-vae")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        print(f"{parser.prog} {version}")
        parser.exit()


def build_parser():
    parser = Parser(prog="keras-vae", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action=Version)
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"keras_vae.cli.{name}")
        module.add_parser(subparsers)
    return parser


def import_tensorflow(quiet=True):
    """Imports TensorFlow, dropping what its C++ runtime prints before logging is set up.

    Those records (oneDNN, CUDA drivers; each library printed twice) reach stderr before
    TensorFlow reads `TF_CPP_MIN_LOG_LEVEL`, so only closing stderr during the import
    silences them.
    """
    if "tensorflow" in sys.modules or not quiet:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def one_line(error):
    message = " ".join(str(error).split()) or type(error).__name__
    return message if message.startswith("keras-vae") else f"keras-vae: error: {message}"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    args = None
    try:
        args = build_parser().parse_args(argv)
        import_tensorflow(quiet=not debug)
        return args.run(args) or 0
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        print(one_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        # Every file is written atomically and each epoch is backed up: a run resumes.
        train = getattr(args, "command", None) == "train"
        resume = "; the same command resumes" if train else ""
        print(f"keras-vae: interrupted{resume}", file=sys.stderr)
        return 130
