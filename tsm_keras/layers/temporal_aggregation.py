"""The temporal aggregation module (TAM) of bLVNet-TAM (Fan et al., NeurIPS 2019) as a Keras layer."""

import keras
import numpy as np
from keras import ops

from tsm_keras.layers.temporal import TemporalLayer
from tsm_keras.layers.temporal_shift import shift_fold

OFFLINE_OFFSETS = (-1, 0, 1)  # the reference: blending 3 frames, t-1, t and t+1
ONLINE_OFFSETS = (-1, 0)  # causal: the previous frame and the current one

# Initialisations: "shift" starts as the TSM shift of the same channel split (one-hot
# weights), "identity" as the 2D network (w_0 = 1, the other offsets 0), "kaiming" as the
# reference (normal, std sqrt(2 / C): kaiming fan-out of a depthwise 1x1 conv per offset).
INITIALIZERS = ("shift", "identity", "kaiming")
ACTIVATIONS = ("relu", None)


def aggregation_kernel(initializer, offsets, channels, shift_div=8):
    """The deterministic initial weights `(len(offsets), channels)` as NumPy.

    "identity": w_0 = 1 and the other offsets 0. "shift": one-hot weights that reproduce
    `TemporalShift` with the same `shift_div`: bidirectional when offsets -1 and +1 are in
    the window, unidirectional when only -1 is.
    """
    offsets = tuple(offsets)
    if initializer not in ("identity", "shift") or (initializer == "shift" and -1 not in offsets):
        raise ValueError(
            "`initializer` must be 'identity', or 'shift' with offset -1 in the window. "
            f"Received: initializer={initializer!r}, offsets={offsets!r}"
        )
    kernel = np.zeros((len(offsets), channels), "float32")
    kernel[offsets.index(0)] = 1.0
    if initializer == "shift":
        fold = shift_fold(channels, shift_div)
        if 1 in offsets:  # bidirectional: [0, fold) <- t+1, [fold, 2 fold) <- t-1
            moves = [(slice(0, fold), 1), (slice(fold, 2 * fold), -1)]
        else:  # unidirectional: [0, fold) <- t-1
            moves = [(slice(0, fold), -1)]
        for channels_moved, offset in moves:
            kernel[:, channels_moved] = 0.0
            kernel[offsets.index(offset), channels_moved] = 1.0
    return kernel


def kaiming_fan_out():
    """The reference's random start: normal with std sqrt(2 / C).

    keras' VarianceScaling on a `(r, C)` kernel takes fan_out = C, as PyTorch's
    kaiming_normal_(mode='fan_out') does on a depthwise 1x1 conv weight `(C, 1, 1, 1)`
    (one per offset); untruncated, as PyTorch's.
    """
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


@keras.saving.register_keras_serializable(package="tsm_keras")
class TemporalAggregation(TemporalLayer):
    """A learned depthwise blend of neighbouring frames (TAM): `y_t = act(sum_j w_j * x_{t+j})`.

    Frames are folded into the batch: the input holds `num_segments` consecutive frames
    of each clip, shape `(B * T, H, W, C)`. Each offset `j` of the window has its own
    per-channel weight vector `w_j` (`len(offsets) * C` parameters, no bias); frames
    outside the clip count as zeros (no wrap-around). It is a depthwise temporal
    convolution, and TSM's shift is the special case of one-hot weights.

    A window without positive offsets (e.g. `(-1, 0)` or `(-2, -1, 0)`) is causal: the
    output for frame t reads no later frame, so it can run frame by frame with a cache
    of the block input of the previous `-min(offsets)` frames (see `step`).

    Example:

    >>> import numpy as np
    >>> x = np.array([[1, 10], [2, 20], [3, 30], [4, 40]], "float32")  # T=4 frames, C=2
    >>> tam = TemporalAggregation(num_segments=4, activation=None)
    >>> tam.build((4, 1, 1, 2))
    >>> tam.set_weights([np.array([[0, 1], [1, 1], [1, 0]], "float32")])  # offsets -1, 0, +1
    >>> np.asarray(tam(x.reshape(4, 1, 1, 2))).reshape(4, 2).T.tolist()
    [[3.0, 5.0, 7.0, 4.0], [10.0, 30.0, 50.0, 70.0]]

    Args:
        num_segments: frames per clip, T.
        offsets: the window, consecutive integers that contain 0; default `(-1, 0, 1)`
            (the reference). Without positive offsets the layer is causal.
        activation: `"relu"` (the reference, after the sum) or None (a linear blend: for
            residual-branch inputs that can be negative, such as MobileNetV2's linear
            bottlenecks, a ReLU would clip them).
        initializer: `"shift"` (one-hot weights: starts exactly as the TSM shift with
            the same `shift_div`), `"identity"` (starts as the 2D network) or `"kaiming"`
            (the reference: random normal, std `sqrt(2 / C)`).
        shift_div: channel split of the `"shift"` initialisation (as `TemporalShift`).

    Input shape: `(B * T, H, W, C)`, channels-last. Output shape: the same.
    """

    def __init__(
        self,
        num_segments,
        offsets=OFFLINE_OFFSETS,
        activation="relu",
        initializer="shift",
        shift_div=8,
        **kwargs,
    ):
        super().__init__(num_segments, **kwargs)
        offsets = tuple(offsets) if isinstance(offsets, (list, tuple)) else offsets
        if (
            not isinstance(offsets, tuple)
            or len(offsets) < 2
            or not all(isinstance(j, int) for j in offsets)
            or list(offsets) != list(range(offsets[0], offsets[0] + len(offsets)))
            or 0 not in offsets
        ):
            raise ValueError(
                "`offsets` must be at least two consecutive increasing integers that include 0, "
                f"e.g. (-1, 0, 1) or (-1, 0). Received: offsets={offsets!r}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}")
        if initializer not in INITIALIZERS:
            raise ValueError(f"`initializer` must be one of {INITIALIZERS}. Received: initializer={initializer!r}")
        if not isinstance(shift_div, int) or shift_div < 2:
            raise ValueError(f"`shift_div` must be an integer >= 2. Received: shift_div={shift_div!r}")
        if initializer == "shift" and -1 not in offsets:
            raise ValueError(
                "initializer='shift' starts as a TSM shift, which reads frame t-1: the window "
                f"must contain offset -1. Received: offsets={offsets!r}"
            )
        self.offsets = offsets
        self.activation = activation
        self.initializer = initializer
        self.shift_div = shift_div

    @property
    def is_causal(self):
        return self.offsets[-1] <= 0

    @property
    def past_frames(self):
        """How many earlier frames an output reads (the streaming cache, in frames)."""
        return -self.offsets[0]

    def build(self, input_shape):
        self.check_shape(input_shape)
        channels = input_shape[-1]
        if self.initializer == "kaiming":
            initializer = kaiming_fan_out()
        else:
            initial = aggregation_kernel(self.initializer, self.offsets, channels, self.shift_div)
            initializer = keras.initializers.Constant(initial)
        # One row per offset, in the order of `offsets`: kernel[i] weighs frame t + offsets[i].
        self.kernel = self.add_weight(name="kernel", shape=(len(self.offsets), channels), initializer=initializer)

    def _blend(self, frames):
        """`(N, r + n - 1, P, C)` zero-padded frames -> `(N, n, P, C)` blended, activated."""
        # A depthwise conv of kernel (r, 1) over the time axis of a 4-D view: one op that
        # maps to the TFLite DEPTHWISE_CONV_2D builtin (per-channel int8 weights, fused
        # ReLU), and several times faster to train than r multiply-adds of shifted slices.
        channels = frames.shape[-1]
        kernel = ops.cast(ops.reshape(self.kernel, (len(self.offsets), 1, channels, 1)), frames.dtype)
        blended = ops.depthwise_conv(frames, kernel, padding="valid")
        return ops.relu(blended) if self.activation == "relu" else blended

    def call(self, x):
        self.check_shape(x.shape)
        _, height, width, channels = x.shape
        if height is None or width is None:
            height, width = ops.shape(x)[1], ops.shape(x)[2]
        # A 4-D view (B, T, H*W, C): 4-D tensors keep every TFLite kernel and delegate available.
        clips = ops.reshape(x, (-1, self.num_segments, height * width, channels))
        # Zero frames before and after (never wrap-around): the "valid" conv then gives
        # y_t = sum_j w_j x_{t+j} with x_{t+j} = 0 outside the clip. A PAD builtin in TFLite.
        padded = ops.pad(clips, [(0, 0), (self.past_frames, self.offsets[-1]), (0, 0), (0, 0)])
        # Static sizes where known: a reshape to ops.shape(x) leaves a SHAPE op in TFLite.
        return ops.reshape(self._blend(padded), (-1, height, width, channels))

    # Streaming: only causal windows stream; the state is the block input of the previous
    # `past_frames` frames, concatenated on channels, oldest first.
    def _state_channels(self, channels):
        return self.past_frames * channels

    def _step(self, frame, state):
        _, height, width, channels = frame.shape
        k = self.past_frames
        # The window as (N, k + 1, H*W, C), oldest frame first: the same conv as `call`,
        # so streaming and offline give the same numbers.
        # One cached frame is the whole state: no slice (a STRIDED_SLICE per module in TFLite).
        cached = [state] if k == 1 else [state[..., i * channels : (i + 1) * channels] for i in range(k)]
        window = ops.concatenate([ops.reshape(f, (-1, 1, height * width, channels)) for f in cached + [frame]], axis=1)
        output = ops.reshape(self._blend(window), (-1, height, width, channels))
        new_state = frame if k == 1 else ops.concatenate([state[..., channels:], frame], axis=-1)
        return output, new_state

    @property
    def _not_causal(self):
        return (
            f"offsets={self.offsets} read later frames and cannot stream frame by frame. Use a causal "
            "window such as (-1, 0) (temporal='tam-online')."
        )

    def get_config(self):
        return {
            **super().get_config(),
            "offsets": list(self.offsets),
            "activation": self.activation,
            "initializer": self.initializer,
            "shift_div": self.shift_div,
        }
