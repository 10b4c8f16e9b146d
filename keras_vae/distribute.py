"""Training on several devices or machines: strategies by name, and what each worker does.

`get_strategy(name)` returns one of four `tf.distribute` strategies:

* `"default"`: one device.
* `"mirrored"`: synchronous data parallelism over the local GPUs (or over N logical CPU
  devices, for testing).
* `"multi_worker"`: synchronous data parallelism over the machines listed in `TF_CONFIG`,
  as Kubernetes operators and Vertex AI set it (Vertex AI names the first machine `chief`;
  with `worker` tasks only, worker 0 is the chief).
* `"tpu"`: a Cloud TPU, found from `$TPU_NAME` (`"local"` on a TPU VM).

Create the model, optimizer and metrics under `strategy.scope()`, and feed `fit` a dataset
of *global* batches passed through `shard_by_data`: tf.distribute splits each global batch
into `num_replicas_in_sync` per-replica batches of `global / num_replicas` examples (the
first ones one larger when it does not divide). `keras_vae.VAE` makes the update the
gradient of the global-batch mean (`global_batch_mean`), aggregates its metrics over all
replicas (Keras `Mean` metrics hold SUM-aggregated variables) and draws independent noise
on each replica.

Two steps of Keras 3's TensorFlow trainer fail under tf.distribute, and `keras_vae.VAE`
works around both: reducing the first batch across replicas to build from it
(`first_local_batch`), and reducing scalar logs across workers (`reducible_logs`). Only
the chief writes a run's files; each worker backs its training state up to its own folder
(`WorkerInfo.backup_dir`, `BackupAndRestore`), so a cluster restarted after a failure
resumes from the last epoch.
"""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_vae import backup
from keras_vae.choices import STRATEGIES
from keras_vae.validation import is_integer

__all__ = [
    "STRATEGIES",
    "BackupAndRestore",
    "WorkerInfo",
    "first_local_batch",
    "get_strategy",
    "global_batch_mean",
    "is_multi_worker",
    "reducible_logs",
    "shard_by_data",
    "worker_info",
]


# Task types that train under MultiWorkerMirroredStrategy; `ps` belongs to parameter-server
# training and an `evaluator` runs beside the training cluster, not in it.
_TRAINING_TASKS = ("chief", "worker")


def get_strategy(name="default", num_cpu_replicas=None, tpu=None):
    """The `tf.distribute` strategy called `name`, one of `STRATEGIES`.

    Call it first, before TensorFlow runs any operation: splitting the CPU
    and joining a multi-worker cluster both configure the runtime.

    Args:
        name: `"default"` (one device), `"mirrored"` (all local GPUs),
            `"multi_worker"` (the cluster in `TF_CONFIG`) or `"tpu"`.
        num_cpu_replicas: With `"mirrored"`, split the CPU into this many
            logical devices and replicate over them (to test without GPUs).
        tpu: With `"tpu"`, the TPU's name or gRPC address, or `"local"` on a
            TPU VM; by default from `$TPU_NAME` or the Cloud TPU metadata.
            Untested here: written from the TensorFlow APIs, without a TPU.

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    >>> get_strategy("default").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Expected `name` to be one of {STRATEGIES}. Received: name={name!r}")
    if num_cpu_replicas is not None and (
        name != "mirrored" or not (is_integer(num_cpu_replicas) and num_cpu_replicas > 0)
    ):
        raise ValueError(
            "Expected `num_cpu_replicas` to be a positive integer, with the 'mirrored' "
            f"strategy only. Received: name={name!r}, num_cpu_replicas={num_cpu_replicas!r}"
        )
    if tpu is not None and name != "tpu":
        raise ValueError(f"Expected `tpu` only with the 'tpu' strategy. Received: name={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if num_cpu_replicas is None:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy(_logical_cpus(num_cpu_replicas))
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver.connect(tpu=tpu)
    return tf.distribute.TPUStrategy(resolver)


def _logical_cpus(num):
    (cpu,) = tf.config.list_physical_devices("CPU")
    configured = tf.config.get_logical_device_configuration(cpu) or []
    if len(configured) != num:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * num
            )
        except RuntimeError:
            raise ValueError(
                f"Cannot split the CPU into num_cpu_replicas={num} devices: TensorFlow has "
                "initialized its devices already. Call get_strategy before running any "
                "TensorFlow operation."
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "Expected the cluster in the TF_CONFIG environment variable for the "
            "'multi_worker' strategy, as in "
            '{"cluster": {"worker": ["host0:port", "host1:port"]}, '
            '"task": {"type": "worker", "index": 0}}. Received: no TF_CONFIG. '
            "To train on the devices of one machine, use the 'mirrored' strategy."
        )
    config = json.loads(text)
    task_type = config.get("task", {}).get("type")
    if task_type not in _TRAINING_TASKS:
        raise ValueError(
            f"Expected TF_CONFIG's task type to be one of {_TRAINING_TASKS} for the "
            f"'multi_worker' strategy. Received: task type {task_type!r}"
        )


def shard_by_data(dataset):
    """`dataset` with auto-sharding by element, so workers split every global batch.

    With `AutoShardPolicy.DATA` every worker reads the whole pipeline and
    keeps its share of each global batch, so the shards are disjoint only if
    every worker shuffles with the same seed. The default policy shards by
    input file where it can, which gives workers unequal numbers of batches
    (and a hang at the end of the epoch) when a dataset's files differ in size.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def global_batch_mean(per_example, sample_weight=None):
    """This replica's share of the mean over the global batch: `sum / global batch size`.

    The optimizer sums gradients over replicas, so the sum of these shares is
    the gradient of the global-batch mean whatever the number of replicas,
    even when the last, partial batch splits unevenly (or leaves a replica
    empty, where a per-replica mean would be NaN). With sample weights it is
    `sum(sample_weight * per_example) / global batch size`, Keras's
    `"sum_over_batch_size"` reduction of a weighted loss.

    Args:
        per_example: `(batch,)` values of this replica's examples.
        sample_weight: Optional `(batch,)` weights of the same examples.

    Returns:
        A scalar.
    """
    count = tf.cast(tf.size(per_example), per_example.dtype)
    if sample_weight is not None:
        per_example = per_example * tf.cast(sample_weight, per_example.dtype)
    total = tf.reduce_sum(per_example)
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        count = tf.distribute.get_replica_context().all_reduce("sum", count)
    return tf.math.divide_no_nan(total, count)


def is_multi_worker(strategy=None):
    """Whether `strategy` (default: the current one) synchronizes several machines."""
    strategy = strategy or tf.distribute.get_strategy()
    # The test Keras's trainer makes before reducing step outputs across workers.
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def reducible_logs(logs):
    """The logs of a `train_step`/`test_step`, shaped so Keras can reduce them across workers.

    Under a multi-worker `MultiWorkerMirroredStrategy`, Keras 3's TensorFlow
    trainer reduces every output of the step with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalars a
    custom step returns ("Invalid reduction dimension 0 for input with 0
    dimensions"); see https://github.com/keras-team/keras/issues/20585 and
    https://github.com/tensorflow/tensorflow/issues/72388. Giving each value
    a leading axis of one makes that reduction valid; it returns the scalar
    again. Elsewhere the logs are returned unchanged.
    """
    if not is_multi_worker():
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def first_local_batch(epoch_iterator, strategy):
    """The first batch of a Keras epoch iterator, as this worker's first replica holds it.

    Before the first step, Keras's TensorFlow trainer builds the model, the
    optimizer and the metrics from the shapes of the first batch, which it
    gets by reducing the replicas' batches with `strategy.reduce("MEAN", batch)`:
    an all-reduce of the raw data that fails when the global batch does not
    split evenly over the replicas ("Inputs to operation AddN ... must have the
    same size and shape"), and under `MultiWorkerMirroredStrategy` for any
    `(x, y)` batch (https://github.com/keras-team/keras/issues/20585). One
    replica's batch has the same shapes but the batch size, which the
    build leaves unknown. It consumes the same batch Keras's version does.
    """
    for _, _, iterator in epoch_iterator:
        return tf.nest.map_structure(
            lambda value: (
                strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues)
                else value
            ),
            next(iterator),
        )
    return None


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster.

    Args:
        task_type: `"chief"` or `"worker"` under multi-worker training, else None.
        task_id: The index of the task among those of its type.
        is_chief: Whether this process writes the run's files: the `chief`
            task, or worker 0 of a cluster without one.
    """

    task_type: str | None = None
    task_id: int = 0
    is_chief: bool = True

    def backup_dir(self, run_dir):
        """Where this worker keeps its `BackupAndRestore` state: one folder per worker."""
        if self.task_type is None:
            return run_dir.backup
        return Path(run_dir.root) / f"backup-{self.task_type}-{self.task_id}"


def worker_info(strategy):
    """Which task of the cluster this process runs, from the strategy's cluster resolver."""
    resolver = strategy.cluster_resolver if is_multi_worker(strategy) else None
    if resolver is None or not resolver.task_type:
        return WorkerInfo()
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return WorkerInfo(task_type, task_id, is_chief)


class BackupAndRestore(backup.BackupAndRestore):
    """`keras_vae.backup.BackupAndRestore` that checks all workers resumed from the same epoch.

    Each worker backs up to its own folder (`WorkerInfo.backup_dir`): workers
    sharing one would write the same file at once. A worker killed between
    two backups can leave the workers' folders an epoch apart; resuming from
    them would silently train replicas that disagree, so this raises instead.

    Args:
        backup_dir: This worker's backup folder.
        **kwargs: Passed to `keras_vae.backup.BackupAndRestore`.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        strategy = self.model.distribute_strategy
        if not is_multi_worker(strategy):
            return
        epochs = _gather_scalar(strategy, self.restored_epoch)
        if len(set(epochs)) > 1:
            raise RuntimeError(
                f"The workers' backups hold different epochs ({epochs}, one per replica), "
                f"so they cannot resume together; this worker's is {self.backup_dir}. "
                "Delete every worker's backup folder to train from the start."
            )


def _gather_scalar(strategy, value):
    """Every replica's copy of a Python number, through one all-reduce."""
    size = strategy.num_replicas_in_sync

    def one_hot():
        context = tf.distribute.get_replica_context()
        entry = tf.one_hot(context.replica_id_in_sync_group, size, dtype=tf.float64) * value
        return context.all_reduce("sum", entry)

    values = strategy.experimental_local_results(tf.function(strategy.run)(one_hot))[0]
    return [int(v) for v in np.asarray(values)]
