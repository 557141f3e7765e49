"""BatchNormalization whose training step runs as TensorFlow's fused kernel.

The class is named `BatchNormalization`, as Keras' own, on purpose: Keras' weight files
(`.weights.h5`, the weights inside `.keras`) key each layer by its class name, so a checkpoint
of a network with these layers loads into the same network with Keras' layers and back (a run
trained in graph mode resumes under XLA, an older run resumes with them). `with_fused_batch_norm`
gives a built network these layers through Keras' public `clone_model`.

Keras 3 computes a training-mode BatchNormalization from separate ops on every backend
(mean, squared difference, variance, then the affine transform, and their gradients one by
one): on the TensorFlow backend that is about a third of a MobileNetV2 training step on a
CPU, where Keras 2 used TensorFlow's one-kernel FusedBatchNormV3 (docs/benchmarks.md,
"BatchNormalization"). `BatchNormalization` here is `keras.layers.BatchNormalization` with
that kernel in its training step, and nothing else changed:

- the same weights, configuration and inference computation (so TFLite export, porting and
  every inference check see a plain BatchNormalization);
- the same numbers in training, to float32 rounding: the output normalised with the biased
  batch variance, the moving statistics updated with the biased variance as Keras does (the
  kernel returns the unbiased one for running statistics, corrected back here), and the
  gradients of that output;
- Keras' own computation wherever the kernel does not apply: other backends, inputs that are
  not 4-D channels-last, masks, batch renormalisation, synchronised (cross-replica) BN.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tsm_keras")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with a fused training step on TensorFlow.

    Arguments, weights, configuration and inference are those of
    `keras.layers.BatchNormalization`.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    >>> fused, plain = BatchNormalization(), keras.layers.BatchNormalization()
    >>> bool(np.allclose(fused(x, training=True), plain(x, training=True), atol=1e-5))
    True
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = ops.cast(inputs, "float32")  # as Keras: statistics in float32 under mixed precision
        channels = x.shape[-1]
        scale = ops.cast(self.gamma, "float32") if self.scale else ops.ones([channels])
        offset = ops.cast(self.beta, "float32") if self.center else ops.zeros([channels])
        y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, epsilon=self.epsilon, is_training=True)
        count = ops.cast(ops.size(x) // channels, "float32")
        variance = unbiased * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(y, self.compute_dtype)

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and mask is None
            and not self.renorm
            and not self.synchronized
        )


def with_fused_batch_norm(model):
    """`model` with the fused training step in every plain `keras.layers.BatchNormalization`.

    A new Functional model (`keras.models.clone_model`, nested models included) that shares
    every other layer of `model` and puts in each Keras BatchNormalization's place a
    `BatchNormalization` of the same configuration (name, momentum, trainable) holding a copy
    of its weights: the same weight paths and weight files, and the same numbers. A network
    built by keras.applications trains faster without changing anything it computes.
    Returns `model` itself when it has no Keras BatchNormalization. Use the returned model
    from then on: `model`'s BatchNormalization layers keep their weights and stop updating.
    """
    if not any(type(layer) is keras.layers.BatchNormalization for layer in _graph_layers(model)):
        return model
    copies = []

    def swap(layer):
        if type(layer) is not keras.layers.BatchNormalization:
            return layer  # shared, weights and all
        fused = BatchNormalization.from_config(layer.get_config())
        copies.append((layer, fused))
        return fused

    clone = keras.models.clone_model(model, clone_function=swap, recursive=True)
    for plain, fused in copies:  # built by now, inside `clone`
        fused.set_weights(plain.get_weights())
    return clone


def _graph_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _graph_layers(layer)
        else:
            yield layer
