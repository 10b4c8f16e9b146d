"""Steps run in XLA blocks train exactly as steps run one at a time."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_vae as kv
from keras_vae import fused_steps


def binary_data(num, dim=6, seed=0):
    return (np.random.default_rng(seed).random((num, dim)) < 0.4).astype("float32")


def trained(data, steps_per_execution, epochs=2, jit_compile="auto", **fit_kwargs):
    """A tiny VAE from fixed initial weights and noise seed, after `fit`."""
    keras.utils.set_random_seed(1)
    vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2, seed=3)
    vae.build((None, 6))
    vae.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    history = vae.fit(data, epochs=epochs, verbose=0, shuffle=False, **fit_kwargs)
    return vae, history


@pytest.mark.parametrize(
    "num, batch_size, steps_per_execution",
    [
        (104, 8, 5),  # 13 steps: blocks of 5, 5 and 3 (cut short by the data)
        (100, 8, "auto"),  # 12 steps in a block of 32 slots, then the short last batch alone
    ],
)
def test_blocks_train_exactly_as_single_steps(num, batch_size, steps_per_execution):
    data = binary_data(num)
    single, single_history = trained(data, 1, batch_size=batch_size)
    blocks, blocks_history = trained(data, steps_per_execution, batch_size=batch_size)
    assert single.train_function is not blocks.train_function
    assert int(blocks.optimizer.iterations) == int(single.optimizer.iterations)
    for single_weight, block_weight in zip(single.weights, blocks.weights, strict=True):
        np.testing.assert_array_equal(block_weight.numpy(), single_weight.numpy())
    assert blocks_history.history["loss"] == single_history.history["loss"]
    # Evaluation runs in blocks too, over every batch.
    assert blocks.evaluate(data, batch_size=batch_size, verbose=0, return_dict=True) == (
        single.evaluate(data, batch_size=batch_size, verbose=0, return_dict=True)
    )


def test_resident_arrays_keep_sample_weights_and_the_validation_split():
    data = binary_data(96)
    weights = np.random.default_rng(1).random(96).astype("float32")
    options = {"batch_size": 8, "sample_weight": weights, "validation_split": 0.25}
    single, single_history = trained(data, 1, **options)
    blocks, blocks_history = trained(data, 4, **options)
    assert blocks._block_functions and not single._block_functions
    assert int(blocks.optimizer.iterations) == 2 * 9  # 72 training examples per epoch
    assert blocks_history.history == single_history.history  # val_* on the same last 24
    for single_weight, block_weight in zip(single.weights, blocks.weights, strict=True):
        np.testing.assert_array_equal(block_weight.numpy(), single_weight.numpy())


def test_auto_never_runs_past_steps_per_epoch():
    data = tf.data.Dataset.from_tensor_slices(binary_data(64)).batch(8).repeat()
    vae, _ = trained(data, "auto", epochs=3, steps_per_epoch=10)
    assert int(vae.optimizer.iterations) == 30
    assert vae.steps_per_execution == 1  # "auto" again between fits


def test_batch_callbacks_see_each_block():
    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begins, self.ends = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.begins.append(batch)

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(batch)

    steps = Steps()
    trained(binary_data(96), 4, epochs=1, batch_size=8, callbacks=[steps])
    assert steps.begins == [0, 4, 8]
    assert steps.ends == [3, 7, 11]


def test_auto_is_one_step_without_xla():
    vae, _ = trained(binary_data(32), "auto", epochs=1, jit_compile=False, batch_size=8)
    assert not vae._block_functions  # Keras's own loop


def test_auto_steps_per_execution():
    class Model:
        jit_compile, run_eagerly = True, False
        distribute_strategy = tf.distribute.get_strategy()

    model = Model()
    assert fused_steps.auto_steps_per_execution(model) == fused_steps.AUTO_STEPS_PER_EXECUTION
    assert fused_steps.auto_steps_per_execution(model, steps=600) == 30
    assert fused_steps.auto_steps_per_execution(model, steps=37) == 1  # a prime above 32
    model.jit_compile = False
    assert fused_steps.auto_steps_per_execution(model, steps=600) == 1
    model.jit_compile, model.run_eagerly = True, True
    assert fused_steps.auto_steps_per_execution(model) == 1


@pytest.mark.parametrize("value", [0, -2, 1.5, "fast", None])
def test_compile_refuses_bad_steps_per_execution(value):
    vae = kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), latent_dim=2)
    with pytest.raises(ValueError, match="steps_per_execution"):
        vae.compile(optimizer="adam", steps_per_execution=value)


def test_auto_survives_saving(tmp_path):
    vae, _ = trained(binary_data(32), "auto", epochs=1, batch_size=8)
    assert vae.get_compile_config()["steps_per_execution"] == "auto"
    vae.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.auto_steps
    loaded.fit(binary_data(64, seed=1), batch_size=8, verbose=0)
    assert int(loaded.optimizer.iterations) == 4 + 8


def test_one_replica_strategy_runs_blocks():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    data = binary_data(100)
    single, _ = trained(data, 1, batch_size=8)
    with strategy.scope():
        keras.utils.set_random_seed(1)
        vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2, seed=3)
        vae.build((None, 6))
        vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    vae.fit(data, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert vae._block_functions
    for single_weight, weight in zip(single.weights, vae.weights, strict=True):
        np.testing.assert_allclose(weight.numpy(), single_weight.numpy(), rtol=1e-5, atol=1e-6)
