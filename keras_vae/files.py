"""Atomic file writes: no reader, and no run resumed after a kill, sees half a file.

Every file the package writes goes through `atomic_path`: the writer writes
a temporary file beside its target (`.partial.<name>`, in the same folder so
the rename stays on one file system), which is then fsynced and renamed over
the target with `os.replace`, atomic on POSIX; the folder is fsynced last so
the rename itself survives a power cut. After a kill the target is either
the old file or the new one, plus at most a stale `.partial.<name>` that the
next write of the same target replaces and `remove_partials` sweeps away.

The temporary name keeps the target's extension, so writers that choose a
format by it (`model.save`, `save_weights`, `matplotlib`) work unchanged.

Example:

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_json(folder / "metrics.json", {"elbo": -90.5})
>>> (folder / "metrics.json").read_text()
'{\\n  "elbo": -90.5\\n}\\n'
>>> with atomic_path(folder / "notes.txt") as partial:
...     _ = partial.write_text("written whole or not at all")
>>> sorted(path.name for path in folder.iterdir())
['metrics.json', 'notes.txt']
"""

import contextlib
import json
import os
import shutil
from pathlib import Path

from keras_vae import faults

__all__ = [
    "PARTIAL_PREFIX",
    "atomic_path",
    "partial_path",
    "remove_partials",
    "save_model",
    "save_weights",
    "write_bytes",
    "write_json",
    "write_text",
]

PARTIAL_PREFIX = ".partial."


def partial_path(path):
    """The temporary path `path` is written to before it is renamed."""
    path = Path(path)
    return path.with_name(PARTIAL_PREFIX + path.name)


@contextlib.contextmanager
def atomic_path(path, fault=None):
    """Yields a temporary path beside `path`; once written, it replaces `path`.

    If the block raises, the temporary file is removed and `path` is left as
    it was. A folder may be written too (e.g. a SavedModel), if `path` does
    not exist or is an empty folder.

    Args:
        path: The file (or folder) to write.
        fault: The name of the `keras_vae.faults` point to pass between the
            write and the rename, if any.
    """
    path = Path(path)
    partial = partial_path(path)
    _remove(partial)
    try:
        yield partial
        _fsync(partial)
        if fault is not None:
            faults.point(fault)
        os.replace(partial, path)
    except BaseException:
        _remove(partial)
        raise
    _fsync(path.parent)


def write_bytes(path, data, fault=None):
    """Writes `data` to `path` atomically."""
    with atomic_path(path, fault) as partial:
        partial.write_bytes(data)


def write_text(path, text, fault=None):
    """Writes `text` to `path` atomically."""
    write_bytes(path, text.encode(), fault)


def write_json(path, data, fault=None):
    """Writes `data` as indented JSON with sorted keys to `path` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", fault)


def save_model(model, path, fault=None):
    """`model.save(path)` (a `.keras` file), atomically."""
    with atomic_path(path, fault) as partial:
        model.save(str(partial))


def save_weights(model, path, fault=None):
    """`model.save_weights(path)` (a `.weights.h5` file), atomically."""
    with atomic_path(path, fault) as partial:
        model.save_weights(str(partial))


def remove_partials(folder):
    """Removes the temporary files that killed writes left in `folder` (not recursive)."""
    for partial in Path(folder).glob(PARTIAL_PREFIX + "*"):
        _remove(partial)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fsync(path):
    """Flushes a file, or a folder's entries and (recursively) its files, to disk."""
    if path.is_dir():
        for child in path.iterdir():
            _fsync(child)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
