"""Checks of model options and data, with errors that say what was expected.

The data boundary: every way data reaches a `keras_vae.VAE` (`fit`, `evaluate`,
`elbo`, `iwae_bound`, `log_likelihood`) passes `check_data`, which checks
batched-ness, shape, dtype, finiteness and the likelihood's support (whole numbers
for a discrete one). Arrays, tensors and lists are checked whole at once; a
`tf.data` dataset is checked from its element spec at once, and each of its
batches in the input pipeline (`checked_batches`), before the training step sees it.
"""

import contextlib
import numbers
import re

import keras
import numpy as np
import tensorflow as tf

from keras_vae.choices import OBJECTIVES

__all__ = [
    "OBJECTIVES",
    "check_compile_arguments",
    "check_data",
    "check_finite_weights",
    "check_fit_data",
    "check_non_negative",
    "check_options",
    "check_positive_int",
    "check_sample_condition",
    "checked_batches",
    "data_errors",
]


def is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name, value):
    """Raises `ValueError` unless `value` is a positive integer."""
    if not (is_integer(value) and value > 0):
        raise ValueError(f"Expected `{name}` to be a positive integer. Received: {name}={value!r}")


def check_non_negative(name, value):
    """Raises `ValueError` unless `value` is a number >= 0."""
    if not (isinstance(value, numbers.Real) and value >= 0):
        raise ValueError(f"Expected `{name}` to be non-negative. Received: {name}={value!r}")


def check_options(latent_dim, beta, num_samples, objective):
    """Raises `ValueError` for model options outside their domain."""
    check_positive_int("latent_dim", latent_dim)
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Expected `objective` to be one of {OBJECTIVES}. Received: objective={objective!r}"
        )
    if not (isinstance(beta, numbers.Real) and beta >= 0):
        raise ValueError(f"Expected `beta` to be a non-negative number. Received: beta={beta!r}")
    if objective == "iwae" and beta != 1:
        raise ValueError(
            "Expected `beta=1` with objective='iwae': beta weights the KL term of the ELBO, "
            f"which the IWAE bound does not have. Received: beta={beta!r}"
        )
    check_positive_int("num_samples", num_samples)


def check_finite_weights(model):
    """Raises `ValueError` if a floating-point weight of `model` holds NaN or infinity.

    Export, conversion and saving call it, so a diverged model is never
    published. `model` is anything with `variables`: a Keras model or layer,
    or a SavedModel loaded with `tf.saved_model.load`.

    Example:

    >>> import keras
    >>> layer = keras.layers.Dense(2, name="dense")
    >>> layer.build((None, 3))
    >>> _ = layer.bias.assign([0.0, float("nan")])
    >>> check_finite_weights(layer)
    Traceback (most recent call last):
    ...
    ValueError: Expected a model with finite weights. Received: NaN or infinity in dense/bias \
(1 of 2 weights).
    """
    variables = list(getattr(model, "variables", ()))
    # A loaded SavedModel holds its variables in its signatures' functions.
    for function in getattr(model, "signatures", {}).values():
        variables += function.variables
    unique = {id(v): v for v in variables}.values()
    weights = [v for v in unique if tf.as_dtype(v.dtype).is_floating]
    bad = [getattr(v, "path", v.name) for v in weights if not np.isfinite(np.asarray(v)).all()]
    if bad:
        raise ValueError(
            "Expected a model with finite weights. Received: NaN or infinity in "
            f"{', '.join(bad)} ({len(bad)} of {len(weights)} weights)."
        )


# === The data boundary ===

_EXPECTED_SPEC = "an array, a tensor or a batched `tf.data.Dataset` of real numbers"


def check_data(model, x, condition=None):
    """Checks a batch of data or a dataset for `model`, building the model from it if needed.

    Args:
        model: A `keras_vae.VAE`.
        x: An array, tensor or nested list of shape `(batch, *data_shape)`, or a
            batched `tf.data.Dataset` whose elements are `x`, `(x,)` or
            `(x, None, sample_weight)`; for a conditional VAE, `x` with its
            `condition`, `{"x": x, "condition": c}`, or a dataset of `(x, c)`
            or `(x, c, sample_weight)`.
        condition: The condition of each example, for a conditional VAE.

    Returns:
        `x` as an array if it was a list, `x` with each batch checked in its pipeline if
        it was a dataset (see `checked_batches`), else `x` unchanged; for a
        conditional VAE, `{"x": x, "condition": c}` with `c` a float32 array.

    Raises:
        ValueError: naming what was received and what was expected.
    """
    if isinstance(x, tf.data.Dataset) and condition is None:
        return checked_batches(model, x)
    x, condition = _split_condition(model, x, condition)
    x = _as_array(x)
    _check_shape(model, tuple(x.shape), _dtype_name(x.dtype))
    if not tf.is_symbolic_tensor(x):  # Values are known outside a traced function only.
        _check_values(model.likelihood, np.asarray(x))
    if model.condition is None:
        return x
    if not tf.is_symbolic_tensor(condition):
        condition = model.condition.check(condition, batch_size=x.shape[0])
    return model.join_inputs(x, condition)


def _split_condition(model, x, condition):
    """`(x, condition)` from data given with its condition, or `ValueError`."""
    if model.condition is None:
        if condition is not None:
            raise ValueError(
                "Expected no `condition`: this VAE models p(x), without one (build it with "
                f"`condition=` for p(x|c)). Received: condition{_shape_text(condition)}"
            )
        return x, None
    if isinstance(x, dict):
        if sorted(x) != ["condition", "x"] or condition is not None:
            keys = sorted(map(str, x))
            raise ValueError(
                "Expected `{'x': x, 'condition': c}` alone, or x and its condition apart. "
                f"Received: a dict with keys {keys}"
                + (" and a separate condition" if condition is not None else "")
            )
        return x["x"], x["condition"]
    if condition is None:
        raise ValueError(
            "Expected a condition for this conditional VAE of p(x|c): pass it as `y` in fit "
            "and evaluate, as `condition=`, or x as `{'x': x, 'condition': c}`. "
            "Received: no condition"
        )
    return x, condition


def check_sample_condition(model, num, condition):
    """The conditions of `num` samples: None for an unconditional model, else `(num, *shape)`.

    One condition (a single label, say) stands for all `num`.
    """
    if model.condition is None or condition is None:
        _split_condition(model, None, condition)  # refuses a stray or a missing condition
        return None
    single = np.asarray(condition)
    if single.shape == model.condition.shape:
        condition = np.broadcast_to(single, (num, *single.shape))
    return model.condition.check(condition, batch_size=num)


def check_fit_data(model, x, y=None, sample_weight=None, class_weight=None):
    """Checks the data arguments of `fit` and `evaluate`; returns `(x, y, sample_weight)` for Keras.

    An unconditional model has no targets: a `y` or `class_weight` would be
    ignored, so they are refused. Keras drops the `sample_weight` of arrays given
    without a `y`, so a zero-width placeholder `y` of shape `(batch, 0)` carries
    them through. A conditional model takes its condition as `y`, or in `x` as
    `{"x": x, "condition": c}`, and hands it to Keras as `y`.
    """
    if model.condition is not None and not isinstance(x, tf.data.Dataset):
        x, y = _split_condition(model, x, y)
    if y is not None and model.condition is None:
        raise ValueError(
            "Expected no `y`: this VAE models the data x alone, so targets would be ignored "
            "(build it with `condition=` to model x given y). "
            f"Received: y of type {type(y).__name__}{_shape_text(y)}"
        )
    if class_weight is not None:
        raise ValueError(
            "Expected no `class_weight`: this VAE models the data x alone, without classes; "
            f"weight examples with `sample_weight`. Received: class_weight={class_weight!r}"
        )
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "Expected the condition inside the dataset, as elements (x, condition). "
                f"Received: a dataset and y{_shape_text(y)}"
            )
        return check_data(model, x), None, sample_weight  # Keras refuses its `sample_weight`.
    x = check_data(model, x, y)
    x, y = model.split_inputs(x)
    if sample_weight is None:
        return x, y, None
    sample_weight = _as_array(sample_weight, "sample_weight")
    if tuple(sample_weight.shape) not in ((x.shape[0],), (x.shape[0], 1)):
        raise ValueError(
            f"Expected `sample_weight` of shape ({x.shape[0]},), one weight per example. "
            f"Received: sample_weight of shape {tuple(sample_weight.shape)}"
        )
    _check_weight_values(np.asarray(sample_weight))
    if y is None:
        y = np.zeros((x.shape[0], 0), "float32")
    return x, y, np.reshape(sample_weight, (-1,))


def check_compile_arguments(**arguments):
    """Refuses `compile` arguments a VAE would ignore: it defines its own loss and metrics."""
    for name, value in arguments.items():
        if value is not None:
            raise ValueError(
                f"Expected `{name}=None`: a VAE's loss is its negative bound and it reports "
                "`loss`, `elbo`, `reconstruction` and `kl` itself, computed in its train_step. "
                f"Received: {name}={value!r}"
            )


def checked_batches(model, dataset):
    """`dataset` after static checks of its elements, with each batch checked as it is read.

    The element spec is checked at once (structure, batched-ness, dtype, shape);
    the values of every batch (finite, in the likelihood's support; sample
    weights finite and non-negative) are checked by an op in the input pipeline,
    which raises `InvalidArgumentError` before the batch reaches the step.
    `data_errors` turns that error into a `ValueError`. The check runs outside
    the compiled step (XLA cannot compile an assertion); measured cost: see README.
    """
    if model.condition is not None and isinstance(dataset.element_spec, dict):
        dataset = dataset.map(lambda inputs: (inputs.get("x"), inputs.get("condition")))
    spec = dataset.element_spec
    x_spec, y_spec, weight_spec = _unpack_spec(spec)
    if model.condition is not None:
        _check_condition_spec(model.condition, spec, y_spec)
    elif y_spec is not None:
        raise ValueError(
            "Expected a dataset of x, (x,) or (x, None, sample_weight): this VAE models the "
            "data x alone, so targets would be ignored. "
            f"Received: a dataset of elements {_spec_text(spec)}"
        )
    if not isinstance(x_spec, tf.TensorSpec):
        raise ValueError(
            f"Expected {_EXPECTED_SPEC}. Received: a dataset of elements {_spec_text(spec)}"
        )
    shape = tuple(x_spec.shape)
    if not _is_batched(dataset, shape, getattr(model, "data_shape", None)):
        raise ValueError(
            "Expected a batched dataset, with elements of shape (batch, *data_shape). "
            f"Received: an unbatched dataset of elements of shape {shape}; call "
            "`dataset.batch(batch_size)`."
        )
    _check_shape(model, shape, x_spec.dtype.name)
    if weight_spec is not None and weight_spec.shape.rank not in (1, 2):
        raise ValueError(
            "Expected sample weights of shape (batch,), one per example. "
            f"Received: a dataset of elements {_spec_text(spec)}"
        )
    likelihood, condition = model.likelihood, model.condition

    def check(*element):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
        checks = [_batch_check(x, likelihood)]
        if sample_weight is not None:
            checks.append(_weight_check(sample_weight))
        if condition is not None:
            checks.append(condition.check_op(y))
        with tf.control_dependencies(checks):
            checked = tuple(None if value is None else tf.identity(value) for value in element)
        if sample_weight is not None and condition is None:
            # tf.distribute cannot split a None; an empty `(batch, 0)` y stands for it.
            return checked[0], tf.zeros((tf.shape(x)[0], 0)), checked[2]
        return checked if isinstance(spec, tuple) else checked[0]

    return dataset.map(check)


def _check_condition_spec(condition, spec, y_spec):
    expected = (None, *condition.shape)
    if (
        y_spec is None
        or not isinstance(y_spec, tf.TensorSpec)
        or not _is_real(y_spec.dtype.name)
        or y_spec.shape.rank != len(expected)
        or not y_spec.shape.is_compatible_with(expected)
    ):
        raise ValueError(
            "Expected a dataset of (x, condition) or (x, condition, sample_weight) for this "
            f"conditional VAE, with {condition.expected()}. "
            f"Received: a dataset of elements {_spec_text(spec)}"
        )


@contextlib.contextmanager
def data_errors():
    """Turns the `InvalidArgumentError` of a failed batch check into a `ValueError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        match = _CHECK_MESSAGE.search(error.message)
        if match is None:
            raise
        raise ValueError(match.group(1)) from None


# The message of a failed batch check, as TensorFlow quotes it in its error.
_CHECK_MESSAGE = re.compile(r"(Expected [^\n]*?Received: [^\n]*?\.)\]")


def _as_array(x, name="data"):
    """`x` itself if it is an array or tensor, a numpy array if it is a (nested) list."""
    if isinstance(x, (np.ndarray, tf.Tensor, tf.Variable)):
        return x
    if isinstance(x, (list, tuple)):
        try:
            array = np.asarray(x)
        except ValueError:
            array = None
        if array is not None and array.dtype != object:
            return array
        raise ValueError(
            f"Expected {name} as {_EXPECTED_SPEC}. Received: a ragged or mixed "
            f"{type(x).__name__} that does not convert to one array"
        )
    if hasattr(x, "__array__") and not isinstance(x, dict):
        return np.asarray(x)
    keys = f" with keys {sorted(map(str, x))}" if isinstance(x, dict) else ""
    raise ValueError(f"Expected {name} as {_EXPECTED_SPEC}. Received: {type(x).__name__}{keys}")


def _dtype_name(dtype):
    return getattr(dtype, "name", str(dtype))


def _is_real(dtype_name):
    return dtype_name == "bool" or re.fullmatch(r"u?int\d+|b?float\d+", dtype_name) is not None


def _check_shape(model, shape, dtype_name):
    """Checks rank, emptiness and dtype; builds `model` from `shape`, or checks against it."""
    if not _is_real(dtype_name):
        raise ValueError(
            f"Expected data of real numbers (float, int or bool). Received: dtype {dtype_name}"
        )
    expected = getattr(model, "data_shape", None)
    if len(shape) < 2:
        hint = "; add a batch axis, e.g. x[None]" if expected and shape == expected else ""
        raise ValueError(
            "Expected a batch of data of shape (batch, *data_shape). "
            f"Received: data of shape {shape}{hint}"
        )
    if 0 in shape:
        raise ValueError(
            f"Expected at least one example with at least one value. "
            f"Received: data of shape {shape}"
        )
    data_shape = shape[1:]
    if not model.built and None not in data_shape:
        model.build((None, *data_shape))
        expected = model.data_shape
    if expected is not None and data_shape != expected:
        raise ValueError(
            f"Expected data of shape (batch, {', '.join(map(str, expected))}) for this model. "
            f"Received: data of shape {shape}."
        )


def _check_values(likelihood, x):
    non_finite = int(x.size - np.count_nonzero(np.isfinite(x))) if x.dtype.kind == "f" else 0
    finite = x[np.isfinite(x)] if non_finite else x
    low, high = (float(np.min(finite)), float(np.max(finite))) if finite.size else (0.0, 0.0)
    message = _values_message(likelihood, x.size, non_finite, low, high)
    if message is None and getattr(likelihood, "integer", False) and x.dtype.kind == "f":
        fractional = int(np.count_nonzero(x != np.round(x)))
        message = _integer_message(likelihood, fractional, x.size) if fractional else None
    if message is not None:
        raise ValueError(message)


_FINITE_MESSAGE = "Expected finite data. Received: {} NaN or infinite values among {}."


def _values_message(likelihood, size, non_finite, low, high):
    """The error for data values, or None when they are fine."""
    if non_finite:
        return _FINITE_MESSAGE.format(non_finite, size)
    support = likelihood.support
    if support is not None and (low < support[0] or high > support[1]):
        return _support_message(likelihood, low, high)
    return None


def _support_message(likelihood, low, high):
    return (
        f"Expected data in [{likelihood.support[0]}, {likelihood.support[1]}] for the "
        f"{type(likelihood).__name__} likelihood. Received: values in [{low}, {high}]."
    )


def _integer_message(likelihood, fractional, size):
    # A discrete likelihood gives a value between its levels a meaningless, not an invalid, mass.
    return (
        f"Expected whole numbers for the {type(likelihood).__name__} likelihood, whose data "
        f"are discrete levels. Received: {fractional} fractional values among {size}."
    )


def _check_weight_values(sample_weight):
    if not _is_real(_dtype_name(sample_weight.dtype)):
        raise ValueError(f"Expected real sample weights. Received: dtype {sample_weight.dtype}")
    if sample_weight.size and not (
        np.isfinite(sample_weight).all() and float(np.min(sample_weight)) >= 0
    ):
        raise ValueError(
            "Expected finite, non-negative sample weights. Received: sample weights in "
            f"[{np.min(sample_weight)}, {np.max(sample_weight)}]."
        )


def _batch_check(x, likelihood):
    """An op that fails when the batch `x` is not finite or outside the likelihood's support.

    Three reductions on every batch; the message is formatted only when the check fails.
    """
    x = tf.cast(x, tf.float32) if x.dtype.is_integer or x.dtype.is_bool else x
    finite = tf.reduce_all(tf.math.is_finite(x))
    valid = finite
    if likelihood.support is not None:
        low, high = likelihood.support
        in_support = tf.equal(tf.size(x), 0) | (
            (tf.reduce_min(x) >= low) & (tf.reduce_max(x) <= high)
        )
        valid &= in_support
    integer = getattr(likelihood, "integer", False) and x.dtype.is_floating
    if integer:
        valid &= tf.reduce_all(tf.equal(x, tf.round(x)))

    def fail():
        is_finite = tf.math.is_finite(x)
        non_finite = tf.reduce_sum(tf.cast(~is_finite, tf.int64))
        message = tf.strings.format(_FINITE_MESSAGE, (non_finite, tf.size(x)))
        if likelihood.support is not None:
            template = _support_message(likelihood, "{}", "{}")
            support_message = tf.strings.format(template, (tf.reduce_min(x), tf.reduce_max(x)))
            message = tf.where(finite, support_message, message)
            if integer:
                fractional = tf.reduce_sum(tf.cast(tf.not_equal(x, tf.round(x)), tf.int64))
                integer_message = tf.strings.format(
                    _integer_message(likelihood, "{}", "{}"), (fractional, tf.size(x))
                )
                in_range = finite & (tf.reduce_min(x) >= low) & (tf.reduce_max(x) <= high)
                message = tf.where(in_range, integer_message, message)
        return tf.debugging.Assert(False, [message])

    return tf.cond(valid, tf.no_op, fail)


def _weight_check(sample_weight):
    sample_weight = tf.cast(sample_weight, tf.float32)
    valid = tf.reduce_all(tf.math.is_finite(sample_weight) & (sample_weight >= 0))

    def fail():
        message = tf.strings.format(
            "Expected finite, non-negative sample weights. Received: sample weights in [{}, {}].",
            (tf.reduce_min(sample_weight), tf.reduce_max(sample_weight)),
        )
        return tf.debugging.Assert(False, [message])

    return tf.cond(valid, tf.no_op, fail)


def _unpack_spec(spec):
    """`(x, y, sample_weight)` specs of a dataset element, None where absent."""
    if not isinstance(spec, tuple) or not 1 <= len(spec) <= 3:
        return spec, None, None  # A dict or a long tuple: refused as not a tensor spec.
    x_spec, y_spec, weight_spec = (*spec, None, None)[:3]
    # tf.data holds the None of `(x, None, sample_weight)` as a `NoneTensorSpec`.
    absent = [s is None or type(s).__name__ == "NoneTensorSpec" for s in (y_spec, weight_spec)]
    return x_spec, None if absent[0] else y_spec, None if absent[1] else weight_spec


# Transformations after which a dataset's elements are batches, and the one that undoes them.
_BATCHING = ("_BatchDataset", "_ParallelBatchDataset", "_PaddedBatchDataset", "_TensorDataset")
_UNBATCHING = ("_UnbatchDataset", "_TensorSliceDataset")


def _is_batched(dataset, shape, data_shape):
    """Whether a dataset's elements are batches rather than single examples.

    An element of the model's data shape is one example. Otherwise, a batch of
    unknown size is a batch; for a leading axis of fixed size, the dataset's
    chain of transformations decides: batched if a `batch` (or `from_tensors`)
    comes after the last `unbatch` (or `from_tensor_slices`, or other source).
    """
    if data_shape is not None and shape == data_shape:
        return False
    if not shape or shape[0] is None:
        return True
    while True:
        name = type(dataset).__name__
        if name in _BATCHING:
            return True
        if name in _UNBATCHING:
            return False
        inputs = getattr(dataset, "_inputs", lambda: [])()
        if not inputs:
            return False  # A source of examples, never batched after.
        dataset = inputs[0]  # The first input carries x in `zip((x, ...))`.


def _shape_text(value):
    shape = getattr(value, "shape", None)
    return f" of shape {tuple(shape)}" if shape is not None else ""


def _spec_text(spec):
    def text(component):
        if isinstance(component, tf.TensorSpec):
            return f"{component.dtype.name}{tuple(component.shape)}"
        return type(component).__name__

    return str(tf.nest.map_structure(text, spec)).replace("'", "")
