"""How should TAM start? Initialisation x activation on a tiny synthetic task (MobileNetV2).

Trains small MobileNetV2 0.35 video classifiers from scratch on clips of moving and
growing squares whose classes come in time-reversed pairs (a frame-order-blind model
cannot beat 50%), and prints the validation top-1 after each epoch for TAM with each
initialisation ('shift', 'identity', 'kaiming') and activation ('relu', None), next to
TSM and TSN. A sanity check sized for a shared 2-core CPU (1.5 to 3.5 minutes per model
at 48 px, 10 epochs), made before the built-in data set and training/fit.py exist; runs
are deterministic per seed. docs/tam.md has the numbers.

    PYTHONPATH=. python benchmarks/tam_start.py --seeds 0 1
    PYTHONPATH=. python benchmarks/tam_start.py --variants tsm "tam shift linear" --seeds 0
"""

import argparse
import functools
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# isort: off
import tsm_keras  # noqa: F401  (first: TensorFlow loads as the library loads it, oneDNN kernels on)

# isort: on

import keras
import numpy as np

from tsm_keras.layers import TemporalAggregation
from tsm_keras.models import build_video_classifier
from tsm_keras.models.insertion import module_name


def moving_squares(clips_per_class, frames, size, seed):
    """Clips `(N, T, S, S, 3)` uint8 and labels: 3 motions and, as partner classes, their reversals."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for motion in range(3):  # 0: moves right, 1: moves down, 2: grows
        for _ in range(2 * clips_per_class):
            clip = rng.integers(0, 64, size=(frames, size, size, 3)).astype("float32")
            colour = rng.uniform(128, 255, size=3)
            side = int(rng.integers(size // 6, size // 4))
            step = size / 2 / frames
            start = rng.uniform(0, size - side - step * (frames - 1))
            across = int(rng.integers(0, size - side))
            for t in range(frames):
                if motion < 2:
                    a, b, h = int(start + step * t), across, side
                    if motion == 1:
                        a, b = b, a
                    clip[t, b : b + h, a : a + h] = colour
                else:
                    h = side + 2 * t * max(1, size // 16)
                    c = (size - h) // 2
                    clip[t, c : c + h, c : c + h] = colour
            xs.append(clip)
            ys.append(2 * motion)
    x, y = np.stack(xs), np.array(ys)
    # Every second clip of each motion becomes its reversed partner class.
    x[1::2], y[1::2] = x[1::2, ::-1], y[1::2] + 1
    order = rng.permutation(len(y))
    return x[order].astype("uint8"), y[order]


def tam(initializer, activation, target, num_segments, shift_div, signed_inputs=False):
    return TemporalAggregation(
        num_segments, (-1, 0, 1), activation, initializer, shift_div, name=module_name(target, "tam")
    )


VARIANTS = {
    "tsn": "none",
    "tsm": "tsm",
    **{
        f"tam {init} {act or 'linear'}": functools.partial(tam, init, act)
        for init in ("shift", "identity", "kaiming")
        for act in ("relu", None)
    },
}


def train(variant, data, frames, size, epochs, seed):
    keras.utils.set_random_seed(seed)
    model = build_video_classifier(
        6, num_segments=frames, input_size=size, width=0.35, temporal=VARIANTS[variant], bn_momentum=0.9, dropout=0.0
    )
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    (x, y), (vx, vy) = data
    history = model.fit(x, y, batch_size=16, epochs=epochs, validation_data=(vx, vy), verbose=0)
    return history.history["val_accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--clips", type=int, default=100, help="training clips per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    data = (
        moving_squares(args.clips, args.frames, args.size, seed=100),
        moving_squares(args.clips // 4, args.frames, args.size, seed=200),
    )
    print(
        f"MobileNetV2 0.35, {args.frames} frames, {args.size} px, {len(data[0][1])} training "
        f"clips, 6 classes (3 time-reversed pairs), Adam 1e-3, BN momentum 0.9"
    )
    print(f"{'variant':<24}{'seed':>5}  validation top-1 after each epoch, time")
    for variant in args.variants:
        for seed in args.seeds:
            start = time.perf_counter()
            curve = train(variant, data, args.frames, args.size, args.epochs, seed)
            print(
                f"{variant:<24}{seed:>5}  "
                + " ".join(f"{a:.2f}" for a in curve)
                + f"  {time.perf_counter() - start:4.0f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
