"""A convolutional encoder for small images."""

import keras

from keras_vae.trainable import freeze_if_not_trainable

__all__ = ["ConvEncoder"]


@keras.saving.register_keras_serializable(package="keras_vae")
class ConvEncoder(keras.layers.Layer):
    """Strided convolutions, then a dense layer: `(H, W, C)` images to features.

    Each convolution halves the spatial size (28 -> 14 -> 7, 32 -> 16 -> 8).

    Args:
        filters: Filters of each 3x3, stride-2 convolution.
        dense_units: Size of the final dense layer.
        activation: Activation of every layer.

    Example:

    >>> import numpy as np
    >>> ConvEncoder()(np.zeros((2, 28, 28, 1), "float32")).shape
    TensorShape([2, 256])
    """

    def __init__(self, filters=(32, 64), dense_units=256, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.filters = list(filters)
        self.dense_units = dense_units
        self.activation = activation
        # Sublayers take this layer's policy, which a loaded model gets from its config.
        dtype = self.dtype_policy
        self.network = keras.Sequential(
            [
                *(
                    keras.layers.Conv2D(
                        count, 3, strides=2, padding="same", activation=activation, dtype=dtype
                    )
                    for count in self.filters
                ),
                keras.layers.Flatten(dtype=dtype),
                keras.layers.Dense(dense_units, activation=activation, dtype=dtype),
            ],
            name="network",
        )

    def build(self, input_shape):
        self.network.build(input_shape)
        freeze_if_not_trainable(self)

    def call(self, inputs):
        return self.network(inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dense_units)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "dense_units": self.dense_units,
            "activation": self.activation,
        }
