"""ONNX export of a VAE's `encode` and `decode` signatures, through tf2onnx.

Needs the `onnx` extra (`pip install keras-vae[onnx]`: tf2onnx and
onnxruntime). Each signature becomes one `.onnx` file with the same named
inputs and outputs as the SavedModel and a dynamic batch dimension.
"""

import importlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_vae.choices import ONNX_SIGNATURES
from keras_vae.export.signatures import signatures
from keras_vae.export.verify import compare
from keras_vae.validation import check_finite_weights

__all__ = ["ONNX_SIGNATURES", "ONNX_TOLERANCE", "compare_onnx", "export_onnx", "run_onnx"]


# (atol, rtol) of `verify.failures`: float32 throughout, so only the order of
# operations differs from TensorFlow's.
ONNX_TOLERANCE = (1e-5, 1e-5)


def export_onnx(model, output_dir, signature_names=ONNX_SIGNATURES, opset=None):
    """Writes `<output_dir>/<signature>.onnx` for each signature of a built `VAE`.

    Args:
        model: A built `keras_vae.VAE`.
        output_dir: Folder of the `.onnx` files; created if missing.
        signature_names: Any of `ONNX_SIGNATURES`.
        opset: ONNX opset version (default: tf2onnx's).

    Returns:
        `{signature: Path}` of the written files.

    Example:

    >>> import tempfile, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.build((None, 4))
    >>> paths = export_onnx(vae, tempfile.mkdtemp())  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['decode', 'encode']
    """
    unsupported = [name for name in signature_names if name not in ONNX_SIGNATURES]
    if unsupported:
        raise ValueError(
            f"Expected ONNX signatures among {ONNX_SIGNATURES}. Received: {unsupported}"
        )
    check_finite_weights(model)
    tf2onnx = _import("tf2onnx")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, signature in signatures(model, signature_names).items():
        function = tf.function(
            signature.function, input_signature=signature.input_specs, autograph=False
        )
        path = output_dir / f"{name}.onnx"
        partial = path.with_name(f".{path.name}.partial")
        try:
            tf2onnx.convert.from_function(
                function,
                input_signature=signature.input_specs,
                opset=opset,
                output_path=str(partial),
            )
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        paths[name] = path
    return paths


def run_onnx(path, **inputs):
    """Runs an `.onnx` file with onnxruntime: named float32 arrays in, a dict out."""
    onnxruntime = _import("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: graph-optimizer notes are not for users
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    feeds = {name: np.asarray(value, np.float32) for name, value in inputs.items()}
    return dict(zip(names, session.run(names, feeds), strict=True))


def compare_onnx(paths, saved_model_dir, x, batch_sizes=(1, None)):
    """Max absolute error of each ONNX output against the SavedModel's, on data `x`.

    Args:
        paths: `{signature: path}` from `export_onnx`.
        saved_model_dir: A SavedModel exported from the same model.
        x: A batch of data.
        batch_sizes: Batch sizes to run; None stands for all of `x`.

    Returns:
        `{signature: {output: (max_abs_error, max_abs_reference)}}`.
    """
    return compare(
        lambda name, **inputs: run_onnx(paths[name], **inputs),
        saved_model_dir,
        x,
        list(paths),
        batch_sizes,
    )


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"ONNX export needs {name}: pip install 'keras-vae[onnx]'.") from error
