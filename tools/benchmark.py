"""Training throughput of keras-vae beside the template VAEs and the matmul ceiling, in one run.

The model is the AEVB MNIST VAE (MLP 784-500-20, tanh, Bernoulli, Adam 1e-3) on
binarized MNIST held as an in-memory array. Contenders, each as its users write it:

    keras_vae         `kv.VAE(...)`, `compile(optimizer=Adam(1e-3))`, `fit(x)`: the defaults
    keras_io          the keras.io "Variational AutoEncoder" example's structure (encoder Model
                      ending in a `Sampling` layer, sigmoid decoder, binary cross-entropy and the
                      closed-form KL in a custom `train_step`), `compile(optimizer=Adam(1e-3))`
    pytorch_examples  pytorch/examples `vae/main.py`'s structure (`fc1, fc21, fc22, fc3, fc4`,
                      BCE summed + KLD, `loss.backward(); optimizer.step()`), batches sliced
                      from a shuffled in-memory tensor; bfloat16 through `torch.autocast`
    ceiling           `tf.matmul` of (batch, 784) @ (784, 500) in the precision: GFLOP/s, and
                      the examples/s it allows at 4.1 MFLOP per training example

plus, with `--contenders`, variants for development: `keras_vae_no_xla` (`jit_compile=False`),
`keras_vae_tf_data` (an in-memory `tf.data` pipeline instead of the array) and
`keras_vae_mirrored` (built and trained under a one-replica `MirroredStrategy`),
`keras_vae_one_step` (`steps_per_execution=1`: one XLA computation per step) and
`keras_vae_philox` (noise drawn with XLA's Philox, which `keras_vae.noise` replaced).
Every contender is built once per (precision, batch size), warmed up, then timed in
`--repeats` rounds; each round trains every contender on the same `--examples` examples,
in an order that rotates, so drift in machine load hits all of them. Reported: the median
examples/s, the ratio of keras_vae to the faster template peer (of medians, and the median
of ratios within a round, the steadier figure on a busy machine), and the fraction of the
ceiling. Each contender's examples per CPU-second of the process (all its threads) is
reported beside: on a machine shared with other work it is the steadier measure of the
work an example costs, though only wall-clock time on a quiet machine is a speed.
Under bfloat16, keras_vae runs under Keras's `mixed_bfloat16` policy; the keras.io
structure breaks under it (its `Sampling` mixes float32 noise with bfloat16 parameters), so
it is left out there.

    python tools/benchmark.py [--batch-sizes 100 1000] [--precisions float32 bfloat16]
        [--examples 60000] [--repeats 5] [--contenders ...] [--data-dir DIR]

Prints one JSON object to stdout (environment, settings, results); progress goes to stderr.
Torch is optional (`pip install keras-vae[bench]`); without it that contender is skipped.
"""

import argparse
import contextlib
import datetime
import gzip
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from keras_vae import precision  # noqa: E402
from keras_vae.presets import get_preset  # noqa: E402

try:
    import torch  # noqa: E402
except ImportError:  # the optional `bench` extra
    torch = None

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
DATA_DIM, HIDDEN_UNITS, LATENT_DIM, LEARNING_RATE = 784, 500, 20, 1e-3
# Multiply-adds of a forward pass; a training step costs about 3x (backward: the gradients
# of weights and of inputs, none for the data), 2 FLOP each.
FORWARD_MACS = (
    2 * DATA_DIM * HIDDEN_UNITS + HIDDEN_UNITS * 2 * LATENT_DIM + LATENT_DIM * HIDDEN_UNITS
)
FLOP_PER_EXAMPLE = 2 * (3 * FORWARD_MACS - DATA_DIM * HIDDEN_UNITS)  # about 4.1 MFLOP
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
TEMPLATE_PEERS = ("keras_io", "pytorch_examples")


def log(message):
    print(message, file=sys.stderr, flush=True)


# === Data ===


def read_idx(path):
    """Reads a gzipped IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as file:
        data = file.read()
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"Expected an IDX file. Received: {path} with magic {data[:4].hex()}")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    dtype, ndim = np.dtype(dtypes[data[2]]), data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)


def binarized_mnist(num_examples, data_dir=DEFAULT_DATA_DIR, seed=0):
    """The first `num_examples` training images as float32 `(n, 784)` in {0, 1}.

    Each pixel is 1 with probability intensity / 255, drawn once with a fixed seed.
    """
    images = read_idx(pathlib.Path(data_dir) / "train-images-idx3-ubyte.gz")[:num_examples]
    if len(images) < num_examples:
        raise ValueError(f"Expected at most {len(images)} examples. Received: {num_examples}")
    probabilities = images.reshape(len(images), -1).astype("float32") / 255.0
    uniform = np.random.default_rng(seed).random(probabilities.shape, dtype="float32")
    return (uniform < probabilities).astype("float32")


# === keras_vae ===


def aevb_vae():
    """The AEVB MNIST model as keras-vae users write it (the `aevb-mnist` preset)."""
    return get_preset("aevb-mnist").build_model()


class KerasFit:
    """A Keras model trained by `fit` on the array (or an in-memory `tf.data` pipeline)."""

    def __init__(self, model, batch_size, tf_data=False, **compile_kwargs):
        self.model, self.batch_size, self.tf_data = model, batch_size, tf_data
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), **compile_kwargs)

    def train(self, x):
        if self.tf_data:
            data = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x)).batch(self.batch_size)
            history = self.model.fit(data.prefetch(tf.data.AUTOTUNE), verbose=0)
        else:
            history = self.model.fit(x, batch_size=self.batch_size, verbose=0)
        return float(history.history["loss"][-1])

    def describe(self):
        return {"jit_compile": bool(self.model.jit_compile)}


# === The keras.io example's VAE, with the AEVB architecture ===


class Sampling(layers.Layer):
    """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class KerasIoVAE(keras.Model):
    """The keras.io example's `VAE`: encoder, decoder and a custom `train_step`."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
            )
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


class KerasIoFit(KerasFit):
    """The keras.io structure, fed `(n, 28, 28, 1)` images as in the example."""

    def __init__(self, batch_size):
        encoder_inputs = keras.Input(shape=(28, 28, 1))
        x = layers.Flatten()(encoder_inputs)
        x = layers.Dense(HIDDEN_UNITS, activation="tanh")(x)
        z_mean = layers.Dense(LATENT_DIM, name="z_mean")(x)
        z_log_var = layers.Dense(LATENT_DIM, name="z_log_var")(x)
        z = Sampling()([z_mean, z_log_var])
        encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")
        latent_inputs = keras.Input(shape=(LATENT_DIM,))
        x = layers.Dense(HIDDEN_UNITS, activation="tanh")(latent_inputs)
        x = layers.Dense(DATA_DIM, activation="sigmoid")(x)
        decoder = keras.Model(latent_inputs, layers.Reshape((28, 28, 1))(x), name="decoder")
        super().__init__(KerasIoVAE(encoder, decoder), batch_size)

    def train(self, x):
        return super().train(x.reshape(-1, 28, 28, 1))


# === The pytorch/examples VAE, with the AEVB architecture ===


class TorchFit:
    """pytorch/examples `vae/main.py`: the model, `loss_function` and the `train` loop."""

    def __init__(self, batch_size, bfloat16=False):
        nn = torch.nn

        class VAE(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(DATA_DIM, HIDDEN_UNITS)
                self.fc21 = nn.Linear(HIDDEN_UNITS, LATENT_DIM)
                self.fc22 = nn.Linear(HIDDEN_UNITS, LATENT_DIM)
                self.fc3 = nn.Linear(LATENT_DIM, HIDDEN_UNITS)
                self.fc4 = nn.Linear(HIDDEN_UNITS, DATA_DIM)

            def encode(self, x):
                h1 = torch.tanh(self.fc1(x))
                return self.fc21(h1), self.fc22(h1)

            def reparameterize(self, mu, logvar):
                std = torch.exp(0.5 * logvar)
                eps = torch.randn_like(std)
                return mu + eps * std

            def decode(self, z):
                h3 = torch.tanh(self.fc3(z))
                return torch.sigmoid(self.fc4(h3))

            def forward(self, x):
                mu, logvar = self.encode(x.view(-1, DATA_DIM))
                z = self.reparameterize(mu, logvar)
                return self.decode(z), mu, logvar

        torch.manual_seed(0)
        self.model = VAE()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.batch_size, self.bfloat16 = batch_size, bfloat16

    @staticmethod
    def loss_function(recon_x, x, mu, logvar):
        bce = torch.nn.functional.binary_cross_entropy(
            recon_x, x.view(-1, DATA_DIM), reduction="sum"
        )
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    def train(self, x):
        x = torch.from_numpy(x)
        self.model.train()
        train_loss = 0.0
        order = torch.randperm(len(x))
        for start in range(0, len(x), self.batch_size):
            data = x[order[start : start + self.batch_size]]
            self.optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
                recon_batch, mu, logvar = self.model(data)
            # The loss in float32, as autocast does for binary_cross_entropy on GPU.
            loss = self.loss_function(recon_batch.float(), data, mu.float(), logvar.float())
            loss.backward()
            train_loss += loss.item()
            self.optimizer.step()
        return train_loss / len(x)

    def describe(self):
        return {"num_threads": torch.get_num_threads()}


# === The matmul ceiling ===


class MatmulCeiling:
    """`tf.matmul` of `(batch, 784) @ (784, 500)`, as much of it as training on the examples costs.

    `train(x)` runs FLOP_PER_EXAMPLE * len(x) FLOP of that matmul, so its
    examples/s is the rate training would reach if a step were its matmuls alone,
    at this shape's speed.
    """

    def __init__(self, batch_size, dtype):
        rng = np.random.default_rng(0)
        self.a = tf.constant(rng.standard_normal((batch_size, DATA_DIM)), dtype)
        self.b = tf.constant(rng.standard_normal((DATA_DIM, HIDDEN_UNITS)), dtype)
        self.flop_per_matmul = 2 * batch_size * DATA_DIM * HIDDEN_UNITS

    @tf.function
    def matmuls(self, count):
        total = tf.zeros((), self.a.dtype)
        for _ in tf.range(count):
            # One element of each product keeps it alive without a reduction over it.
            total += tf.matmul(self.a, self.b)[0, 0]
        return total

    def train(self, x):
        count = max(1, round(len(x) * FLOP_PER_EXAMPLE / self.flop_per_matmul))
        self.matmuls(tf.constant(count)).numpy()
        return 0.0

    def describe(self):
        return {}


# === Timing ===


def draw_noise_with_philox(vae):
    """Makes `vae` draw its noise with Philox inside XLA too, as before `keras_vae.noise`."""

    def standard_normal(shape):
        return tf.random.stateless_normal(shape, seed=vae.stateless_seed(), alg="philox")

    vae.standard_normal = standard_normal


def build_contenders(names, batch_size, precision_name):
    policy = POLICIES[precision_name]
    bfloat16 = precision_name == "bfloat16"
    contenders = {}
    for name in names:
        keras.utils.set_random_seed(0)
        if name.startswith("keras_vae"):
            mirrored = name == "keras_vae_mirrored"
            strategy = tf.distribute.MirroredStrategy(["/cpu:0"]) if mirrored else None
            with strategy.scope() if mirrored else contextlib.nullcontext():
                with precision.policy(policy):
                    model = aevb_vae()
                model.build((None, DATA_DIM))  # variables of a strategy are created in its scope
            if name == "keras_vae_philox":
                draw_noise_with_philox(model)
            options = {
                "keras_vae": {},
                "keras_vae_no_xla": {"jit_compile": False},
                "keras_vae_one_step": {"steps_per_execution": 1},
                "keras_vae_tf_data": {"tf_data": True},
                "keras_vae_mirrored": {},
                "keras_vae_philox": {},
            }[name]
            with strategy.scope() if mirrored else contextlib.nullcontext():
                contenders[name] = KerasFit(model, batch_size, **options)
        elif name == "keras_io" and not bfloat16:
            contenders[name] = KerasIoFit(batch_size)
        elif name == "pytorch_examples" and torch is not None:
            contenders[name] = TorchFit(batch_size, bfloat16)
        elif name == "ceiling":
            contenders[name] = MatmulCeiling(batch_size, tf.bfloat16 if bfloat16 else tf.float32)
    return contenders


def time_rounds(contenders, x, repeats):
    """`{name: [seconds of each round]}`; the order of contenders rotates every round."""
    names = list(contenders)
    for name in names:  # warm-up: tracing, XLA compilation of every shape, allocator growth
        contenders[name].train(x)
    seconds = {name: [] for name in names}
    cpu_seconds = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            started, cpu_started = time.perf_counter(), time.process_time()
            loss = contenders[name].train(x)
            seconds[name].append(time.perf_counter() - started)
            cpu_seconds[name].append(time.process_time() - cpu_started)
            log(
                f"  round {repeat + 1}/{repeats} {name}: {seconds[name][-1]:.2f} s, loss {loss:.1f}"
            )
    return seconds, cpu_seconds


def summarize(contenders, seconds, num_examples, fp32_ceiling=None, cpu_seconds=None):
    results = {}
    for name, times in seconds.items():
        rates = [num_examples / value for value in times]
        results[name] = {
            "examples_per_second": statistics.median(rates),
            "examples_per_second_per_round": rates,
            **(
                {"examples_per_cpu_second": num_examples / statistics.median(cpu_seconds[name])}
                if cpu_seconds
                else {}
            ),
            **contenders[name].describe(),
        }
    summary = {"contenders": results}
    peers = [name for name in TEMPLATE_PEERS if name in results]
    if "keras_vae" in results and peers:
        faster = max(peers, key=lambda name: results[name]["examples_per_second"])
        ours = results["keras_vae"]["examples_per_second"]
        summary["faster_template_peer"] = faster
        summary["ratio_to_faster_template_peer"] = ours / results[faster]["examples_per_second"]
        # Per round, against the faster peer of that round: cancels drift between rounds.
        summary["paired_ratio_to_faster_template_peer"] = statistics.median(
            min(seconds[peer][index] for peer in peers) / seconds["keras_vae"][index]
            for index in range(len(seconds["keras_vae"]))
        )
    if "ceiling" in results:
        ceiling = results["ceiling"]
        ceiling["gflop_per_second"] = ceiling["examples_per_second"] * FLOP_PER_EXAMPLE / 1e9
        references = {"ceiling": ceiling["examples_per_second"]}
        if fp32_ceiling is not None:
            references["fp32_ceiling"] = fp32_ceiling
        for name, result in results.items():
            if name != "ceiling":
                result.update(
                    {
                        f"fraction_of_{reference}": result["examples_per_second"] / value
                        for reference, value in references.items()
                    }
                )
    return summary


def environment():
    cpu_model = platform.processor() or "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "gpus": len(tf.config.list_physical_devices("GPU")),
    }


CONTENDERS = (
    "keras_vae",
    "keras_io",
    "pytorch_examples",
    "ceiling",
    "keras_vae_no_xla",
    "keras_vae_one_step",
    "keras_vae_tf_data",
    "keras_vae_mirrored",
    "keras_vae_philox",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--precisions", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--examples", type=int, default=60000, help="examples per round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS[:4]))
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="MNIST IDX .gz files")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.examples < max(args.batch_sizes):
        parser.error("--repeats must be positive and --examples at least the largest batch size")
    return args


def main(argv=None):
    args = parse_args(argv)
    x = binarized_mnist(args.examples, args.data_dir)
    started, load_before = time.perf_counter(), os.getloadavg()
    results = {}
    for precision_name in args.precisions:
        for batch_size in args.batch_sizes:
            log(f"{precision_name}, batch {batch_size}:")
            contenders = build_contenders(args.contenders, batch_size, precision_name)
            seconds, cpu_seconds = time_rounds(contenders, x, args.repeats)
            fp32 = results.get(f"float32/batch_{batch_size}", {}).get("contenders", {})
            results[f"{precision_name}/batch_{batch_size}"] = summarize(
                contenders,
                seconds,
                len(x),
                fp32.get("ceiling", {}).get("examples_per_second"),
                cpu_seconds,
            )
    report = {
        "benchmark": "training throughput, AEVB MNIST MLP 784-500-20 tanh Bernoulli, Adam",
        "environment": environment(),
        "settings": {**vars(args), "flop_per_example": FLOP_PER_EXAMPLE},
        # Other processes' load skews every contender; paired ratios are the steadier figure.
        "loadavg_1_5_15min": {"start": load_before, "end": os.getloadavg()},
        "results": results,
        "total_seconds": time.perf_counter() - started,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
