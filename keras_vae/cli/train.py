"""`keras-vae train`: train a preset into a run directory."""

import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path

from keras_vae import faults, files
from keras_vae.choices import (
    CONDITIONS,
    ESTIMATORS,
    OBJECTIVES,
    PRECISIONS,
    PREPROCESSING,
    STRATEGIES,
)
from keras_vae.cli.arguments import (
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    seed,
)
from keras_vae.presets import PRESETS, get_preset
from keras_vae.run_dir import RunDir

__all__ = ["RunConfig", "add_parser", "run"]

# `--jit-compile` values -> `VAE.compile(jit_compile=...)`.
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}


@dataclasses.dataclass
class RunConfig:
    """Every setting of a run, written to `config.json` so the run can be repeated."""

    preset: str
    dataset: str
    preprocessing: str
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    objective: str
    num_samples: int
    validation_size: int
    steps_per_epoch: int | None
    jit_compile: str
    precision: str
    strategy: str
    num_cpu_replicas: int | None
    manual_dir: str | None
    data_dir: str | None
    estimator: str = "reparameterization"
    beta: float = 1.0
    kl_warmup_epochs: int = 0
    free_bits: float = 0.0
    condition: str = "none"
    latent_dim: int | None = None
    max_examples: int | None = None


def add_parser(subparsers):
    parser = subparsers.add_parser("train", help="train a preset into a run directory")
    parser.add_argument("--preset", default="aevb-mnist", help=f"one of: {', '.join(PRESETS)}")
    parser.add_argument("--dataset", help="TFDS dataset name (default: the preset's)")
    parser.add_argument("--preprocessing", choices=PREPROCESSING, help="default: the preset's")
    parser.add_argument("--epochs", type=positive_int, help="default: the preset's")
    parser.add_argument(
        "--batch-size", type=positive_int, help="global batch size (default: the preset's)"
    )
    parser.add_argument(
        "--learning-rate", type=positive_float, help="Adam's (default: the preset's)"
    )
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--objective", choices=OBJECTIVES, default="elbo")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="reparameterization")
    parser.add_argument(
        "--beta", type=non_negative_float, default=1.0, help="weight of the KL term"
    )
    parser.add_argument(
        "--kl-warmup-epochs", type=non_negative_int, default=0, help="beta from 0 over N epochs"
    )
    parser.add_argument(
        "--free-bits",
        type=non_negative_float,
        default=0.0,
        help="floor on the KL per latent dimension (nats)",
    )
    parser.add_argument(
        "--num-samples", type=positive_int, default=1, help="samples of z per example"
    )
    parser.add_argument(
        "--condition",
        choices=CONDITIONS,
        help="label: a conditional VAE of x given the dataset's label (default: the preset's)",
    )
    parser.add_argument(
        "--latent-dim", type=positive_int, help="size of z (default: the preset's; 2 for manifold)"
    )
    parser.add_argument(
        "--validation-size",
        type=non_negative_int,
        default=0,
        help="training examples held out to select the best model (default 0: "
        "train on the whole training split, keep the last model)",
    )
    parser.add_argument(
        "--steps-per-epoch", type=positive_int, help="default: one pass over the data"
    )
    parser.add_argument(
        "--max-examples",
        type=positive_int,
        help="use only the first N examples of each split (quick runs; default: all)",
    )
    parser.add_argument(
        "--jit-compile",
        nargs="?",
        const="true",
        default="auto",
        choices=JIT_COMPILE,
        help="compile steps with XLA (default auto: on, but for distributed strategies)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="Keras dtype policy: mixed_* run the networks in float16/bfloat16 "
        "(densities stay float32)",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default="default")
    parser.add_argument(
        "--num-cpu-replicas",
        type=positive_int,
        help="with --strategy mirrored and no GPU: split the CPU into N devices",
    )
    parser.add_argument("--run-dir", required=True, type=output_dir)
    parser.add_argument("--manual-dir", help="folder of the dataset's original files (offline)")
    parser.add_argument("--data-dir", help="TFDS data directory")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    parser.set_defaults(run=run)


def absolute(path):
    return None if path is None else str(Path(path).expanduser().resolve())


def make_config(args):
    preset = get_preset(args.preset)

    def pick(value, default):
        return default if value is None else value

    config = RunConfig(
        preset=preset.name,
        dataset=pick(args.dataset, preset.dataset),
        preprocessing=pick(args.preprocessing, preset.preprocessing),
        epochs=pick(args.epochs, preset.epochs),
        batch_size=pick(args.batch_size, preset.batch_size),
        learning_rate=pick(args.learning_rate, preset.learning_rate),
        seed=args.seed,
        objective=args.objective,
        num_samples=args.num_samples,
        validation_size=args.validation_size,
        steps_per_epoch=args.steps_per_epoch,
        jit_compile=args.jit_compile,
        precision=args.precision,
        strategy=args.strategy,
        num_cpu_replicas=args.num_cpu_replicas,
        # Absolute, so the commands that read the run later find the same data from anywhere.
        manual_dir=absolute(args.manual_dir),
        data_dir=absolute(args.data_dir),
        estimator=args.estimator,
        beta=args.beta,
        kl_warmup_epochs=args.kl_warmup_epochs,
        free_bits=args.free_bits,
        condition=pick(args.condition, preset.condition),
        latent_dim=args.latent_dim,
        max_examples=args.max_examples,
    )
    if config.kl_warmup_epochs and config.objective != "elbo":
        raise ValueError(
            "--kl-warmup-epochs needs --objective elbo: the IWAE bound has no KL term to weight."
        )
    if config.jit_compile == "true" and config.strategy != "default":
        # Keras compiles the whole replicated step, which XLA cannot place on several devices
        # ("Trying to access resource ... located in device CPU:1") nor run CPU collectives in.
        raise ValueError(
            f"--jit-compile works with --strategy default only; got --strategy {config.strategy} "
            "(TPUs compile with XLA anyway)."
        )
    return config


def check_run_dir(run_dir, config):
    """Refuses to mix runs: a finished run, or a different config, in the same folder."""
    if run_dir.metrics.exists():
        # A run killed after its metrics were written finishes its clean-up first.
        finish(run_dir)
        raise FileExistsError(
            f"{run_dir.root} holds a finished run ({run_dir.metrics.name} exists); "
            "choose another --run-dir."
        )
    if run_dir.config.exists():
        saved = run_dir.read_json(run_dir.config)
        if saved != dataclasses.asdict(config):
            changed = sorted(
                k for k in saved.keys() | vars(config).keys() if saved.get(k) != vars(config).get(k)
            )
            raise ValueError(
                f"{run_dir.root} holds a run with other settings ({', '.join(changed)}); "
                "re-run with the same flags to resume it, or choose another --run-dir."
            )


def run(args):
    import keras

    import keras_vae as kv
    from keras_vae import data, distribute, precision
    from keras_vae.callbacks import KLWarmup
    from keras_vae.training import TrainingDiverged, elbo_drop, fit_run

    config = make_config(args)
    run_dir = RunDir(args.run_dir)
    strategy = distribute.get_strategy(config.strategy, num_cpu_replicas=config.num_cpu_replicas)
    worker = distribute.worker_info(strategy)
    check_run_dir(run_dir, config)
    keras.utils.set_random_seed(config.seed)

    conditional = config.condition == "label"
    load = dict(
        name=config.dataset,
        preprocessing=config.preprocessing,
        validation_size=config.validation_size,
        manual_dir=config.manual_dir,
        data_dir=config.data_dir,
        with_labels=conditional,  # (x, label) batches: the label is the condition
        max_examples=config.max_examples,
    )
    # Every worker shuffles with the same seed, so their shares of each global batch are disjoint.
    drop_remainder = config.strategy == "tpu"
    train_data = data.load(
        split="train",
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        drop_remainder=drop_remainder,
        **load,
    )
    # Without a hold-out the test split is shown each epoch, never used to select.
    validation_data = data.load(
        split="validation" if config.validation_size else "test",
        batch_size=config.batch_size,
        drop_remainder=drop_remainder,
        seed=config.seed + 1,
        **load,
    )
    train_data, validation_data = map(distribute.shard_by_data, (train_data, validation_data))
    batch = data.take(count=32, seed=1, **load)
    examples, labels = batch if conditional else (batch, None)
    preset = get_preset(config.preset)
    options = {}
    if conditional or preset.condition != "none":  # `--condition none` unconditions a preset
        options["condition"] = (
            kv.conditions.OneHot(data.num_classes(config.dataset, config.data_dir))
            if conditional
            else None
        )

    if config.latent_dim is not None:
        options["latent_dim"] = config.latent_dim

    with strategy.scope(), precision.policy(config.precision):
        vae = preset.build_model(
            objective=config.objective,
            num_samples=config.num_samples,
            seed=config.seed,
            estimator=config.estimator,
            beta=config.beta,
            free_bits=config.free_bits,
            **options,
        )
        vae.build((None, *examples.shape[1:]))
        examples = vae.join_inputs(examples, labels)
        vae.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            jit_compile=JIT_COMPILE[config.jit_compile],
        )
    # Written only once the data loads and the model builds, so a mistyped flag leaves no
    # half-started run behind that would refuse the corrected command.
    if worker.is_chief and not run_dir.config.exists():
        run_dir.write_json(run_dir.config, dataclasses.asdict(config), fault="config")
    started = time.perf_counter()
    try:
        fit_run(
            vae,
            train_data,
            run_dir,
            config.epochs,
            validation_data=validation_data,
            select_best=bool(config.validation_size),
            examples=examples if worker.is_chief else None,
            is_chief=worker.is_chief,
            backup_dir=worker.backup_dir(run_dir),
            verbose=args.verbose,
            steps_per_epoch=config.steps_per_epoch,
            keep_backup=worker.is_chief,  # Until metrics.json is written.
            callbacks=[KLWarmup(config.kl_warmup_epochs, config.beta)]
            if config.kl_warmup_epochs
            else [],
        )
    except TrainingDiverged as error:
        print(
            f"keras-vae: error: {error} (model in {run_dir.model}); try a lower --learning-rate "
            f"than {config.learning_rate:g} in a new --run-dir",
            file=sys.stderr,
        )
        return 1
    seconds = time.perf_counter() - started
    if not worker.is_chief:
        return 0
    faults.point("train-end")
    vae = run_dir.load_model()
    test_data = data.load(split="test", batch_size=config.batch_size, seed=1, **load)
    on_batch = keras.callbacks.LambdaCallback(
        on_test_batch_end=lambda batch, logs: faults.point("evaluation")
    )
    test = vae.evaluate(test_data, verbose=0, return_dict=True, callbacks=[on_batch])
    warning = elbo_drop(run_dir.history, test["elbo"])
    if not math.isfinite(test["elbo"]):
        print(f"keras-vae: error: {warning}; no metrics written", file=sys.stderr)
        return 1
    run_dir.write_json(
        run_dir.metrics,
        {"test": test, "train_seconds": seconds, "epochs": config.epochs},
        fault="metrics",
    )
    faults.point("finish")
    finish(run_dir, worker.backup_dir(run_dir))
    if warning:
        print(f"keras-vae: warning: {warning}", file=sys.stderr)
    print(
        f"test ELBO {test['elbo']:.2f} nats after {config.epochs} epochs "
        f"({seconds:.0f} s); model in {run_dir.model}"
    )
    return 0


def finish(run_dir, backup_dir=None):
    """Removes what only a run in progress needs, once its metrics are written."""
    shutil.rmtree(backup_dir or run_dir.backup, ignore_errors=True)
    files.remove_partials(run_dir.root)
