"""Training a VAE into a run directory, resumable after an interruption."""

import csv
import math

import keras

from keras_vae.callbacks import ImageGrids
from keras_vae.distribute import BackupAndRestore
from keras_vae.run_dir import RunDir

__all__ = ["fit_run"]


def best_validation_loss(history_path):
    """The lowest `val_loss` logged so far, so a resumed run keeps its best model."""
    if not history_path.exists():
        return None
    with open(history_path, newline="") as file:
        losses = [float(row["val_loss"]) for row in csv.DictReader(file) if row.get("val_loss")]
    losses = [loss for loss in losses if math.isfinite(loss)]
    return min(losses) if losses else None


def fit_run(
    vae,
    train_data,
    run_dir,
    epochs,
    validation_data=None,
    select_best=True,
    examples=None,
    is_chief=True,
    backup_dir=None,
    steps_per_epoch=None,
    verbose="auto",
):
    """Fits `vae` with the callbacks of a run directory.

    Writes `BackupAndRestore` state (so calling again after an interruption
    resumes from the last epoch), `history.csv`, TensorBoard scalars and image
    grids, and the model as `model.keras`: the one with the lowest validation
    loss when `select_best`, else the last. Under multi-worker
    training every worker passes its own `backup_dir`, and only the chief
    writes the other files.

    Args:
        vae: A compiled `keras_vae.VAE`.
        train_data: Training batches.
        run_dir: The run directory.
        epochs: Total number of epochs, counting those of an interrupted run.
        validation_data: Batches for the `val_*` metrics.
        select_best: Whether to keep the model with the lowest `val_loss`
            rather than the last (needs held-out `validation_data`).
        examples: A batch to show with its reconstructions in TensorBoard.
        is_chief: Whether this process writes the run's files.
        backup_dir: Where to keep the backup (default `run_dir/backup`).
        steps_per_epoch: Steps per epoch (default: one pass over `train_data`).
        verbose: Passed to `fit`.

    Returns:
        The `History` of this call.
    """
    run_dir = RunDir(run_dir)
    callbacks = [
        # Two alternating checkpoints: a kill while one is written leaves the other.
        BackupAndRestore(str(backup_dir or run_dir.backup), double_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if is_chief:
        select_best = select_best and validation_data is not None
        callbacks += [
            keras.callbacks.CSVLogger(str(run_dir.history), append=True),
            keras.callbacks.ModelCheckpoint(
                str(run_dir.model),
                monitor="val_loss",
                save_best_only=select_best,
                initial_value_threshold=best_validation_loss(run_dir.history)
                if select_best
                else None,
            ),
            keras.callbacks.TensorBoard(str(run_dir.logs)),
        ]
        if examples is not None:
            callbacks.append(ImageGrids(run_dir.logs, examples))
    return vae.fit(
        train_data,
        shuffle=False,  # the pipeline shuffles
        epochs=epochs,
        validation_data=validation_data,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
