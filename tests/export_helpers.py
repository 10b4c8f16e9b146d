"""Shared helpers of the export tests: small trained models, their exports, and references.

`exported(kind)` trains and exports a model once per test session; the
references (`expected_outputs`) come from the in-memory model's public
methods, not from the exported signature functions.
"""

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
from helpers import load_mnist

import keras_vae as kv
from keras_vae.export import SIGNATURES, export_saved_model

__all__ = [
    "KINDS",
    "check_every_runtime",
    "expected_outputs",
    "exported",
    "make_inputs",
    "make_run_dir",
    "mnist",
    "trained_vae",
]

_ROOT = Path(tempfile.mkdtemp(prefix="keras-vae-export-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

# Each family and network kind appears in at least one model.
KINDS = ("mnist_mlp", "full_normal_mixture", "conv_vamp", "two_layers")


@functools.cache
def mnist(split, count):
    """`count` binarized MNIST images `(count, 28, 28, 1)`, from the shared IDX files."""
    images = load_mnist("train" if split == "train" else "t10k")[:count]
    return (images > 0.5).astype(np.float32)[..., None]


@functools.cache
def trained_vae(kind):
    """A small model of `kind`, trained a few steps, and a batch of its data."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if kind == "mnist_mlp":
        # MLP, DiagonalNormal, Bernoulli, StandardNormal on real digits.
        vae = kv.VAE(kv.networks.MLP([32], "tanh"), kv.networks.MLP([32], "tanh"), latent_dim=4)
        x = mnist("train", 2000)
        epochs = 2
    elif kind == "full_normal_mixture":
        vae = kv.VAE(
            kv.networks.MLP([16], "tanh"),
            kv.networks.MLP([16], "tanh"),
            latent_dim=3,
            posterior=kv.posteriors.FullCovarianceNormal(),
            likelihood=kv.likelihoods.Normal(),
            prior=kv.priors.MixtureOfNormals(num_components=3),
        )
        x = rng.normal(size=(64, 6, 5)).astype(np.float32)
        epochs = 1
    elif kind == "conv_vamp":
        vae = kv.VAE(
            kv.networks.ConvEncoder([4, 8], dense_units=16),
            kv.networks.ConvDecoder((8, 8), [8, 4]),
            latent_dim=2,
            prior=kv.priors.VampPrior(num_components=5),
        )
        x = (rng.random((64, 8, 8, 1)) < 0.3).astype(np.float32)
        epochs = 1
    elif kind == "two_layers":
        # Burda et al.'s two stochastic layers, small: z_1 of 3, z_2 of 2.
        vae = kv.VAE(
            kv.networks.MLP([16], "tanh"),
            kv.networks.MLP([16], "tanh"),
            latent_dim=3,
            latent_layers=[
                kv.LatentLayer(2, kv.networks.MLP([8], "tanh"), kv.networks.MLP([8], "tanh"))
            ],
        )
        x = (rng.random((64, 6, 5)) < 0.3).astype(np.float32)
        epochs = 1
    else:
        raise ValueError(f"Unknown model kind {kind!r}; expected one of {KINDS}.")
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    vae.fit(x, batch_size=min(len(x), 100), epochs=epochs, verbose=0)
    return vae, x


@functools.cache
def exported(kind, signature_names=SIGNATURES):
    """The version folder of `trained_vae(kind)` exported with `signature_names`."""
    vae, _ = trained_vae(kind)
    data = {"dataset": "mnist", "preprocessing": "dynamic"} if kind == "mnist_mlp" else None
    return export_saved_model(vae, _ROOT / kind, signature_names, data=data)


def make_run_dir(root, metrics=None):
    """A training run's folder holding `trained_vae("mnist_mlp")`: model, config, metrics."""
    root.mkdir(parents=True)
    trained_vae("mnist_mlp")[0].save(root / "model.keras")
    config = {"preset": "aevb-mnist", "dataset": "mnist", "preprocessing": "dynamic"}
    (root / "config.json").write_text(json.dumps(config))
    if metrics is not None:
        (root / "metrics.json").write_text(json.dumps(metrics))
    return root


def make_inputs(vae, signature_name, x, num_samples=3, seed=0):
    """Named inputs of a signature for the batch `x`, noise drawn from `seed`."""
    rng = np.random.default_rng(seed)
    batch = len(x)
    latent = vae.latent_size  # of all of z; `decode` takes z_1 only
    mixture = isinstance(vae.prior, (kv.priors.MixtureOfNormals, kv.priors.VampPrior))
    if signature_name in ("serving_default", "encode"):
        return {"x": x}
    if signature_name == "decode":
        return {"z": rng.standard_normal((batch, vae.latent_dim)).astype(np.float32)}
    if signature_name == "sample":
        inputs = {"eps": rng.standard_normal((batch, latent)).astype(np.float32)}
        if mixture:
            # Spread over [0, 1) so that every component is picked.
            inputs["u"] = ((np.arange(batch) + 0.5) / batch).astype(np.float32)
        return inputs
    eps = rng.standard_normal((batch, num_samples, latent)).astype(np.float32)
    return {"x": x, "eps": eps}


def expected_outputs(vae, signature_name, inputs):
    """What the signature must return, from the in-memory model's public methods."""
    if signature_name == "serving_default":
        return {"reconstruction": np.asarray(vae(inputs["x"]))}
    if signature_name == "encode":
        return _numpy(vae.posterior_parameters(inputs["x"]))
    if signature_name == "decode":
        return _decode(vae, inputs["z"])
    if signature_name == "sample":
        z = _prior_sample(vae, inputs["eps"], inputs.get("u"))
        return {"z": z, **_decode(vae, z)}
    noise = np.transpose(inputs["eps"], (1, 0, 2))  # (num_samples, batch, latent_dim)
    return _numpy(vae.terms(inputs["x"], noise=noise))


def _decode(vae, z):
    parameters = vae.likelihood_parameters(z)
    return _numpy({"mean": vae.likelihood.mean(parameters), **parameters})


def _prior_sample(vae, eps, u):
    if vae.latent_layers:
        return _ancestral_sample(vae, eps)
    prior = vae.prior_distribution()
    if u is None:
        return np.asarray(prior.loc + prior.scale.matvec(eps))
    weights = np.asarray(prior.mixture_distribution.probs_parameter())
    index = np.minimum(np.searchsorted(np.cumsum(weights), u, side="right"), len(weights) - 1)
    components = prior.components_distribution
    loc = np.asarray(components.loc)[index]
    scale = np.asarray(components.scale.to_dense())[index]  # (batch, latent_dim, latent_dim)
    return loc + np.einsum("bij,bj->bi", scale, eps)


def _ancestral_sample(vae, eps):
    # z_L = eps_L under the standard normal prior, then each z_{i-1} = loc + scale * eps_{i-1}.
    sizes = [vae.latent_dim] + [layer.latent_dim for layer in vae.latent_layers]
    noise = np.split(eps, np.cumsum(sizes)[:-1], axis=1)
    blocks = [noise[-1]]
    for layer, below in zip(vae.latent_layers[::-1], noise[-2::-1], strict=True):
        parameters = _numpy(layer.prior_parameters(blocks[0]))
        blocks.insert(0, parameters["loc"] + parameters["scale"] * below)
    return np.concatenate(blocks, axis=1)


def _numpy(tensors):
    return {name: np.asarray(value) for name, value in tensors.items()}


def check_every_runtime(vae, x, folder, tolerance=(1e-5, 1e-5)):
    """Exports `vae` into `folder` and checks each runtime on the batch `x` (20 examples or more).

    The SavedModel's signatures, in a process without keras_vae, against the in-memory
    model within `tolerance` (atol, rtol); TFLite with builtins only, in LiteRT, and ONNX
    against the SavedModel within their own tolerances.

    Returns:
        The expected outputs of each signature on `x[:5]`, by signature name.
    """
    import pytest
    from test_export import run_in_fresh_process

    from keras_vae.export import (
        TOLERANCES,
        LiteRTModel,
        compare,
        convert_saved_model,
        failures,
    )

    saved_model = export_saved_model(vae, folder / "saved_model")
    requests, expected = {}, {}
    for signature in SIGNATURES:
        requests[signature] = make_inputs(vae, signature, x[:5])
        expected[signature] = expected_outputs(vae, signature, requests[signature])
    results = run_in_fresh_process(
        {(str(saved_model), name): inputs for name, inputs in requests.items()}, folder
    )
    atol, rtol = tolerance
    for signature, outputs in expected.items():
        received = results[str(saved_model), signature]
        assert sorted(received) == sorted(outputs), signature
        for name, value in outputs.items():
            np.testing.assert_allclose(received[name], value, rtol=rtol, atol=atol, err_msg=name)
    litert = LiteRTModel(convert_saved_model(saved_model, SIGNATURES))
    errors = compare(litert, saved_model, x[:20], SIGNATURES, batch_sizes=(1, 20))
    assert failures(errors, TOLERANCES["float32"]) == []
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from keras_vae.export import compare_onnx, export_onnx
    from keras_vae.export.onnx import ONNX_TOLERANCE

    errors = compare_onnx(export_onnx(vae, folder / "onnx"), saved_model, x[:20], (1, 20))
    assert failures(errors, ONNX_TOLERANCE) == []
    return expected
