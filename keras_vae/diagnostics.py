"""How noisy is each gradient estimator? Mean, variance and SNR of gradients at fixed weights.

A draw is the gradient of the training loss (the negative objective, averaged
over a batch) from fresh noise, the weights held fixed. Over D draws, for
each parameter theta_p:

    mean_p = (1/D) sum_d g_dp,   variance_p = (1/(D-1)) sum_d (g_dp - mean_p)^2
    snr_p = |mean_p| / sqrt(variance_p)

Draws are vectorized: the batch is tiled `draws_per_call` times, each copy
drawing its own noise, and one Jacobian (`tf.GradientTape.jacobian`, with
`pfor`) gives the per-copy gradients.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_vae import estimators as estimators_lib
from keras_vae.validation import check_data, check_positive_int

__all__ = ["GROUPS", "GradientStatistics", "fit_baselines", "gradient_variance"]

GROUPS = ("encoder", "posterior", "decoder", "likelihood", "prior")


@dataclasses.dataclass
class GradientStatistics:
    """Per-parameter mean and variance of a gradient estimator over `num_draws` draws.

    `mean` and `variance` are flat float64 arrays over a group's parameters.
    """

    mean: np.ndarray
    variance: np.ndarray
    num_draws: int

    @property
    def snr(self):
        """|mean| / std per parameter (inf where the variance is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(self.mean) / np.sqrt(self.variance)

    def summary(self):
        """Scalars for a table: the sum of variances (the covariance's trace) and mean SNR."""
        snr = self.snr
        return {
            "parameters": int(self.mean.size),
            "mean_norm": float(np.linalg.norm(self.mean)),
            "total_variance": float(self.variance.sum()),
            "mean_snr": float(np.mean(snr[np.isfinite(snr)])) if np.isfinite(snr).any() else 0.0,
        }


def parameter_groups(vae):
    """The trainable variables of each group with any, in `GROUPS` order."""
    groups = {name: getattr(vae, name).trainable_variables for name in GROUPS}
    return {name: variables for name, variables in groups.items() if variables}


def gradient_variance(
    vae,
    x,
    estimators=None,
    num_draws=100,
    draws_per_call=None,
    objective=None,
    num_samples=None,
    condition=None,
):
    """Mean, variance and SNR of each estimator's gradient, per parameter group.

    Args:
        vae: A built `keras_vae.VAE`; its weights are not changed.
        x: One batch of data: each draw is the gradient of the batch's mean loss.
        estimators: Names or `keras_vae.estimators.Estimator`s, or a dict from
            labels to them; by default those that apply to the objective.
            An estimator that holds baselines starts from its current state:
            the model's own has learned them, a new one may be fitted first
            with `fit_baselines`.
        num_draws: Draws of the gradient (at least 2).
        draws_per_call: Draws vectorized at once; by default as many as keep
            the Jacobian under about 256 MB.
        objective: Measure the gradient of this objective instead of the model's.
        num_samples: ... with this many samples of z per example.
        condition: The condition of each example, for a conditional VAE.

    Returns:
        A dict from estimator labels to dicts from group names (`GROUPS` with
        trainable weights) to `GradientStatistics`.

    Example:

    >>> import numpy as np, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> x = (np.random.rand(16, 4) < 0.5).astype("float32")
    >>> stats = gradient_variance(vae, x, ["reparameterization", "stl"], num_draws=10)
    >>> sorted(stats["stl"])
    ['decoder', 'likelihood', 'posterior']
    >>> stats["stl"]["posterior"].summary()["parameters"]
    8
    """
    if not (isinstance(num_draws, int) and num_draws >= 2):
        raise ValueError(f"Expected `num_draws` >= 2. Received: num_draws={num_draws!r}")
    x = tf.nest.map_structure(np.asarray, check_data(vae, x, condition))
    vae = with_objective(vae, objective, num_samples)
    if estimators is None:
        estimators = [
            name
            for name, cls in estimators_lib.ESTIMATORS.items()
            if vae.objective in cls.objectives
        ]
    if not isinstance(estimators, dict):
        estimators = {estimators_lib.get(e).identifier: e for e in estimators}
    groups = parameter_groups(vae)
    num_parameters = sum(int(np.prod(v.shape)) for vs in groups.values() for v in vs)
    if draws_per_call is None:
        draws_per_call = max(1, min(num_draws, 2**26 // num_parameters))
    check_positive_int("draws_per_call", draws_per_call)
    results = {}
    for label, estimator in estimators.items():
        estimator = prepared(vae, estimator)
        draws = jacobian_function(vae, estimator, groups, draws_per_call)
        accumulator = Accumulator()
        tiled = tf.nest.map_structure(
            lambda value: tf.constant(np.concatenate([value] * draws_per_call)),
            x,  # noqa: B023
        )
        while accumulator.count < num_draws:
            accumulator.add(draws(tiled)[: num_draws - accumulator.count])
        results[label] = accumulator.statistics(groups)
    return results


def with_objective(vae, objective=None, num_samples=None):
    """`vae`, or a copy with the same weights estimating another objective or sample count."""
    objective = vae.objective if objective is None else objective
    num_samples = vae.num_samples if num_samples is None else num_samples
    if (objective, num_samples) == (vae.objective, vae.num_samples):
        return vae
    config = {
        **vae.get_config(),
        "objective": objective,
        "num_samples": num_samples,
        "estimator": "reparameterization",
        "beta": 1.0,
        "free_bits": 0.0,
    }
    copy = type(vae).from_config(config)
    copy.build((None, *vae.data_shape))
    for name in GROUPS:
        for target, source in zip(
            getattr(copy, name).variables, getattr(vae, name).variables, strict=True
        ):
            target.assign(source)
    copy.seed_generator.state.assign(vae.seed_generator.state)
    return copy


def prepared(vae, estimator):
    """The estimator, built for `vae`'s data and checked against its objective."""
    estimator = estimators_lib.get(estimator)
    if vae.objective not in estimator.objectives:
        raise ValueError(
            f"Expected an estimator of the {vae.objective!r} objective. Received: "
            f"estimator={estimator.identifier!r}, which needs objective in {estimator.objectives}"
        )
    if not estimator.built:
        estimator.build(vae.data_shape)
    return estimator


def jacobian_function(vae, estimator, groups, draws_per_call):
    """A compiled function from a tiled batch to `(draws_per_call, num_parameters)` gradients."""
    variables = [v for vs in groups.values() for v in vs]

    @tf.function
    def draws(tiled):
        with tf.GradientTape() as tape:
            loss, _ = estimator.loss(vae, tiled, update=False)  # (draws * batch,)
            loss = tf.reduce_mean(tf.reshape(loss, (draws_per_call, -1)), axis=1)
        jacobians = tape.jacobian(loss, variables, experimental_use_pfor=True)
        flat = [
            tf.zeros((draws_per_call, int(np.prod(v.shape))))
            if j is None
            else tf.reshape(tf.cast(j, tf.float32), (draws_per_call, -1))
            for j, v in zip(jacobians, variables, strict=True)
        ]
        return tf.concat(flat, axis=1)

    return lambda tiled: draws(tiled).numpy().astype("float64")


class Accumulator:
    """Running sums of draws, shifted by the first draw against cancellation."""

    def __init__(self):
        self.count = 0

    def add(self, draws):
        if self.count == 0:
            self.shift = draws[0].copy()
            self.total = np.zeros_like(self.shift)
            self.squares = np.zeros_like(self.shift)
        centered = draws - self.shift
        self.total += centered.sum(axis=0)
        self.squares += np.square(centered).sum(axis=0)
        self.count += len(draws)

    def statistics(self, groups):
        mean = self.total / self.count
        variance = (self.squares - self.count * mean**2) / (self.count - 1)
        mean += self.shift
        results, start = {}, 0
        for name, variables in groups.items():
            size = sum(int(np.prod(v.shape)) for v in variables)
            results[name] = GradientStatistics(
                mean[start : start + size],
                np.maximum(variance[start : start + size], 0.0),
                self.count,
            )
            start += size
        return results


def fit_baselines(vae, estimator, batches, learning_rate=1e-3):
    """Trains an estimator's own weights (baselines) at the model's fixed weights.

    Each batch updates the running averages, and one Adam step on the
    estimator's trainable weights follows the gradient of the training loss
    (which reaches them only through their own loss term).

    Args:
        vae: A built `keras_vae.VAE`, left unchanged.
        estimator: An `Estimator` (a name gives a new one).
        batches: An iterable of data batches.
        learning_rate: Adam's.

    Returns:
        The estimator.
    """
    estimator = prepared(vae, estimator)
    optimizer = keras.optimizers.Adam(learning_rate)
    variables = estimator.trainable_variables

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(estimator.loss(vae, x, update=True)[0])
        if variables:
            optimizer.apply(tape.gradient(loss, variables), variables)

    for x in batches:
        step(tf.convert_to_tensor(x))
    return estimator
