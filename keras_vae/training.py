"""Training a VAE into a run directory, resumable after a kill at any instant.

Each epoch writes its files in one order: `history.csv`, then the backup,
whose record commits the epoch. A run started again restores the last
committed epoch and rolls the history back to it, so a kill anywhere loses
at most the epoch in progress. `model.keras` is written once, when training
ends, from the last (or best) committed weights.
"""

import csv
import io
import math

import keras

from keras_vae import files
from keras_vae.callbacks import ImageGrids
from keras_vae.distribute import BackupAndRestore
from keras_vae.run_dir import RunDir

__all__ = ["HistoryCSV", "StopOnNonFinite", "TrainingDiverged", "elbo_drop", "fit_run"]


class TrainingDiverged(FloatingPointError):
    """The loss became non-finite; the model holds the weights of the epoch's start.

    Args:
        epoch: The epoch of the non-finite loss, counting from 1 as Keras prints it.
        step: Its step within the epoch, counting from 1: the last step of
            the block of `steps_per_execution` steps in which it was seen.
        loss: The loss.
    """

    def __init__(self, epoch, step, loss):
        kept = f"the weights of epoch {epoch - 1}" if epoch > 1 else "the initial weights"
        super().__init__(
            f"training diverged: the loss was {loss} at epoch {epoch}, step {step}; {kept} are kept"
        )
        self.epoch, self.step, self.loss = epoch, step, loss


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` at the first non-finite loss and restores the epoch's starting weights.

    Unlike `keras.callbacks.TerminateOnNaN`, it raises `TrainingDiverged`
    before the epoch ends, so no callback logs, saves or backs up the epoch,
    and the model's (and optimizer's) variables are those the epoch started
    from, the last known finite ones.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.variables = self.model.variables + self.model.optimizer.variables
        self.values = [variable.numpy() for variable in self.variables]

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            for variable, value in zip(self.variables, self.values, strict=True):
                variable.assign(value)
            raise TrainingDiverged(self.epoch + 1, batch + 1, float(loss))


class HistoryCSV(keras.callbacks.Callback):
    """`keras.callbacks.CSVLogger(append=True)`, written atomically, each epoch once.

    Each epoch rewrites the whole file (through `keras_vae.files`), and the
    first epoch of a resumed `fit` first drops the rows of its own and later
    epochs, logged by a run killed before its backup committed them.

    Args:
        path: The CSV file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.rows = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is None:
            self.rows = [row for row in read_history(self.path) if int(row["epoch"]) < epoch]

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **(logs or {})})
        names = ["epoch", *sorted({name for row in self.rows for name in row} - {"epoch"})]
        text = io.StringIO()
        writer = csv.DictWriter(text, names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        files.write_text(self.path, text.getvalue(), fault="history")


def read_history(path):
    """The rows of a `history.csv` (none if it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


# A trained model's ELBO only rises after its first epoch: overfitting costs a few nats on
# MNIST (about 1%), the Monte Carlo error of a mean over the test split is well under 1 nat.
# A fall of more than 10% of the first epoch's value is beyond both; a diverging learning rate
# gives falls of thousands of times that.
ELBO_DROP = 0.1


def elbo_drop(history, final_elbo):
    """A warning if `final_elbo` ends more than 10% below the first epoch's, else None."""
    rows = read_history(history)
    name = "val_elbo" if rows and rows[0].get("val_elbo") else "elbo"
    first = float(rows[0][name]) if rows else math.nan
    if final_elbo < first - ELBO_DROP * abs(first) or not math.isfinite(final_elbo):
        return (
            f"the final ELBO {final_elbo:.2f} is far below the first epoch's {first:.2f} "
            f"(more than {ELBO_DROP:.0%} lower): training went wrong, likely too high a "
            "learning rate"
        )
    return None


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
    keep_backup=False,
    callbacks=(),
):
    """Fits `vae` with the callbacks of a run directory, resuming an interrupted fit.

    Backs up each epoch (so calling again after a kill resumes from the last
    epoch backed up), logs `history.csv`, TensorBoard scalars and image grids,
    and writes the model as `model.keras` once training ends: the epoch with
    the lowest validation loss when `select_best`, else the last. Under
    multi-worker training every worker passes its own `backup_dir`, and only
    the chief writes the other files.

    Args:
        vae: A compiled, built `keras_vae.VAE`.
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
        keep_backup: Whether to keep the backup once `model.keras` is written,
            for a caller that writes more files from the run and deletes it
            (`BackupAndRestore.remove`) once they are written.
        callbacks: More callbacks for `fit`, called before the backup.

    Returns:
        The `History` of this call.

    Raises:
        TrainingDiverged: At a non-finite loss. `model.keras` then holds the
            last finite weights (those the epoch started from), and the
            backup is kept.
    """
    run_dir = RunDir(run_dir)
    select_best = select_best and validation_data is not None
    backup = BackupAndRestore(backup_dir or run_dir.backup, "val_loss" if select_best else None)
    callbacks = [StopOnNonFinite(), *callbacks]
    if is_chief:
        callbacks += [HistoryCSV(run_dir.history), keras.callbacks.TensorBoard(str(run_dir.logs))]
        if examples is not None:
            callbacks.append(ImageGrids(run_dir.logs, examples))
    # Last, so an epoch is committed only once the others have logged it.
    callbacks.append(backup)

    def save_model():
        if is_chief:
            backup.restore_best()
            files.save_model(vae, run_dir.model, fault="model")

    try:
        history = vae.fit(
            train_data,
            shuffle=False,  # the pipeline shuffles
            epochs=epochs,
            validation_data=validation_data,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
    except TrainingDiverged:
        save_model()  # The last finite weights, restored by `StopOnNonFinite`.
        raise
    save_model()
    if not keep_backup:
        backup.remove()
    return history
