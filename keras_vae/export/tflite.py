"""TFLite conversion of an exported VAE's signatures, and a LiteRT runner for them.

The `.tflite` file holds one signature runner per signature, with TFLite
builtin ops only (LiteRT has no TensorFlow-ops delegate) and float32
inputs and outputs whatever the quantization. Signatures keep the dynamic
batch: `LiteRTModel` resizes the inputs to each call's batch.

TFLite has no assert op: the converter drops the SavedModel's input checks,
and a TFLite signature computes on any input of the right size (NaN, or a
wrong number, outside the data's support). The file carries the data's
support as metadata, and `LiteRTModel` makes the SavedModel's checks
before it runs a signature (see `keras_vae.export.inputs`).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.choices import QUANTIZATIONS
from keras_vae.export.inputs import check_arrays
from keras_vae.export.model_card import read_model_card
from keras_vae.export.verify import example_inputs
from keras_vae.validation import check_finite_weights

__all__ = ["QUANTIZATIONS", "TOLERANCES", "LiteRTModel", "convert_saved_model"]

# The name of the metadata entry holding the model card's `input` (shape, dtype, support).
INPUT_METADATA = "keras_vae_input"

# (atol, rtol): each output of a converted signature is within
# atol + rtol * max|SavedModel output| of the SavedModel's. Set with a margin
# over errors measured on binarized MNIST with MLP and convolutional models.
TOLERANCES = {
    "float32": (1e-6, 1e-5),
    "float16": (1e-4, 3e-3),
    "dynamic-int8": (1e-2, 5e-2),
    "int8": (5e-2, 3e-1),
}


def convert_saved_model(
    saved_model_dir,
    signature_names=("encode", "decode"),
    quantization="float32",
    representative_data=None,
):
    """Converts signatures of a SavedModel into one `.tflite` flatbuffer.

    Args:
        saved_model_dir: A SavedModel version folder from `export_saved_model`.
        signature_names: Signatures to convert, each a signature runner.
        quantization: One of `QUANTIZATIONS`: `"float32"` (none), `"float16"`
            weights, `"dynamic-int8"` (int8 weights, float activations) or
            `"int8"` (int8 weights and activations on integer kernels,
            calibrated on `representative_data`).
        representative_data: Data, an array `(n, *data_shape)` or an iterable
            of such batches, for `"int8"`: each signature is calibrated on
            inputs made from every example (see `verify.example_inputs`). A
            conditional VAE's batches are `{"x": x, "condition": c}`.

    Returns:
        The `.tflite` model as bytes, with the model card's `input` (its
        shape, dtype and support, and a conditional VAE's `condition`) as
        metadata `INPUT_METADATA`.

    Raises:
        ValueError: for an unknown quantization or signature, `"int8"`
            without `representative_data` or with `elbo` (per-pixel
            log-probabilities are too small for int8 steps: the sum over
            pixels loses most of its value), a signature that needs ops
            outside the TFLite builtins, or a SavedModel with NaN or
            infinite weights.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"Expected `quantization` to be one of {QUANTIZATIONS}. "
            f"Received: quantization={quantization!r}"
        )
    saved_model_dir = str(saved_model_dir)
    loaded = tf.saved_model.load(saved_model_dir)
    check_finite_weights(loaded)
    missing = [name for name in signature_names if name not in loaded.signatures]
    if missing:
        raise ValueError(
            f"Expected signatures among {sorted(loaded.signatures)} in {saved_model_dir}. "
            f"Received: {missing}"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=list(signature_names)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative_data is None:
            raise ValueError("Expected `representative_data` for quantization='int8'.")
        if "elbo" in signature_names:
            raise ValueError(
                "Expected signatures without `elbo` for quantization='int8': its per-pixel "
                "log-probabilities are below one int8 step and their sum is lost. "
                "Use float32, float16 or dynamic-int8 for `elbo`."
            )
        if isinstance(representative_data, (np.ndarray, dict)):
            representative_data = [representative_data]
        converter.representative_dataset = lambda: _calibration_inputs(
            loaded, signature_names, representative_data
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with warnings.catch_warnings():
            # The calibrator uses tf.lite.Interpreter, which warns that it is deprecated.
            warnings.simplefilter("ignore", UserWarning)
            model = converter.convert()
    except Exception as error:  # the converter raises its own ConverterError
        raise ValueError(
            f"TFLite conversion of {list(signature_names)} with builtin ops failed: "
            f"{_reason(error)}"
        ) from error
    try:
        card = read_model_card(saved_model_dir)
    except FileNotFoundError:  # not a keras-vae export: no support to carry
        return model
    return _with_metadata(
        model, INPUT_METADATA, {**card["input"], "condition": card.get("condition")}
    )


class LiteRTModel:
    """Runs the signatures of a `.tflite` model with LiteRT, at any batch size.

    Inputs are checked as the SavedModel's signatures check them, which
    the `.tflite` file cannot do itself: shape, one batch size, no empty
    sample axis, finite values, `x` within the data's support (from the
    file's metadata), `u` within [0, 1] and a conditional VAE's `condition`
    within its bounds (whole numbers for class labels). Any other input raises
    `ValueError` before LiteRT runs.

    Args:
        model: The model as bytes, or the path of a `.tflite` file.

    Call arguments:
        signature_name: The signature to run.
        **inputs: Its named inputs, arrays with any batch size.

    Returns:
        A dict of named output arrays.

    Example:

    >>> model = LiteRTModel("vae.tflite")  # doctest: +SKIP
    >>> model("encode", x=images)["loc"].shape  # doctest: +SKIP
    (8, 20)
    """

    def __init__(self, model):
        from ai_edge_litert.interpreter import Interpreter

        model = bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        self.interpreter = Interpreter(model_content=model)
        self.signature_names = sorted(self.interpreter.get_signature_list())
        metadata = _read_metadata(model, INPUT_METADATA) or {}
        self.support = metadata.get("support")
        self.condition = metadata.get("condition")

    def input_shapes(self, signature_name):
        """`{input name: shape}` of a signature, with -1 for the dynamic sizes."""
        details = self._runner(signature_name).get_input_details()
        return {
            name: tuple(int(size) for size in detail["shape_signature"])
            for name, detail in details.items()
        }

    def __call__(self, signature_name, **inputs):
        expected = self.input_shapes(signature_name)
        if sorted(inputs) != sorted(expected):
            raise ValueError(
                f"Expected inputs {sorted(expected)} for signature {signature_name!r}. "
                f"Received: {sorted(inputs)}"
            )
        arrays = {name: np.asarray(value, np.float32) for name, value in inputs.items()}
        check_arrays(signature_name, expected, arrays, self.support, self.condition)
        # The runner resizes its inputs to these arrays' shapes before invoking.
        return self._runner(signature_name)(**arrays)

    def _runner(self, signature_name):
        if signature_name not in self.signature_names:
            raise ValueError(
                f"Expected a signature among {self.signature_names}. Received: {signature_name!r}"
            )
        return self.interpreter.get_signature_runner(signature_name)


def _calibration_inputs(loaded, signature_names, batches):
    # One example at a time: the calibrator sizes each signature by its first input.
    seed = 0
    for batch in batches:
        # A conditional VAE's data comes with its condition: {"x": x, "condition": c}.
        x, condition = (
            (batch["x"], batch["condition"]) if isinstance(batch, dict) else (batch, None)
        )
        for index in range(len(x)):
            example = np.asarray(x[index : index + 1], np.float32)
            if condition is not None:
                example = {"x": example, "condition": condition[index : index + 1]}
            seed += 1
            for name in signature_names:
                yield name, example_inputs(loaded, name, example, seed=seed)


def _with_metadata(model, name, value):
    # TFLite's own conversion metadata is added the same way: a named buffer.
    model_object = flatbuffer_utils.convert_bytearray_to_object(model)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(value).encode(), np.uint8)
    model_object.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = name
    metadata.buffer = len(model_object.buffers) - 1
    model_object.metadata = [*(model_object.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model_object))


def _read_metadata(model, name):
    root = schema.Model.GetRootAs(model, 0)
    for index in range(root.MetadataLength()):
        entry = root.Metadata(index)
        if entry.Name().decode() == name:
            return json.loads(root.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None


def _reason(error):
    lines = [line for line in str(error).splitlines() if "neither a custom op" in line]
    ops = sorted({line.split("'")[1] for line in lines if line.count("'") >= 2})
    if ops:
        return f"these ops are not TFLite builtins: {', '.join(ops)}."
    return str(error).strip().splitlines()[0]
