"""Temporal max pooling of TSM+TP: halves the frames in the middle of the network."""

import keras
from keras import ops

from tsm_keras.layers.temporal import check_num_segments


@keras.saving.register_keras_serializable(package="tsm_keras")
class TemporalMaxPool(keras.layers.Layer):
    """Max over time with kernel 3, stride 2 and padding 1, on frames folded into the batch.

    Output frame i is the max of input frames 2i-1, 2i and 2i+1 (those that exist), as
    PyTorch's `max_pool3d(kernel=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))` of the
    reference TSM+TP models. Keras' 'same' pooling would centre the windows on 2i+1 instead.

    Example:

    >>> import numpy as np
    >>> x = np.array([5, 1, 2, 7], "float32").reshape(4, 1, 1, 1)  # one clip, T=4
    >>> np.asarray(TemporalMaxPool(num_segments=4)(x)).ravel().tolist()
    [5.0, 7.0]

    Args:
        num_segments: frames per clip at the input, T (even).

    Input shape: `(B * T, H, W, C)`. Output shape: `(B * T / 2, H, W, C)`.
    """

    def __init__(self, num_segments, **kwargs):
        super().__init__(**kwargs)
        if check_num_segments(num_segments, minimum=2) % 2:
            raise ValueError(f"`num_segments` must be even for temporal pooling. Received: num_segments={num_segments}")
        self.num_segments = num_segments

    def call(self, x):
        _, height, width, channels = x.shape
        clips = ops.reshape(x, (-1, self.num_segments, height * width * channels))
        even, odd = clips[:, 0::2], clips[:, 1::2]  # frames 2i and 2i+1
        previous = ops.concatenate([even[:, :1], odd[:, :-1]], axis=1)  # frame 2i-1 (2i for i=0)
        pooled = ops.maximum(ops.maximum(even, odd), previous)
        return ops.reshape(pooled, (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // 2
        return (batch,) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments}
