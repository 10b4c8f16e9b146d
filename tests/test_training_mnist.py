"""A short real training run on binarized MNIST."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import MNIST_DIR, load_mnist

import keras_vae as kv

NUM_TRAIN, NUM_TEST, EPOCHS = 20_000, 2_000, 10


@pytest.mark.skipif(
    not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason=f"MNIST not found in {MNIST_DIR}",
)
def test_test_elbo_improves():
    # Statically binarized: each pixel is 1 with probability its grey level.
    rng = np.random.default_rng(0)
    x_train = load_mnist("train")[:NUM_TRAIN]
    x_test = load_mnist("t10k")[:NUM_TEST]
    x_train = (rng.random(x_train.shape) < x_train).astype("float32")
    x_test = (rng.random(x_test.shape) < x_test).astype("float32")

    keras.utils.set_random_seed(0)
    vae = kv.VAE(kv.networks.MLP([200], "tanh"), kv.networks.MLP([200], "tanh"), 20, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    history = vae.fit(
        x_train,
        batch_size=100,
        epochs=EPOCHS,
        validation_data=tf.data.Dataset.from_tensor_slices(x_test).batch(500),
        verbose=0,
    )
    seconds = time.perf_counter() - start
    test_elbo = history.history["val_elbo"]
    print(f"test ELBO by epoch {np.round(test_elbo, 1)} in {seconds:.1f} s")

    # Measured: -170.6 after the first epoch, -119.2 after the tenth.
    assert test_elbo[-1] > test_elbo[0] + 25
    assert test_elbo[-1] > -130
    assert max(test_elbo[-3:]) == max(test_elbo)
    # The reported metric is the per-example ELBO in nats.
    direct = np.mean([vae.elbo(x_test).numpy().mean() for _ in range(5)])
    assert abs(direct - test_elbo[-1]) < 1.0
