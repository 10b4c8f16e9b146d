"""Observation models p(x|z)."""

from keras_vae.likelihoods.bernoulli import Bernoulli
from keras_vae.likelihoods.continuous_bernoulli import ContinuousBernoulli
from keras_vae.likelihoods.discretized_logistic_mixture import DiscretizedLogisticMixture
from keras_vae.likelihoods.likelihood import Likelihood
from keras_vae.likelihoods.normal import Normal

__all__ = [
    "Bernoulli",
    "ContinuousBernoulli",
    "DiscretizedLogisticMixture",
    "Likelihood",
    "Normal",
]
