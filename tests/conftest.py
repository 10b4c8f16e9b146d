"""Fixtures shared by the test modules: the benchmark files and a prepared TFDS data dir."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """The folder of the datasets' original files (`mnist/`, `fashion_mnist/`, ...)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no benchmark data in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tfds_data_dir(shared_data, tmp_path_factory):
    """A TFDS data dir in a tmp folder (never ~/tensorflow_datasets), mnist prepared once."""
    from keras_vae import data

    directory = tmp_path_factory.mktemp("tfds")
    data.load("mnist", split="test", manual_dir=shared_data, data_dir=directory)
    return directory
