"""Deployment: SavedModel for TF Serving, TFLite for LiteRT, ONNX for onnxruntime.

`export_saved_model` writes the next version of a TF Serving model with the
signatures `serving_default`, `encode`, `decode`, `sample` and `elbo` (see
`keras_vae.export.signatures`), plain tensors in and out, loadable with
TensorFlow alone. `convert_saved_model` turns chosen signatures into one
`.tflite` file; `export_onnx` writes `encode` and `decode` as `.onnx` files.

Example:

>>> import tempfile, keras_vae as kv
>>> from keras_vae.export import export_saved_model
>>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
>>> vae.build((None, 4))
>>> version = export_saved_model(vae, tempfile.mkdtemp() + "/toy")
>>> version.name
'1'
"""

from keras_vae.export.model_card import make_model_card, read_model_card
from keras_vae.export.onnx import compare_onnx, export_onnx, run_onnx
from keras_vae.export.saved_model import (
    build_archive,
    export_saved_model,
    latest_version,
    next_version,
)
from keras_vae.export.signatures import SIGNATURES, signatures
from keras_vae.export.tflite import QUANTIZATIONS, TOLERANCES, LiteRTModel, convert_saved_model
from keras_vae.export.verify import compare, example_inputs, failures

__all__ = [
    "QUANTIZATIONS",
    "SIGNATURES",
    "TOLERANCES",
    "LiteRTModel",
    "build_archive",
    "compare",
    "compare_onnx",
    "convert_saved_model",
    "example_inputs",
    "export_onnx",
    "export_saved_model",
    "failures",
    "latest_version",
    "make_model_card",
    "next_version",
    "read_model_card",
    "run_onnx",
    "signatures",
]
