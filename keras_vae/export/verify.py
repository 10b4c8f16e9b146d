"""Checks of converted models (TFLite, ONNX) against the SavedModel they came from."""

import numpy as np
import tensorflow as tf

__all__ = ["ELBO_SAMPLES", "check_shape", "compare", "example_inputs", "failures"]

# Draws of z per example in the noise made up for `elbo`.
ELBO_SAMPLES = 4


def example_inputs(loaded, signature_name, x, seed=0):
    """Inputs for a signature of a loaded SavedModel, made from a batch of data `x`.

    Inputs are recognized by name: `x` is the data, `z` the posterior mean
    of `x` (standard-normal draws without an `encode` signature), `eps`
    standard-normal noise (`ELBO_SAMPLES` draws per example for `elbo`),
    `u` uniform on [0, 1), and `condition` the data's condition: a
    conditional VAE's data comes as `{"x": x, "condition": c}`.

    Raises:
        ValueError: if `x` does not have the signature's data shape, or
            comes without the condition the signature takes.
    """
    rng = np.random.default_rng(seed)
    x, condition = (x["x"], x["condition"]) if isinstance(x, dict) else (x, None)
    x = np.asarray(x, np.float32)
    specs = loaded.signatures[signature_name].structured_input_signature[1]
    if "condition" in specs:
        if condition is None:
            raise ValueError(
                f"Expected data with its condition, `{{'x': x, 'condition': c}}`, for signature "
                f"{signature_name!r} of a conditional VAE. Received: data alone"
            )
        condition = np.asarray(condition, np.float32)
    inputs = {}
    for name, spec in sorted(specs.items()):
        shape = [-1 if size is None else int(size) for size in spec.shape]
        if name == "x":
            check_shape(signature_name, name, shape, x.shape)
            inputs[name] = x
        elif name == "condition":
            check_shape(signature_name, name, shape, condition.shape)
            inputs[name] = condition
        elif name == "z" and "encode" in loaded.signatures:
            given = {"condition": tf.constant(condition)} if "condition" in specs else {}
            encode = loaded.signatures["encode"]
            inputs[name] = encode(x=tf.constant(x), **given)["loc"].numpy()
        elif name == "u":
            inputs[name] = rng.uniform(size=len(x)).astype(np.float32)
        else:
            shape = [len(x)] + [ELBO_SAMPLES if size == -1 else size for size in shape[1:]]
            inputs[name] = rng.standard_normal(shape).astype(np.float32)
    return inputs


def check_shape(signature_name, input_name, expected, received):
    """Raises `ValueError` unless shape `received` fits `expected` (-1 matches any size)."""
    fits = len(expected) == len(received) and all(
        size in (-1, got) for size, got in zip(expected, received, strict=True)
    )
    if not fits:
        shape = ", ".join(
            "batch" if index == 0 else "any" if size == -1 else str(size)
            for index, size in enumerate(expected)
        )
        raise ValueError(
            f"Expected input `{input_name}` of signature {signature_name!r} to have shape "
            f"({shape}). Received: shape {tuple(received)}"
        )


def compare(run, saved_model_dir, x, signature_names, batch_sizes=(1, None), seed=0):
    """Max absolute error of another runtime's outputs against the SavedModel's.

    Args:
        run: `run(signature_name, **inputs) -> {output: array}`, the model under test.
        saved_model_dir: The SavedModel it was converted from.
        x: A batch of data (`{"x": x, "condition": c}` for a conditional VAE);
            each signature's inputs are made from it by `example_inputs`.
        signature_names: Signatures to compare.
        batch_sizes: Batch sizes to run; None stands for all of `x`.

    Returns:
        `{signature: {output: (max_abs_error, max_abs_reference)}}`, the
        largest values over all batch sizes.
    """
    loaded = tf.saved_model.load(str(saved_model_dir))
    errors = {}
    for name in signature_names:
        errors[name] = {}
        for batch_size in batch_sizes:
            batch = (
                {key: value[:batch_size] for key, value in x.items()}
                if isinstance(x, dict)
                else x[:batch_size]
            )
            inputs = example_inputs(loaded, name, batch, seed=seed)
            expected = loaded.signatures[name](**inputs)
            received = run(name, **inputs)
            for key, value in expected.items():
                value = value.numpy()
                error = float(np.max(np.abs(received[key] - value)))
                scale = float(np.max(np.abs(value)))
                old_error, old_scale = errors[name].get(key, (0.0, 0.0))
                errors[name][key] = (max(old_error, error), max(old_scale, scale))
    return errors


def failures(errors, tolerance):
    """The `signature/output` names whose error exceeds `atol + rtol * max|reference|`.

    Example:

    >>> failures({"encode": {"loc": (0.35, 2.0)}}, tolerance=(0.1, 0.1))
    ['encode/loc']
    """
    atol, rtol = tolerance
    return [
        f"{name}/{key}"
        for name, outputs in errors.items()
        for key, (error, scale) in outputs.items()
        if not error <= atol + rtol * scale
    ]
