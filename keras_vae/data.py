"""Image datasets from TensorFlow Datasets, preprocessed for VAEs, as `tf.data` pipelines.

`load` prepares a TFDS image dataset (`mnist`, `fashion_mnist`, `binarized_mnist`, `cifar10`,
`kmnist`, ...) and returns a `tf.data.Dataset` of images shaped `(H, W, C)`, with the
preprocessing named explicitly:

* `"dynamic"`: a fresh Bernoulli draw each time an image is seen,
  `x = float32(uniform < pixel / 255)` (the IWAE paper's MNIST protocol).
* `"static"`: the fixed binarization of Larochelle & Murray; `binarized_mnist` only.
* `"continuous"`: `x = float32(pixel / 255)`, in [0, 1].
* `"8bit"`: the raw `uint8` pixels, in [0, 255] (for discretized likelihoods and bits/dim).

Offline, TFDS reads a dataset's original files from a manual folder (`manual_dir=` or the
`KERAS_VAE_MANUAL_DIR` environment variable): either the folder itself or its subfolder named
after the dataset, so one root folder holding `mnist/`, `fashion_mnist/`, ...
serves every dataset. A dataset that is neither prepared, nor in the manual folder, nor
downloadable raises `DatasetUnavailableError` naming the files and where to put them.
"""

import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

from keras_vae.choices import PREPROCESSING
from keras_vae.validation import is_integer

__all__ = [
    "PREPROCESSING",
    "DatasetUnavailableError",
    "image_shape",
    "label_names",
    "load",
    "num_classes",
    "splits",
    "take",
    "write_binarized_mnist_amat",
]


MANUAL_DIR_ENV = "KERAS_VAE_MANUAL_DIR"

# Datasets whose pixels are already a frozen binarization: rescaling or re-binarizing them
# would silently change the benchmark, so only "static" is accepted for them.
_STATICALLY_BINARIZED = ("binarized_mnist",)

_HINTS = {
    "binarized_mnist": "To make them from binarized_mnist.npz, call "
    "keras_vae.data.write_binarized_mnist_amat(npz_path, folder).",
}

# Offline, TFDS retries each URL for minutes before failing; a short TCP probe fails fast.
_PROBE_TIMEOUT_SECONDS = 3.0


class DatasetUnavailableError(ValueError):
    """Raised when a dataset is neither prepared, nor in the manual folder, nor downloadable."""


def load(
    name,
    split="train",
    preprocessing="dynamic",
    batch_size=100,
    shuffle=False,
    seed=0,
    drop_remainder=False,
    with_labels=False,
    validation_size=0,
    manual_dir=None,
    data_dir=None,
    max_examples=None,
):
    """Returns a TFDS image dataset as a preprocessed, batched `tf.data.Dataset`.

    The pipeline caches the decoded `uint8` images in memory, then (each epoch) shuffles,
    batches, preprocesses whole batches in parallel and prefetches. Dynamic binarization
    happens after the cache, so every epoch sees new draws; its randomness comes from
    `tf.data.Dataset.random(seed)`, so the same `seed` (under the same TF global seed)
    reproduces the same sequence of epochs.

    Args:
        name: TFDS name of an image dataset with an `"image"` feature of `uint8` pixels.
        split: `"train"`, `"validation"` or `"test"`; see `splits` for how they map to TFDS.
        preprocessing: One of `PREPROCESSING`.
        batch_size: Examples per batch, or `None` for unbatched examples.
        shuffle: Whether to reshuffle the examples every epoch (over the whole split).
        seed: Integer seed of the shuffle and of the dynamic binarization.
        drop_remainder: Whether to drop the last, smaller batch (static shapes for TPUs).
        with_labels: Whether to yield `(x, label)` pairs instead of `x` alone.
        validation_size: Number of examples held out from the end of TFDS's train split as
            `"validation"`, for datasets without a validation split of their own.
        manual_dir: Folder holding the dataset's original files, directly or in a subfolder
            named `name`. Defaults to `$KERAS_VAE_MANUAL_DIR`, then TFDS's
            `<data_dir>/downloads/manual`.
        data_dir: TFDS data directory for prepared datasets; defaults to TFDS's.
        max_examples: Only the first `max_examples` examples of the split, or `None` for
            all: quick runs read and decode no more than they use.

    Returns:
        A `tf.data.Dataset` of `x` (or `(x, label)`), `x` shaped `(batch, H, W, C)` (or
        `(H, W, C)` unbatched), `float32` except `uint8` for `"8bit"`.

    Example:

    >>> import keras_vae as kv
    >>> train = kv.data.load("mnist", shuffle=True)  # doctest: +SKIP
    >>> vae.fit(train, epochs=10)  # doctest: +SKIP
    """
    _check_arguments(name, preprocessing, batch_size, seed, validation_size)
    if max_examples is not None and not (is_integer(max_examples) and max_examples > 0):
        raise ValueError(
            "Expected `max_examples` to be a positive integer or None. "
            f"Received: max_examples={max_examples!r}"
        )
    builder = _builder(name, data_dir)
    _check_dataset(builder, batch_size, with_labels)
    _prepare(builder, manual_dir)
    split_names = splits(validation_size, available=tuple(builder.info.splits.keys()))
    if split not in split_names:
        raise ValueError(
            f"Expected `split` to be one of {tuple(split_names)} for {name!r} with "
            f"validation_size={validation_size}. Received: split={split!r}"
        )
    if validation_size and validation_size >= builder.info.splits["train"].num_examples:
        raise ValueError(
            "Expected `validation_size` to be smaller than the "
            f"{builder.info.splits['train'].num_examples} training examples "
            f"of {name!r}. Received: validation_size={validation_size}"
        )
    dataset = builder.as_dataset(split=split_names[split], shuffle_files=False)
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    return _pipeline(dataset, preprocessing, batch_size, shuffle, seed, drop_remainder, with_labels)


def take(name, count, split="test", **kwargs):
    """The first `count` examples of a split as one batch, e.g. for figures and checks.

    `kwargs` are those of `load`; the result is what one batch of `load` yields.
    """
    return next(iter(load(name, split=split, batch_size=count, **kwargs)))


def splits(validation_size=0, available=("train", "test")):
    """Maps `"train"`, `"validation"` and `"test"` to TFDS split strings.

    With `validation_size=n`, the last `n` examples of TFDS's `train` split become the
    validation set and the rest the training set (TFDS's order is fixed at preparation).
    Datasets that ship a validation split (`binarized_mnist`) keep it as is.

    Args:
        validation_size: Number of training examples to hold out, or 0 for none.
        available: Names of the dataset's TFDS splits.

    Returns:
        A `dict` from split names to TFDS split strings.

    Example:

    >>> splits(10000)
    {'train': 'train[:-10000]', 'test': 'test', 'validation': 'train[-10000:]'}
    >>> splits(available=("train", "validation", "test"))
    {'train': 'train', 'validation': 'validation', 'test': 'test'}
    """
    if not (is_integer(validation_size) and validation_size >= 0):
        raise ValueError(
            "Expected `validation_size` to be a non-negative integer. "
            f"Received: validation_size={validation_size!r}"
        )
    mapping = {name: name for name in available}
    if validation_size == 0:
        return mapping
    if "validation" in available or "train" not in available:
        raise ValueError(
            "Expected `validation_size=0` for a dataset with its own validation split or "
            f"without a train split. Received: validation_size={validation_size} with "
            f"splits {tuple(available)}"
        )
    mapping["train"] = f"train[:-{validation_size}]"
    mapping["validation"] = f"train[-{validation_size}:]"
    return mapping


def image_shape(name):
    """Returns the `(H, W, C)` image shape of a TFDS image dataset, without preparing it.

    Example:

    >>> image_shape("binarized_mnist")
    (28, 28, 1)
    """
    return tuple(_image_feature(_builder(name, None)).shape)


def num_classes(name, data_dir=None):
    """The number of classes of a TFDS dataset's `"label"` feature, without preparing it.

    Example:

    >>> num_classes("mnist")
    10
    """
    builder = _builder(name, data_dir)
    _check_dataset(builder, None, with_labels=True)
    return int(builder.info.features["label"].num_classes)


def label_names(name):
    """The class names of a TFDS dataset's labels, without preparing it; None if unlabelled.

    Example:

    >>> label_names("fashion_mnist")[:3]
    ['T-shirt/top', 'Trouser', 'Pullover']
    """
    features = _builder(name, None).info.features
    feature = features["label"] if "label" in features else None
    return list(feature.names) if isinstance(feature, tfds.features.ClassLabel) else None


def write_binarized_mnist_amat(npz_path, folder):
    """Writes the original `binarized_mnist_{train,valid,test}.amat` files from an `.npz`.

    The `.npz` holds uint8 arrays `train`, `valid` and `test` of shape `(N, 784)`, values 0
    and 1, row i being line i of the matching `.amat` file. Each line of an `.amat` file is
    one image: 784 `0`/`1` characters separated by spaces. The output is byte-identical to
    the files whose checksums TFDS records, so TFDS accepts the folder as `manual_dir`.

    Args:
        npz_path: Path of the `.npz` file.
        folder: Folder to write the three files in; created if missing.

    Returns:
        The list of paths written.

    Example:

    >>> folder = "manual/binarized_mnist"  # Beside mnist/, so manual_dir="manual" serves both.
    >>> write_binarized_mnist_amat("binarized_mnist.npz", folder)  # doctest: +SKIP
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with np.load(npz_path) as arrays:
        for key in ("train", "valid", "test"):
            pixels = arrays[key]
            # Digits at even byte offsets, separators at odd ones, the last one a newline.
            text = np.full((pixels.shape[0], 2 * pixels.shape[1]), ord(" "), dtype=np.uint8)
            text[:, 0::2] = pixels + ord("0")
            text[:, -1] = ord("\n")
            path = folder / f"binarized_mnist_{key}.amat"
            path.write_bytes(text.tobytes())
            paths.append(path)
    return paths


def _check_arguments(name, preprocessing, batch_size, seed, validation_size):
    if preprocessing not in PREPROCESSING:
        raise ValueError(
            f"Expected `preprocessing` to be one of {PREPROCESSING}. "
            f"Received: preprocessing={preprocessing!r}"
        )
    if preprocessing == "static" and name not in _STATICALLY_BINARIZED:
        raise ValueError(
            f"Expected preprocessing='static' only with a statically binarized dataset "
            f"{_STATICALLY_BINARIZED}; use 'dynamic' to binarize {name!r}. "
            f"Received: name={name!r}, preprocessing='static'"
        )
    if name in _STATICALLY_BINARIZED and preprocessing != "static":
        raise ValueError(
            f"Expected preprocessing='static' for {name!r}, whose pixels are already a fixed "
            f"binarization. Received: preprocessing={preprocessing!r}"
        )
    if batch_size is not None and not (is_integer(batch_size) and batch_size > 0):
        raise ValueError(
            f"Expected `batch_size` to be a positive integer or None. "
            f"Received: batch_size={batch_size!r}"
        )
    if not is_integer(seed):
        raise ValueError(f"Expected `seed` to be an integer. Received: seed={seed!r}")
    splits(validation_size)  # Checks its type and sign.


def _builder(name, data_dir):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        # TFDS's own message lists every registered dataset, which buries the mistake.
        raise ValueError(
            f"Expected `name` to be a TFDS image dataset such as 'mnist', 'fashion_mnist', "
            f"'binarized_mnist' or 'cifar10'. Received: name={name!r}, unknown to TFDS "
            f"{tfds.__version__}"
        ) from None


def _image_feature(builder):
    features = builder.info.features
    feature = features["image"] if "image" in features else None
    if not isinstance(feature, tfds.features.Image) or feature.np_dtype != np.uint8:
        raise ValueError(
            f"Expected a TFDS dataset with an 'image' feature of uint8 pixels. "
            f"Received: name={builder.name!r} with features {features}"
        )
    return feature


def _check_dataset(builder, batch_size, with_labels):
    shape = _image_feature(builder).shape
    if batch_size is not None and None in shape:
        raise ValueError(
            f"Expected `batch_size=None` for {builder.name!r}, whose images vary in size "
            f"{shape}. Received: batch_size={batch_size}"
        )
    if with_labels and "label" not in builder.info.features:
        raise ValueError(
            f"Expected `with_labels=False` for {builder.name!r}, which has no labels. "
            "Received: with_labels=True"
        )


def _manual_folders(builder, manual_dir):
    """The manual root, and the folder in it TFDS should read `builder`'s original files from."""
    root = (
        manual_dir or os.environ.get(MANUAL_DIR_ENV) or builder.data_dir_root / "downloads/manual"
    )
    root = Path(root).expanduser()
    # mnist, fashion_mnist and kmnist share file names, so a shared root needs subfolders.
    return root, (root / builder.name if (root / builder.name).is_dir() else root)


def _prepare(builder, manual_dir):
    if builder.is_prepared():
        return
    root, folder = _manual_folders(builder, manual_dir)
    url_infos = builder.url_infos or {}
    _verify_manual_files(builder, folder, url_infos)
    missing = {url: info.filename for url, info in url_infos.items() if info.filename}
    missing = {url: file for url, file in missing.items() if not (folder / file).exists()}
    files = ", ".join(sorted(missing.values()))
    hint = _HINTS.get(builder.name, "")
    message = (
        f"Dataset {builder.name!r} is not prepared in {builder.data_dir_root} and could not be "
        f"downloaded. Put its missing files ({files}) in {root / builder.name} (or directly in "
        f"{root}), or pass manual_dir= (or set ${MANUAL_DIR_ENV}) to the folder holding them. "
        f"{hint}"
    ).strip()
    if missing and not all(_reachable(url) for url in missing):
        raise DatasetUnavailableError(message)
    config = tfds.download.DownloadConfig(
        manual_dir=str(folder),
        # TFDS names an extraction after the archive's file name alone, and reuses it: mnist,
        # fashion_mnist and kmnist share file names, so each dataset extracts to its own folder.
        extract_dir=str(Path(builder.data_dir_root) / "downloads" / "extracted" / builder.name),
    )
    try:
        builder.download_and_prepare(download_config=config)
    except (OSError, tfds.download.DownloadError) as error:
        raise DatasetUnavailableError(f"{message} The download failed with: {error}") from error
    except NonMatchingChecksumError as error:
        # A download that changed under TFDS; its message spans several lines.
        first_line = str(error).strip().splitlines()[0]
        raise DatasetUnavailableError(f"{first_line} Delete the file and retry.") from None


def _verify_manual_files(builder, folder, url_infos):
    """Refuses a manual file whose size or sha256 differs from those TFDS records for it.

    So a truncated download, or another dataset's file of the same name, is named in
    one line instead of failing deep inside TFDS, or being prepared as this dataset.
    """
    for url, expected in url_infos.items():
        path = folder / expected.filename if expected.filename else None
        if path is None or not path.is_file():
            continue
        size = path.stat().st_size
        if size == int(expected.size) and _sha256(path) == expected.checksum:
            continue
        raise DatasetUnavailableError(
            f"Expected {path} to be the original {expected.filename} of {builder.name!r} "
            f"({int(expected.size)} bytes, sha256 {expected.checksum}), as TFDS records it. "
            f"Received: a file of {size} bytes with another content (truncated, corrupt, or "
            f"another dataset's file). Replace it with the file from {url}."
        )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reachable(url):
    """Whether a TCP connection to `url`'s host (or its proxy) opens within the probe timeout."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        parts = urllib.parse.urlsplit(proxy)
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    opened = []

    def probe():
        try:
            socket.create_connection(address, timeout=_PROBE_TIMEOUT_SECONDS).close()
            opened.append(True)
        except OSError:
            pass

    # Name resolution ignores the socket timeout, so the wait is bounded by the thread join.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT_SECONDS)
    return bool(opened)


def _preprocess(images, preprocessing, seed):
    if preprocessing == "8bit":
        return images
    if preprocessing == "static":
        return tf.cast(images, tf.float32)
    probabilities = tf.cast(images, tf.float32) / 255.0
    if preprocessing == "continuous":
        return probabilities
    uniform = tf.random.stateless_uniform(tf.shape(images), seed=seed)
    return tf.cast(uniform < probabilities, tf.float32)


def _pipeline(dataset, preprocessing, batch_size, shuffle, seed, drop_remainder, with_labels):
    autotune = tf.data.AUTOTUNE
    dataset = dataset.map(lambda example: (example["image"], example.get("label", 0)))
    # Caching decoded uint8 images keeps memory at a quarter of float32.
    dataset = dataset.cache()
    if shuffle:
        # A full-split buffer gives a uniform shuffle; the split is in memory already.
        size = int(dataset.cardinality())  # TFDS splits have a known size.
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    if batch_size is not None:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    # One stateless seed per element (batch), redrawn every epoch yet reproducible from `seed`.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def preprocess(example, element_seed):
        images, labels = example
        x = _preprocess(images, preprocessing, element_seed)
        return (x, labels) if with_labels else x

    dataset = tf.data.Dataset.zip((dataset, seeds)).map(preprocess, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)
