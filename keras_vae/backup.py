"""Backups of a training run that survive a kill at any instant."""

import hashlib
import json
import shutil
from pathlib import Path

import keras

from keras_vae import faults, files

__all__ = ["BackupAndRestore", "BackupError"]

RECORD = "training_metadata.json"


class BackupError(ValueError):
    """No usable backup: the message says why and how to train from the start."""


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state after each epoch and restores it when `fit` starts again.

    Like `keras.callbacks.BackupAndRestore`, but safe against a kill at any
    instant. Each epoch's weights (with the optimizer's) go to their own file,
    `epoch-<n>.weights.h5`, written atomically and never rewritten. The epoch
    is committed when its record, `training_metadata.json`, replaces the
    previous one, which is kept as `training_metadata.json.bkp`: a record
    names its weights file and their SHA-256, so a torn or mismatched file is
    detected and the previous record is used instead. Weights files that no
    record names are deleted after each commit.

    With a `monitor`, the record also names the epoch with the lowest
    monitored value, whose weights are kept until a better epoch replaces
    them: `restore_best()` loads them once training ends.

    The folder is not deleted when training ends: call `remove()` once what
    the run produces from it is safely written.

    Args:
        backup_dir: The folder of the backup, used by this callback only.
        monitor: A metric to minimize (e.g. `"val_loss"`) to keep the best
            epoch's weights, or None.

    Example:

    >>> import numpy as np, tempfile, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.compile(optimizer="adam")
    >>> backup = BackupAndRestore(tempfile.mkdtemp())
    >>> x = np.random.default_rng(0).uniform(size=(8, 6)).astype("float32")
    >>> _ = vae.fit(x, epochs=2, callbacks=[backup], verbose=0)
    >>> backup.record()["epoch"]
    2
    """

    def __init__(self, backup_dir, monitor=None):
        super().__init__()
        self.backup_dir = str(backup_dir)
        self.monitor = monitor
        self.folder = Path(backup_dir)
        self.restored_epoch = None
        self.best = None

    def record(self, path=None):
        """The committed record (`path`, default the latest), checked against its weights.

        Raises:
            ValueError: If the record is unreadable or its weights are missing or damaged.
        """
        path = path or self.folder / RECORD
        try:
            record = json.loads(path.read_text())
            epoch = record["epoch"]
            weights = [(record["weights"], record["weights_sha256"])]
            if record["best"]:
                weights.append((record["best"]["weights"], record["best"]["sha256"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            message = f"{path.name} is unreadable ({type(error).__name__}: {error})"
            raise ValueError(message) from None
        if not (isinstance(epoch, int) and epoch >= 0):
            raise ValueError(f"{path.name} holds epoch={epoch!r}, not a count of epochs")
        for name, expected in weights:
            if _sha256(self.folder / name) != expected:
                raise ValueError(f"{name}, named by {path.name}, is missing or damaged")
        return record

    def restore(self):
        """Loads the newest usable backup into the model; returns its epoch (0 without one).

        Raises:
            BackupError: If the folder holds backups and none is usable.
        """
        problems = []
        for path in (self.folder / RECORD, self.folder / (RECORD + ".bkp")):
            if not path.exists():
                continue
            try:
                record = self.record(path)
                self._load(record["weights"])
            except (OSError, ValueError) as error:
                problems.append(str(error))
                continue
            self.best = record["best"]
            self.restored_epoch = self.model._initial_epoch = record["epoch"]
            return self.restored_epoch
        if problems:
            raise BackupError(
                f"The backup in {self.folder} is damaged and has no usable copy "
                f"({'; '.join(problems)}); delete that folder to train from the start."
            )
        self.restored_epoch = 0
        return 0

    def restore_best(self):
        """Loads the weights of the best epoch, if a `monitor` was given and an epoch logged it."""
        if self.best is not None:
            self._load(self.best["weights"])

    def remove(self):
        """Deletes the backup folder."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def on_train_begin(self, logs=None):
        if self.restored_epoch is None:
            self.restore()

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        files.save_weights(self.model, self.folder / name, fault="backup-weights")
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.best is None or value < self.best["value"]):
            self.best = {"epoch": epoch + 1, "value": float(value), "weights": name}
            self.best["sha256"] = _sha256(self.folder / name)
        latest = self.folder / RECORD
        if self._usable(latest):  # Never let a damaged record replace the good one.
            previous = latest.with_name(RECORD + ".bkp")
            files.write_bytes(previous, latest.read_bytes(), fault="backup-rotate")
        record = {"epoch": epoch + 1, "batch": 0, "weights": name, "best": self.best}
        record["weights_sha256"] = _sha256(self.folder / name)
        files.write_json(latest, record, fault="backup-metadata")
        self._remove_unnamed()
        faults.point("backup-done")

    def _usable(self, path):
        try:
            return bool(self.record(path))
        except ValueError:
            return False

    def _load(self, name):
        optimizer = getattr(self.model, "optimizer", None)  # None before `compile`
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)  # So its state is restored too.
        self.model.load_weights(self.folder / name)

    def _remove_unnamed(self):
        named = set()
        for path in self.folder.glob(RECORD + "*"):
            try:
                record = json.loads(path.read_text())
                named.update([record["weights"], (record["best"] or {}).get("weights")])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for path in self.folder.glob("*.weights.h5"):
            if path.name not in named:
                path.unlink()
        files.remove_partials(self.folder)


def _sha256(path):
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
