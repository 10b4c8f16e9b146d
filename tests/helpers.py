"""Shared test helpers: serialization round-trips, tiny models and the MNIST reader."""

import gzip
import json
from pathlib import Path

import keras
import numpy as np

import keras_vae as kv

__all__ = [
    "MNIST_DIR",
    "load_idx",
    "load_mnist",
    "run_model_saving_test",
    "run_serialization_test",
    "tiny_vae",
]

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def run_serialization_test(instance, init_kwargs):
    """Checks that `instance` round-trips its config, through JSON and the registry.

    Every constructor argument in `init_kwargs` must be stored as a same-named
    attribute and returned unchanged by `get_config()`.

    Returns:
        The instance revived by `keras.saving.deserialize_keras_object`.
    """
    config = instance.get_config()
    for name, value in init_kwargs.items():
        assert getattr(instance, name) == value, name
        assert config[name] == value, name

    revived = type(instance).from_config(config)
    assert revived.get_config() == config

    # Through JSON and the registered name, as a `.keras` file stores it.
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(instance)
    assert _jsonable(revived.get_config()) == _jsonable(config)
    return revived


def _jsonable(config):
    return json.loads(json.dumps(config))


def run_model_saving_test(model, x, path):
    """Saves a compiled, trained `model` to `path` and checks the loaded copy.

    The loaded model must give the same reconstruction, posterior parameters
    and likelihood parameters, and continue training where the original
    stopped: the optimizer's iteration count carries over and the loss stays
    finite.

    Returns:
        The loaded model.
    """
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert _jsonable(loaded.get_config()) == _jsonable(model.get_config())

    for loaded_weight, weight in zip(loaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(loaded_weight, weight, err_msg=weight.path)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-6)
    _assert_dicts_close(loaded.posterior_parameters(x), model.posterior_parameters(x))
    z = model.posterior_parameters(x)["loc"]
    _assert_dicts_close(loaded.likelihood_parameters(z), model.likelihood_parameters(z))

    iterations = int(model.optimizer.iterations)
    assert iterations > 0
    for loaded_variable, variable in zip(
        loaded.optimizer.variables, model.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(loaded_variable, variable, err_msg=variable.path)
    history = loaded.fit(x, batch_size=len(x), epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == iterations + 1
    assert np.isfinite(history.history["loss"]).all()
    return loaded


def _assert_dicts_close(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)


def tiny_vae(data_shape=(6,), latent_dim=2, units=8, jit_compile=False, **kwargs):
    """A small MLP VAE, built for `data_shape` and compiled with Adam.

    Without XLA unless asked: compiling a tiny model's steps with XLA takes longer
    than the steps a test runs. Tests of the default (XLA) path compile it themselves.
    """
    vae = kv.VAE(
        kv.networks.MLP([units], "tanh"), kv.networks.MLP([units], "tanh"), latent_dim, **kwargs
    )
    vae.build((None, *data_shape))
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    return vae


def load_idx(path):
    """Reads a gzipped IDX file (the MNIST format) into a uint8 array."""
    with gzip.open(path, "rb") as file:
        data = file.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned bytes
        raise ValueError(f"Expected an IDX file of unsigned bytes. Received: magic={magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(split):
    """MNIST images of `split` ("train" or "t10k") as `(n, 28, 28)` floats in [0, 1]."""
    return load_idx(MNIST_DIR / f"{split}-images-idx3-ubyte.gz").astype("float32") / 255.0
