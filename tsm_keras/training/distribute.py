"""Choosing a tf.distribute strategy: one device, several GPUs, several workers, or a TPU."""

import json
import os

import tensorflow as tf


def choose_strategy(tpu=None):
    """The strategy for this process.

    - `tpu` given ('local' or a TPU address/name): TPUStrategy.
    - TF_CONFIG set with a cluster of several tasks: MultiWorkerMirroredStrategy (each
      worker runs the same command; the chief writes the run directory).
    - several GPUs visible: MirroredStrategy.
    - otherwise the default strategy (one CPU or GPU).
    """
    if tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="" if tpu == "local" else tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if cluster_size() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cluster_size():
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return sum(len(tasks) for tasks in config.get("cluster", {}).values())


def is_chief():
    """Whether this process writes the run directory (the chief, or worker 0 without one)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and "chief" not in config.get("cluster", {})
