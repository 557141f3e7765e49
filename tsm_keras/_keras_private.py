"""Every private Keras and TensorFlow API the project relies on, in one place.

Each function says why no public API does and which test exercises it. All were checked with
Keras 3.15.1 and TensorFlow 2.21 (setup.cfg pins keras>=3.15,<4); when upgrading either,
re-run those tests. tests/test_style.py checks that the rest of the package uses none of them.
"""

# The private names used below: tests/test_style.py looks for them everywhere else.
PRIVATE_NAMES = (
    "_nodes_by_depth",
    "_keras_history",
    "_run_through_graph",
    "_maybe_symbolic_build",
    "_var_key",
    "_pywrap_util_port",
    "keras.src",
    "tensorflow.python",
)


def optimizer_variable_key(optimizer, variable):
    """The key under which `optimizer` knows `variable` (`BaseOptimizer._var_key`).

    On the TensorFlow backend `update_step` receives the backend variable (a distributed one
    under a strategy), which carries no Keras path, so an optimizer that treats some
    variables apart (VideoSGD's classifier learning rate) recognises them by this key; Keras
    offers no public mapping back. Tested by tests/training/test_recipe.py
    (test_head_learning_rate_multiplier).
    """
    return optimizer._var_key(variable)


def tensorflow_runs_onednn():
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (None: unknown).

    TensorFlow's own test of it (`tensorflow.python.util._pywrap_util_port.IsMklEnabled`);
    no public API says which kernels a loaded TensorFlow runs. Tested by
    tests/test_startup.py and tests/training/test_fit.py (the Eigen warning).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def input_producer(model, layer_name):
    """Name of the layer whose output is the (first) input of `layer_name` in `model`.

    `layer.input` is ambiguous once a layer is shared by two models (as ours are), so this
    looks up the node that belongs to this model's graph (`_nodes_by_depth`, `_keras_history`).
    Tested by tests/models/test_insertion.py.
    """
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation.name == layer_name:
                return node.input_tensors[0]._keras_history.operation.name
    raise ValueError(f"Model '{model.name}' has no layer named '{layer_name}'")


def replay_graph(model, inputs, call_fn):
    """`model`'s graph replayed on `inputs` through the same layers, each call made by
    `call_fn(layer, *args, **kwargs)`: what keras.models.clone_model runs inside
    (`Functional._run_through_graph`). Tested by tests/streaming/test_streaming_model.py."""
    return model._run_through_graph(inputs, operation_fn=lambda layer: layer, call_fn=call_fn)


def patch_keras_for_multi_worker(model, strategy, dataset, multi_worker):
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
    import tensorflow as tf  # here: the model functions above run on every Keras backend

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not multi_worker:
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
