"""Where a training step of the AEVB MNIST model spends its time, from the TensorFlow profiler.

Fits the model (MLP 784-500-20 tanh, Bernoulli, Adam) for a warm-up epoch, then
profiles one more epoch with `tf.profiler.experimental` and reads the trace
(`.xplane.pb`): the self time of every op on TensorFlow's compute threads
(graph ops, or XLA's thunks and fusions under `--jit-compile true`), summed by
name and grouped into kinds. Prints one JSON object: the step count, the wall
time per step, the op time per step by kind and the top ops by self time.

    python tools/profile_step.py [--batch-size 100] [--jit-compile {auto,true,false}]
        [--steps 50] [--precision float32] [--top 25]

Times are CPU time of the compute threads (both cores), so they add up to more
than the wall time when ops run in parallel; the shares are what to compare.
"""

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import aevb_vae, binarized_mnist  # noqa: E402

from keras_vae import precision  # noqa: E402

# Op names -> kind, first match wins. XLA names its thunks after the HLO (`dot.3`,
# `MatMul.22`, `multiply_add_fusion.2`); graph ops after the TF op type.
KINDS = [
    ("matmul", r"matmul|dot|gemm|onednn"),
    ("optimizer", r"adam|assignsub|assignadd|resourceapply|sqrt|rsqrt"),
    ("random", r"random|philox|threefry"),
    ("input", r"iterator|dataset|getnext|prefetch|gather|slice"),
    ("variables", r"readvariable|assignvariable|varhandle|resource"),
    ("fusion", r"fusion"),
]
# Scheduling, waiting and the enclosing function calls: not ops, or counted in their children.
NOT_OPS = re.compile(
    r"ExecutorState|ThunkExecutor|CpuExecutable|BlockUntilReady|EagerExecute|EagerKernel|"
    r"KernelAndDevice|TFE_Py|EagerLocalExecute|FunctionRun|multi_step_on|one_step_on|"
    r"XlaLaunch|_XlaRun|_XlaCompile|tf\.function|convert_to_tensor|tf\.constant",
)


def kind_of(name):
    lowered = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, lowered):
            return kind
    return "elementwise"


def self_times(space):
    """`{op name: self time in seconds}` over the compute threads of the host plane."""
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if line.name == "python":
                continue
            events = sorted(line.events, key=lambda event: (event.offset_ps, -event.duration_ps))
            stack = []  # (end, name, child time)
            for event in events:
                start, end = event.offset_ps, event.offset_ps + event.duration_ps
                while stack and stack[-1][0] <= start:
                    _close(stack.pop(), stack, totals)
                stack.append([end, plane.event_metadata[event.metadata_id].name, 0, end - start])
            while stack:
                _close(stack.pop(), stack, totals)
    return {name: ps / 1e12 for name, ps in totals.items() if not NOT_OPS.search(name)}


def _close(entry, stack, totals):
    end, name, children, duration = entry
    totals[name] += duration - children
    if stack:
        stack[-1][2] += duration


def profile(args):
    x = binarized_mnist(args.batch_size * args.steps)
    with precision.policy(args.precision):
        vae = aevb_vae()
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
    vae.fit(x, batch_size=args.batch_size, epochs=1, verbose=0)  # trace and compile
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        vae.fit(x, batch_size=args.batch_size, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        (path,) = Path(logdir).rglob("*.xplane.pb")
        space.ParseFromString(path.read_bytes())
    times = self_times(space)
    total = sum(times.values())
    by_kind = collections.Counter()
    for name, value in times.items():
        by_kind[kind_of(name)] += value
    per_step = 1e3 / args.steps
    return {
        "settings": {**vars(args), "jit_compile_effective": bool(vae.jit_compile)},
        "wall_ms_per_step": seconds * per_step,
        "op_ms_per_step": total * per_step,
        "op_ms_per_step_by_kind": {
            kind: round(value * per_step, 3) for kind, value in by_kind.most_common()
        },
        "op_share_by_kind": {
            kind: round(value / total, 3) for kind, value in by_kind.most_common()
        },
        "top_ops_ms_per_step": {
            name: round(value * per_step, 3)
            for name, value in collections.Counter(times).most_common(args.top)
        },
        "num_distinct_ops": len(times),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--jit-compile", choices=("auto", "true", "false"), default="auto")
    parser.add_argument("--steps", type=int, default=50, help="profiled steps")
    parser.add_argument("--precision", choices=precision.PRECISIONS, default="float32")
    parser.add_argument("--top", type=int, default=25, help="ops listed by self time")
    print(json.dumps(profile(parser.parse_args(argv)), indent=2))


if __name__ == "__main__":
    main()
