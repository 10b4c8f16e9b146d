"""Several training (or test) steps in one XLA computation.

Keras's TensorFlow trainer runs `steps_per_execution` steps as a graph loop that
launches one XLA computation per step. Each launch hands the model's and the
optimizer's variables to XLA and back, and the input batch in: the AEVB
MNIST model at batch 100 on a 2-core Xeon trained 17,185 examples/s one step
per call and 24,254 in blocks (`python tools/benchmark.py --contenders
keras_vae keras_vae_one_step`). Here a block of `steps` batches is read from the
iterator, stacked to `(steps, batch, ...)` and trained on by a `tf.while_loop`
inside one XLA computation, so the variables stay in XLA's buffers for the
whole block. Every step is the model's own `train_step` on one batch, in
order, as Keras runs them; only callbacks see the block, as with Keras's
`steps_per_execution`.

A block whose batches differ in shape (the short last batch of an epoch) runs
its equal-shaped prefix as a block and the rest a step at a time; a block cut
short by the end of the data runs in the same XLA program, told how many of
its slots to run.
"""

import contextlib

import numpy as np
import tensorflow as tf
from keras.src.trainers.data_adapters import array_slicing  # private: re-check on upgrades

__all__ = [
    "AUTO_STEPS_PER_EXECUTION",
    "auto_steps_per_execution",
    "fused_function",
    "resident_data",
]

# Steps per execution under `steps_per_execution="auto"`: at batch 100 the
# launch overhead is then under 1% of a block; a block of batch 1000 holds
# 32 * 1000 MNIST images (100 MB) stacked.
AUTO_STEPS_PER_EXECUTION = 32


def auto_steps_per_execution(model, steps=None):
    """Steps per execution for `model` when it asks for `"auto"`.

    `AUTO_STEPS_PER_EXECUTION`, or the largest divisor of `steps` (the steps of
    an epoch, when `fit` is given them) not above it, so an epoch never runs
    past its steps; 1 where blocks do not pay: without XLA, when run eagerly
    or across several replicas (whose steps Keras's own loop runs).

    Example:

    >>> class Model:
    ...     jit_compile, run_eagerly = True, False
    ...     distribute_strategy = tf.distribute.get_strategy()
    >>> auto_steps_per_execution(Model()), auto_steps_per_execution(Model(), steps=50)
    (32, 25)
    """
    if not fuses(model):
        return 1
    if steps is None:
        return AUTO_STEPS_PER_EXECUTION
    return max(d for d in range(1, AUTO_STEPS_PER_EXECUTION + 1) if steps % d == 0)


def fuses(model):
    """Whether `model`'s steps can run as blocks inside one XLA computation."""
    return (
        bool(model.jit_compile)
        and not model.run_eagerly
        and model.distribute_strategy.num_replicas_in_sync == 1
    )


def fused_function(model, step_function, steps, logs_function, resident=False):
    """A Keras train (or test) function running `steps` steps per call as one XLA block.

    Args:
        model: A compiled Keras model on one replica, with `jit_compile`.
        step_function: Its `train_step` or `test_step`.
        steps: Steps per call.
        logs_function: The logs after a step, from the model's state (its
            metrics): what `step_function` returns.
        resident: Whether, inside `resident_data`, the iterator yields indices
            into the model's resident arrays, gathered inside XLA.

    Returns:
        A function of a data iterator that runs up to `steps` steps and returns
        the last step's logs; it raises `StopIteration` when the iterator has
        no batch left, as Keras's functions do.
    """
    strategy = model.distribute_strategy

    def select(batch, data):
        if data is None:
            return batch
        indices = tf.nest.flatten(batch)[0]
        return tuple(None if array is None else tf.gather(array, indices) for array in data)

    def on_replica(function, *args):
        outputs = strategy.run(function, args=args)
        return strategy.experimental_local_results(outputs)[0]

    def step_on_replica(batch, data):
        return step_function(select(batch, data))

    @tf.function(jit_compile=True, reduce_retracing=True)
    def one_step(batch, data):
        return on_replica(step_on_replica, batch, data)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def block(batches, count, data):  # each leaf (steps, batch, ...); the first `count` run
        def body(index):
            batch = tf.nest.map_structure(lambda leaf: leaf[index], batches)
            on_replica(step_on_replica, batch, data)
            return (index + 1,)

        # The loop is outside the replica function, whose optimizer may synchronize
        # replicas. One copy of the step in the program: the logs come from the metrics.
        tf.while_loop(lambda index: index < count, body, (tf.constant(0),))
        return on_replica(logs_function)

    def function(iterator):
        data = model._resident_data if resident else None
        batches = []
        for _ in range(steps):
            try:
                batches.append(next(iterator))
            except StopIteration:
                break
        if not batches:
            raise StopIteration
        shapes = [[leaf.shape for leaf in tf.nest.flatten(batch)] for batch in batches]
        same = next((i for i, shape in enumerate(shapes) if shape != shapes[0]), len(shapes))
        logs = None
        if same > 1:
            # A short block fills its slots with its last batch, unrun: one XLA program
            # serves every count.
            full = batches[:same] + [batches[same - 1]] * (steps - same)
            stacked = tf.nest.map_structure(lambda *leaves: tf.stack(leaves), *full)
            logs = block(stacked, tf.constant(same), data)
        for batch in batches[same:] if same > 1 else batches:
            logs = one_step(batch, data)
        return logs

    return function


@contextlib.contextmanager
def resident_data(model, x, y, sample_weight, fit_kwargs):
    """Holds in-memory training arrays in the model, and hands `fit` their indices instead.

    Keras's array adapter slices, shuffles and copies every batch in a
    `tf.data` pipeline, which took 0.39 s per epoch of 60 batches of 1000 on
    a 2-core Xeon, a quarter of the epoch's training. With steps in XLA
    blocks and arrays (not datasets), `fit` here batches and shuffles the
    examples' indices, exactly as it would the arrays, and the block gathers
    the rows from the arrays inside XLA. A
    `validation_split` is cut as Keras cuts it, before.

    Yields:
        `(x, y, sample_weight, fit_kwargs)` to give Keras's `fit`.
    """
    arrays = (x, y, sample_weight)
    if not resides(model, arrays):
        yield x, y, sample_weight, fit_kwargs
        return
    split = fit_kwargs.get("validation_split")
    if split and fit_kwargs.get("validation_data") is None:
        arrays, validation_data = array_slicing.train_validation_split(arrays, split)
        fit_kwargs = {**fit_kwargs, "validation_split": 0.0, "validation_data": validation_data}
    model._resident_data = tuple(None if a is None else tf.convert_to_tensor(a) for a in arrays)
    try:
        yield np.arange(len(model._resident_data[0])), None, None, fit_kwargs
    finally:
        model._resident_data = None


def resides(model, arrays):
    """Whether `fit` on `arrays` (x, y, sample_weight) trains on resident arrays."""
    return (
        model.steps_per_execution > 1
        and fuses(model)
        and all(array is None or isinstance(array, np.ndarray | tf.Tensor) for array in arrays)
    )
