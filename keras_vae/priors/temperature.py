"""Draws from a prior with its noise scaled by a temperature.

A prior's draw is a deterministic map of standard-normal noise (and, for a
mixture, of a component index): z = f(eps). Sampling "at temperature T" draws
z = f(T * eps) (Kingma & Dhariwal, 2018): T < 1 keeps to the typical region
of p(z), T = 0 gives its modes (the component means of a mixture), T > 1
spreads wider. TFP distributions hide their noise, so `tempered_sample` takes
them apart by type:

    Normal, MultivariateNormal*:   z = loc + T * (x - loc),   x ~ p
    Sample(Normal):                as Normal
    Independent(d):                as d
    TransformedDistribution(d, f): z = f(tempered draw of d)
    MixtureSameFamily(w, p_k):     k ~ Categorical(w), then a tempered draw of p_k

The mixture weights are not tempered: each component is narrowed, none favoured.
"""

import numbers
import sys

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["tempered_sample"]

tfd = tfp.distributions


def _kinds(*classes):
    """The classes with their non-composite twins (`_Independent`, ...), which TFP builds
    instead when a part (say a custom bijector) is not a `CompositeTensor`."""
    twins = (getattr(sys.modules[cls.__module__], f"_{cls.__name__}", None) for cls in classes)
    return classes + tuple(twin for twin in twins if isinstance(twin, type))


_LOCATION_SCALE = _kinds(tfd.Normal, tfd.MultivariateNormalLinearOperator)
_MIXTURE = _kinds(tfd.MixtureSameFamily)
_TRANSFORMED = _kinds(tfd.TransformedDistribution)
_INDEPENDENT = _kinds(tfd.Independent)
_SAMPLE = _kinds(tfd.Sample)


def tempered_sample(distribution, num, temperature=1.0, seed=None):
    """`num` draws of `distribution` with its standard-normal noise scaled by `temperature`.

    Args:
        distribution: A TFP distribution built as listed in the module's docstring.
        num: Number of draws.
        temperature: A number >= 0; 1 draws from `distribution` itself.
        seed: A stateless seed (an int32 pair) or None.

    Returns:
        A tensor of shape `(num, *batch_shape, *event_shape)`.

    Raises:
        ValueError: for a temperature other than 1 on a distribution whose noise it cannot
            scale, naming the distribution.

    Example:

    >>> import numpy as np
    >>> prior = tfd.MultivariateNormalDiag(loc=[1.0, -1.0], scale_diag=[2.0, 2.0])
    >>> z = tempered_sample(prior, 20000, temperature=0.5, seed=(0, 1))
    >>> bool(np.allclose(np.std(z, axis=0), 1.0, atol=0.03))
    True
    """
    check_temperature(temperature)
    if temperature == 1:
        return distribution.sample(num, seed=seed)
    if _is_location_scale(distribution):
        loc = distribution.mean()
        return loc + temperature * (distribution.sample(num, seed=seed) - loc)
    if isinstance(distribution, _MIXTURE):
        index_seed, component_seed = tfp.random.split_seed(seed, n=2)
        index = distribution.mixture_distribution.sample(num, seed=index_seed)  # (num, ...)
        # (num, ..., num_components, *event_shape): every component drawn, the chosen one kept.
        draws = tempered_sample(
            distribution.components_distribution, num, temperature, component_seed
        )
        return tf.gather(draws, index, axis=index.shape.rank, batch_dims=index.shape.rank)
    if isinstance(distribution, _TRANSFORMED):
        base = tempered_sample(distribution.distribution, num, temperature, seed)
        return distribution.bijector.forward(base)
    if isinstance(distribution, _INDEPENDENT):
        return tempered_sample(distribution.distribution, num, temperature, seed)
    raise ValueError(
        "Expected a prior whose draws are a location plus scaled standard-normal noise "
        "(Normal, MultivariateNormal*, or a Sample, Independent, TransformedDistribution or "
        "MixtureSameFamily of them) to sample at a temperature other than 1. Received: a "
        f"{type(distribution).__name__} at temperature={temperature!r}"
    )


def _is_location_scale(distribution):
    # TFP builds a MultivariateNormal* as a TransformedDistribution: it is matched here first.
    if isinstance(distribution, _SAMPLE):
        distribution = distribution.distribution
    return isinstance(distribution, _LOCATION_SCALE)


def check_temperature(temperature):
    """Raises `ValueError` unless `temperature` is a finite number >= 0."""
    valid = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not (valid and 0 <= temperature < float("inf")):
        raise ValueError(
            "Expected `temperature` to be a finite number >= 0. "
            f"Received: temperature={temperature!r}"
        )
