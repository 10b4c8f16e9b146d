"""Evaluation the field reports: ELBO, IWAE bounds and importance-sampled log p(x)."""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_vae.importance import DEFAULT_MEMORY_BUDGET
from keras_vae.objectives import bits_per_dim

__all__ = ["evaluate_bounds"]


def evaluate_bounds(
    vae,
    dataset,
    num_samples=5000,
    iwae_samples=(5, 50),
    memory_budget=DEFAULT_MEMORY_BUDGET,
    max_examples=None,
    verbose=1,
):
    """Averages the bounds on log p(x) over a dataset.

    The ELBO uses one sample per example; `iwae_<k>` the IWAE bound with k
    samples; `log_likelihood` the importance-sampled estimate with
    `num_samples` samples (Burda et al., 2016, use k = 5000), so
    `elbo <= iwae_5 <= iwae_50 <= log_likelihood` up to Monte Carlo error.
    `nll` and `bits_per_dim` are the negated estimate in nats and in bits per
    data dimension; `nll_stderr` is the standard error of `nll` over examples.

    Args:
        vae: A trained `keras_vae.VAE`.
        dataset: Batches of data, or `(data, labels)` pairs: the labels are the
            condition of a conditional VAE, and unused otherwise.
        num_samples: k of the log-likelihood estimate.
        iwae_samples: The k of each IWAE bound to report.
        memory_budget: Bytes the intermediate tensors of one compiled call may
            take; examples x samples of z are evaluated in chunks that fit it.
        max_examples: Stop after this many examples (all when None).
        verbose: Whether to show a progress bar.

    Returns:
        A dict of floats, in nats per example unless named otherwise.

    Example:

    >>> import numpy as np, tensorflow as tf, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> data = tf.data.Dataset.from_tensor_slices(np.ones((4, 6), "float32")).batch(2)
    >>> results = evaluate_bounds(vae, data, num_samples=20, iwae_samples=(5,), verbose=0)
    >>> sorted(results)[:3]
    ['bits_per_dim', 'elbo', 'iwae_5']
    """
    sums = {}
    log_likelihoods = []
    progress = keras.utils.Progbar(max_examples, unit_name="example", verbose=verbose)
    for batch in dataset:
        x, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        # A conditional VAE's bounds are on log p(x|c), with the labels (or side input) as c.
        x = vae.join_inputs(x, labels)
        if max_examples is not None:
            x = tf.nest.map_structure(lambda value: value[: max_examples - len(log_likelihoods)], x)  # noqa: B023
        values = {"elbo": vae.elbo(x, memory_budget=memory_budget)}
        values.update({f"iwae_{k}": vae.iwae_bound(x, k, memory_budget) for k in iwae_samples})
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + float(np.sum(value))
        log_likelihoods.extend(np.asarray(vae.log_likelihood(x, num_samples, memory_budget)))
        progress.update(len(log_likelihoods), [("nll", -float(np.mean(log_likelihoods)))])
        if max_examples is not None and len(log_likelihoods) >= max_examples:
            break
    count = len(log_likelihoods)
    if count == 0:
        raise ValueError("Expected a dataset with at least one example. Received: an empty one.")
    log_likelihood = float(np.mean(log_likelihoods))
    num_dims = math.prod(vae.data_shape)
    return {
        **{name: total / count for name, total in sums.items()},
        "log_likelihood": log_likelihood,
        "nll": -log_likelihood,
        "nll_stderr": float(np.std(log_likelihoods, ddof=1) / math.sqrt(count))
        if count > 1
        else float("nan"),
        "bits_per_dim": float(bits_per_dim(log_likelihood, num_dims)),
        "num_examples": count,
        "num_samples": num_samples,
    }
