"""Small layers that turn a 2D frame network into a clip classifier (the TSN skeleton)."""

import keras
from keras import ops

from tsm_keras.layers.temporal import check_num_segments


@keras.saving.register_keras_serializable(package="tsm_keras")
class FoldTime(keras.layers.Layer):
    """`(B, T, H, W, C)` -> `(B * T, H, W, C)`: frames of a clip become consecutive batch items."""

    def call(self, clips):
        return ops.reshape(clips, (-1,) + tuple(clips.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[0], input_shape[1]
        folded = None if batch is None or frames is None else batch * frames
        return (folded,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="tsm_keras")
class SegmentConsensus(keras.layers.Layer):
    """Average consensus of TSN: per-frame logits `(B * T, K)` -> clip logits `(B, K)`.

    Args:
        num_segments: frames per clip at this point of the network (T, or T / 2 after
            temporal pooling).
    """

    def __init__(self, num_segments, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = check_num_segments(num_segments)

    def call(self, logits):
        return ops.mean(ops.reshape(logits, (-1, self.num_segments, logits.shape[-1])), axis=1)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.num_segments
        return (batch, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments}


@keras.saving.register_keras_serializable(package="tsm_keras")
class FrameNormalization(keras.layers.Layer):
    """Raw RGB frames in [0, 255] -> the backbone's input: `(x - mean) / std`, per channel.

    Putting this inside the model lets an exported model take raw camera frames.

    Args:
        mean, std: three numbers each, in RGB order, on the [0, 255] scale.
        reverse_channels: feed the backbone BGR (the caffe-style Keras ResNets).
    """

    def __init__(self, mean, std, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"`mean` and `std` must be three numbers (RGB), std > 0. Received: mean={mean}, std={std}")
        self.mean, self.std, self.reverse_channels = mean, std, bool(reverse_channels)

    def call(self, frames):
        frames = ops.cast(frames, self.compute_dtype)
        scale = [1.0 / s for s in self.std]
        offset = [-m / s for m, s in zip(self.mean, self.std)]
        if len(set(scale)) == 1 and len(set(offset)) == 1:
            # The same for every channel (MobileNetV2): scalars, not [3]-vectors. In TFLite
            # a MUL and an ADD broadcasting a [3] constant over the frame cost 1.0 ms per
            # 224 px frame in int8 with XNNPACK (a quarter of MobileNetV2), scalars 0.1 ms.
            scale, offset = scale[0], offset[0]
        else:
            scale = ops.convert_to_tensor(scale, self.compute_dtype)
            offset = ops.convert_to_tensor(offset, self.compute_dtype)
        normalized = frames * scale + offset
        return ops.flip(normalized, axis=-1) if self.reverse_channels else normalized

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "mean": self.mean,
            "std": self.std,
            "reverse_channels": self.reverse_channels,
        }
