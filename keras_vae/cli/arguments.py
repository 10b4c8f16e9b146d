"""Flag types and path checks shared by the subcommands, importable without TensorFlow.

The types refuse a value while the command line is parsed, before anything is computed or
TensorFlow imported, naming the flag (argparse adds it) and the value: `keras-vae evaluate:
error: argument --max-examples: expected a positive integer; received '-3'`. Output paths
are checked the same way, so a bad `--output` costs nothing and loses nothing.

Example:

>>> positive_int("3")
3
>>> positive_float("nan")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: expected a positive finite number; received 'nan'
"""

import argparse
import math
import tempfile
from pathlib import Path

__all__ = [
    "data_dirs",
    "non_negative_float",
    "non_negative_int",
    "output_dir",
    "output_file",
    "positive_float",
    "positive_int",
    "seed",
]

# NumPy's seeds, and so `keras.utils.set_random_seed`'s, are 32-bit unsigned.
MAX_SEED = 2**32 - 1


def _integer(text, low, high, expected):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}; received {text!r}")
    return value


def positive_int(text):
    """An integer >= 1 (a count)."""
    return _integer(text, 1, None, "a positive integer")


def non_negative_int(text):
    """An integer >= 0."""
    return _integer(text, 0, None, "a non-negative integer")


def seed(text):
    """A random seed: an integer in [0, 2**32 - 1]."""
    return _integer(text, 0, MAX_SEED, f"an integer from 0 to {MAX_SEED}")


def _float(text, low, expected, strict):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value > low if strict else value >= low)):
        raise argparse.ArgumentTypeError(f"expected {expected}; received {text!r}")
    return value


def positive_float(text):
    """A finite number > 0 (a rate)."""
    return _float(text, 0.0, "a positive finite number", strict=True)


def non_negative_float(text):
    """A finite number >= 0 (a weight)."""
    return _float(text, 0.0, "a non-negative finite number", strict=False)


def _existing_ancestor(path):
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(path, folder):
    """Creates and removes a file in `folder`: the only test that holds for root too."""
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".keras-vae-probe-"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot write {path}: {folder} is not writable ({error.strerror})"
        ) from None


def output_file(suffix=None):
    """The type of a file to write: `suffix` if given, writable (its folders are created later)."""

    def check(text):
        path = Path(text)
        if suffix is not None and path.suffix != suffix:
            raise argparse.ArgumentTypeError(f"expected a {suffix} file; received {text!r}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"expected a file to write; {text!r} is a folder")
        _check_writable(path, _existing_ancestor(path.parent))
        return path

    return check


def output_dir(text):
    """The type of a folder to write in (created later if need be)."""
    path = Path(text)
    _check_writable(path, _existing_ancestor(path))
    return path


def data_dirs(args, config):
    """`manual_dir` and `data_dir`: the flags if given, else those the run was trained with."""
    return {name: getattr(args, name) or config.get(name) for name in ("manual_dir", "data_dir")}
