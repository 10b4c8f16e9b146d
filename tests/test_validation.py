"""Bad options and data raise `ValueError`s that quote what was received."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_vae
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import keras_vae as kv


def make_vae(**kwargs):
    return kv.VAE(kv.networks.MLP([4]), kv.networks.MLP([4]), **{"latent_dim": 2, **kwargs})


def raises(*parts):
    """Expects a `ValueError` whose message contains `parts`, in order."""
    return pytest.raises(ValueError, match=".*".join(map(re.escape, parts)))


@pytest.mark.parametrize("latent_dim", [0, -3, 2.5, "a", True, None])
def test_latent_dim(latent_dim):
    with raises(f"positive integer. Received: latent_dim={latent_dim!r}"):
        make_vae(latent_dim=latent_dim)


def test_objective():
    with raises("one of ('elbo', 'iwae'). Received: objective='vae'"):
        make_vae(objective="vae")


@pytest.mark.parametrize("beta", [-0.5, "1", None])
def test_beta(beta):
    with raises(f"non-negative number. Received: beta={beta!r}"):
        make_vae(beta=beta)


def test_iwae_with_beta():
    with raises("Expected `beta=1` with objective='iwae'", "Received: beta=0.5"):
        make_vae(objective="iwae", beta=0.5)


@pytest.mark.parametrize("num_samples", [0, -2, 1.5])
def test_num_samples(num_samples):
    with raises(f"positive integer. Received: num_samples={num_samples!r}"):
        make_vae(num_samples=num_samples)


def test_valid_options_at_their_bounds():
    vae = make_vae(latent_dim=np.int64(1), beta=0, num_samples=1)
    assert vae.latent_dim == 1
    assert make_vae(objective="iwae", beta=1.0, num_samples=5).objective == "iwae"


@pytest.fixture(scope="module")
def built_vae():
    keras.utils.set_random_seed(0)
    return tiny_vae(data_shape=(6,))


@pytest.mark.parametrize(
    "method",
    [
        lambda vae, x: vae.fit(x, verbose=0),
        lambda vae, x: vae.evaluate(x, verbose=0),
        lambda vae, x: vae.elbo(x),
        lambda vae, x: vae.iwae_bound(x, 2),
        lambda vae, x: vae.log_likelihood(x, 2),
    ],
    ids=["fit", "evaluate", "elbo", "iwae_bound", "log_likelihood"],
)
def test_data_shape(built_vae, method):
    x = np.zeros((4, 5), "float32")
    with raises("Expected data of shape (batch, 6) for this model. Received: data of shape (4, 5)"):
        method(built_vae, x)


def test_dataset_shape(built_vae):
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2, 3), "float32")).batch(2)
    with raises(
        "Expected data of shape (batch, 6) for this model. Received: data of shape (None, 2, 3)."
    ):
        built_vae.fit(dataset, verbose=0)


def test_unbuilt_model_builds_from_data():
    vae = make_vae()
    vae.compile(optimizer="adam")
    vae.fit(np.zeros((4, 3, 2), "float32"), verbose=0)
    assert vae.data_shape == (3, 2)
    with raises("Expected data of shape (batch, 3, 2) for this model"):
        vae.elbo(np.zeros((4, 6), "float32"))


def test_bernoulli_data_outside_support_fit(built_vae):
    x = np.linspace(-1.0, 2.0, 24, dtype="float32").reshape(4, 6)
    with raises(
        "Expected data in [0.0, 1.0] for the Bernoulli likelihood. Received: values in [-1.0, 2.0]."
    ):
        built_vae.fit(x, verbose=0)


def test_bernoulli_data_outside_support_elbo(built_vae):
    x = tf.fill((2, 6), 1.5)
    with raises("Expected data in [0.0, 1.0] for the Bernoulli likelihood", "[1.5, 1.5]"):
        built_vae.elbo(x)


def test_continuous_bernoulli_data_outside_support():
    vae = tiny_vae(likelihood=kv.likelihoods.ContinuousBernoulli())
    with raises("for the ContinuousBernoulli likelihood. Received: values in [0.0, 3.0]"):
        vae.elbo(np.full((1, 6), 3.0, "float32") * np.arange(2)[:, None])


def test_normal_accepts_real_data():
    vae = tiny_vae(likelihood=kv.likelihoods.Normal())
    assert np.isfinite(vae.elbo(np.full((2, 6), -5.0, "float32"))).all()


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: kv.likelihoods.Normal(scale="x"),
            "Expected `scale` to be one of ('predicted', 'learned') or a positive float. "
            "Received: scale='x'",
        ),
        (lambda: kv.likelihoods.Normal(scale=-1.0), "Received: scale=-1.0"),
        (lambda: kv.likelihoods.Normal(scale=True), "Received: scale=True"),
        (
            lambda: kv.likelihoods.Normal(min_scale=-0.1),
            "Expected `min_scale` to be non-negative. Received: min_scale=-0.1",
        ),
        (
            lambda: kv.priors.MixtureOfNormals(0),
            "Expected `num_components` to be a positive integer. Received: num_components=0",
        ),
        (lambda: kv.priors.VampPrior(2.0), "Received: num_components=2.0"),
        (lambda: kv.priors.MixtureOfNormals(min_scale=-0.5), "Received: min_scale=-0.5"),
        (lambda: kv.posteriors.DiagonalNormal(min_scale=-1), "Received: min_scale=-1"),
        (lambda: kv.posteriors.FullCovarianceNormal(min_scale=-1), "Received: min_scale=-1"),
        (lambda: kv.networks.MLP([8, 0]), "Received: hidden_units=[8, 0]"),
        (
            lambda: kv.networks.ConvDecoder(image_size=(30, 30), filters=(8, 4)),
            "Expected `image_size` to be (height, width), each divisible by 4. "
            "Received: image_size=(30, 30)",
        ),
        (
            lambda: kv.networks.ConvDecoder(image_size=(28, 28), filters=(8, 4, 2)),
            "each divisible by 8. Received: image_size=(28, 28)",
        ),
        (lambda: kv.networks.ConvDecoder(image_size=(28,)), "Received: image_size=(28,)"),
    ],
)
def test_family_arguments(make, message):
    with raises(message):
        make()


# === The data boundary: arrays, lists and datasets ===


def batches(x, batch_size=2):
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)


@pytest.mark.parametrize(
    "method",
    [
        lambda vae, x: vae.fit(x, verbose=0),
        lambda vae, x: vae.evaluate(x, verbose=0),
        lambda vae, x: vae.elbo(x),
        lambda vae, x: vae.log_likelihood(x, 2),
        lambda vae, x: vae.fit(batches(x), verbose=0),
        lambda vae, x: vae.evaluate(batches(x), verbose=0),
    ],
    ids=["fit", "evaluate", "elbo", "log_likelihood", "fit_dataset", "evaluate_dataset"],
)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data(built_vae, method, bad):
    x = np.full((4, 6), 0.5, "float32")
    x[1, 2] = bad
    with raises("Expected finite data. Received: 1 NaN or infinite values among"):
        method(built_vae, x)


def test_dataset_of_8bit_pixels_for_a_bernoulli_model(built_vae):
    pixels = np.arange(24, dtype="uint8").reshape(4, 6) * 10
    with raises("Expected data in [0.0, 1.0] for the Bernoulli likelihood. Received: values in"):
        built_vae.fit(batches(pixels), verbose=0)


def test_a_bad_batch_after_good_ones_stops_fit_before_its_step(built_vae):
    x = np.full((6, 6), 0.5, "float32")
    x[5] = 2.0  # In the third batch.
    steps = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: steps.append(b))
    with raises("Received: values in [0.5, 2]."):
        built_vae.fit(batches(x), callbacks=[callback], verbose=0)
    assert steps == [0, 1]


def test_unbatched_dataset_does_not_build_a_wrong_model():
    vae = make_vae()
    vae.compile(optimizer="adam")
    with raises("Expected a batched dataset", "unbatched dataset of elements of shape (3, 2)"):
        vae.fit(tf.data.Dataset.from_tensor_slices(np.zeros((4, 3, 2), "float32")), verbose=0)
    assert not vae.built


def test_unbatched_dataset_for_a_built_model(built_vae):
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((4, 6), "float32"))
    with raises("unbatched dataset of elements of shape (6,)"):
        built_vae.evaluate(dataset.map(lambda x: x), verbose=0)


def test_batched_datasets_of_fixed_size_are_accepted(built_vae):
    x = np.zeros((4, 6), "float32")
    for dataset in (
        batches(x, 2).repeat(2),
        tf.data.Dataset.range(4).batch(2, drop_remainder=True).map(lambda i: tf.zeros((2, 6))),
        tf.data.Dataset.from_tensors(x),
    ):
        assert np.isfinite(built_vae.evaluate(dataset, verbose=0)[0])


@pytest.mark.parametrize(
    "x, message",
    [
        (
            np.zeros((0, 6), "float32"),
            "Expected at least one example with at least one value. Received: data of shape (0, 6)",
        ),
        (np.zeros(6, "float32"), "Received: data of shape (6,); add a batch axis, e.g. x[None]"),
        ({"x": np.zeros((2, 6))}, "Received: dict with keys ['x']"),
        ([[0.0, 1.0], [0.5]], "Received: a ragged or mixed list"),
        (
            np.full((2, 6), "a"),
            "Expected data of real numbers (float, int or bool). Received: dtype str32",
        ),
        (np.zeros((2, 6), "complex64"), "Received: dtype complex64"),
        ("abc", "Received: str"),
        (
            batches({"x": np.zeros((2, 6), "float32")}),
            "Received: a dataset of elements {x: float32(None, 6)}",
        ),
        (batches(np.zeros((2, 6), "complex64")), "Received: dtype complex64"),
        (batches(np.zeros((2, 6), "float32")).map(lambda x: (x, x, x, x)), "Expected an array"),
    ],
    ids=[
        "empty",
        "no_batch_axis",
        "dict",
        "ragged_list",
        "strings",
        "complex",
        "str",
        "dataset_of_dicts",
        "complex_dataset",
        "long_tuples",
    ],
)
def test_data_that_is_not_a_batch(built_vae, x, message):
    for method in (lambda: built_vae.fit(x, verbose=0), lambda: built_vae.evaluate(x, verbose=0)):
        with raises(message):
            method()


def test_lists_are_data(built_vae):
    rows = [[0.0, 1.0, 0.0, 1.0, 1.0, 0.0]] * 3
    np.testing.assert_allclose(built_vae.elbo(rows).shape, (3,))
    assert np.isfinite(built_vae.evaluate(rows, verbose=0)[0])
    with raises("Expected data in [0.0, 1.0]", "Received: values in [0.0, 2.0]."):
        built_vae.elbo([[0.0, 2.0, 0.0, 1.0, 1.0, 0.0]])


# === Fuzzing the boundary ===

DTYPES = ("float16", "float32", "float64", "uint8", "int32", "bool", "complex64", "str")


@st.composite
def data_arrays(draw, min_batch=0):
    """Arrays of any rank, dtype and values, often of the model's shape (batch, 6)."""
    dtype = draw(st.sampled_from(DTYPES))
    batch = st.integers(min_batch, 5)
    shape = draw(
        st.one_of(
            st.tuples(batch, st.just(6)),
            st.tuples(batch, hnp.array_shapes(max_dims=2, min_side=0)).map(
                lambda drawn: (drawn[0], *drawn[1])
            ),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7),
        )
    )
    values = [0.0, 1.0, 0.25]
    if dtype in ("uint8", "int32"):
        values += [2.0, 255.0]
    elif dtype != "bool":
        values += [-0.5, 1.5, 1e30, np.nan, np.inf, -np.inf]
    x = draw(hnp.arrays("float64", shape, elements=st.sampled_from(values)))
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype)


def is_valid(x, batched=True):
    """The reference: what a Bernoulli model of data shape (6,) accepts."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or not batched or x.shape[1:] != (6,) or len(x) == 0:
        return False
    return bool(np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=data_arrays(), as_list=st.booleans())
def test_fuzz_arrays_and_lists(built_vae, x, as_list):
    data = x.tolist() if as_list else x
    if is_valid(x):
        assert kv.validation.check_data(built_vae, data) is not None
    else:
        with pytest.raises(ValueError, match="^Expected "):
            kv.validation.check_data(built_vae, data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=data_arrays(min_batch=1), batched=st.booleans(), batch_size=st.integers(1, 3))
def test_fuzz_datasets(built_vae, x, batched, batch_size):
    if x.ndim == 0 or x.shape[0] == 0 or x.dtype.kind == "U":
        return  # Not a dataset of slices (strings are refused as arrays above).
    dataset = tf.data.Dataset.from_tensor_slices(x)
    dataset = dataset.batch(batch_size) if batched else dataset
    if is_valid(x, batched):
        for _ in kv.validation.check_data(built_vae, dataset):
            pass
    else:
        with pytest.raises(ValueError, match="^Expected "), kv.validation.data_errors():
            for _ in kv.validation.check_data(built_vae, dataset):
                pass
