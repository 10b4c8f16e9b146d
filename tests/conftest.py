"""Fixtures shared by the test modules: the benchmark files and a prepared TFDS data dir."""

from pathlib import Path

import pytest

# The modules that run many `keras-vae` processes take minutes; started first, they run beside
# the short ones instead of after them (pytest-xdist hands out files in collection order).
LONG_MODULES = (
    "test_faults.py",
    "test_cli.py",
    "test_distribute_multi_worker.py",
    "test_distribute.py",
    "test_readme.py",
    "test_export.py",
    "test_data.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # A stable sort: each module keeps its own order.


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
