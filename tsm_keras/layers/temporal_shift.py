"""The temporal shift of TSM (Lin, Gan and Han, ICCV 2019) as a Keras layer."""

import keras
from keras import ops

BIDIRECTIONAL = "bidirectional"
UNIDIRECTIONAL = "unidirectional"
MODES = (BIDIRECTIONAL, UNIDIRECTIONAL)


def shift_fold(channels, shift_div):
    """Number of channels in each shifted slice: `channels // shift_div`."""
    return channels // shift_div


@keras.saving.register_keras_serializable(package="tsm_keras")
class TemporalShift(keras.layers.Layer):
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
        super().__init__(**kwargs)
        if not isinstance(num_segments, int) or num_segments < 1:
            raise ValueError(
                f"`num_segments` must be an integer >= 1. Received: num_segments={num_segments!r}"
            )
        if not isinstance(shift_div, int) or shift_div < 2:
            raise ValueError(
                f"`shift_div` must be an integer >= 2. Received: shift_div={shift_div!r}"
            )
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        self.num_segments = num_segments
        self.shift_div = shift_div
        self.mode = mode

    @property
    def is_causal(self):
        return self.mode == UNIDIRECTIONAL

    def _check_shape(self, shape):
        if len(shape) != 4:
            raise ValueError(
                f"{self.name}: expected frames folded into the batch, shape (B*T, H, W, C). "
                f"Received a tensor of shape {tuple(shape)}"
            )
        batch, channels = shape[0], shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel dimension must be known. Received {tuple(shape)}")
        if channels < self.shift_div:
            raise ValueError(
                f"{self.name}: an input of {channels} channels has fewer channels than "
                f"shift_div={self.shift_div}, so no channel would move. Received {tuple(shape)}"
            )
        if batch is not None and batch % self.num_segments:
            raise ValueError(
                f"{self.name}: the batch dimension ({batch}) must be a multiple of "
                f"num_segments={self.num_segments} (frames of each clip folded into the batch)"
            )

    def call(self, x):
        self._check_shape(x.shape)
        _, height, width, channels = x.shape
        fold = shift_fold(channels, self.shift_div)
        t = self.num_segments
        # A 4-D view (B, T, H*W, C): the shift needs only the time and channel axes, and
        # 4-D tensors keep every TFLite kernel and delegate available.
        if height is None or width is None:
            height, width = ops.shape(x)[1], ops.shape(x)[2]
        clips = ops.reshape(x, (-1, t, height * width, channels))
        # Slice + concat with explicit zero frames, not a roll: the ends are padded with
        # zeros (never wrap-around), and all of these map to int8 TFLite builtins.
        # Each moved slice is cut in time and channels by one slice op.
        zero = ops.zeros_like(clips[:, :1, :, :fold])
        if self.mode == BIDIRECTIONAL:
            # [0, fold): frame t <- frame t+1;  [fold, 2 fold): frame t <- frame t-1.
            from_future = ops.concatenate([clips[:, 1:, :, :fold], zero], axis=1)
            from_past = ops.concatenate([zero, clips[:, :-1, :, fold : 2 * fold]], axis=1)
            shifted = ops.concatenate([from_future, from_past, clips[:, :, :, 2 * fold :]], axis=-1)
        else:
            # [0, fold): frame t <- frame t-1.
            from_past = ops.concatenate([zero, clips[:, :-1, :, :fold]], axis=1)
            shifted = ops.concatenate([from_past, clips[:, :, :, fold:]], axis=-1)
        return ops.reshape(shifted, ops.shape(x))

    # Streaming (per-frame) interface, used by tsm_keras.streaming. Only the causal mode
    # streams: the state is the first `fold` channels of the previous frame.
    def state_shape(self, frame_shape):
        """Shape of the per-frame state (without batch) for a frame of shape (H, W, C)."""
        self._require_causal()
        height, width, channels = frame_shape
        return (height, width, shift_fold(channels, self.shift_div))

    def step(self, frame, state):
        """One frame `(N, H, W, C)` and the previous state -> (output, new state)."""
        self._require_causal()
        fold = shift_fold(frame.shape[-1], self.shift_div)
        output = ops.concatenate([state, frame[..., fold:]], axis=-1)
        return output, frame[..., :fold]

    def _require_causal(self):
        if not self.is_causal:
            raise ValueError(
                f"{self.name}: a bidirectional shift reads the next frame and cannot stream "
                "frame by frame. Build the model with the unidirectional (online) shift."
            )

    # No compute_output_shape: Keras then traces `call` on symbolic inputs, so the shape
    # checks above also run when a functional model is built.

    def get_config(self):
        config = super().get_config()
        config.update(num_segments=self.num_segments, shift_div=self.shift_div, mode=self.mode)
        return config
