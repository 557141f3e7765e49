"""The non-local block (Wang et al., CVPR 2018; embedded Gaussian) of the `_nl` TSM models."""

import keras
from keras import ops

from tsm_keras.layers.temporal import TemporalLayer

# PyTorch's BatchNorm3d defaults (momentum 0.1 in PyTorch's convention), as the other BN
# layers of the ported backbones (tsm_keras/models/torchvision_backbones.py).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="tsm_keras")
class NonLocalBlock(TemporalLayer):
    """Every position of a clip attends to every (sub-sampled) position of all its frames.

    Frames are folded into the batch: the input holds `num_segments` consecutive frames of
    each clip, shape `(B * T, H, W, C)`; the block regroups them into clips and works over
    the T * H * W positions of each clip, as the official TSM wraps a 3-D non-local block
    around a ResNet block. With `inter = C // 2` (at least 1):

        theta = conv_1x1(x)                      (B*T, H, W, inter), the queries
        phi   = maxpool_2x2(conv_1x1(x))         (B*T, H/2, W/2, inter), the keys
        g     = maxpool_2x2(conv_1x1(x))         the values
        f     = softmax over the keys of theta . phi   (no scaling)
        y     = f g                              (B*T, H, W, inter)
        out   = x + BN(conv_1x1(y))              back to C channels

    The three 1x1 convolutions have biases, the pooling is PyTorch's `MaxPool3d((1, 2, 2))`
    (per frame, floor), and the BN starts at zero scale and offset, so a new block is the
    identity. Output t reads every frame of its clip, later ones included: the block is not
    causal and does not stream.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(8, 4, 4, 6)).astype("float32")  # 2 clips, T=4
    >>> block = NonLocalBlock(num_segments=4)
    >>> np.array_equal(np.asarray(block(x)), x)  # a new block is the identity
    True
    >>> [tuple(w.shape) for w in block.weights[:2]]  # theta: 6 -> 3 channels
    [(1, 1, 6, 3), (3,)]

    Args:
        num_segments: frames per clip, T.

    Input shape: `(B * T, H, W, C)`, channels-last, H and W >= 2. Output shape: the same.
    """

    @property
    def is_causal(self):
        return False

    def check_shape(self, shape):
        super().check_shape(shape)
        height, width = shape[1], shape[2]
        if (height is not None and height < 2) or (width is not None and width < 2):
            raise ValueError(
                f"{self.name}: the keys and values are max-pooled 2x2, so frames must be at least 2x2 "
                f"(a larger input size). Received {tuple(shape)}"
            )

    def build(self, input_shape):
        self.check_shape(input_shape)
        channels = input_shape[-1]
        inter = max(channels // 2, 1)

        def conv(filters, name):
            return keras.layers.Conv2D(filters, 1, name=name, dtype=self.dtype_policy)

        # Attribute names follow the official module names (nl.theta, nl.phi, nl.g, nl.W).
        self.theta, self.phi, self.g = conv(inter, "theta"), conv(inter, "phi"), conv(inter, "g")
        self.W = conv(channels, "W")
        self.batch_norm = keras.layers.BatchNormalization(
            epsilon=BN_EPSILON,
            momentum=BN_MOMENTUM,
            gamma_initializer="zeros",
            beta_initializer="zeros",
            name="W_bn",
            dtype=self.dtype_policy,
        )
        frames = tuple(input_shape)
        for layer in (self.theta, self.phi, self.g):
            layer.build(frames)
        self.W.build(frames[:-1] + (inter,))
        self.batch_norm.build(frames)

    def call(self, x, training=None):
        self.check_shape(x.shape)
        _, height, width, _ = x.shape
        if height is None or width is None:
            height, width = ops.shape(x)[1], ops.shape(x)[2]
        t = self.num_segments
        inter = self.theta.filters
        # Max pooling per frame: a MAX_POOL_2D builtin in TFLite (int8 too).
        keys = ops.max_pool(self.phi(x), 2, strides=2, padding="valid")
        values = ops.max_pool(self.g(x), 2, strides=2, padding="valid")
        pooled = (height // 2) * (width // 2)
        # Regroup the frames of each clip: (B, T*H*W, inter) queries, (B, T*h*w, inter) keys
        # and values. The order of positions is the same in all three, so the result does
        # not depend on it.
        queries = ops.reshape(self.theta(x), (-1, t * height * width, inter))
        keys = ops.reshape(keys, (-1, t * pooled, inter))
        values = ops.reshape(values, (-1, t * pooled, inter))
        # Two BATCH_MATMULs and a SOFTMAX in TFLite, all int8 builtins.
        attention = ops.softmax(ops.matmul(queries, ops.transpose(keys, (0, 2, 1))), axis=-1)
        y = ops.reshape(ops.matmul(attention, values), (-1, height, width, inter))
        return x + self.batch_norm(self.W(y), training=training)

    # Why no model with this block streams (tsm_keras.streaming reports it).
    streaming_refusal = (
        "it has non-local blocks that attend to every frame of the clip, later frames included, so the "
        "model cannot run frame by frame. Use its clip model, or train a model without `non_local=True` "
        "(e.g. with `temporal='tsm-online'`)"
    )

    @property
    def _not_causal(self):
        return (
            "a non-local block attends to every frame of the clip, later frames included, so it cannot "
            "stream frame by frame. Use the clip model, or build the model without non_local."
        )
