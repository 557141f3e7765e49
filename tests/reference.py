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


def non_local(x, num_segments, theta, phi, g, out, bn, epsilon=1e-5):
    """The embedded-Gaussian non-local block of (B*T, H, W, C) frames, over each clip's T*H*W
    positions, one query at a time. `theta`, `phi`, `g`, `out`: (kernel (C_in, C_out), bias)
    of the 1x1 convolutions; `bn`: (gamma, beta, mean, variance) of the output BN. Keys and
    values are max-pooled 2x2 per frame (stride 2, the last odd row and column dropped)."""
    n, h, w, c = x.shape
    clips = x.reshape(n // num_segments, num_segments, h, w, c).astype("float64")

    def conv(a, kernel_bias):
        kernel, bias = kernel_bias
        return a @ kernel.astype("float64") + bias

    def pool(a):
        ph, pw = h // 2, w // 2
        pooled = np.empty(a.shape[:2] + (ph, pw, a.shape[-1]))
        for i in range(ph):
            for j in range(pw):
                pooled[:, :, i, j] = a[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(2, 3))
        return pooled

    queries = conv(clips, theta)
    keys, values = pool(conv(clips, phi)), pool(conv(clips, g))
    y = np.zeros(queries.shape)
    for b in range(clips.shape[0]):
        k = keys[b].reshape(-1, keys.shape[-1])  # every pooled position of every frame
        v = values[b].reshape(-1, values.shape[-1])
        for t in range(num_segments):
            for i in range(h):
                for j in range(w):
                    scores = k @ queries[b, t, i, j]
                    weights = np.exp(scores - scores.max())
                    y[b, t, i, j] = (weights / weights.sum()) @ v
    gamma, beta, mean, variance = bn
    z = (conv(y, out) - mean) / np.sqrt(variance + epsilon) * gamma + beta
    return (clips + z).reshape(x.shape).astype(x.dtype)
