"""NumPy references written from docs/reference.md, with explicit loops over frames."""

import numpy as np


def temporal_shift(x, num_segments, shift_div=8, mode="bidirectional", transpose=False):
    """The TSM shift of (B*T, H, W, C) frames; `transpose=True` gives its adjoint (gradient)."""
    n, h, w, c = x.shape
    fold = c // shift_div
    clips = x.reshape(n // num_segments, num_segments, h, w, c)
    out = clips.copy()
    if mode == "bidirectional":
        moves = [(slice(0, fold), +1), (slice(fold, 2 * fold), -1)]  # (channels, source offset)
    else:
        moves = [(slice(0, fold), -1)]
    for channels, offset in moves:
        if transpose:
            offset = -offset
        for t in range(num_segments):
            source = t + offset
            if 0 <= source < num_segments:
                out[:, t, ..., channels] = clips[:, source, ..., channels]
            else:
                out[:, t, ..., channels] = 0
    return out.reshape(x.shape)


def frames_that_differ(batch, num_segments, height, width, channels, seed=0):
    """Random frames, each clip's frames all different (a wrong frame cannot match by chance)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch * num_segments, height, width, channels)).astype("float32")


def temporal_aggregation(x, num_segments, kernel, offsets, activation="relu"):
    """TAM of (B*T, H, W, C) frames: y_t = act(sum_j kernel[j] * x_{t+offsets[j]}), zeros outside."""
    n, h, w, c = x.shape
    clips = x.reshape(n // num_segments, num_segments, h, w, c).astype("float64")
    out = np.zeros_like(clips)
    for t in range(num_segments):
        for weights, offset in zip(kernel, offsets):
            source = t + offset
            if 0 <= source < num_segments:
                out[:, t] += weights * clips[:, source]
    if activation == "relu":
        out = np.maximum(out, 0)
    return out.reshape(x.shape).astype(x.dtype)
