"""SavedModel export in TF Serving's layout: `<model_dir>/<version>/`, written atomically."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras

from keras_vae.export.model_card import MODEL_CARD, make_model_card
from keras_vae.export.signatures import SIGNATURES, signatures
from keras_vae.validation import check_finite_weights

__all__ = [
    "build_archive",
    "export_saved_model",
    "latest_version",
    "next_version",
    "remove_stale_work_folders",
]

WORK_PREFIX = ".tmp-"


def export_saved_model(model, model_dir, signature_names=SIGNATURES, data=None, metrics=None):
    """Exports a trained `VAE` as the next version of a TF Serving model.

    The SavedModel is built in a hidden folder inside `model_dir` (TF Serving
    ignores names that are not integers), then renamed to the version
    folder, so a server never loads half an export; on any failure the
    hidden folder is removed and no version appears; one left by a killed
    export is removed by the next (see `remove_stale_work_folders`). A JSON
    model card (see `make_model_card`) goes in the version's `assets/`.
    Loading the export needs TensorFlow only: not keras-vae, not TensorFlow
    Probability.

    Args:
        model: A built `keras_vae.VAE`.
        model_dir: The model's folder, `saved_models/<name>`; created if missing.
        signature_names: Signatures to export (see `keras_vae.export.signatures`);
            `serving_default`, the reconstruction, is always included.
        data: The data protocol for the model card, e.g. `{"dataset": "mnist",
            "preprocessing": "dynamic"}`.
        metrics: Test metrics for the model card.

    Returns:
        The `Path` of the new version folder.

    Raises:
        ValueError: if a weight of `model` is NaN or infinite.

    Example:

    >>> import tempfile, keras_vae as kv
    >>> vae = kv.VAE(kv.networks.MLP([8]), kv.networks.MLP([8]), latent_dim=2)
    >>> vae.build((None, 4))
    >>> folder = tempfile.mkdtemp()
    >>> export_saved_model(vae, folder).name
    '1'
    >>> export_saved_model(vae, folder, ["encode"]).name
    '2'
    """
    check_finite_weights(model)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_work_folders(model_dir)
    names = ["serving_default", *(name for name in signature_names if name != "serving_default")]
    archive, described = build_archive(model, names)
    card = make_model_card(model, described, data=data, metrics=metrics)
    partial = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=model_dir))
    try:
        archive.write_out(str(partial), verbose=False)
        os.chmod(partial, 0o755)  # mkdtemp makes it private to its owner
        (partial / "assets").mkdir(exist_ok=True)
        (partial / "assets" / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")
        return _publish(partial, model_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def build_archive(model, names=SIGNATURES):
    """A `keras.export.ExportArchive` with the named signatures of `model`.

    Returns:
        The archive and `{name: {"inputs": {...}, "outputs": {...}}}`, each
        input and output a `{"shape": [...], "dtype": ...}` with `-1` for
        dynamic sizes.
    """
    if not model.built:
        raise ValueError("Expected a built model: train it, or call `model.build(input_shape)`.")
    # Endpoints track the variables they use; `track(model)` would save each one twice.
    archive = keras.export.ExportArchive()
    described = {}
    for name, signature in signatures(model, names).items():
        function = archive.add_endpoint(name, signature.function, signature.input_specs)
        outputs = function.get_concrete_function().structured_outputs
        described[name] = {
            "inputs": {spec.name: _describe(spec) for spec in signature.input_specs},
            "outputs": {key: _describe(value) for key, value in sorted(outputs.items())},
        }
    return archive, described


def latest_version(model_dir):
    """The highest integer version in `model_dir`, or None when there is none."""
    model_dir = Path(model_dir)
    versions = [
        int(entry.name)
        for entry in (model_dir.iterdir() if model_dir.is_dir() else ())
        if entry.is_dir() and entry.name.isdigit()
    ]
    return max(versions, default=None)


def next_version(model_dir):
    """One more than the highest integer version in `model_dir` (1 for none).

    Entries whose names are not integers (hidden work folders, notes) are ignored.
    """
    return (latest_version(model_dir) or 0) + 1


def remove_stale_work_folders(model_dir):
    """Removes the hidden work folders of exports whose process has died.

    A work folder is named `.tmp-<pid>-<random>`: the folder of a process
    still running (a concurrent export) is kept, as is any folder whose name
    does not have that form.

    Returns:
        The removed folders, as `Path`s.
    """
    removed = []
    for folder in sorted(Path(model_dir).glob(f"{WORK_PREFIX}*-*")):
        pid = folder.name[len(WORK_PREFIX) :].split("-")[0]
        if folder.is_dir() and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid):
    if pid <= 0:  # os.kill would signal a process group
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _publish(partial, model_dir):
    # A concurrent export may take the version first: renaming onto its
    # non-empty folder fails, and the next number is tried.
    for _ in range(100):
        version = model_dir / str(next_version(model_dir))
        try:
            os.rename(partial, version)
            return version
        except OSError:
            if not version.exists():
                raise
    raise FileExistsError(f"Could not claim a new version folder in {model_dir}.")


def _describe(spec):
    shape = [-1 if size is None else int(size) for size in spec.shape]
    return {"shape": shape, "dtype": spec.dtype.name}
