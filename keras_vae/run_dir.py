"""The layout of a training run's directory."""

import dataclasses
import json
from pathlib import Path

from keras_vae import files

__all__ = ["RunDir"]


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths of the files a training run writes, and their readers.

    Example:

    >>> RunDir("runs/aevb").model
    PosixPath('runs/aevb/model.keras')
    """

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self):
        return str(self.root)

    config = property(lambda self: self.root / "config.json")
    model = property(lambda self: self.root / "model.keras")
    metrics = property(lambda self: self.root / "metrics.json")
    history = property(lambda self: self.root / "history.csv")
    backup = property(lambda self: self.root / "backup")
    logs = property(lambda self: self.root / "logs")

    def read_json(self, path):
        if not path.exists():
            raise FileNotFoundError(
                f"Expected {path.name} in run directory {self.root}; not found."
            )
        return json.loads(path.read_text())

    def write_json(self, path, data, fault=None):
        """Writes atomically (`keras_vae.files`): a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_json(path, data, fault)

    def load_model(self):
        """The trained model saved in this run."""
        import keras

        import keras_vae  # noqa: F401  (registers the serializable classes)

        if not self.model.exists():
            raise FileNotFoundError(
                f"Expected a trained model at {self.model}; run `keras-vae train` first."
            )
        return keras.saving.load_model(self.model)
