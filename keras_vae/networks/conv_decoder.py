"""A transposed-convolutional decoder for small images."""

import keras

from keras_vae.trainable import freeze_if_not_trainable

__all__ = ["ConvDecoder"]


@keras.saving.register_keras_serializable(package="keras_vae")
class ConvDecoder(keras.layers.Layer):
    """A dense layer, then stride-2 transposed convolutions up to the image size.

    The output features have the image's spatial shape, `(H, W, filters[-1])`,
    so the likelihood projects each pixel's features to its parameters.

    Args:
        image_size: `(height, width)` of the images, each divisible by
            `2 ** len(filters)` (28 and 32 with two layers).
        filters: Filters of each 3x3, stride-2 transposed convolution.
        activation: Activation of every layer.

    Example:

    >>> import numpy as np
    >>> ConvDecoder((28, 28))(np.zeros((2, 20), "float32")).shape
    TensorShape([2, 28, 28, 32])
    """

    def __init__(self, image_size=(28, 28), filters=(64, 32), activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.image_size = tuple(image_size)
        self.filters = list(filters)
        self.activation = activation
        factor = 2 ** len(self.filters)
        if len(self.image_size) != 2 or any(size % factor for size in self.image_size):
            raise ValueError(
                f"Expected `image_size` to be (height, width), each divisible by {factor}. "
                f"Received: image_size={image_size!r}"
            )
        start = (self.image_size[0] // factor, self.image_size[1] // factor, self.filters[0])
        # Sublayers take this layer's policy, which a loaded model gets from its config.
        dtype = self.dtype_policy
        self.network = keras.Sequential(
            [
                keras.layers.Dense(
                    start[0] * start[1] * start[2], activation=activation, dtype=dtype
                ),
                keras.layers.Reshape(start, dtype=dtype),
                *(
                    keras.layers.Conv2DTranspose(
                        count, 3, strides=2, padding="same", activation=activation, dtype=dtype
                    )
                    for count in self.filters
                ),
            ],
            name="network",
        )

    def build(self, input_shape):
        self.network.build(input_shape)
        freeze_if_not_trainable(self)

    def call(self, inputs):
        return self.network(inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_size, self.filters[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "filters": self.filters,
            "activation": self.activation,
        }
