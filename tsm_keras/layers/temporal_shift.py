"""The temporal shift of TSM (Lin, Gan and Han, ICCV 2019) as a Keras layer."""

import functools

import keras
from keras import ops

from tsm_keras.layers.temporal import TemporalLayer

BIDIRECTIONAL = "bidirectional"
UNIDIRECTIONAL = "unidirectional"
MODES = (BIDIRECTIONAL, UNIDIRECTIONAL)


# Where each moved slice of channels reads, as a time offset: +1 the next frame, -1 the previous.
_OFFSETS = {BIDIRECTIONAL: (+1, -1), UNIDIRECTIONAL: (-1,)}


def shift_fold(channels, shift_div):
    """Number of channels in each shifted slice: `channels // shift_div`."""
    return channels // shift_div


def shift_clips(clips, fold, offsets):
    """Clips `(B, T, P, C)`: channels `[i * fold, (i + 1) * fold)` of frame t take frame
    t + offsets[i] (zeros past either end); the channels after the moved slices are unchanged.
    """
    # Slice + concat with explicit zero frames, not a roll: the ends are padded with zeros
    # (never wrap-around), and all of these map to int8 TFLite builtins. Each moved slice is
    # cut in time and channels by one slice op.
    zero = ops.zeros_like(clips[:, :1, :, :fold])
    parts = []
    for i, offset in enumerate(offsets):
        channels = slice(i * fold, (i + 1) * fold)
        if offset == +1:
            parts.append(ops.concatenate([clips[:, 1:, :, channels], zero], axis=1))
        else:
            parts.append(ops.concatenate([zero, clips[:, :-1, :, channels]], axis=1))
    parts.append(clips[:, :, :, len(offsets) * fold :])
    return ops.concatenate(parts, axis=-1)


def select_shift(clips, fold, offsets):
    """`shift_clips`, as one selection per element: the whole clip moved a frame each way, and
    each channel taken from the copy its slice reads. The same numbers; written for a compiler
    that fuses it into one pass (see `_fused_shift`), where `shift_clips` needs several copies.
    """
    zero = ops.zeros_like(clips[:, :1])
    moved = {+1: ops.concatenate([clips[:, 1:], zero], axis=1), -1: ops.concatenate([zero, clips[:, :-1]], axis=1)}
    group = ops.arange(clips.shape[-1]) // fold  # channel -> its slice; slices past `offsets` stay
    out = clips
    for i, offset in enumerate(offsets):
        out = ops.where(group == i, moved[offset], out)
    return out


@functools.cache
def _fused_shift():
    """TensorFlow's training-time shift: `select_shift` compiled by XLA into one fused loop.

    In a training step TensorFlow runs each slice and concatenation of `shift_clips` as its own
    pass over memory (about 2.5 copies of the tensor, forward and backward); XLA makes the
    selection one pass that reads each source element once per output element
    (benchmarks/shift_overhead.py --layer). Only TensorFlow's graphs need it: JAX compiles the
    whole step with XLA anyway. Exported models keep `shift_clips` (int8 TFLite builtins).
    """
    import tensorflow as tf

    return tf.function(select_shift, jit_compile=True)


@keras.saving.register_keras_serializable(package="tsm_keras")
class TemporalShift(TemporalLayer):
    """Shifts part of the channels one frame along time, at zero FLOPs and zero parameters.

    Frames are folded into the batch: the input holds `num_segments` consecutive frames
    of each clip, shape `(B * T, H, W, C)`. With `fold = C // shift_div`:

    - `"bidirectional"` (offline clips): channels `[0, fold)` of frame t take the values
      of frame t+1 (the last frame gets zeros), channels `[fold, 2 * fold)` take frame
      t-1 (the first frame gets zeros); the rest are unchanged.
    - `"unidirectional"` (causal, for streaming): channels `[0, fold)` of frame t take
      frame t-1 (the first frame gets zeros); the rest are unchanged. The output for
      frame t depends on no later frame, so it can run frame by frame with a buffer of
      `fold` channels per layer (see `step`).

    Example:

    >>> import numpy as np
    >>> x = np.array([[1, 10], [2, 20], [3, 30], [4, 40]], "float32")  # T=4 frames, C=2
    >>> y = TemporalShift(num_segments=4, shift_div=2)(x.reshape(4, 1, 1, 2))
    >>> np.asarray(y).reshape(4, 2).T.tolist()  # channel 0 from t+1, channel 1 from t-1
    [[2.0, 3.0, 4.0, 0.0], [0.0, 10.0, 20.0, 30.0]]

    Args:
        num_segments: frames per clip, T.
        shift_div: 1 / shift_div of the channels move each way (default 8, so a quarter
            of the channels move in the bidirectional mode).
        mode: `"bidirectional"` or `"unidirectional"`.

    Input shape: `(B * T, H, W, C)`, channels-last. Output shape: the same.
    """

    def __init__(self, num_segments, shift_div=8, mode=BIDIRECTIONAL, **kwargs):
        super().__init__(num_segments, **kwargs)
        if not isinstance(shift_div, int) or shift_div < 2:
            raise ValueError(f"`shift_div` must be an integer >= 2. Received: shift_div={shift_div!r}")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        self.shift_div = shift_div
        self.mode = mode

    @property
    def is_causal(self):
        return self.mode == UNIDIRECTIONAL

    def check_shape(self, shape):
        super().check_shape(shape)
        if shape[-1] < self.shift_div:
            raise ValueError(
                f"{self.name}: an input of {shape[-1]} channels has fewer channels than "
                f"shift_div={self.shift_div}, so no channel would move. Received {tuple(shape)}"
            )

    def call(self, x, training=False):
        self.check_shape(x.shape)
        _, height, width, channels = x.shape
        fold = shift_fold(channels, self.shift_div)
        offsets = _OFFSETS[self.mode]
        if height is None or width is None:
            height, width = ops.shape(x)[1], ops.shape(x)[2]
        # A 4-D view (B, T, H*W, C): the shift needs only the time and channel axes, and
        # 4-D tensors keep every TFLite kernel and delegate available.
        view = (-1, self.num_segments, height * width, channels)

        # Training in TensorFlow: the same shift fused by XLA (see `_fused_shift`). Inference and
        # export: slices and concatenations, which map one to one to int8 TFLite builtins.
        fused = training and keras.backend.backend() == "tensorflow"
        move = _fused_shift() if fused else shift_clips

        # The shift is a permutation with zeros, so its gradient is the opposite shift. Said
        # explicitly, the backward pass is one shift as well; TensorFlow's own gradient of the
        # slices and concatenations took 3x longer (docs/benchmarks.md, "The shift in training").
        @ops.custom_gradient
        def shift(x):
            def gradient(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                moved = move(ops.reshape(upstream, view), fold, tuple(-o for o in offsets))
                return ops.reshape(moved, ops.shape(upstream))

            return ops.reshape(move(ops.reshape(x, view), fold, offsets), ops.shape(x)), gradient

        return shift(x)

    # Streaming: only the causal mode streams; the state is the first `fold` channels of
    # the previous frame.
    def _state_channels(self, channels):
        return shift_fold(channels, self.shift_div)

    def _step(self, frame, state):
        fold = shift_fold(frame.shape[-1], self.shift_div)
        output = ops.concatenate([state, frame[..., fold:]], axis=-1)
        return output, frame[..., :fold]

    @property
    def _not_causal(self):
        return (
            "a bidirectional shift reads the next frame and cannot stream frame by frame. Build the "
            "model with the unidirectional (online) shift."
        )

    def get_config(self):
        return {**super().get_config(), "shift_div": self.shift_div, "mode": self.mode}
