"""The frame pairing of bLVNet (Fan et al., NeurIPS 2019): split a clip's pairs, and write back."""

import keras
from keras import ops

from tsm_keras.layers.temporal import TemporalLayer

# Why a bLVNet has no per-frame (streaming) model; convert.py prints it.
NOT_STREAMABLE = (
    "bLVNet has no per-frame streaming model: it pairs frames (2k, 2k+1) and writes the fused "
    "features of the pair to both, so frame 2k reads the later frame 2k+1; its TAM (frames t-1, "
    "t, t+1) reads the next frame too. Its clip models (float32, int8) are written."
)


def _pairs_view(x):
    """`(N * 2, H, W, C)` -> `(N, 2, H * W, C)`: a 4-D view, frame 2k then 2k+1 of each pair."""
    _, height, width, channels = x.shape
    return ops.reshape(x, (-1, 2, height * width, channels))


class _PairLayer(TemporalLayer):
    """Shared by the pairing layers: they never stream (see `NOT_STREAMABLE`)."""

    streaming_refusal = NOT_STREAMABLE

    @property
    def is_causal(self):
        return False

    @property
    def _not_causal(self):
        return NOT_STREAMABLE


@keras.saving.register_keras_serializable(package="tsm_keras")
class PairSplit(_PairLayer):
    """The two frames of each pair apart: `[frames 2k, frames 2k+1]` of every clip.

    bLVNet feeds frame 2k of each pair to its little branch and frame 2k+1 to its big one.

    Example:

    >>> import numpy as np
    >>> x = np.arange(4, dtype="float32").reshape(4, 1, 1, 1)  # one clip of 4 frames
    >>> even, odd = PairSplit(num_segments=4)(x)
    >>> np.asarray(even).ravel().tolist(), np.asarray(odd).ravel().tolist()
    ([0.0, 2.0], [1.0, 3.0])

    Args:
        num_segments: frames per clip (2T, even).

    Input shape: `(B * 2T, H, W, C)`. Output: two tensors `(B * T, H, W, C)`, the even
    frames (2k) then the odd ones (2k+1), pair k at position k.
    """

    def __init__(self, num_segments, **kwargs):
        super().__init__(num_segments, **kwargs)
        if num_segments % 2:
            raise ValueError(f"`num_segments` must be even (frame pairs). Received: num_segments={num_segments}")

    def call(self, x):
        self.check_shape(x.shape)
        _, height, width, channels = x.shape
        pairs = _pairs_view(x)
        # Slices of a 4-D view: STRIDED_SLICE builtins in TFLite, int8 included.
        return [ops.reshape(pairs[:, index], (-1, height, width, channels)) for index in (0, 1)]

    def compute_output_shape(self, input_shape):
        self.check_shape(input_shape)
        batch = input_shape[0] // 2 if isinstance(input_shape[0], int) else None
        return [(batch, *input_shape[1:])] * 2


@keras.saving.register_keras_serializable(package="tsm_keras")
class PairRepeat(_PairLayer):
    """One feature map per pair -> the same map on both frames of the pair (`2T` frames).

    Example:

    >>> import numpy as np
    >>> x = np.array([5.0, 7.0], "float32").reshape(2, 1, 1, 1)  # pairs 0 and 1
    >>> np.asarray(PairRepeat(num_segments=2)(x)).ravel().tolist()
    [5.0, 5.0, 7.0, 7.0]

    Args:
        num_segments: pairs per clip (T).

    Input shape: `(B * T, H, W, C)`. Output shape: `(B * 2T, H, W, C)`.
    """

    def call(self, x):
        self.check_shape(x.shape)
        _, height, width, channels = x.shape
        pair = ops.reshape(x, (-1, 1, height * width, channels))
        # A concatenation of one tensor with itself: one scale on every input, as int8 needs.
        both = ops.concatenate([pair, pair], axis=1)
        return ops.reshape(both, (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        self.check_shape(input_shape)
        batch = input_shape[0] * 2 if isinstance(input_shape[0], int) else None
        return (batch, *input_shape[1:])
