"""`keras-vae export`: a trained run as a TF Serving SavedModel version, or as ONNX files."""

import tempfile
from pathlib import Path

from keras_vae.cli.convert import load_examples, print_errors
from keras_vae.export import (
    SIGNATURES,
    build_archive,
    compare_onnx,
    export_onnx,
    export_saved_model,
    failures,
)
from keras_vae.export.onnx import ONNX_SIGNATURES, ONNX_TOLERANCE
from keras_vae.run_dir import RunDir

__all__ = ["add_parser", "run"]

FORMATS = ("saved_model", "onnx")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help="export a trained run for TF Serving (SavedModel) or onnxruntime"
    )
    parser.add_argument("--run-dir", required=True, help="the trained run")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument(
        "--model-dir",
        help="saved_model: the model's folder, "
        "saved_models/NAME; the export becomes its next version",
    )
    parser.add_argument("--output", help="onnx: folder of the .onnx files (default: RUN_DIR/onnx)")
    parser.add_argument(
        "--signatures",
        nargs="+",
        help=f"saved_model: any of "
        f"{', '.join(SIGNATURES[1:])} (default: all); onnx: any of "
        f"{', '.join(ONNX_SIGNATURES)} (default: both)",
    )
    parser.add_argument(
        "--data",
        help="onnx: .npy of examples to check the files on (default: the run's test split)",
    )
    parser.add_argument(
        "--num-examples", type=int, default=256, help="onnx: examples to check the files on"
    )
    parser.add_argument("--manual-dir", help="folder of the dataset's original files (offline)")
    parser.add_argument("--data-dir", help="TFDS data directory")
    parser.set_defaults(run=run)


def run(args):
    run_dir = RunDir(args.run_dir)
    config = run_dir.read_json(run_dir.config)
    data = {"dataset": config.get("dataset"), "preprocessing": config.get("preprocessing")}
    if args.format == "onnx":
        return run_onnx(args, run_dir, data)
    if args.model_dir is None:
        raise ValueError("--model-dir is required with --format saved_model.")
    metrics = run_dir.read_json(run_dir.metrics).get("test") if run_dir.metrics.exists() else None
    model = run_dir.load_model()
    version = export_saved_model(
        model, args.model_dir, args.signatures or SIGNATURES, data=data, metrics=metrics
    )
    size = sum(path.stat().st_size for path in version.rglob("*") if path.is_file())
    print(f"exported version {version.name} to {version} ({size / 1e6:.1f} MB)")
    return 0


def run_onnx(args, run_dir, data):
    if args.model_dir is not None:
        raise ValueError("--model-dir is for --format saved_model; use --output with onnx.")
    names = args.signatures or ONNX_SIGNATURES
    output = Path(args.output) if args.output else run_dir.root / "onnx"
    model = run_dir.load_model()
    x = load_examples(data, model.data_shape, "test", args.num_examples, args, args.data)
    paths = export_onnx(model, output, names)
    # The reference: the same signatures, as TF Serving would run them.
    archive, _ = build_archive(model, names)
    with tempfile.TemporaryDirectory() as folder:
        archive.write_out(folder, verbose=False)
        errors = compare_onnx(paths, folder, x)
    print_errors(errors, ONNX_TOLERANCE, f"onnxruntime vs SavedModel on {len(x)} examples")
    failed = failures(errors, ONNX_TOLERANCE)
    if failed:
        for path in paths.values():
            path.unlink()
        raise ValueError(
            f"ONNX outputs differ from the SavedModel's: {', '.join(failed)}; files removed."
        )
    for path in paths.values():
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
