"""What a trained VAE is used for: embeddings, interpolations and anomaly scores.

`keras_vae.VAE` inherits these methods. They work on every model, whatever its
prior, posterior and likelihood: they are written with the model's own
`posterior_mean`, `decode_mean`, `elbo` and `log_likelihood`. A conditional VAE
takes the data's condition as `condition=` (or x as `{"x": x, "condition": c}`, or a
dataset of `(x, c)`), as its `elbo` does.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.importance import DEFAULT_MEMORY_BUDGET
from keras_vae.validation import check_data, check_positive_int, data_errors

__all__ = ["InferenceMixin"]


class InferenceMixin:
    """Embeddings, interpolations, anomaly scores and a standalone encoder for a VAE.

    Example:

    >>> import numpy as np, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> x = (np.random.rand(10, 6) < 0.5).astype("float32")
    >>> vae.embed(x, batch_size=4).shape
    (10, 2)
    >>> tuple(vae.interpolate(x[:3], x[3:6], steps=5).shape)
    (3, 5, 6)
    >>> vae.anomaly_score(x, num_samples=10).shape
    (10,)
    """

    def posterior_mean(self, x):
        """The mean of q(z|x) (as the posterior family defines it), `(batch, latent_dim)`."""
        x, condition = self.split_inputs(x)
        inputs = self.join_inputs(keras.ops.cast(x, "float32"), condition)
        return self.posterior.mean(self.posterior_parameters(inputs))

    def encoder_model(self):
        """A plain functional `keras.Model` from x to the mean of q(z|x).

        It shares the VAE's encoder and posterior layers (and so their
        weights), for use downstream: as a frozen feature extractor, in
        `predict`, saved on its own as a `.keras` file, exported. A
        conditional VAE's takes `{"x": x, "condition": c}`.
        """
        self._check_built("encoder_model")
        inputs = keras.Input(self.data_shape, name="x")
        if self.condition is not None:
            condition = keras.Input(self.condition.shape, name="condition")
            inputs = self.join_inputs(inputs, condition)
        return keras.Model(inputs, self.posterior_mean(inputs), name=f"{self.name}_encoder")

    def embed(self, x, batch_size=None, condition=None):
        """Posterior means of `x`, as a numpy array `(num_examples, latent_dim)`.

        Args:
            x: An array of shape `(num_examples, *data_shape)`, or a batched
                `tf.data.Dataset` of `x`, `(x,)` or `(x, None, sample_weight)`.
            batch_size: Examples per step for an array (Keras's default of 32
                when None); None for a dataset, which comes batched.
            condition: The condition of each example, for a conditional VAE.
        """
        x = self._checked(x, batch_size, condition)
        if isinstance(x, tf.data.Dataset) and self.condition is not None:
            # Keras's `predict` would take the condition for a target and drop it.
            x = x.map(lambda x, condition, *weight: self.join_inputs(x, condition))
        with data_errors():
            return self.encoder_model().predict(x, batch_size=batch_size, verbose=0)

    def interpolate(self, x1, x2, steps=10, condition=None):
        """Decoded points on the segments between the posterior means of `x1` and `x2`.

        z_t = (1 - t) * mean(q(z|x1)) + t * mean(q(z|x2)) for `steps` values of
        t evenly spaced in [0, 1], decoded to the mean of p(x|z_t): the first
        step reconstructs x1, the last x2.

        Args:
            x1: A batch of data, `(batch, *data_shape)`.
            x2: A batch of the same shape.
            steps: Number of points on each segment, at least 2.
            condition: For a conditional VAE, the condition of each pair: both
                ends are encoded and every point decoded with it.

        Returns:
            A tensor `(batch, steps, *data_shape)`.
        """
        check_positive_int("steps", steps)
        if steps < 2:
            raise ValueError(
                f"Expected `steps` to be at least 2, the two ends. Received: steps={steps}"
            )
        start, end = check_data(self, x1, condition), check_data(self, x2, condition)
        (x1, condition), (x2, _) = self.split_inputs(start), self.split_inputs(end)
        if tuple(x1.shape) != tuple(x2.shape):
            raise ValueError(
                "Expected `x1` and `x2` of the same shape, one pair per row. "
                f"Received: x1 of shape {tuple(x1.shape)} and x2 of shape {tuple(x2.shape)}"
            )
        start, end = self.posterior_mean(start), self.posterior_mean(end)
        t = tf.linspace(0.0, 1.0, steps)[:, None, None]
        z = start + t * (end - start)  # (steps, batch, latent_dim): sample axes first
        means = self.decode_mean(z, condition)
        return tf.experimental.numpy.swapaxes(means, 0, 1)  # (batch, steps, *data_shape)

    def anomaly_score(
        self,
        x,
        num_samples=1,
        batch_size=None,
        memory_budget=DEFAULT_MEMORY_BUDGET,
        seed=None,
        condition=None,
    ):
        """Per-example anomaly scores in nats: the higher, the less likely x under the model.

        The negative ELBO for `num_samples=1`, else the importance-sampled
        negative log-likelihood -log p(x) with k = `num_samples` (tighter and
        less noisy; see `log_likelihood`).

        Args:
            x: An array `(num_examples, *data_shape)` or a batched `tf.data.Dataset`.
            num_samples: Draws of z per example.
            batch_size: Examples scored per call for an array (all at once when
                None; the memory budget bounds each call anyway); None for a dataset.
            memory_budget: As in `log_likelihood`.
            seed: An integer for reproducible scores; the model's seed generator when None.
            condition: The condition of each example, for a conditional VAE: the
                score is then -log p(x|c).

        Returns:
            A numpy array `(num_examples,)`.
        """
        check_positive_int("num_samples", num_samples)
        x = self._checked(x, batch_size, condition)
        if isinstance(x, tf.data.Dataset):
            batches = (keras.utils.unpack_x_y_sample_weight(element)[:2] for element in x)
        else:
            x, condition = self.split_inputs(x)
            size = len(x) if batch_size is None else batch_size
            batches = (
                (
                    x[start : start + size],
                    None if condition is None else condition[start : start + size],
                )
                for start in range(0, len(x), size)
            )
        scores = []
        with data_errors():
            for index, (batch, batch_condition) in enumerate(batches):
                batch = self.join_inputs(batch, batch_condition)
                batch_seed = None if seed is None else seed + index  # each batch its own noise
                if num_samples == 1:
                    bound = self.elbo(batch, 1, memory_budget, batch_seed)
                else:
                    bound = self.log_likelihood(batch, num_samples, memory_budget, batch_seed)
                scores.append(-np.asarray(bound))
        return np.concatenate(scores)

    def _checked(self, x, batch_size, condition):
        """`x` past the data boundary, with `batch_size` for arrays only."""
        if batch_size is not None:
            check_positive_int("batch_size", batch_size)
            if isinstance(x, tf.data.Dataset):
                raise ValueError(
                    "Expected `batch_size=None` with a dataset, which comes batched. "
                    f"Received: batch_size={batch_size}"
                )
        x = check_data(self, x, condition)
        self._check_built("this method")
        return x

    def _check_built(self, method):
        if not self.built:
            raise ValueError(
                f"Expected a built model for {method}: call `fit`, or `build((None, "
                "*data_shape))`, first. Received: a model that has not seen data"
            )
