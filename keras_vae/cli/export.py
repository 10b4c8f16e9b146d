"""`keras-vae export`: a trained run as a TF Serving SavedModel version, or as ONNX files."""

import tempfile

from keras_vae.choices import ONNX_SIGNATURES, SIGNATURES
from keras_vae.cli.arguments import data_dirs, output_dir, positive_int
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
        type=output_dir,
        help="saved_model: the model's folder, "
        "saved_models/NAME; the export becomes its next version",
    )
    parser.add_argument(
        "--output", type=output_dir, help="onnx: folder of the .onnx files (default: RUN_DIR/onnx)"
    )
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
        "--num-examples",
        type=positive_int,
        default=256,
        help="onnx: examples to check the files on",
    )
    parser.add_argument("--manual-dir", help="default: the run's")
    parser.add_argument("--data-dir", help="default: the run's")
    parser.set_defaults(run=run)


def run(args):
    from keras_vae.export import export_saved_model

    run_dir = RunDir(args.run_dir)
    config = run_dir.read_json(run_dir.config)
    # Where the data came from too, so `convert` checks the export on the run's own data.
    data = {
        "dataset": config.get("dataset"),
        "preprocessing": config.get("preprocessing"),
        **data_dirs(args, config),
    }
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
    from keras_vae.cli.convert import load_examples, num_examples, print_errors
    from keras_vae.export import build_archive, compare_onnx, export_onnx, failures
    from keras_vae.export.onnx import ONNX_TOLERANCE

    if args.model_dir is not None:
        raise ValueError("--model-dir is for --format saved_model; use --output with onnx.")
    names = args.signatures or ONNX_SIGNATURES
    output = args.output or run_dir.root / "onnx"
    model = run_dir.load_model()
    conditional = model.condition is not None
    x = load_examples(data, model.data_shape, "test", args.num_examples, args.data, conditional)
    paths = export_onnx(model, output, names)
    # The reference: the same signatures, as TF Serving would run them.
    archive, _ = build_archive(model, names)
    with tempfile.TemporaryDirectory() as folder:
        archive.write_out(folder, verbose=False)
        errors = compare_onnx(paths, folder, x)
    print_errors(errors, ONNX_TOLERANCE, f"onnxruntime vs SavedModel on {num_examples(x)} examples")
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
