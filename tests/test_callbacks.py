"""KL warm-up and callbacks that set `beta`: each step's loss uses the beta set before it."""

import keras
import numpy as np
import pytest
from helpers import tiny_vae

import keras_vae as kv

BATCH, STEPS = 16, 4  # steps per epoch


def binary_data(num=BATCH * STEPS, dim=6, seed=0):
    return (np.random.default_rng(seed).random((num, dim)) < 0.4).astype("float32")


class StepRecorder(keras.callbacks.Callback):
    """Records, for each step, beta before it and the step's own loss, KL and reconstruction.

    Keras logs running means over the epoch; with equal batches, step n's own
    value is (n + 1) * mean_n - n * mean_{n-1}.
    """

    def __init__(self):
        super().__init__()
        self.restored_beta = None
        self.steps = []

    def on_train_begin(self, logs=None):
        self.restored_beta = float(self.model.beta)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.previous = epoch, None

    def on_train_batch_begin(self, batch, logs=None):
        self.beta = float(self.model.beta)

    def on_train_batch_end(self, batch, logs=None):
        means = {name: float(logs[name]) for name in ("loss", "kl", "reconstruction")}
        own = {
            name: (batch + 1) * value - batch * (self.previous or means)[name]
            for name, value in means.items()
        }
        self.previous = means
        self.steps.append({"epoch": self.epoch, "batch": batch, "beta": self.beta, **own})


class Interrupt(keras.callbacks.Callback):
    """Stops training with an error before step `batch` of `epoch`, as a kill would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def assert_losses_use_beta(steps):
    for step in steps:
        expected = step["beta"] * step["kl"] - step["reconstruction"]
        assert step["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-4), step


def test_kl_warmup_follows_its_schedule_across_a_resume(tmp_path):
    x = binary_data()
    warmup_epochs, target = 2, 0.5

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        vae = tiny_vae(seed=1)
        recorder = StepRecorder()
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        warmup = kv.callbacks.KLWarmup(warmup_epochs, target=target)
        try:
            vae.fit(
                x,
                batch_size=BATCH,
                epochs=3,
                shuffle=False,
                verbose=0,
                callbacks=[backup, warmup, recorder, *callbacks],
            )
        except KeyboardInterrupt:
            pass
        return recorder

    first = fit([Interrupt(epoch=1, batch=2)])
    second = fit([])  # a new process: new model, new callbacks, the same backup folder

    def schedule(epoch, batch):
        return target * min(1.0, (epoch * STEPS + batch) / (warmup_epochs * STEPS))

    positions = [(step["epoch"], step["batch"]) for step in first.steps]
    assert positions == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    # The backup after epoch 0 holds the beta of its last step, and training resumes at epoch 1.
    assert second.restored_beta == pytest.approx(schedule(0, 3))
    positions = [(step["epoch"], step["batch"]) for step in second.steps]
    assert positions == [(epoch, batch) for epoch in (1, 2) for batch in range(STEPS)]
    for step in first.steps + second.steps:
        assert step["beta"] == pytest.approx(schedule(step["epoch"], step["batch"]))
    assert [step["beta"] for step in second.steps[-STEPS:]] == [target] * STEPS
    assert_losses_use_beta(first.steps + second.steps)


@pytest.mark.parametrize("how", ["attribute", "variable"])
def test_a_callback_setting_beta_changes_the_next_step(how):
    x = binary_data()
    beta = keras.Variable(1.0) if how == "variable" else 1.0
    vae = tiny_vae(seed=1, beta=beta)
    assert not any(weight is vae.beta for weight in vae.trainable_weights)

    class SetBeta(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                if how == "variable":
                    beta.assign(0.0)
                else:
                    vae.beta = 0.0

    recorder = StepRecorder()
    vae.fit(x, batch_size=BATCH, epochs=1, verbose=0, callbacks=[SetBeta(), recorder])
    assert [step["beta"] for step in recorder.steps] == [1.0, 1.0, 0.0, 0.0]
    assert all(step["kl"] > 0.01 for step in recorder.steps)  # so beta matters
    assert_losses_use_beta(recorder.steps)


def test_kl_warmup_without_known_steps_is_per_epoch():
    warmup = kv.callbacks.KLWarmup(4, target=2.0)
    warmup.set_params({"steps": None, "epochs": 6})
    assert [warmup.beta_at(epoch, 3) for epoch in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_kl_warmup_refuses_bad_arguments_and_the_iwae_objective():
    with pytest.raises(ValueError, match="Expected `epochs` to be a positive integer"):
        kv.callbacks.KLWarmup(0)
    with pytest.raises(ValueError, match="Expected `target` to be non-negative"):
        kv.callbacks.KLWarmup(2, target=-1.0)
    vae = tiny_vae(objective="iwae", num_samples=2)
    with pytest.raises(ValueError, match="objective='elbo' for KLWarmup"):
        vae.fit(binary_data(), batch_size=BATCH, verbose=0, callbacks=[kv.callbacks.KLWarmup(2)])


def test_beta_setter_refuses_negative_values():
    vae = tiny_vae()
    with pytest.raises(ValueError, match="Received: beta=-1.0"):
        vae.beta = -1.0
