"""Keras callbacks that show what a VAE learns."""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.images import image_grid, interleave, to_images

__all__ = ["ImageGrids"]


class ImageGrids(keras.callbacks.Callback):
    """Writes grids of samples and reconstructions to TensorBoard after each epoch.

    Args:
        log_dir: The TensorBoard log directory (images go to `log_dir/images`).
        examples: A batch of data to reconstruct, shown beside its reconstructions.
        num_samples: Number of generated examples in the sample grid.
        seed: Seed of the samples, fixed so epochs are comparable.

    Example:

    >>> import numpy as np
    >>> callback = ImageGrids("/tmp/logs", examples=np.zeros((8, 28, 28, 1)))
    """

    def __init__(self, log_dir, examples, num_samples=64, seed=0):
        super().__init__()
        self.log_dir = str(log_dir)
        self.examples = np.asarray(examples)
        self.num_samples = num_samples
        self.seed = seed
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(f"{self.log_dir}/images")
        shape = self.model.data_shape
        samples = to_images(self.model.sample(self.num_samples, seed=self.seed, mean=True), shape)
        originals = to_images(self.examples, shape)
        reconstructions = to_images(self.model.reconstruct(self.examples), shape)
        # Originals and reconstructions side by side, one pair per row of two.
        pairs = interleave(originals, reconstructions)
        with self.writer.as_default(step=epoch):
            tf.summary.image("samples", image_grid(samples)[None])
            tf.summary.image("reconstructions", image_grid(pairs, columns=8)[None])
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
