"""Levers of Keras' fit() on the demo's training step, side by side in one process.

    python benchmarks/fit_levers.py [--rounds 5] [--steps 16] [--size 64] [--width 0.35]

The built-in demo's model (causal TSM-MobileNetV2, 16 clips x 8 frames, Adam with clipping at
20) trained by `model.fit` on clips held in memory (so the input pipeline costs nothing), once
per candidate, alternating in rounds:

- steps_per_execution 1 (fit.py's) and 8: several steps per call of the compiled function
  (fewer Python round trips per step);
- the input size the demo could use instead of 64 px (the same model at 48 and 32 px), to put
  a price on a smaller demo.

Prints median ms per training step and the range. Not a timed test.
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
import tensorflow as tf  # noqa: E402
from _timing import compile_like_the_demo  # noqa: E402

from tsm_keras.models import build_video_classifier  # noqa: E402


def candidate(width, size, batch, steps_per_execution, steps):
    keras.utils.set_random_seed(0)
    model = build_video_classifier(10, "mobilenet_v2", 8, size, temporal="tsm-online", width=width, weights=None)
    compile_like_the_demo(
        model,
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
        steps_per_execution=steps_per_execution,
    )
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (batch, 8, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, batch).astype(np.int32)
    data = tf.data.Dataset.from_tensors((clips, labels)).repeat()

    def run():
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)

    run()  # trace and warm up
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16, help="training steps per timed fit() call")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.35)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    candidates = {
        f"{args.size} px, steps_per_execution 1": (args.size, 1),
        f"{args.size} px, steps_per_execution 8": (args.size, 8),
    }
    for size in (48, 32):  # the smaller inputs a faster demo could use
        candidates.setdefault(f"{size} px, steps_per_execution 1", (size, 1))
    runs = {
        name: candidate(args.width, size, args.batch_size, spe, args.steps) for name, (size, spe) in candidates.items()
    }
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(1000 * (time.perf_counter() - start) / args.steps)

    print(
        f"causal TSM-MobileNetV2 x{args.width}, 8 frames, batch {args.batch_size}, Adam; "
        f"{args.rounds} alternating rounds of fit() over {args.steps} steps"
    )
    print("| candidate | median ms/step | range |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} |")


if __name__ == "__main__":
    main()
