"""Keras callbacks that show what a VAE learns, and anneal what it optimizes."""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.images import image_grid, interleave, to_images
from keras_vae.validation import check_non_negative, check_positive_int

__all__ = ["ImageGrids", "KLWarmup"]


class KLWarmup(keras.callbacks.Callback):
    """Raises the model's `beta` linearly from 0 to `target` over the first `epochs` epochs.

    KL warm-up (Sonderby et al., 2016; Bowman et al., 2016): with beta small
    early on, the encoder learns to carry information before the KL pulls the
    posterior to the prior. Before each step, with S steps per epoch,

        beta = target * min(1, (epoch * S + step) / (epochs * S))

    and, when S is unknown, `target * min(1, epoch / epochs)` for the whole
    epoch. Steps that run in blocks (`steps_per_execution`) share the beta
    set before their block, as batch-level callbacks run once per block.
    The schedule is a function of the epoch and step that `fit` passes, so
    a run resumed by `BackupAndRestore` (which restarts at the epoch after
    its last backup) continues it where it was. Needs
    `objective="elbo"`: the IWAE bound has no KL term.

    Args:
        epochs: Number of epochs of the warm-up.
        target: beta at the end of the warm-up.

    Example:

    >>> import numpy as np, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.compile(optimizer="adam", steps_per_execution=1)  # beta set before every step
    >>> x = (np.random.rand(32, 4) < 0.5).astype("float32")
    >>> _ = vae.fit(x, batch_size=8, epochs=2, callbacks=[KLWarmup(4)], verbose=0)
    >>> float(vae.beta)  # 8 of the 16 warm-up steps done; the last set 7/16
    0.4375
    """

    def __init__(self, epochs, target=1.0):
        super().__init__()
        check_positive_int("epochs", epochs)
        check_non_negative("target", target)
        self.epochs = epochs
        self.target = float(target)
        self.epoch = 0
        self.last = None

    def on_train_begin(self, logs=None):
        self.last = None  # the model's beta may have been restored since
        if self.model.objective != "elbo":
            raise ValueError(
                "Expected a model with objective='elbo' for KLWarmup: the IWAE bound has no "
                f"KL term to weight. Received: objective={self.model.objective!r}"
            )

    def beta_at(self, epoch, step):
        """beta before `step` (from 0) of `epoch` (from 0)."""
        steps = self.params.get("steps") if self.params else None
        if steps:
            progress = (epoch * steps + step) / (self.epochs * steps)
        else:
            progress = epoch / self.epochs
        return self.target * min(1.0, progress)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.set_beta(self.beta_at(epoch, 0))

    def on_train_batch_begin(self, batch, logs=None):
        self.set_beta(self.beta_at(self.epoch, batch))

    def set_beta(self, beta):
        if beta != self.last:  # an assignment per change, not per step
            self.model.beta = beta
            self.last = beta


class ImageGrids(keras.callbacks.Callback):
    """Writes grids of samples and reconstructions to TensorBoard after each epoch.

    Args:
        log_dir: The TensorBoard log directory (images go to `log_dir/images`).
        examples: A batch of data to reconstruct, shown beside its reconstructions
            (`{"x": x, "condition": c}` for a conditional VAE, whose samples then
            take these conditions in turn).
        num_samples: Number of generated examples in the sample grid.
        seed: Seed of the samples, fixed so epochs are comparable.

    Example:

    >>> import numpy as np
    >>> callback = ImageGrids("/tmp/logs", examples=np.zeros((8, 28, 28, 1)))
    """

    def __init__(self, log_dir, examples, num_samples=64, seed=0):
        super().__init__()
        self.log_dir = str(log_dir)
        self.examples = tf.nest.map_structure(np.asarray, examples)
        self.num_samples = num_samples
        self.seed = seed
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(f"{self.log_dir}/images")
        shape = self.model.data_shape
        x, condition = self.model.split_inputs(self.examples)
        if condition is not None:
            condition = np.resize(condition, (self.num_samples, *condition.shape[1:]))
        samples = self.model.sample(
            self.num_samples, seed=self.seed, mean=True, condition=condition
        )
        samples = to_images(samples, shape)
        originals = to_images(x, shape)
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
