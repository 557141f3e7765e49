"""What every temporal layer shares: frames folded into the batch, and the streaming protocol."""

import keras


def check_num_segments(num_segments, minimum=1):
    """`num_segments` (frames per clip, T) if it is an integer >= `minimum`, else ValueError."""
    if not isinstance(num_segments, int) or isinstance(num_segments, bool) or num_segments < minimum:
        raise ValueError(f"`num_segments` must be an integer >= {minimum}. Received: num_segments={num_segments!r}")
    return num_segments


class TemporalLayer(keras.layers.Layer):
    """Base of the layers that relate the frames of a clip (TemporalShift, TemporalAggregation).

    Input `(B * T, H, W, C)`: the T = `num_segments` frames of each clip folded into the batch,
    channels-last. `check_shape` checks it in `call` and `build`. (Not a `keras.InputSpec`:
    its rank error cannot say that frames must be folded into the batch.)

    The streaming protocol (tsm_keras.streaming): a causal layer (`is_causal`: its output for
    frame t reads no later frame) runs frame by frame with a buffer of `state_shape` per
    frame; `step(frame, state)` gives the output for the frame and the next buffer.
    Subclasses define `is_causal`, `call`, and for streaming `_state_channels(channels)`,
    `_step(frame, state)` and `_not_causal` (why the layer cannot stream, and the fix).
    A layer that no model containing it can stream with, whatever its settings (bLVNet's
    frame pairing, a non-local block), sets `streaming_refusal` to the reason.
    """

    streaming_refusal = None

    def __init__(self, num_segments, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = check_num_segments(num_segments)

    @property
    def is_causal(self):
        raise NotImplementedError

    def check_shape(self, shape):
        if len(shape) != 4:
            raise ValueError(
                f"{self.name}: expected frames folded into the batch, shape (B*T, H, W, C). "
                f"Received a tensor of shape {tuple(shape)}"
            )
        batch, channels = shape[0], shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel dimension must be known. Received {tuple(shape)}")
        # Only a known batch is checked: JAX traces with a symbolic one (not an int).
        if isinstance(batch, int) and batch % self.num_segments:
            raise ValueError(
                f"{self.name}: the batch dimension ({batch}) must be a multiple of "
                f"num_segments={self.num_segments} (frames of each clip folded into the batch)"
            )

    def state_shape(self, frame_shape):
        """Shape of the per-frame state (without batch) for a frame of shape (H, W, C)."""
        self._require_causal()
        height, width, channels = frame_shape
        return (height, width, self._state_channels(channels))

    def step(self, frame, state):
        """One frame `(N, H, W, C)` and the previous state -> (output, new state)."""
        self._require_causal()
        return self._step(frame, state)

    def _require_causal(self):
        if not self.is_causal:
            raise ValueError(f"{self.name}: {self._not_causal}")

    def compute_output_shape(self, input_shape):
        # Keras builds functional models from this instead of tracing `call`: JAX cannot trace
        # the reshape of a symbolic batch into clips. The shape checks still run here.
        self.check_shape(input_shape)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments}
