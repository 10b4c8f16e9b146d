"""`keras-vae convert`: signatures of an exported SavedModel as one checked `.tflite` file."""

from pathlib import Path

from keras_vae import files
from keras_vae.choices import QUANTIZATIONS, SIGNATURES
from keras_vae.cli.arguments import data_dirs, output_file, positive_int

__all__ = ["add_parser", "load_examples", "load_saved_model", "print_errors", "run"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert", help="convert an exported SavedModel to TFLite, checked with LiteRT"
    )
    parser.add_argument(
        "--saved-model",
        required=True,
        help="a version folder, or a model folder saved_models/NAME (its latest version)",
    )
    parser.add_argument(
        "--output", required=True, type=output_file(), help="the .tflite file to write"
    )
    parser.add_argument(
        "--signatures",
        nargs="+",
        default=["encode", "decode"],
        help=f"any of {', '.join(SIGNATURES)} (default: encode decode)",
    )
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="float32")
    parser.add_argument(
        "--data", help=".npy of examples to check on (default: the dataset's test split)"
    )
    parser.add_argument(
        "--representative-data",
        help="int8: .npy of examples to calibrate on (default: the dataset's train split)",
    )
    parser.add_argument(
        "--num-examples",
        type=positive_int,
        default=256,
        help="examples to check the conversion on",
    )
    parser.add_argument(
        "--num-representative",
        type=positive_int,
        default=1000,
        help="int8: training examples to calibrate on",
    )
    parser.add_argument("--manual-dir", help="default: the exported run's")
    parser.add_argument("--data-dir", help="default: the exported run's")
    parser.set_defaults(run=run)


def run(args):
    from keras_vae.export import (
        TOLERANCES,
        LiteRTModel,
        compare,
        convert_saved_model,
        failures,
        read_model_card,
    )

    output = args.output
    saved_model = version_folder(args.saved_model)
    load_saved_model(saved_model)
    card = read_model_card(saved_model)
    data_shape = tuple(card["input"]["shape"][1:])
    data = card.get("data") or {}
    data = {**data, **data_dirs(args, data)}
    conditional = card.get("condition") is not None
    x = load_examples(data, data_shape, "test", args.num_examples, args.data, conditional)
    representative = None
    if args.quantization == "int8":
        representative = load_examples(
            data,
            data_shape,
            "train",
            args.num_representative,
            args.representative_data,
            conditional,
        )
    model = convert_saved_model(saved_model, args.signatures, args.quantization, representative)
    errors = compare(LiteRTModel(model), saved_model, x, args.signatures)
    tolerance = TOLERANCES[args.quantization]
    print_errors(errors, tolerance, f"LiteRT vs SavedModel on {num_examples(x)} examples")
    failed = failures(errors, tolerance)
    if failed:
        raise ValueError(
            f"{args.quantization} TFLite outputs differ from the SavedModel's beyond the "
            f"tolerance: {', '.join(failed)}; {output} not written."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes(output, model)
    print(
        f"wrote {output} ({len(model) / 1e6:.2f} MB, {args.quantization}, "
        f"signatures {', '.join(args.signatures)}) from {saved_model}"
    )
    return 0


def version_folder(path):
    """`path` if it is a SavedModel, else the latest integer version inside it."""
    from keras_vae.export import latest_version

    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    version = latest_version(path)
    if version is None:
        raise FileNotFoundError(f"Expected a SavedModel or integer versions in {path}; none found.")
    return path / str(version)


def load_saved_model(path):
    """The SavedModel at `path`, or a `ValueError` saying it is damaged."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        return tf.saved_model.load(str(path))
    # What a truncated saved_model.pb, variables index or variables data raise.
    except (OSError, DecodeError, IndexError, tf.errors.OpError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(
            f"The SavedModel in {path} is damaged ({reason}); export the run again."
        ) from error


def num_examples(examples):
    """The number of examples in what `load_examples` returns."""
    return len(examples["x"] if isinstance(examples, dict) else examples)


def load_examples(data, data_shape, split, count, path=None, conditional=False):
    """`count` examples from the `.npy` at `path`, or else from the split of the data protocol.

    `data` is the data protocol (`dataset`, `preprocessing`) and where the data are
    (`manual_dir`, `data_dir`). A model `conditional` on the label gets
    `{"x": x, "condition": labels}`, from the data protocol only.
    """
    import numpy as np

    source = path
    if path and conditional:
        raise ValueError(
            "This model is conditional on the label: its examples come with their labels from "
            "the run's dataset, not from --data FILE.npy (images alone)."
        )
    if path:
        x = np.load(path)[:count].astype(np.float32)
    else:
        from keras_vae import data as datasets

        if not data or not data.get("dataset"):
            raise ValueError("No dataset is recorded for this model; pass --data FILE.npy.")
        x = datasets.take(
            data["dataset"],
            count,
            split=split,
            preprocessing=data["preprocessing"],
            manual_dir=data.get("manual_dir"),
            data_dir=data.get("data_dir"),
            with_labels=conditional,
        )
        x, labels = x if conditional else (x, None)
        x = x.numpy().astype(np.float32)
        source = f"{data['dataset']} {split}"
    if tuple(x.shape[1:]) != tuple(data_shape):
        shape = ", ".join(map(str, data_shape))
        raise ValueError(
            f"Expected examples of shape (batch, {shape}) for this model. "
            f"Received: shape {x.shape} from {source}."
        )
    return {"x": x, "condition": labels.numpy().astype(np.float32)} if conditional else x


def print_errors(errors, tolerance, title):
    """One line per signature output: its max abs error and the tolerance it met."""
    atol, rtol = tolerance
    print(f"{title}; tolerance atol + rtol * max|expected| with atol={atol:g}, rtol={rtol:g}:")
    for name, outputs in errors.items():
        for key, (error, scale) in sorted(outputs.items()):
            allowed = atol + rtol * scale
            status = "ok" if error <= allowed else "EXCEEDED"
            print(f"  {name}/{key}: max abs error {error:.2e} (tolerance {allowed:.2e}) {status}")
