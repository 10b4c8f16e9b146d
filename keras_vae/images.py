"""Arranging batches of images into grids, for figures and TensorBoard."""

import math

import numpy as np

__all__ = ["image_grid", "interleave", "to_images"]


def to_images(x, data_shape):
    """Reshapes a batch to `(batch, height, width, channels)` floats in [0, 1].

    Flat data of a square size (784 -> 28x28) is shown as square images.
    """
    x = np.asarray(x, dtype=np.float32)
    if len(data_shape) == 1:
        side = math.isqrt(data_shape[0])
        if side * side != data_shape[0]:
            raise ValueError(
                f"Expected image data or flat data of a square size. Received: shape {data_shape}."
            )
        x = x.reshape(-1, side, side, 1)
    elif len(data_shape) == 2:
        x = x[..., None]
    if x.max(initial=0.0) > 1.0:  # 8-bit data
        x = x / 255.0
    return np.clip(x, 0.0, 1.0)


def image_grid(images, columns=None):
    """Tiles `(n, h, w, c)` images row by row into one `(rows*h, columns*w, c)` image.

    Example:

    >>> image_grid(np.zeros((6, 28, 28, 1)), columns=3).shape
    (56, 84, 1)
    """
    images = np.asarray(images)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    padded = np.zeros((rows * columns, height, width, channels), images.dtype)
    padded[:count] = images
    grid = padded.reshape(rows, columns, height, width, channels).swapaxes(1, 2)
    return grid.reshape(rows * height, columns * width, channels)


def interleave(originals, reconstructions):
    """`[o_0, r_0, o_1, r_1, ...]`: each example followed by its reconstruction.

    Example:

    >>> interleave(np.zeros((3, 2, 2, 1)), np.ones((3, 2, 2, 1)))[:, 0, 0, 0].tolist()
    [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    """
    return np.stack([originals, reconstructions], axis=1).reshape(-1, *originals.shape[1:])
