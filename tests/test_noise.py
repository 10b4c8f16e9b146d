"""The reparameterization noise: ThreeFry inside XLA, Philox elsewhere, standard normal both."""

import numpy as np
import tensorflow as tf
from helpers import tiny_vae

from keras_vae.noise import noise_algorithm


def draws(vae, jit_compile):
    algorithms = []

    def draw():
        algorithms.append(noise_algorithm())
        return vae.standard_normal((2, 5000, 2))

    noise = tf.function(draw, jit_compile=jit_compile)().numpy()
    return algorithms, noise


def test_compiled_steps_draw_threefry_noise_that_is_standard_normal():
    vae = tiny_vae(seed=3)
    results = {jit: draws(vae, jit) for jit in (True, False)}
    assert results[True][0] == ["threefry"] and results[False][0] == ["philox"]
    for _, noise in results.values():
        noise = noise.ravel()  # 20,000 draws: standard errors 0.007 (mean), 0.005 (std)
        assert abs(noise.mean()) < 0.04 and abs(noise.std() - 1) < 0.03
        assert abs(np.mean(np.abs(noise) < 1.959964) - 0.95) < 0.01  # and the tails
    assert not np.allclose(results[True][1], results[False][1])


def test_an_xla_training_step_uses_threefry_and_one_replica_keeps_xla():
    x = (np.random.default_rng(0).random((32, 6)) < 0.5).astype("float32")
    vae = tiny_vae()
    seen = []
    standard_normal = vae.standard_normal
    vae.standard_normal = lambda shape: seen.append(noise_algorithm()) or standard_normal(shape)
    vae.compile(optimizer="adam")
    assert vae.jit_compile is True
    vae.fit(x, batch_size=16, epochs=1, verbose=0)
    assert seen and set(seen) == {"threefry"}  # each trace of the step
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        one_replica = tiny_vae()  # built in the scope
        one_replica.compile(optimizer="adam")  # jit_compile="auto"
    assert one_replica.jit_compile is True
    losses = one_replica.fit(x, batch_size=16, epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
