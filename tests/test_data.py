"""Tests of keras_vae.data on the real files in shared/data, prepared offline by TFDS."""

import doctest
import socket
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import load_idx

from keras_vae import data

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir(), reason=f"no benchmark data in {SHARED_DATA}"
)


@pytest.fixture(scope="session")
def data_dir(tfds_data_dir):
    """A TFDS data dir with mnist prepared once, from the IDX files only."""
    return tfds_data_dir


@pytest.fixture(scope="session")
def binarized_data_dir(data_dir, tmp_path_factory):
    """`data_dir` with binarized_mnist prepared too, from .amat files written from the npz."""
    manual = tmp_path_factory.mktemp("manual")
    # TFDS checks the files against its recorded sha256 sums while preparing, so this also
    # proves write_binarized_mnist_amat byte-exact.
    data.write_binarized_mnist_amat(
        SHARED_DATA / "binarized_mnist" / "binarized_mnist.npz", manual / "binarized_mnist"
    )
    data.load("binarized_mnist", preprocessing="static", manual_dir=manual, data_dir=data_dir)
    return data_dir


def one_batch(dataset):
    """The only batch of `dataset`, as numpy."""
    (batch,) = list(dataset.as_numpy_iterator())
    return batch


def rows(images):
    """The multiset of images, as a sorted list of bytes, to compare regardless of order."""
    images = np.asarray(images)
    return sorted(image.tobytes() for image in images.reshape(len(images), -1))


def test_mnist_shapes_counts_and_dtypes(data_dir):
    train = data.load("mnist", batch_size=None, data_dir=data_dir)
    test = data.load("mnist", split="test", batch_size=100, data_dir=data_dir)
    assert int(train.cardinality()) == 60000
    assert int(test.cardinality()) == 100
    assert train.element_spec == tf.TensorSpec((28, 28, 1), tf.float32)
    assert test.element_spec == tf.TensorSpec((None, 28, 28, 1), tf.float32)


def test_max_examples_are_the_first_of_the_split(data_dir):
    first = data.load("mnist", "test", "8bit", batch_size=7, max_examples=7, data_dir=data_dir)
    whole = data.load("mnist", "test", "8bit", batch_size=7, data_dir=data_dir)
    np.testing.assert_array_equal(one_batch(first), next(whole.as_numpy_iterator()))
    shuffled = data.load(
        "mnist", "test", "8bit", batch_size=30, shuffle=True, max_examples=30, data_dir=data_dir
    )
    first = data.load("mnist", "test", "8bit", batch_size=30, max_examples=30, data_dir=data_dir)
    assert rows(one_batch(shuffled)) == rows(one_batch(first))  # shuffled among themselves


def test_8bit_is_the_idx_test_set_with_its_labels(data_dir):
    x, y = one_batch(
        data.load("mnist", "test", "8bit", batch_size=10000, with_labels=True, data_dir=data_dir)
    )
    assert x.dtype == np.uint8 and x.shape == (10000, 28, 28, 1)
    images = load_idx(SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = load_idx(SHARED_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    # TFDS reorders examples while preparing, so compare (image, label) pairs as multisets.
    tfds_pairs = np.concatenate([x.reshape(10000, -1), y[:, None].astype(np.uint8)], axis=1)
    idx_pairs = np.concatenate([images.reshape(10000, -1), labels[:, None]], axis=1)
    assert rows(tfds_pairs) == rows(idx_pairs)


def test_continuous_is_pixels_over_255(data_dir):
    pixels = one_batch(data.load("mnist", "test", "8bit", batch_size=10000, data_dir=data_dir))
    x = one_batch(data.load("mnist", "test", "continuous", batch_size=10000, data_dir=data_dir))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, pixels.astype(np.float32) / 255.0)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_dynamic_redraws_each_epoch_and_reproduces_from_seed(data_dir):
    def epochs(seed):
        dataset = data.load("mnist", "test", batch_size=10000, seed=seed, data_dir=data_dir)
        return one_batch(dataset), one_batch(dataset)

    first, second = epochs(seed=0)
    assert first.dtype == np.float32
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    again_first, again_second = epochs(seed=0)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, epochs(seed=1)[0])
    # 7.84M Bernoulli draws: the mean's standard error is about 1e-4.
    x = one_batch(data.load("mnist", "test", "continuous", batch_size=10000, data_dir=data_dir))
    assert abs(first.mean() - x.mean()) < 1e-3


def test_shuffle_reshuffles_each_epoch_and_reproduces_from_seed(data_dir):
    def label_epochs(seed):
        dataset = data.load(
            "mnist",
            "test",
            "8bit",
            10000,
            shuffle=True,
            seed=seed,
            with_labels=True,
            data_dir=data_dir,
        )
        return [one_batch(dataset)[1] for _ in range(2)]

    first, second = label_epochs(seed=0)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first), np.sort(second))
    np.testing.assert_array_equal(label_epochs(seed=0), [first, second])


def test_static_is_the_npz(binarized_data_dir):
    data_dir = binarized_data_dir
    npz = np.load(SHARED_DATA / "binarized_mnist" / "binarized_mnist.npz")
    test = data.load("binarized_mnist", "test", "static", batch_size=10000, data_dir=data_dir)
    x = one_batch(test)
    assert x.dtype == np.float32 and x.shape == (10000, 28, 28, 1)
    assert rows(x.astype(np.uint8)) == rows(npz["test"])
    for split, size in [("train", 50000), ("validation", 10000)]:
        dataset = data.load("binarized_mnist", split, "static", None, data_dir=data_dir)
        assert int(dataset.cardinality()) == size


def test_validation_is_held_out_from_the_end_of_train(data_dir):
    def load(split, validation_size):
        return data.load(
            "mnist", split, "8bit", 10000, validation_size=validation_size, data_dir=data_dir
        )

    assert int(load("train", 10000).cardinality()) == 5
    last_of_train = list(load("train", 0).as_numpy_iterator())[-1]
    np.testing.assert_array_equal(one_batch(load("validation", 10000)), last_of_train)
    with pytest.raises(ValueError, match="smaller than the 60000 training examples"):
        data.load("mnist", validation_size=60000, data_dir=data_dir)
    with pytest.raises(ValueError, match=r"one of \('train', 'test'\)"):
        data.load("mnist", "validation", data_dir=data_dir)


def test_binarized_mnist_keeps_its_own_validation_split(binarized_data_dir):
    with pytest.raises(ValueError, match="own validation split"):
        data.load(
            "binarized_mnist", "train", "static", validation_size=10, data_dir=binarized_data_dir
        )


def test_drop_remainder(data_dir):
    kept = data.load("mnist", "test", batch_size=3000, data_dir=data_dir)
    dropped = data.load("mnist", "test", batch_size=3000, drop_remainder=True, data_dir=data_dir)
    assert int(kept.cardinality()) == 4
    assert int(dropped.cardinality()) == 3
    assert dropped.element_spec.shape == (3000, 28, 28, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "not_a_dataset"}, "Received: name='not_a_dataset', unknown to TFDS"),
        ({"name": "imdb_reviews"}, "'image' feature of uint8 pixels"),
        ({"name": "mnist", "preprocessing": "binary"}, "preprocessing='binary'"),
        ({"name": "mnist", "preprocessing": "static"}, "use 'dynamic' to binarize 'mnist'"),
        ({"name": "binarized_mnist"}, "Received: preprocessing='dynamic'"),
        (
            {"name": "binarized_mnist", "preprocessing": "static", "with_labels": True},
            "which has no labels",
        ),
        ({"name": "mnist", "batch_size": 0}, "Received: batch_size=0"),
        ({"name": "mnist", "validation_size": -1}, "Received: validation_size=-1"),
        ({"name": "mnist", "split": "valid", "validation_size": 5}, "split='valid'"),
        ({"name": "mnist", "max_examples": 0}, "Received: max_examples=0"),
    ],
)
def test_bad_arguments_raise_value_error(data_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(data_dir=data_dir, **kwargs)


def test_mnist_and_fashion_mnist_prepared_into_one_folder_keep_their_own_data(data_dir):
    """Both datasets' files have the same names; each must give its own images and labels."""
    for name in ("mnist", "fashion_mnist"):  # mnist first, as in data_dir already.
        x, y = one_batch(
            data.load(
                name,
                "test",
                "8bit",
                batch_size=10000,
                with_labels=True,
                manual_dir=SHARED_DATA,
                data_dir=data_dir,
            )
        )
        images = load_idx(SHARED_DATA / name / "t10k-images-idx3-ubyte.gz")
        labels = load_idx(SHARED_DATA / name / "t10k-labels-idx1-ubyte.gz")
        tfds_pairs = np.concatenate([x.reshape(10000, -1), y[:, None].astype(np.uint8)], axis=1)
        idx_pairs = np.concatenate([images.reshape(10000, -1), labels[:, None]], axis=1)
        assert rows(tfds_pairs) == rows(idx_pairs), name


def manual_copy(tmp_path, source, name, damage):
    """A manual folder `tmp_path/manual/name` holding `source`'s IDX files, one damaged."""
    folder = tmp_path / "manual" / name
    folder.mkdir(parents=True)
    for path in (SHARED_DATA / source).glob("*.gz"):
        (folder / path.name).write_bytes(path.read_bytes())
    damage(folder / "t10k-images-idx3-ubyte.gz")
    return tmp_path / "manual"


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_manual_file_is_named_in_one_line(tmp_path):
    manual = manual_copy(tmp_path, "mnist", "mnist", truncate)
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("mnist", manual_dir=manual, data_dir=tmp_path / "tfds")
    message = str(info.value)
    assert "\n" not in message
    path = manual / "mnist" / "t10k-images-idx3-ubyte.gz"
    assert (
        f"Expected {path} to be the original t10k-images-idx3-ubyte.gz of 'mnist' (1648877 bytes"
        in message
    )
    assert "Received: a file of 824438 bytes" in message


def test_another_datasets_file_of_the_same_name_is_refused(tmp_path):
    # mnist's files in the fashion_mnist folder: same names, other content.
    manual = manual_copy(tmp_path, "mnist", "fashion_mnist", lambda path: None)
    with pytest.raises(data.DatasetUnavailableError, match="another dataset's file"):
        data.load("fashion_mnist", manual_dir=manual, data_dir=tmp_path / "tfds")


def test_missing_dataset_offline_names_files_and_folder(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    # Fails the probe on any machine, online or not, without waiting on the network.
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv(data.MANUAL_DIR_ENV, str(tmp_path / "manual"))
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("fashion_mnist", data_dir=tmp_path / "tfds")
    message = str(info.value)
    assert "'fashion_mnist' is not prepared" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "manual" / "fashion_mnist") in message


def test_probe_fails_fast_on_a_closed_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert data._reachable(f"http://127.0.0.1:{port}/file.gz")
    assert not data._reachable(f"http://127.0.0.1:{port}/file.gz")


def test_splits():
    assert data.splits() == {"train": "train", "test": "test"}
    assert data.splits(5, ("train",)) == {"train": "train[:-5]", "validation": "train[-5:]"}


def test_image_shape():
    assert data.image_shape("mnist") == (28, 28, 1)
    assert data.image_shape("cifar10") == (32, 32, 3)


def test_docstring_examples():
    assert doctest.testmod(data).failed == 0
