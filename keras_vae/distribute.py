"""`tf.distribute` strategies by name, and which worker this process is."""

import dataclasses

import tensorflow as tf

__all__ = ["STRATEGIES", "WorkerInfo", "get_strategy", "worker_info"]

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def get_strategy(name="default", num_cpu_replicas=None):
    """The strategy called `name`: one of `STRATEGIES`.

    Args:
        name: `"default"` (one device), `"mirrored"` (all local GPUs),
            `"multi_worker"` (the cluster in `TF_CONFIG`) or `"tpu"`.
        num_cpu_replicas: With `"mirrored"`, split the CPU into this many
            logical devices and replicate over them (for testing without
            GPUs). Must be set before TensorFlow initializes its devices.

    Example:

    >>> get_strategy("default").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Expected one of: {', '.join(STRATEGIES)}.")
    if num_cpu_replicas is not None and name != "mirrored":
        raise ValueError(
            "Expected `num_cpu_replicas` only with the 'mirrored' strategy. "
            f"Received: strategy={name!r}, num_cpu_replicas={num_cpu_replicas}."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if num_cpu_replicas is None:
            return tf.distribute.MirroredStrategy()
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_replicas
        )
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in the cluster."""

    task_type: str | None
    task_id: int

    @property
    def is_chief(self):
        return self.task_type in (None, "chief") or (
            self.task_type == "worker" and self.task_id == 0
        )

    def backup_dir(self, run_dir):
        """Each worker keeps its own `BackupAndRestore` state."""
        if self.task_type is None:
            return run_dir.backup
        return run_dir.root / f"backup-{self.task_type}-{self.task_id}"


def worker_info(strategy):
    """Which task of the cluster this process runs, from the strategy's resolver."""
    resolver = getattr(strategy.extended, "_cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return WorkerInfo(None, 0)
    return WorkerInfo(resolver.task_type, int(resolver.task_id or 0))
