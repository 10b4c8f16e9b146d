"""Names the library accepts for its options, importable without TensorFlow.

The command line offers them as choices while building its parser, which must not import
TensorFlow (`keras-vae --help` answers in well under a second); the modules that act on a
name import it from here.

Example:

>>> from keras_vae.choices import OBJECTIVES
>>> OBJECTIVES
('elbo', 'iwae')
"""

__all__ = [
    "CONDITIONS",
    "ESTIMATORS",
    "FIGURES",
    "OBJECTIVES",
    "ONNX_SIGNATURES",
    "PRECISIONS",
    "PREPROCESSING",
    "QUANTIZATIONS",
    "SIGNATURES",
    "STRATEGIES",
]

OBJECTIVES = ("elbo", "iwae")
CONDITIONS = ("none", "label")
ESTIMATORS = ("reparameterization", "score_function", "stl", "dreg")
PREPROCESSING = ("dynamic", "static", "continuous", "8bit")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
FIGURES = ("reconstructions", "manifold", "traversals", "latents")
SIGNATURES = ("serving_default", "encode", "decode", "sample", "elbo")
ONNX_SIGNATURES = ("encode", "decode")
QUANTIZATIONS = ("float32", "float16", "dynamic-int8", "int8")
