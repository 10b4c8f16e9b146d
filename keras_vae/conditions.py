"""Conditions of a conditional VAE: side inputs c given to both the encoder and the decoder.

A conditional VAE (Sohn et al., 2015) models p(x|c) = E_p(z)[p(x|z, c)] with the
inference model q(z|x, c). A condition maps its input (a class label, or any vector
of side information) to features `(batch, dim)`, which `keras_vae.VAE` concatenates
to the encoder's features (so the posterior family, and any context it takes, sees
them, whatever the encoder's architecture) and to z before the decoder. The prior
stays p(z).

Each condition checks its values where data enters the model (`check`, on arrays;
`check_op`, in a dataset's pipeline and in exported graphs): a label outside
`[0, num_classes)` would otherwise become an all-zero one-hot vector, a silent
wrong condition.

Example:

>>> import numpy as np
>>> OneHot(3)(np.array([2, 0])).numpy().tolist()
[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
"""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.validation import check_positive_int

__all__ = ["Condition", "Features", "OneHot", "get"]


class Condition(keras.layers.Layer):
    """Base class: a side input of shape `(batch, *shape)` to features `(batch, dim)`.

    Subclasses set `shape` (one example's condition), `dim` (its features),
    `bounds` (inclusive, for its values) and `integer` (whether values are
    class indices), and implement `call`.
    """

    integer = False
    bounds = (-np.inf, np.inf)

    def expected(self):
        """What a batch of conditions must be, for the error messages."""
        kind = "integer labels" if self.integer else "finite values"
        low, high = self.bounds
        where = f" in [{low:g}, {high:g}]" if np.isfinite(low) else ""
        shape = str(("batch", *self.shape)).replace("'", "")
        return f"a condition of shape {shape} of {kind}{where}"

    def describe(self):
        """What an exported signature's `condition` input takes, as JSON.

        `{"shape": [-1, ...], "bounds": [low, high] or None for the real line,
        "integer": bool}`; exports check their inputs against it.
        """
        low, high = self.bounds
        bounds = [float(low), float(high)] if np.isfinite(low) else None
        return {"shape": [-1, *self.shape], "bounds": bounds, "integer": self.integer}

    def check(self, condition, batch_size=None):
        """`condition` as a float32 array, or a `ValueError` naming what was wrong.

        Args:
            condition: An array-like of shape `(batch, *shape)`.
            batch_size: The batch size of its data, if any.
        """
        try:
            values = np.asarray(condition)
            if values.dtype.kind not in "biuf":
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(
                f"Expected {self.expected()}. Received: {type(condition).__name__}"
            ) from None
        shape = values.shape
        if len(shape) == 0 or shape[1:] != self.shape:
            raise ValueError(f"Expected {self.expected()}. Received: condition of shape {shape}")
        if batch_size is not None and shape[0] != batch_size:
            raise ValueError(
                f"Expected one condition per example: {batch_size} conditions. "
                f"Received: condition of shape {shape}"
            )
        values = values.astype("float32")
        valid = self._valid(values)
        if not np.all(valid):
            bad = values[~valid].ravel()[:3].tolist()
            raise ValueError(f"Expected {self.expected()}. Received: values such as {bad}")
        return values

    def check_op(self, condition):
        """An op that fails with the `check` message for a batch tensor of bad values."""
        values = tf.cast(condition, tf.float32)
        valid = tf.reduce_all(self._valid(values, tf))

        def fail():
            message = tf.strings.format(
                f"Expected {self.expected()}. Received: values in [{{}}, {{}}].",
                (tf.reduce_min(values), tf.reduce_max(values)),
            )
            return tf.debugging.Assert(False, [message])

        return tf.cond(valid, tf.no_op, fail)

    def _valid(self, values, ops=np):
        # `ops` is numpy or TensorFlow: the same expression checks arrays and graph tensors.
        finite = tf.math.is_finite(values) if ops is tf else np.isfinite(values)
        low, high = self.bounds
        valid = finite & (values >= low) & (values <= high)
        if self.integer:
            valid = valid & (ops.round(values) == values)
        return valid


@keras.saving.register_keras_serializable(package="keras_vae")
class OneHot(Condition):
    """A class label `(batch,)` in `[0, num_classes)`, as a one-hot vector.

    Args:
        num_classes: The number of classes.

    Call arguments:
        condition: Labels of shape `(batch,)`, integers or whole floats.

    Returns:
        `(batch, num_classes)` float32 one-hot vectors.

    Example:

    >>> OneHot(4).check([1, 3]).tolist()
    [1.0, 3.0]
    """

    integer = True

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("num_classes", num_classes)
        self.num_classes = num_classes
        self.shape = ()
        self.dim = num_classes
        self.bounds = (0, num_classes - 1)

    def call(self, condition):
        return tf.one_hot(tf.cast(condition, tf.int32), self.num_classes, dtype=tf.float32)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="keras_vae")
class Features(Condition):
    """Any real side input `(batch, dim)`, given to the networks as it is.

    Args:
        dim: Its size.

    Call arguments:
        condition: `(batch, dim)` finite values.

    Returns:
        The same values as float32.

    Example:

    >>> Features(2).check([[0.5, -1.0]], batch_size=1).tolist()
    [[0.5, -1.0]]
    """

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("dim", dim)
        self.dim = dim
        self.shape = (dim,)

    def call(self, condition):
        return tf.cast(condition, tf.float32)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def get(identifier):
    """A `Condition` from None, a `Condition`, or an int (the number of classes of `OneHot`).

    Example:

    >>> get(10).num_classes
    10
    """
    if identifier is None or isinstance(identifier, Condition):
        return identifier
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        return OneHot(identifier)
    raise ValueError(
        "Expected `condition` to be None, a `keras_vae.conditions.Condition` or a number of "
        f"classes. Received: condition={identifier!r}"
    )
