"""Approximate posterior families q(z|x)."""

from keras_vae.posteriors.diagonal_normal import DiagonalNormal
from keras_vae.posteriors.full_covariance_normal import FullCovarianceNormal
from keras_vae.posteriors.inverse_autoregressive_flow import InverseAutoregressiveFlow
from keras_vae.posteriors.posterior import Posterior

__all__ = ["DiagonalNormal", "FullCovarianceNormal", "InverseAutoregressiveFlow", "Posterior"]
