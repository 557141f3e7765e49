"""Training throughput (clips/s) and peak memory of TSM models on the available device.

    python benchmarks/train_throughput.py [--backbones mobilenet_v2 resnet50] [--frames 8] [--size 224]
                                          [--batch-size 8] [--steps 10]

For each backbone: float32 and mixed precision (float16 on a GPU, bfloat16 on a CPU), each
with and without XLA. Every configuration runs in its own process (the precision policy is
global, and peak memory must not carry over). Synthetic clips are fed from memory, so this
measures the model's training step (forward, backward, SGD update), not the input pipeline.
Peak memory: the GPU allocator's peak on a GPU, the process's peak resident size on a CPU.
Ends by writing its ledger entry, results/training-speed-throughput.json (benchmarks/ledger.py).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def measure(backbone, frames, size, batch, steps, precision, xla):
    """One configuration, in this process: {'clips_per_s', 'step_ms', 'peak_mb', 'device'}."""
    # isort: off
    from tsm_keras_start import prepare_process  # first: oneDNN's kernels, as the commands run

    prepare_process()

    # isort: on
    import keras
    import numpy as np
    import tensorflow as tf

    from tsm_keras.models import build_video_classifier
    from tsm_keras.training.recipe import make_optimizer

    gpus = tf.config.list_logical_devices("GPU")
    if precision == "mixed":
        keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
    model = build_video_classifier(400, backbone=backbone, num_segments=frames, input_size=size, bn_momentum=0.9)
    model.compile(
        optimizer=make_optimizer(0.01, 1e-4, 20.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=xla,
    )
    rng = np.random.default_rng(0)
    clips = tf.constant(rng.integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, 400, batch))
    for _ in range(3):  # compile and warm up
        model.train_on_batch(clips, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(clips, labels)  # returns numpy: the step has finished
        times.append(time.perf_counter() - start)
    step = float(np.median(times))
    if gpus:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        device = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0]).get(
            "device_name", "GPU"
        )
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        device = f"CPU ({os.cpu_count()} cores)"
    return {"clips_per_s": batch / step, "step_ms": 1000 * step, "peak_mb": peak, "device": device}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8, help="clips per step (the reference: 8 per GPU)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration as JSON
    args = parser.parse_args(argv)
    if args.one:
        config = json.loads(args.one)
        print("RESULT " + json.dumps(measure(**config)))
        return

    from _timing import print_table
    from ledger import command, write_entry

    rows, device = [], "?"
    for backbone in args.backbones:
        for precision in args.precisions:
            for xla in (False, True):
                config = dict(
                    backbone=backbone,
                    frames=args.frames,
                    size=args.size,
                    batch=args.batch_size,
                    steps=args.steps,
                    precision=precision,
                    xla=xla,
                )
                done = subprocess.run(
                    [sys.executable, __file__, "--one", json.dumps(config)], capture_output=True, text=True
                )
                lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
                label = [backbone, precision, "XLA" if xla else "-"]
                if done.returncode or not lines:
                    rows.append(label + ["failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:60], None, None])
                    continue
                r = json.loads(lines[0][len("RESULT ") :])
                rows.append(
                    label + [round(r["clips_per_s"], 2), round(r["step_ms"] / args.batch_size), round(r["peak_mb"])]
                )
                device = r["device"]
                print(f"{backbone} {precision} xla={xla}: {r['clips_per_s']:.2f} clips/s", file=sys.stderr)
    caption = (
        f"TSM training throughput on {device}, {args.frames} x {args.size} x {args.size}, "
        f"batch {args.batch_size}, median of {args.steps} steps"
    )
    print(f"\n{caption}\n")
    columns = ["backbone", "precision", "XLA", "clips/s", "ms / clip", "peak MB"]
    print_table(columns, rows)
    write_entry(
        "training-speed-throughput",
        "training-speed",
        "Training throughput and peak memory of TSM, float32 and mixed precision, with and without XLA",
        command(),
        columns,
        rows,
        notes=caption + "; synthetic clips from memory, SGD (the input pipeline is not measured).",
    )


if __name__ == "__main__":
    main()
