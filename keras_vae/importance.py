"""Importance-sampled bounds on log p(x), computed in chunks that fit a memory budget.

With k draws z_1..z_k ~ q(z|x) and log-weights log w_i (see `objectives`),

    elbo = (1/k) sum_i log p(x|z_i) - KL(q(z|x) || p(z))
    iwae_k = log (1/k) sum_i w_i = logsumexp_chunks(logsumexp_i in chunk log w_i) - log k

so the k samples can be taken a chunk at a time and combined exactly. A chunk
is `examples x samples` rows of the decoder; its size comes from a memory
budget and the bytes one row of the model needs (`row_bytes`). The noise of
sample i of example j is a fixed function of the seed, i and j (a counter-based
Philox stream), so the results do not depend on the chunking.
"""

import dataclasses
import math
import weakref

import tensorflow as tf

from keras_vae import objectives
from keras_vae.validation import check_positive_int

__all__ = ["DEFAULT_MEMORY_BUDGET", "ChunkPlan", "bounds", "plan_chunks", "row_bytes"]

# 1 GiB: k = 5000 on a convolutional MNIST model stays well under 4 GB resident.
DEFAULT_MEMORY_BUDGET = 2**30


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How many examples and samples of z one compiled call evaluates."""

    examples: int
    samples: int


def bounds(vae, x, num_samples, memory_budget=DEFAULT_MEMORY_BUDGET, seed=None):
    """Per-example ELBO and IWAE bound from the same `num_samples` draws of z.

    Args:
        vae: A built `keras_vae.VAE`.
        x: A batch of data (array or eager tensor), or `{"x": x, "condition": c}`
            for a conditional VAE.
        num_samples: k, the draws of z per example.
        memory_budget: Bytes the chunks' intermediate tensors may take.
        seed: An integer for reproducible noise; the model's seed generator when None.

    Returns:
        A dict of `(batch,)` tensors: `elbo`, `reconstruction`, `kl` and `iwae`.

    Example:

    >>> import numpy as np, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> x = np.ones((3, 6), "float32")
    >>> small = bounds(vae, x, 40, memory_budget=200_000, seed=1)["iwae"]
    >>> large = bounds(vae, x, 40, seed=1)["iwae"]
    >>> bool(np.allclose(small, large, atol=1e-4))
    True
    """
    check_positive_int("num_samples", num_samples)
    # Cast as `terms` casts it, so that XLA merges the repeated encoder.
    x = tf.nest.map_structure(lambda value: tf.cast(value, tf.float32), x)
    num_examples = int(tf.nest.flatten(x)[0].shape[0])
    plan = plan_chunks(vae, num_examples, num_samples, memory_budget)
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=vae.stateless_seed(seed))
    results = []
    for start in range(0, num_examples, plan.examples):
        end = min(start + plan.examples, num_examples)
        chunks = []
        for first in range(0, num_samples, plan.samples):
            count = min(plan.samples, num_samples - first)
            noise = _noise(key, counter, first, count, num_examples, vae.latent_size)
            rows = tf.nest.map_structure(lambda value: value[start:end], x)  # noqa: B023
            chunks.append(_chunk_sums(vae, rows, noise[:, start:end]))
        results.append(
            {
                "log_sum_weights": tf.reduce_logsumexp(
                    tf.stack([chunk["log_sum_weights"] for chunk in chunks]), axis=0
                ),
                **{
                    name: tf.add_n([chunk[name] for chunk in chunks]) / num_samples
                    for name in ("reconstruction", "kl")
                },
            }
        )
    terms = {name: tf.concat([part[name] for part in results], 0) for name in results[0]}
    terms["elbo"] = terms["reconstruction"] - terms["kl"]
    terms["iwae"] = terms.pop("log_sum_weights") - math.log(num_samples)
    return terms


def _noise(key, counter, first, count, num_examples, latent_dim):
    """Standard-normal noise of samples `first..first+count-1` of every example.

    The noise of the k samples is one Philox stream laid out `(k, batch,
    latent_dim)`; a chunk of samples is a contiguous range of it, generated
    by moving the counter (4 normals per step) rather than drawing anew.
    """
    offset = first * num_examples * latent_dim
    size = count * num_examples * latent_dim
    counter = counter + tf.constant([offset // 4, 0], counter.dtype)
    noise = tf.raw_ops.StatelessRandomNormalV2(
        shape=[size + offset % 4], key=key, counter=counter, alg=1, dtype=tf.float32
    )
    return tf.reshape(noise[offset % 4 :], (count, num_examples, latent_dim))


@tf.function(jit_compile=True)
def _chunk_sums(vae, x, noise):
    """Sums over the samples of one chunk; `noise` is `(samples, examples, latent_dim)`."""
    terms = vae.terms(x, noise=noise, log_weights=True)
    # log p(x|z) = log w + log q(z|x) - log p(z). Taken from the log-weights rather than from
    # `terms["reconstruction"]`, which XLA would compute by a second pass over every pixel's
    # log-probability; the encoder and samples repeated here are merged with those of `terms`.
    parameters = vae.posterior_parameters(x)
    z = vae.reparameterize(parameters, noise)
    posterior = vae.posterior_distribution(parameters)
    log_ratio = objectives.log_density_ratio(posterior, vae.prior_distribution(), z)
    num_samples = tf.cast(tf.shape(noise)[0], tf.float32)
    return {
        "log_sum_weights": tf.reduce_logsumexp(terms["log_weights"], axis=0),
        "reconstruction": tf.reduce_sum(terms["log_weights"] + log_ratio, axis=0),
        "kl": terms["kl"] * num_samples,
    }


def plan_chunks(vae, num_examples, num_samples, memory_budget=DEFAULT_MEMORY_BUDGET):
    """The largest, evenly split chunks whose tensors fit `memory_budget` bytes.

    A chunk of E examples and S samples takes about
    `E * per_example + S * (E * per_row + num_examples * noise)` bytes
    (see `row_bytes`). Examples are split only when one sample of all of them
    does not fit.

    Example:

    >>> import keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.build((None, 6))
    >>> plan_chunks(vae, num_examples=100, num_samples=5000)
    ChunkPlan(examples=100, samples=5000)
    """
    check_positive_int("memory_budget", memory_budget)
    per_example, per_row = row_bytes(vae)
    noise = 4 * vae.latent_size  # float32 noise of one (example, sample), drawn for all examples
    examples = min(num_examples, (memory_budget - num_examples * noise) // (per_example + per_row))
    if examples < 1:
        needed = per_example + per_row + num_examples * noise
        raise ValueError(
            f"Expected `memory_budget` of at least {needed} bytes for one sample of one example "
            f"of this model and a batch of {num_examples}. Received: memory_budget={memory_budget}"
        )
    per_sample = examples * per_row + num_examples * noise
    samples = min(num_samples, (memory_budget - examples * per_example) // per_sample)
    # Even splits: at most two compiled shapes, and no tiny last chunk.
    examples = -(-num_examples // -(-num_examples // examples))
    samples = -(-num_samples // -(-num_samples // samples))
    return ChunkPlan(examples, samples)


_ROW_BYTES = weakref.WeakKeyDictionary()


def row_bytes(vae):
    """Bytes of intermediate tensors per example and per (example, sample) row.

    Measured on the model's own graph: `terms` is traced for 1x1, 2x1 and 1x2
    (examples x samples), and the sizes of every tensor it creates are summed.
    The differences are what one more example (the encoder, the posterior)
    and one more row (the decoder, the likelihood, the log-weights) add. This
    counts every intermediate as if none were freed or fused, so it bounds
    what XLA keeps alive from above.

    Returns:
        A pair `(per_example, per_row)` of integers.
    """
    if vae not in _ROW_BYTES:
        sizes = {shape: _graph_bytes(vae, *shape) for shape in ((1, 1), (2, 1), (1, 2))}
        per_row = sizes[1, 2] - sizes[1, 1]
        per_example = max(0, sizes[2, 1] - sizes[1, 1] - per_row)
        _ROW_BYTES[vae] = (per_example, max(1, per_row))
    return _ROW_BYTES[vae]


def _graph_bytes(vae, num_examples, num_samples):
    def log_weights(x, noise):
        return vae.terms(x, noise=noise, log_weights=True)["log_weights"]

    x = tf.TensorSpec((num_examples, *vae.data_shape), tf.float32)
    if vae.condition is not None:
        condition = tf.TensorSpec((num_examples, *vae.condition.shape), tf.float32)
        x = vae.join_inputs(x, condition)
    graph = (
        tf.function(log_weights)
        .get_concrete_function(
            x, tf.TensorSpec((num_samples, num_examples, vae.latent_size), tf.float32)
        )
        .graph
    )
    return sum(
        tensor.shape.num_elements() * tensor.dtype.size
        for op in graph.get_operations()
        for tensor in op.outputs
        if tensor.shape.is_fully_defined() and op.type not in ("Const", "ReadVariableOp")
    )
