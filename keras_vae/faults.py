"""Named fault points: the places where a test may make `keras-vae` die.

In the manner of etcd's failpoints, the package calls `point(name)` at each
instant where a crash matters, and names every such instant here, once.
Setting the environment variable `KERAS_VAE_FAULT=<name>` (or
`<name>:<hit>`, to fire on the hit-th time the point is reached, counting
from 1) makes the process print one line to stderr and kill itself with
SIGKILL when it gets there: no `finally`, no `atexit`, no buffered write
survives, exactly as after `kill -9` or a power cut at that instant.

Unarmed, `point` returns after one comparison.

Example:

>>> from keras_vae import faults
>>> faults.point("metrics")  # Unarmed: does nothing.
>>> sorted(faults.POINTS)[:3]
['backup-done', 'backup-metadata', 'backup-rotate']
"""

import os
import signal
import sys

__all__ = ["ENV", "POINTS", "point"]

ENV = "KERAS_VAE_FAULT"

# Writes are atomic (`keras_vae.files`): a point named "while X is written" fires after the
# temporary file is written and before it replaces X, so X is as it was before the write.
POINTS = {
    "config": "while config.json is written",
    "backup-rotate": "while the last backup is copied to the .bkp files",
    "backup-weights": "while a backup's weights (latest.weights.h5) are written",
    "backup-metadata": "while a backup's commit record (training_metadata.json) is written",
    "backup-done": "after a backup is complete, at the end of an epoch",
    "history": "while history.csv is written",
    "model": "while model.keras is written",
    "train-end": "after the last epoch, before the final test evaluation",
    "evaluation": "during the final test evaluation, after its first batch",
    "metrics": "while metrics.json is written",
    "finish": "after metrics.json is written, before the backup folder is removed",
}


def _parse(value):
    """`(name, hit)` from `KERAS_VAE_FAULT`, or None when unset."""
    if not value:
        return None
    name, _, hit = value.partition(":")
    if name not in POINTS or not (hit == "" or hit.isdigit() and int(hit) > 0):
        raise ValueError(
            f"Expected {ENV} to be <point> or <point>:<hit> with a point among "
            f"{', '.join(POINTS)} and a positive hit. Received: {ENV}={value!r}"
        )
    return name, int(hit or 1)


_armed = _parse(os.environ.get(ENV))
_hits = 0


def point(name):
    """Kills this process with SIGKILL if `KERAS_VAE_FAULT` arms `name` for this hit."""
    global _hits
    if _armed is None or _armed[0] != name:
        return
    _hits += 1
    if _hits == _armed[1]:
        sys.stderr.write(f"keras-vae: fault point {name!r} (hit {_hits}): killed\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
