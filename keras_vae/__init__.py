"""Variational autoencoders for Keras 3, with TensorFlow Probability distributions.

Example:

>>> import keras_vae as kv
>>> vae = kv.VAE(kv.networks.MLP([500], "tanh"), kv.networks.MLP([500], "tanh"), latent_dim=20)
"""

from keras_vae import data, distribute, likelihoods, networks, objectives, posteriors, priors
from keras_vae.model import VAE
from keras_vae.objectives import bits_per_dim

__all__ = [
    "VAE",
    "bits_per_dim",
    "data",
    "distribute",
    "likelihoods",
    "networks",
    "objectives",
    "posteriors",
    "priors",
]
