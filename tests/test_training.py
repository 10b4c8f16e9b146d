"""`fit_run` and its backups: divergence, damaged backups, resumed history."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_vae

from keras_vae.backup import BackupAndRestore, BackupError
from keras_vae.run_dir import RunDir
from keras_vae.training import TrainingDiverged, elbo_drop, fit_run, read_history

STEPS = 3


def train_data():
    x = np.random.default_rng(0).uniform(size=(24, 6)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(x).batch(8).repeat()


def fit(run_dir, epochs, **kwargs):
    vae = tiny_vae()
    fit_run(vae, train_data(), run_dir, epochs, steps_per_epoch=STEPS, verbose=0, **kwargs)
    return vae


class PoisonAt(keras.callbacks.Callback):
    """Sets a kernel to NaN before step `step` of epoch `epoch` (both from 0)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch, self.kept = (epoch, step), None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if epoch == self.at[0]:
            self.kept = [w.numpy() for w in self.model.weights]

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            kernel = self.model.trainable_weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_a_nan_in_epoch_3_keeps_the_last_finite_model(tmp_path):
    run_dir = RunDir(tmp_path)
    poison = PoisonAt(epoch=2, step=1)
    vae = tiny_vae()
    with pytest.raises(TrainingDiverged, match="at epoch 3, step 2") as caught:
        fit_run(vae, train_data(), run_dir, 5, steps_per_epoch=STEPS, verbose=0, callbacks=[poison])
    assert (caught.value.epoch, caught.value.step) == (3, 2) and math.isnan(caught.value.loss)
    assert "\n" not in str(caught.value)
    # The model in memory, model.keras and the backup all hold the weights epoch 3 started from.
    for weights in (vae.weights, run_dir.load_model().weights):
        for mine, kept in zip(weights, poison.kept, strict=True):
            np.testing.assert_array_equal(np.asarray(mine), kept)
    assert json.loads((run_dir.backup / "training_metadata.json").read_text())["epoch"] == 2
    assert [row["epoch"] for row in read_history(run_dir.history)] == ["0", "1"]
    assert not run_dir.metrics.exists()


def test_backups_fall_back_to_the_previous_copy(tmp_path):
    run_dir = RunDir(tmp_path)
    fit(run_dir, 2, keep_backup=True)
    record = run_dir.backup / "training_metadata.json"
    weights = run_dir.backup / json.loads(record.read_text())["weights"]

    def restored_epoch():
        vae = tiny_vae()
        backup = BackupAndRestore(run_dir.backup)
        backup.set_model(vae)
        return backup.restore()

    assert restored_epoch() == 2
    good = weights.read_bytes()
    weights.write_bytes(good[:96])  # Torn weights: the record's checksum tells.
    assert restored_epoch() == 1
    weights.write_bytes(good)
    record.write_text("")  # An empty record.
    assert restored_epoch() == 1
    (run_dir.backup / "training_metadata.json.bkp").write_text("{")
    with pytest.raises(BackupError) as caught:
        restored_epoch()
    message = str(caught.value)
    assert "\n" not in message
    assert f"The backup in {run_dir.backup} is damaged and has no usable copy" in message
    assert "delete that folder to train from the start" in message


def test_weights_without_a_record_are_not_a_backup(tmp_path):
    # A kill during the first backup leaves its weights, never its record: start afresh.
    run_dir = RunDir(tmp_path)
    run_dir.backup.mkdir(parents=True)
    (run_dir.backup / "epoch-1.weights.h5").write_bytes(b"\x89HDF" + bytes(92))
    vae = fit(run_dir, 2)
    assert int(vae.optimizer.iterations) == 2 * STEPS
    assert [row["epoch"] for row in read_history(run_dir.history)] == ["0", "1"]
    assert not run_dir.backup.exists()


def test_a_resumed_run_logs_each_epoch_once(tmp_path):
    run_dir = RunDir(tmp_path)
    fit(run_dir, 2, keep_backup=True)
    # Epoch 2 logged by a run killed before its backup committed it.
    rows = read_history(run_dir.history)
    run_dir.history.write_text(run_dir.history.read_text() + "2," + ",".join(["1"] * 8) + "\n")
    vae = fit(run_dir, 3)
    assert int(vae.optimizer.iterations) == 3 * STEPS
    resumed = read_history(run_dir.history)
    assert [row["epoch"] for row in resumed] == ["0", "1", "2"]
    assert resumed[:2] == rows and resumed[2]["elbo"] != "1"


def test_model_keras_is_the_best_epoch(tmp_path):
    run_dir = RunDir(tmp_path)
    validation = train_data().take(1)
    vae = tiny_vae()
    fit_run(
        vae,
        train_data(),
        run_dir,
        4,
        validation,
        steps_per_epoch=STEPS,
        verbose=0,
        keep_backup=True,
    )
    losses = [float(row["val_loss"]) for row in read_history(run_dir.history)]
    best = json.loads((run_dir.backup / "training_metadata.json").read_text())["best"]
    assert (best["epoch"], best["value"]) == (int(np.argmin(losses)) + 1, min(losses))
    expected = tiny_vae()
    expected.load_weights(run_dir.backup / best["weights"])
    for mine, theirs in zip(run_dir.load_model().weights, expected.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_elbo_drop(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,elbo,val_elbo\n0,-250.0,-200.0\n1,-150.0,-120.0\n")
    assert elbo_drop(history, -110.0) is None
    assert elbo_drop(history, -215.0) is None  # 7.5% lower: within the margin.
    warning = elbo_drop(history, -2293226.75)
    assert "-2293226.75 is far below the first epoch's -200.00 (more than 10% lower)" in warning
    assert "learning rate" in warning
    assert elbo_drop(history, float("nan")) is not None


def test_a_backup_without_a_usable_copy_is_refused(tmp_path):
    run_dir = RunDir(tmp_path)
    run_dir.backup.mkdir(parents=True)
    (run_dir.backup / "training_metadata.json").write_text("")
    with pytest.raises(BackupError, match="delete that folder"):
        fit(run_dir, 2)
