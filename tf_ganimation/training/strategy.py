"""The distribution strategy of a run, and this process's place in a multi_worker cluster."""

from __future__ import annotations

import tensorflow as tf

from tf_ganimation.core.config import RunConfig


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over every GPU when there are several, else the default (one device).

    multi_worker reads the cluster from the TF_CONFIG environment variable; it must be created before
    TensorFlow runs any op, so `trainer.train` creates the strategy first.

    Raises:
        ValueError: `name` is not one of auto, one_device, mirrored, multi_worker.
    """
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"strategy={name!r} is invalid: expected one of auto, one_device, mirrored, multi_worker")


def task_of(run: RunConfig) -> tuple[str | None, int, bool]:
    """(task type, task id, whether it is the chief) of this process, from TF_CONFIG for multi_worker.

    Reads only the environment: no TensorFlow op runs.
    """
    if run.strategy != "multi_worker":
        return None, 0, True
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().jobs
    chief = task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return task_type, task_id, chief


def is_chief(run: RunConfig) -> bool:
    """Whether this process writes the run's files: always, except on the non-chief workers of multi_worker."""
    return task_of(run)[2]
