"""What an exported signature accepts, checked in the graph and before running LiteRT.

An input is accepted when it has the signature's shape (any batch), shares
the batch of the other inputs, has no empty sample axis, and holds finite
values within its bounds: the likelihood's support for the data `x`,
[0, 1] for the uniform `u`, the real line for the noise `eps` and the
latents `z`, and for a conditional VAE's `condition` its bounds (whole
numbers in [0, num_classes - 1] for class labels; see
`keras_vae.conditions.Condition.describe`). Outside these, a model returns
NaN or, worse, a number: the ELBO of a Bernoulli model at x = -3 is larger
than at any image.

SavedModel signatures check their inputs with graph ops (`check_in_graph`)
that raise `InvalidArgumentError`, which TF Serving returns as HTTP 400 /
gRPC INVALID_ARGUMENT. TFLite has no assert op, so the converter drops
these checks; `check_arrays` makes the same checks in numpy before LiteRT
runs, raising `ValueError`.
"""

import math

import numpy as np
import tensorflow as tf

from keras_vae.export.verify import check_shape

__all__ = ["bounds", "check_arrays", "check_in_graph"]

UNIFORM = "u"
DATA = "x"
CONDITION = "condition"


def bounds(input_name, support=None, condition=None):
    """The inclusive `(low, high)` bounds of a signature input, from its name.

    Example:

    >>> bounds("x", support=(0.0, 1.0))
    (0.0, 1.0)
    >>> bounds("eps")
    (-inf, inf)
    """
    if input_name == UNIFORM:
        return (0.0, 1.0)
    if input_name == DATA and support is not None:
        return tuple(float(value) for value in support)
    if input_name == CONDITION and condition and condition.get("bounds"):
        return tuple(float(value) for value in condition["bounds"])
    return (-math.inf, math.inf)


def _integer(input_name, condition):
    """Whether an input must hold whole numbers: class labels."""
    return input_name == CONDITION and bool(condition and condition.get("integer"))


def check_in_graph(signature_name, specs, inputs, support=None, condition=None):
    """The `inputs` of a signature, with graph checks that run before any use of them.

    Args:
        signature_name: The signature, for the messages.
        specs: The named `tf.TensorSpec`s of its inputs, batch first.
        inputs: Their tensors, in the same order.
        support: The likelihood's `(low, high)` support for `x`, or None.
        condition: The model's `Condition.describe()`, or None.

    Returns:
        The inputs, with their static shapes set from `specs`.
    """
    # ensure_shape fails on a wrong shape at run time: the declared shape alone
    # does not stop TF Serving from feeding it to ops that reshape.
    inputs = [tf.ensure_shape(value, spec.shape) for spec, value in zip(specs, inputs, strict=True)]
    batch = tf.shape(inputs[0])[0]
    assertions = []
    for spec, value in zip(specs, inputs, strict=True):
        name = spec.name
        where = f"input `{name}` of signature `{signature_name}`"
        if value is not inputs[0]:
            assertions.append(
                tf.debugging.assert_equal(
                    tf.shape(value)[0],
                    batch,
                    message=f"Expected {where} to have the batch size of `{specs[0].name}`",
                )
            )
        for axis, size in enumerate(spec.shape[1:], start=1):
            if size is None:
                assertions.append(
                    tf.debugging.assert_positive(
                        tf.shape(value)[axis],
                        message=f"Expected {where} to have a non-empty axis {axis}",
                    )
                )
        low, high = bounds(name, support, condition)
        inside = tf.math.is_finite(value) & (value >= low) & (value <= high)
        if _integer(name, condition):
            inside &= tf.equal(tf.round(value), value)
        assertions.append(
            tf.debugging.Assert(
                tf.reduce_all(inside),
                [
                    f"Expected {where} {_expected_values(low, high, _integer(name, condition))}. "
                    "Received: values from",
                    tf.reduce_min(value),
                    "to",
                    tf.reduce_max(value),
                ],
            )
        )
    with tf.control_dependencies(assertions):
        return [tf.identity(value) for value in inputs]


def check_arrays(signature_name, shapes, arrays, support=None, condition=None):
    """Raises `ValueError` unless `arrays` are inputs `check_in_graph` would accept.

    Args:
        signature_name: The signature, for the messages.
        shapes: `{name: shape}` with -1 for the dynamic sizes, batch first.
        arrays: `{name: array}`, the same names.
        support: The likelihood's `(low, high)` support for `x`, or None.
        condition: The model's `Condition.describe()`, or None.
    """
    batch_sizes = {len(array) if array.ndim else None for array in arrays.values()}
    for name, array in arrays.items():
        check_shape(signature_name, name, shapes[name], array.shape)
        where = f"input `{name}` of signature {signature_name!r}"
        for axis, size in enumerate(shapes[name][1:], start=1):
            if size == -1 and array.shape[axis] == 0:
                raise ValueError(
                    f"Expected {where} to have a non-empty axis {axis}. "
                    f"Received: shape {array.shape}"
                )
        low, high = bounds(name, support, condition)
        inside = np.isfinite(array) & (array >= low) & (array <= high)
        if _integer(name, condition):
            inside &= np.round(array) == array
        if not inside.all():
            raise ValueError(
                f"Expected {where} {_expected_values(low, high, _integer(name, condition))}. "
                "Received: values from "
                f"{np.min(array)} to {np.max(array)}."
            )
    if len(batch_sizes) > 1:
        sizes = {name: array.shape[0] for name, array in arrays.items()}
        raise ValueError(
            f"Expected the inputs of signature {signature_name!r} to share their batch size. "
            f"Received: {sizes}"
        )


def _expected_values(low, high, integer=False):
    if math.isinf(low) and math.isinf(high):
        return "to be finite"
    whole = "whole numbers " if integer else ""
    return f"to be finite {whole}and in [{low:g}, {high:g}]"
