"""bLVNet-TAM-50 "8x2" (16 frames) against TSM-ResNet-50 (8 frames): parameters, multiply-adds
per clip, and peak training memory and training clips/s on this machine.

    python benchmarks/blvnet_cost.py [--size 224] [--batch-size 1] [--steps 3] [--repeats 3]

Multiply-adds are counted from the traced TensorFlow graph of one clip (batch 1, so every
shape is static): Conv2D out_elements * kh * kw * c_in, DepthwiseConv2dNative out_elements *
kh * kw (TAM's temporal blend included), MatMul m * n * k. BatchNormalization, additions,
activations, pooling and resizing are not counted (as in the papers' GMACs). Published: 23.8
GMACs (bLVNet-TAM-50 8x2) and 32.9 (TSM-R50 8 frames).

Training: each repeat is its own process (peak memory must not carry over); synthetic clips
from memory, SGD; after 2 warm-up steps, the median of `--steps` steps. Peak memory is the
process's peak resident size (the TensorFlow runtime included; the table also gives it minus
the resident size before the first step). A shared machine is noisy: medians over repeats.

Ends by writing its ledger entry (benchmarks/ledger.py): results/blvnet-cost.json, or with
--no-training results/blvnet-cost-static.json.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# (label, build_video_classifier arguments); num_segments is the frames a clip carries.
MODELS = {
    "bLVNet-TAM-50 8x2": dict(backbone="blresnet50", num_segments=16, temporal="tam"),
    "TSM-ResNet-50 8f": dict(backbone="resnet50_tv", num_segments=8, temporal="tsm"),
}
CLASSES = 174  # Something-Something


def multiply_adds(model):
    """Multiply-adds of one forward pass of one clip, from the traced graph."""
    import tensorflow as tf

    spec = tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda clip: model(clip, training=False)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        if op.type in ("Conv2D", "DepthwiseConv2dNative"):
            out = op.outputs[0].shape
            kernel = op.inputs[1].shape
            per_output = kernel[0] * kernel[1] * (kernel[2] if op.type == "Conv2D" else 1)
            total += out.num_elements() * per_output
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape, op.inputs[1].shape
            total += a.num_elements() * b[-1]
    return total


def measure(name, size, batch, steps):
    """One training configuration in this process: {'clips_per_s', 'peak_mb', 'before_mb'}."""
    # isort: off
    from tsm_keras_start import prepare_process  # first: oneDNN's kernels, as the commands run

    prepare_process()

    # isort: on
    import keras
    import numpy as np
    import tensorflow as tf

    from tsm_keras.models import build_video_classifier
    from tsm_keras.training.recipe import make_optimizer

    model = build_video_classifier(CLASSES, input_size=size, **MODELS[name])
    model.compile(
        optimizer=make_optimizer(0.01, 5e-4, 20.0, optimizer="nesterov"),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    frames = model.input_shape[1]
    clips = tf.constant(rng.integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, CLASSES, batch))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(2):
        model.train_on_batch(clips, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(clips, labels)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"clips_per_s": batch / statistics.median(times), "peak_mb": peak, "before_mb": before}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1, help="clips per training step")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="processes per model (medians over them)")
    parser.add_argument("--no-training", action="store_true", help="parameters and multiply-adds only")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one training measurement as JSON
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(**json.loads(args.one))))
        return

    from _timing import print_table
    from ledger import command, write_entry

    from tsm_keras.models import build_video_classifier

    static = {}
    for name, kwargs in MODELS.items():
        model = build_video_classifier(CLASSES, input_size=args.size, **kwargs)
        static[name] = (model.count_params(), multiply_adds(model))
        print(f"{name}: {static[name][0]:,} parameters, {static[name][1] / 1e9:.2f} GMACs per clip", file=sys.stderr)

    trained = {name: [] for name in MODELS}
    if not args.no_training:
        for _ in range(args.repeats):
            for name in MODELS:  # alternating, so that the machine's drifts hit both alike
                config = dict(name=name, size=args.size, batch=args.batch_size, steps=args.steps)
                done = subprocess.run(
                    [sys.executable, __file__, "--one", json.dumps(config)], capture_output=True, text=True
                )
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode or not lines:
                    sys.exit(f"{name}: training measurement failed: {done.stderr.strip()[-500:]}")
                trained[name].append(json.loads(lines[0][len("RESULT ") :]))
                print(f"{name}: {trained[name][-1]}", file=sys.stderr)

    rows = []
    for name, (parameters, macs) in static.items():
        row = [name, round(parameters / 1e6, 2), round(macs / 1e9, 2)]
        if trained[name]:
            runs = trained[name]
            median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
            speeds = sorted(r["clips_per_s"] for r in runs)
            row += [
                round(median("clips_per_s"), 3),
                f"{speeds[0]:.3f}-{speeds[-1]:.3f}",
                round(median("peak_mb")),
                round(statistics.median(r["peak_mb"] - r["before_mb"] for r in runs)),
            ]
        rows.append(row)
    caption = [f"{args.size} px, {CLASSES} classes; multiply-adds of one clip's forward pass"]
    header = ["model", "parameters M", "GMACs / clip"]
    if not args.no_training:
        caption.append(
            f"training on {os.cpu_count()} CPU cores (shared, noisy), batch {args.batch_size}, "
            f"median of {args.steps} steps per process, median over {args.repeats} processes (and their range)"
        )
        header += ["train clips/s", "clips/s range", "peak RSS MB", "peak - before MB"]
    print("\n" + "\n".join(caption) + "\n")
    print_table(header, rows)
    write_entry(
        "blvnet-cost-static" if args.no_training else "blvnet-cost",
        "blvnet",
        "bLVNet-TAM-50 8x2 against TSM-ResNet-50 8f: parameters, multiply-adds"
        + ("" if args.no_training else ", training speed and peak memory"),
        command(),
        header,
        rows,
        summary={f"{name} GMACs / clip": f"{macs / 1e9:.2f}" for name, (_, macs) in static.items()},
        notes="; ".join(caption) + ".",
    )


if __name__ == "__main__":
    main()
