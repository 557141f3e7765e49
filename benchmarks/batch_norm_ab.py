"""Keras' BatchNormalization against the fused one in a training step, side by side in one process.

    python benchmarks/batch_norm_ab.py [--backbone mobilenet_v2] [--width 0.35] [--size 64]
        [--batch-size 16] [--frames 8] [--temporal tsm-online] [--rounds 6] [--steps 5]

Two copies of the same model (same initial weights), one with Keras' layer, one with
`tsm_keras.layers.batch_norm.use_fused_batch_norm` applied, each compiled as fit.py compiles it in
graph mode (Adam as the demo, or SGD; gradient clipping at 20). Rounds alternate the two, so slow drifts
of a shared machine hit both alike. Prints the median step of each and the per-round ratios
(Keras' step over the fused one: > 1, the fused layer is faster). The defaults are the
built-in demo's model and batch.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# isort: off
import tsm_keras  # noqa: F401  (first: TensorFlow loads as the library loads it, oneDNN kernels on)

# isort: on

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import compile_like_the_demo  # noqa: E402

from tsm_keras.models import build_video_classifier  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--width", type=float, default=0.35)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--temporal", default="tsm-online")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="adam: the demo's")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 255, (args.batch_size, args.frames, args.size, args.size, 3)).astype("float32")
    labels = rng.integers(0, 10, args.batch_size)
    models = {}
    for name in ("keras", "fused"):
        keras.utils.set_random_seed(0)
        model = build_video_classifier(
            10, args.backbone, args.frames, args.size, temporal=args.temporal, width=args.width, weights=None
        )
        compile_like_the_demo(model, args.optimizer, fused_batch_norm=name == "fused")
        for _ in range(2):  # trace and warm up
            model.train_on_batch(clips, labels)
        models[name] = model

    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(clips, labels)
            times[name].append(1000 * (time.perf_counter() - start) / args.steps)

    ratios = [k / f for k, f in zip(times["keras"], times["fused"])]
    print(
        f"{args.backbone} x{args.width}, {args.frames} frames x {args.size} px, batch {args.batch_size}, "
        f"{args.temporal}; {args.rounds} alternating rounds x {args.steps} steps"
    )
    print("| BatchNormalization | median ms/step | range |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} |")
    print(f"Keras / fused: median {statistics.median(ratios):.2f} (per round {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
