"""Tiny video models with healthy activations, and clips, for streaming and export tests."""

import keras
import numpy as np

from tsm_keras import run_dir
from tsm_keras.models import build_video_classifier

T, S, K = 4, 32, 5


def tiny_classifier(temporal="tsm-online", seed=0, num_classes=K, **kwargs):
    """MobileNetV2 width 0.35, 32 px, 4 frames. A fresh network's BatchNormalization
    statistics (mean 0, variance 1) make activations vanish, so one training-mode call with
    momentum 0 sets them from a batch, and the classifier gets unit-scale weights: logits
    of order 1 that differ between classes and frames."""
    keras.utils.set_random_seed(seed)
    kwargs = {"width": 0.35, "dropout": 0.0, **kwargs}
    model = build_video_classifier(
        num_classes, num_segments=T, input_size=S, temporal=temporal, bn_momentum=0.0, **kwargs
    )
    model(smooth_clips(8, seed=seed + 100), training=True)
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.99
    rng = np.random.default_rng(seed)
    kernel = model.get_layer("logits").kernel
    kernel.assign(rng.normal(size=kernel.shape) * 3.0 / np.sqrt(kernel.shape[0]))
    return model


def smooth_clips(count, frames=T, size=S, seed=0):
    """Raw RGB clips (float32, [0, 255]): blocky random images that drift over time, plus
    noise, so that every frame differs from every other one."""
    rng = np.random.default_rng(seed)
    cells = size // 8
    base = rng.uniform(0, 255, (count, 1, cells, cells, 3))
    drift = rng.uniform(-40, 40, (count, frames, cells, cells, 3)).cumsum(axis=1)
    coarse = np.kron(base + drift, np.ones((1, 1, 8, 8, 1)))
    clips = coarse + rng.normal(0, 12, (count, frames, size, size, 3))
    return np.clip(clips, 0, 255).astype("float32")


def write_run(path, model, class_names=None, extra=None, temporal="tsm-online", **arguments):
    """A run directory as training/fit.py writes it, of a model that `tiny_classifier` built
    with `temporal` (and any other build_video_classifier `arguments` it was given): the preset
    rebuilds the model from them, so they are checked against `model`'s layers."""
    names = class_names or [f"class_{i}" for i in range(model.output_shape[-1])]
    config = {
        "model": {
            "num_classes": len(names),
            "backbone": "mobilenet_v2",
            "num_segments": T,
            "input_size": S,
            "width": 0.35,
            "dropout": 0.0,
            "temporal": temporal,
            **arguments,
        },
        "data": {},
        **(extra or {}),
    }
    rebuilt = build_video_classifier(**config["model"])
    if _layers(rebuilt) != _layers(model):
        raise ValueError(f"write_run: the model was not built with {config['model']}; pass its arguments")
    return run_dir.write_run(path, model, config, names)


def _layers(model):
    """Each layer's class and temporal settings, in order: what tells two tiny models apart."""
    from tsm_keras.models import walk_layers

    keys = ("mode", "offsets", "shift_div")
    return [(type(layer).__name__, *(str(layer.get_config().get(k)) for k in keys)) for layer in walk_layers(model)]


def moving_squares(count, frames=T, size=S, seed=0):
    """Clips of a bright square moving right, left, down or up (labels 0-3) over a random
    background: only a model that sees frame order tells 0 from 1 and 2 from 3."""
    rng = np.random.default_rng(seed)
    clips = np.empty((count, frames, size, size, 3), "uint8")
    labels = rng.integers(0, 4, count)
    directions = [(0, 1), (0, -1), (1, 0), (-1, 0)]
    for i in range(count):
        background, square = rng.uniform(20, 120, 3), rng.uniform(150, 255, 3)
        side = int(rng.integers(6, 10))
        y, x = rng.integers(side, size - side, 2)
        dy, dx = directions[labels[i]]
        speed = int(rng.integers(3, 5))
        y0, x0 = y - dy * speed * (frames - 1) // 2, x - dx * speed * (frames - 1) // 2
        for t in range(frames):
            frame = np.empty((size, size, 3))
            frame[:] = background
            cy, cx = y0 + dy * speed * t, x0 + dx * speed * t
            frame[max(cy - side // 2, 0) : cy + side // 2, max(cx - side // 2, 0) : cx + side // 2] = square
            clips[i, t] = np.clip(frame + rng.normal(0, 8, frame.shape), 0, 255)
    return clips, labels


def sweeping_bars(count, frames=T, size=S, seed=0):
    """Clips of a bright bar sweeping right, left (a vertical bar), down or up (a horizontal
    bar) over a plain background, wrapping around (labels 0-3). One frame shows the axis;
    only the order of frames shows the direction. A tiny causal model learns it in seconds."""
    rng = np.random.default_rng(seed)
    clips = np.empty((count, frames, size, size, 3), "uint8")
    labels = rng.integers(0, 4, count)
    for i in range(count):
        background, bar = rng.uniform(20, 110, 3), rng.uniform(160, 255, 3)
        width, speed = int(rng.integers(4, 7)), int(rng.integers(4, 6))
        sign = 1 if labels[i] % 2 == 0 else -1
        start = int(rng.integers(0, size))
        for t in range(frames):
            frame = np.empty((size, size, 3))
            frame[:] = background
            covered = [(start + sign * speed * t + k) % size for k in range(width)]
            if labels[i] < 2:
                frame[:, covered] = bar
            else:
                frame[covered, :] = bar
            clips[i, t] = np.clip(frame + rng.normal(0, 8, frame.shape), 0, 255)
    return clips, labels
