"""Encoder and decoder networks: inputs to features."""

from keras_vae.networks.conv_decoder import ConvDecoder
from keras_vae.networks.conv_encoder import ConvEncoder
from keras_vae.networks.made import MADE
from keras_vae.networks.mlp import MLP

__all__ = ["MADE", "MLP", "ConvDecoder", "ConvEncoder"]
