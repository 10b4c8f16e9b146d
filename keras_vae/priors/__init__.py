"""Priors p(z)."""

from keras_vae.priors.mixture_of_normals import MixtureOfNormals
from keras_vae.priors.prior import Prior
from keras_vae.priors.standard_normal import StandardNormal
from keras_vae.priors.vamp_prior import VampPrior

__all__ = ["MixtureOfNormals", "Prior", "StandardNormal", "VampPrior"]
