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
    if _cluster_size() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _cluster_size():
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


def patch_keras_for_multi_worker(model, strategy, dataset):
    """Works around two bugs of Keras 3 fit() under MultiWorkerMirroredStrategy.

    Upstream: tensorflow/tensorflow#72388 (closed as stale; its only workaround is Keras 2).
    With several workers, Keras 3.15's fit():
    1. all-reduces the first input batch across replicas only to learn its shapes, and the
       collective reduce cannot take a nested (clips, labels) batch ("Attempt to convert a
       value (PerReplica...)"). We hand it a local batch instead.
    2. reduces the scalar logs of each step with MEAN over axis 0 ("Invalid reduction
       dimension 0 for input with 0 dimensions"). We reduce scalars over no axis.
    Both touch private Keras functions, so they are applied to multi-worker runs only and
    checked by tests/training/test_distributed.py: re-run it when upgrading Keras.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or _cluster_size() < 2:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    local_batch = next(iter(dataset.take(1)))
    build = model._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(data_batch=local_batch)

    reduce_per_replica = trainer.reduce_per_replica
    if getattr(reduce_per_replica, "tsm_keras_patch", False):
        return

    def reduce_scalars_without_axis(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    reduce_scalars_without_axis.tsm_keras_patch = True
    trainer.reduce_per_replica = reduce_scalars_without_axis
