"""Chunked importance sampling: the results do not depend on the memory budget."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_vae

import keras_vae as kv
from keras_vae import importance, objectives

DATA_SHAPE = (6,)


def binary(num_examples, seed=0):
    return (np.random.default_rng(seed).random((num_examples, *DATA_SHAPE)) < 0.5).astype("float32")


@pytest.fixture(scope="module")
def vae():
    return tiny_vae(data_shape=DATA_SHAPE, latent_dim=3, seed=0)


def budget_for(vae, examples, samples, num_examples):
    """The smallest budget whose plan holds `examples x samples` per chunk."""
    per_example, per_row = importance.row_bytes(vae)
    noise = 4 * vae.latent_dim * num_examples
    return examples * per_example + samples * (examples * per_row + noise)


def test_results_do_not_depend_on_the_memory_budget(vae):
    x, num_samples = binary(8), 32
    plans = {  # one compiled shape each, but the last: examples 3, 3 and 2
        "one call": (8, 32),
        "chunks of samples": (8, 4),
        "chunks of examples and samples": (3, 1),
    }
    results = {}
    for name, (examples, samples) in plans.items():
        budget = budget_for(vae, examples, samples, len(x))
        plan = importance.plan_chunks(vae, len(x), num_samples, budget)
        assert plan.examples <= examples and plan.samples <= samples, name
        results[name] = importance.bounds(vae, x, num_samples, budget, seed=4)
    assert importance.plan_chunks(vae, 8, 32, budget_for(vae, 8, 32, 8)) == (
        importance.ChunkPlan(8, 32)
    )
    for name, result in results.items():
        for term in ("elbo", "reconstruction", "kl", "iwae"):
            np.testing.assert_allclose(
                result[term], results["one call"][term], rtol=1e-5, atol=1e-4, err_msg=name
            )
    # Another seed is other noise.
    other = importance.bounds(vae, x, num_samples, seed=5)["iwae"]
    assert not np.allclose(other, results["one call"]["iwae"], atol=1e-3)


def test_chunks_combine_into_the_bounds_of_all_samples(vae):
    """Against `terms` and `objectives.iwae_bound` on the same k samples at once."""
    x, num_samples, seed = binary(5, seed=1), 48, 9
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=vae.stateless_seed(seed))
    noise = importance._noise(key, counter, 0, num_samples, len(x), vae.latent_dim)
    terms = vae.terms(x, noise=noise, log_weights=True)
    budget = budget_for(vae, 2, 8, len(x))  # examples 2, 2 and 1 x 6 chunks of 8 samples
    chunked = importance.bounds(vae, x, num_samples, budget, seed=seed)
    expected = objectives.iwae_bound(terms["log_weights"])
    np.testing.assert_allclose(chunked["iwae"], expected, rtol=1e-5, atol=1e-4)
    for term in ("elbo", "reconstruction", "kl"):
        np.testing.assert_allclose(chunked[term], terms[term], rtol=1e-5, atol=1e-4)
    # The public methods are these bounds.
    np.testing.assert_allclose(vae.iwae_bound(x, num_samples, budget, seed), expected, atol=1e-4)
    np.testing.assert_allclose(vae.log_likelihood(x, num_samples, seed=seed), expected, atol=1e-4)
    np.testing.assert_allclose(vae.elbo(x, num_samples, seed=seed), terms["elbo"], atol=1e-4)


def test_noise_is_one_standard_normal_stream_whatever_the_chunk():
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=tf.constant([3, 4], tf.int32))
    # 3 examples x 3 latents: chunk offsets are not multiples of Philox's 4 normals per step.
    full = importance._noise(key, counter, 0, 20, 3, 3).numpy()
    assert full.shape == (20, 3, 3)
    for first, count in ((0, 1), (1, 1), (3, 5), (7, 13)):
        chunk = importance._noise(key, counter, first, count, 3, 3).numpy()
        np.testing.assert_array_equal(chunk, full[first : first + count])
    big = importance._noise(key, counter, 0, 20_000, 5, 2).numpy().ravel()
    # 200,000 draws: the mean's standard error is 0.0022, the variance's 0.0032.
    assert abs(big.mean()) < 0.01 and abs(big.var() - 1) < 0.015
    assert abs(np.mean(big**4) - 3) < 0.1  # normal kurtosis, not uniform's 1.8


def test_bounds_are_ordered_and_iwae_is_log_likelihood(vae):
    x = binary(64, seed=2)
    elbo = vae.elbo(x, seed=1).numpy().mean()
    iwae_5 = vae.iwae_bound(x, 5, seed=1).numpy().mean()
    iwae_50 = vae.iwae_bound(x, 50, seed=1).numpy().mean()
    log_likelihood = vae.log_likelihood(x, 500, budget_for(vae, 64, 50, 64), seed=1)
    # On this model the gaps are about 0.8, 0.5 and 0.07 nats, and each mean moves by
    # 0.02 to 0.06 nats from seed to seed.
    assert elbo < iwae_5 < iwae_50 < log_likelihood.numpy().mean() + 0.1
    budget = budget_for(vae, 64, 50, 64)
    np.testing.assert_array_equal(log_likelihood, vae.iwae_bound(x, 500, budget, seed=1))


def test_plans_fit_the_budget(vae):
    per_example, per_row = importance.row_bytes(vae)
    for num_examples, num_samples, budget in ((100, 5000, 2**20), (1000, 5, 2**17), (3, 1, 10**9)):
        plan = importance.plan_chunks(vae, num_examples, num_samples, budget)
        used = plan.examples * per_example + plan.samples * (
            plan.examples * per_row + 4 * vae.latent_dim * num_examples
        )
        assert used <= budget
        # The chunks cover the examples and samples in as few, even calls as fit.
        assert plan.examples <= num_examples and plan.samples <= num_samples
    assert importance.plan_chunks(vae, 3, 1, 10**9) == importance.ChunkPlan(3, 1)


def test_row_bytes_count_the_decoder_and_likelihood():
    mlp = kv.VAE(kv.networks.MLP([500]), kv.networks.MLP([500]), latent_dim=20)
    mlp.build((None, 784))
    conv = kv.VAE(kv.networks.ConvEncoder(), kv.networks.ConvDecoder((28, 28)), latent_dim=16)
    conv.build((None, 28, 28, 1))
    # At least the decoder's hidden layer and the 784 logits, in float32.
    assert importance.row_bytes(mlp)[1] >= 4 * (500 + 784)
    # At least the conv decoder's three layer outputs: 7x7x64, 14x14x64 and 28x28x32.
    assert importance.row_bytes(conv)[1] >= 4 * (7 * 7 * 64 + 14 * 14 * 64 + 28 * 28 * 32)


@pytest.mark.parametrize("budget", [0, -5, 2.5e9, 100])
def test_bad_budgets_are_refused(vae, budget):
    message = "at least" if budget == 100 else "positive integer"
    with pytest.raises(ValueError, match=f"memory_budget.*{message}|{message}.*memory_budget"):
        vae.log_likelihood(binary(2), 10, memory_budget=budget)


MEMORY_SCRIPT = """
import json, resource, sys
import numpy as np
import keras_vae as kv
from keras_vae import importance

budget = 8 * 2**20
vae = kv.VAE(
    kv.networks.ConvEncoder((4, 4), 16), kv.networks.ConvDecoder((28, 28), (4, 4)), latent_dim=4
)
x = (np.random.default_rng(0).random((20, 28, 28, 1)) < 0.3).astype("float32")
vae.build((None, 28, 28, 1))
plan = importance.plan_chunks(vae, 20, 1000, budget)
vae.log_likelihood(x, plan.samples, budget)  # compiles the chunk of the run below
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
estimate = vae.log_likelihood(x, 1000, budget).numpy()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": after - before, "finite": bool(np.isfinite(estimate).all())}))
"""


def test_conv_evaluation_stays_within_its_budget():
    """20 examples x 1000 samples of a conv model under an 8 MiB budget.

    Unchunked, the decoder's last layer alone holds 20,000 x 28 x 28 x 4
    floats (250 MB); at 100,000 rows an unchunked call of this model peaked at
    5.8 GB resident.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout.splitlines()[-1])
    assert measured["finite"]
    unchunked_last_layer = 20 * 1000 * 28 * 28 * 4 * 4
    assert measured["growth"] < unchunked_last_layer / 4, measured
