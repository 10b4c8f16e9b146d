"""A multilayer perceptron from inputs of any shape to features."""

import keras

from keras_vae.trainable import freeze_if_not_trainable
from keras_vae.validation import is_integer

__all__ = ["MLP"]


@keras.saving.register_keras_serializable(package="keras_vae")
class MLP(keras.layers.Layer):
    """Flattens its input, then applies `Dense` layers.

    The AEVB paper's encoder and decoder are `MLP([500], "tanh")`; the
    output is a feature vector that a family projects to its parameters.

    Args:
        hidden_units: Sizes of the hidden layers, in order.
        activation: Activation of every hidden layer.

    Example:

    >>> import numpy as np
    >>> MLP([16, 8])(np.zeros((2, 28, 28, 1), "float32")).shape
    TensorShape([2, 8])
    """

    def __init__(self, hidden_units, activation="relu", **kwargs):
        super().__init__(**kwargs)
        hidden_units = [int(units) if is_integer(units) else units for units in hidden_units]
        if not all(is_integer(units) and units > 0 for units in hidden_units):
            raise ValueError(
                "Expected `hidden_units` to be positive integers. "
                f"Received: hidden_units={hidden_units!r}"
            )
        self.hidden_units = hidden_units
        self.activation = activation
        # Sublayers take this layer's policy, which a loaded model gets from its config.
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        self.dense_layers = [
            keras.layers.Dense(
                units, activation=activation, dtype=self.dtype_policy, name=f"dense_{index}"
            )
            for index, units in enumerate(hidden_units)
        ]

    def build(self, input_shape):
        shape = self.flatten.compute_output_shape(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        freeze_if_not_trainable(self)

    def call(self, inputs):
        features = self.flatten(inputs)
        for layer in self.dense_layers:
            features = layer(features)
        return features

    def compute_output_shape(self, input_shape):
        shape = self.flatten.compute_output_shape(input_shape)
        for layer in self.dense_layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "activation": self.activation,
        }
