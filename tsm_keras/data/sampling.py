"""Which frames make a clip: TSN sparse sampling, dense sampling, and multi-clip test views.

Every rule exists twice, in NumPy (`Sampling.indices`, for videos decoded by OpenCV in
Python, whose true length is only known while decoding) and in TensorFlow
(`Sampling.indices_tf`, inside the tf.data graph for JPEG frames and TFRecords). Both
compute in float64 with the same operations in the same order, so they agree exactly;
tests/data/test_sampling.py checks that over many lengths.

Randomness comes in as `noise`: num_segments + 1 uniform numbers in [0, 1) drawn by
tf.data from the pipeline seed, so training clips are reproducible.
"""

import dataclasses

import numpy as np
import tensorflow as tf

KINDS = ("tsn", "dense")
DENSE_SPAN = 64  # dense sampling covers 64 frames: stride 64 // T (8 x 8 for T = 8)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to pick frame indices from a video of `num_frames` frames.

    TSN ("tsn"): split the video into `num_segments` equal segments and take one frame
    of each: a random one in training (reference rule: avg = F // T, i * avg + randint(avg)),
    the centre one otherwise (int(tick / 2 + tick * i), tick = F / T). With `clips` = N
    views, clip k takes the frame at fraction (0.5 + k / N) mod 1 of each segment, so
    clip 0 is the validation clip and N = 2 is the reference "twice sample".

    Dense ("dense"): `num_segments` frames `stride` = 64 // T apart, in a random window
    (training) or in the centres of N equal parts of the possible start positions (test).

    Short videos never fail: TSN with F < T takes sorted positions in T equal parts of
    the video, so frames repeat; dense with F < stride * T falls back to the TSN rule
    over the whole video, which keeps frames in temporal order (mmaction2 wraps the
    window around the end with a modulo instead, which puts late frames before early
    ones).

    >>> Sampling("tsn", 4).indices(16).tolist()
    [[2, 6, 10, 14]]
    >>> Sampling("tsn", 4, clips=2).indices(16).tolist()
    [[2, 6, 10, 14], [0, 4, 8, 12]]
    >>> Sampling("tsn", 4).indices(2).tolist()
    [[0, 0, 1, 1]]

    Args:
        kind: "tsn" or "dense".
        num_segments: frames per clip, T.
        clips: views per video at test time (1 in training).
        training: random offsets (needs `noise`) instead of fixed ones.
    """

    kind: str = "tsn"
    num_segments: int = 8
    clips: int = 1
    training: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`sampling` must be 'tsn' or 'dense'. Received: sampling={self.kind!r}")
        if not isinstance(self.num_segments, int) or self.num_segments < 1:
            raise ValueError(f"`num_segments` must be an integer >= 1. Received: num_segments={self.num_segments!r}")
        if not isinstance(self.clips, int) or self.clips < 1:
            raise ValueError(f"`clips` must be an integer >= 1. Received: clips={self.clips!r}")
        if self.training and self.clips != 1:
            raise ValueError(f"Training samples one clip per video. Received: clips={self.clips}")

    @property
    def noise_size(self):
        """How many uniform numbers `indices` needs in training."""
        return self.num_segments + 1

    @property
    def stride(self):
        """Frame step of dense sampling."""
        return max(1, DENSE_SPAN // self.num_segments)

    @property
    def span(self):
        """Frames covered by a dense window."""
        return self.stride * self.num_segments

    def indices(self, num_frames, noise=None):
        """NumPy: int64 frame indices of shape (clips, num_segments), each in [0, num_frames)."""
        n = max(int(num_frames), 1)
        t = self.num_segments
        seg = np.arange(t, dtype=np.float64)
        if self.training:
            u = np.asarray(noise, dtype=np.float64)
            if u.shape != (self.noise_size,):
                raise ValueError(f"`noise` must have shape ({self.noise_size},). Received: {u.shape}")
            spread = np.floor((seg + u[:t]) * n / t)
            if self.kind == "dense" and n >= self.span:
                start = np.floor(u[t] * (n - self.span + 1))
                idx = start + self.stride * seg
            elif self.kind == "tsn" and n >= t:
                avg = float(n // t)
                idx = avg * seg + np.floor(u[:t] * avg)
            else:
                idx = spread
            idx = idx[None, :]
        else:
            k = np.arange(self.clips)
            if self.kind == "dense" and n >= self.span:
                start = (n - self.span) * (2 * k + 1) // (2 * self.clips)
                idx = start[:, None].astype(np.float64) + self.stride * seg
            else:
                tick = n / t
                frac = np.mod(0.5 + k / self.clips, 1.0)
                idx = np.floor(tick * frac[:, None] + tick * seg)
        return np.clip(idx, 0, n - 1).astype(np.int64)

    def indices_tf(self, num_frames, noise=None):
        """TensorFlow twin of `indices`: int32 tensor of shape (clips, num_segments)."""
        n = tf.maximum(tf.cast(num_frames, tf.int64), 1)
        nf = tf.cast(n, tf.float64)
        t = self.num_segments
        seg = tf.range(t, dtype=tf.float64)
        if self.training:
            u = tf.cast(noise, tf.float64)
            spread = tf.floor((seg + u[:t]) * nf / t)
            if self.kind == "dense":
                start = tf.floor(u[t] * tf.cast(tf.maximum(n - self.span + 1, 1), tf.float64))
                idx = tf.where(n >= self.span, start + self.stride * seg, spread)
            else:
                avg = tf.cast(n // t, tf.float64)
                idx = tf.where(n >= t, avg * seg + tf.floor(u[:t] * avg), spread)
            idx = idx[None, :]
        else:
            k = tf.range(self.clips, dtype=tf.int64)
            tick = nf / t
            frac = tf.math.floormod(0.5 + tf.cast(k, tf.float64) / self.clips, 1.0)
            spread = tf.floor(tick * frac[:, None] + tick * seg)
            if self.kind == "dense":
                start = tf.maximum(n - self.span, 0) * (2 * k + 1) // (2 * self.clips)
                window = tf.cast(start, tf.float64)[:, None] + self.stride * seg
                idx = tf.where(n >= self.span, window, spread)
            else:
                idx = spread
        return tf.cast(tf.clip_by_value(idx, 0.0, nf - 1.0), tf.int32)
