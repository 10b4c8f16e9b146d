"""The layout of a training run's directory."""

import dataclasses
import json
import zipfile
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
        """The JSON object in `path`; `FileNotFoundError` or `ValueError` naming the file."""
        if not path.exists():
            raise FileNotFoundError(
                f"Expected {path.name} in run directory {self.root}; not found."
            )
        try:
            return json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path} is damaged (not JSON: {error}); restore it, or delete the run "
                "directory and train again."
            ) from error

    def write_json(self, path, data, fault=None):
        """Writes atomically (`keras_vae.files`): a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_json(path, data, fault)

    def load_model(self):
        """The trained model saved in this run."""
        import keras

        from keras_vae import VAE  # noqa: F401  (loads the package: registers its classes)

        if not self.model.exists():
            raise FileNotFoundError(
                f"Expected a trained model at {self.model}; run `keras-vae train` first."
            )
        # Keras reports a damaged zip as "File not found"; say what is wrong, and with what.
        try:
            with zipfile.ZipFile(self.model) as archive:
                member = archive.testzip()
            reason = member and f"{member} fails its checksum"
        except (zipfile.BadZipFile, EOFError) as error:
            reason = f"not a complete .keras file: {error}"
        if reason:
            raise ValueError(
                f"{self.model} is damaged ({reason}); re-run the same `keras-vae train` "
                "command if it was interrupted, or train again."
            )
        return keras.saving.load_model(self.model)
