"""Latency of TSM vs its TSN twin (same backbone, same weights layout), Keras on the CPU.

    python benchmarks/shift_overhead.py [--frames 8] [--size 224] [--repeats 15] [--backbones mobilenet_v2 resnet50]
    python benchmarks/shift_overhead.py --train [--repeats 15] [--steps 3]   # the first of --backbones

One clip of T frames per call, the models called alternately, medians over repeats, with
and without XLA. The paper measured about 3% for shifting a quarter of the channels.

`--layer`: the shift layer alone in training, forward and backward, on a ResNet-50 stage-1
tensor (8 frames x 56 x 56 x 256): the layer (its gradient is the opposite shift, written out)
against the same slices and concatenations differentiated by TensorFlow, and a plain copy.

`--train`: the training step of TSM against TSN, compiled by fit.py's own set-up for the built-in
demo (`tsm_keras.training.trainer.compile_for_training`: AdamW with clipping on the demo's
schedule, top-1/top-5 metrics; graph mode, fused BatchNormalization), on the demo's model by
default (MobileNetV2 x0.35, 16 clips x 8 x 64 px), the causal and the bidirectional shift. Rounds
alternate the models; each round's TSM/TSN ratio is taken within the round, and the median
and the quartiles of those ratios are printed, in wall time and in CPU time.

A third twin, "copy", puts a plain copy (x times a scalar variable equal to 1) where each shift
goes: one read and one write of every shifted tensor, the least that any shift that materialises
its output can cost. Its ratio to TSN is the floor of the TSM ratio on this machine.

Each mode ends by writing its ledger entry (benchmarks/ledger.py): results/shift-cost-latency.json,
shift-cost-layer.json or shift-cost-training-step.json.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# isort: off
from tsm_keras_start import prepare_process  # first: oneDNN's kernels, as the commands run

prepare_process()

# isort: on

import keras
import numpy as np
import tensorflow as tf
from _timing import alternate, median_ms, print_table, spread_ms
from ledger import command, write_entry

from tsm_keras.data.synthetic import CLASS_NAMES, DEFAULT_TRAIN_PER_CLASS
from tsm_keras.layers import TemporalShift
from tsm_keras.layers.temporal_shift import shift_clips
from tsm_keras.models import build_video_classifier
from tsm_keras.models.insertion import module_name
from tsm_keras.training.trainer import FitOptions, compile_for_training, resolve


class Copy(keras.layers.Layer):
    """x * one, with `one` a variable equal to 1: a real copy that graph optimisers cannot remove."""

    def build(self, input_shape):
        self.one = self.add_weight(shape=(), initializer="ones", trainable=False, name="one")

    def call(self, x):
        return x * self.one


def make_copy(target, num_segments, shift_div, signed_inputs=False):
    return Copy(name=module_name(target, "copy"))


def compiled(model, xla):
    return tf.function(lambda x: model(x, training=False), jit_compile=xla)


def layer_in_training(repeats, frames=8, size=56, channels=256):
    """Forward + backward of one shift: the layer, TensorFlow's autodiff of the same ops, a copy."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(frames, size, size, channels)), tf.float32)
    upstream = tf.constant(rng.normal(size=x.shape), tf.float32)
    layer = TemporalShift(frames, 8)

    def autodiff(v):
        clips = tf.reshape(v, (-1, frames, size * size, channels))
        return tf.reshape(shift_clips(clips, channels // 8, (+1, -1)), tf.shape(v))

    def gradient_of(fn):
        @tf.function
        def step(v):
            with tf.GradientTape() as tape:
                tape.watch(v)
                loss = tf.reduce_sum(fn(v) * upstream)
            return tape.gradient(loss, v)

        return lambda: step(x).numpy()

    fns = {"layer": gradient_of(layer), "autodiff": gradient_of(autodiff), "copy": gradient_of(lambda v: v * 1.0)}
    np.testing.assert_array_equal(fns["layer"](), fns["autodiff"]())  # the same numbers
    times = alternate(fns, repeats)
    load = os.getloadavg()[0]
    caption = (
        f"The shift alone in training (forward + backward), {frames} x {size} x {size} x {channels}, "
        f"TensorFlow {tf.__version__} on CPU ({os.cpu_count()} cores, load average {load:.1f}), "
        f"median ± IQR of {repeats} alternating runs"
    )
    print(f"\n{caption}\n")
    ratio = {name: median_ms(times[name]) / median_ms(times["copy"]) for name in fns}
    columns = ["shift", "ms", "/ copy"]
    rows = [
        [name, f"{median_ms(times[name]):.1f} ± {spread_ms(times[name]):.1f}", round(ratio[name], 2)] for name in fns
    ]
    print_table(columns, rows)
    write_entry(
        "shift-cost-layer",
        "shift-cost",
        "The shift layer alone in training, against TensorFlow's autodiff of the same ops and a copy",
        command(),
        columns,
        rows,
        summary={f"{name} / copy": f"{ratio[name]:.2f}x" for name in ("layer", "autodiff")},
        notes=caption + ".",
        conditions=f"load average {load:.1f}",
    )


def training_step(args):
    """TSM's training step against TSN's, ratios taken within each alternating round."""
    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 255, (args.batch_size, args.frames, args.size, args.size, 3)).astype("float32")
    labels = rng.integers(0, 10, args.batch_size)
    # fit.py's set-up for the built-in demo, at this batch, in graph mode (its choice on a CPU)
    demo = resolve(FitOptions(batch_size=args.batch_size, xla=False))
    steps_per_epoch = len(CLASS_NAMES) * DEFAULT_TRAIN_PER_CLASS // demo.batch_size
    steps = {}
    for temporal in ("none", "tsm-online", "tsm"):
        keras.utils.set_random_seed(0)
        model = build_video_classifier(
            10, args.backbones[0], args.frames, args.size, temporal=temporal, width=args.width, weights=None
        )
        model = compile_for_training(model, demo, steps_per_epoch)
        steps[temporal] = lambda m=model: [m.train_on_batch(clips, labels) for _ in range(args.steps)]
    caption = (
        f"Training step, {args.backbones[0]} x{args.width}, {args.batch_size} clips x {args.frames} x "
        f"{args.size} px, fit.py's set-up for the demo: graph mode, fused BatchNormalization; TensorFlow "
        f"{tf.__version__} on CPU ({os.cpu_count()} cores); {args.repeats} alternating rounds of "
        f"{args.steps} steps; TSM/TSN per round: median and quartiles"
    )
    print(f"\n{caption}\n")
    names = {"tsm-online": "causal TSM", "tsm": "TSM"}
    rows, summary = [], {}
    for name, clock in (("wall", time.perf_counter), ("CPU", time.process_time)):
        times = alternate(steps, args.repeats, clock=clock)
        row = [name, round(median_ms(times["none"]) / args.steps)]
        row += [round(median_ms(times[t]) / args.steps) for t in names]
        for t in names:
            q = statistics.quantiles([a / b for a, b in zip(times[t], times["none"])], n=4)
            row += [round(q[1], 3), f"{q[0]:.3f}-{q[2]:.3f}"]
            summary[f"{names[t]} / TSN, {name} time"] = f"{q[1]:.3f}x"
        rows.append(row)
    columns = ["clock", "TSN ms/step", "causal TSM ms/step", "TSM ms/step"]
    columns += [c for t in names.values() for c in (f"{t} / TSN", f"{t} / TSN quartiles")]
    print_table(columns, rows)
    write_entry(
        "shift-cost-training-step",
        "shift-cost",
        "The demo's training step: causal and bidirectional TSM against TSN",
        command(),
        columns,
        rows,
        summary=summary,
        notes=caption + ".",
        conditions=f"load average {os.getloadavg()[0]:.1f}",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, help="frame side (default: 224; with --train 64, the demo's)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--layer", action="store_true", help="the shift layer alone, forward and backward")
    parser.add_argument("--train", action="store_true", help="the demo's training step: TSM against TSN")
    parser.add_argument("--width", type=float, default=0.35, help="with --train: MobileNetV2's width")
    parser.add_argument("--batch-size", type=int, default=16, help="with --train")
    parser.add_argument("--steps", type=int, default=3, help="with --train: steps per timed call")
    args = parser.parse_args(argv)
    if args.train:
        args.size = args.size or 64  # the demo's
        training_step(args)
        return
    if args.layer:
        layer_in_training(args.repeats)
        return
    args.size = args.size or 224

    clip = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, args.frames, args.size, args.size, 3)), tf.float32)
    rows, summary = [], {}
    for backbone in args.backbones:
        models = {
            temporal: build_video_classifier(
                400, backbone=backbone, num_segments=args.frames, input_size=args.size, temporal=temporal
            )
            for temporal in ("tsm", "none")
        }
        models["copy"] = build_video_classifier(
            400, backbone=backbone, num_segments=args.frames, input_size=args.size, temporal=make_copy
        )
        for xla in (False, True):
            fns = {t: (lambda f=compiled(m, xla): f(clip).numpy()) for t, m in models.items()}  # noqa: B008 (bound per model)
            row = [backbone, "XLA" if xla else "graph"]
            for clock in (time.perf_counter, time.process_time):
                times = alternate(fns, args.repeats, clock=clock)
                tsm, tsn, copy = (median_ms(times[k]) for k in ("tsm", "none", "copy"))
                row += [
                    f"{tsn:.1f} ± {spread_ms(times['none']):.1f}",
                    f"{tsm:.1f} ± {spread_ms(times['tsm']):.1f}",
                    round(tsm / tsn, 3),
                    round(copy / tsn, 3),
                ]
            rows.append(row)
            summary[f"{backbone}, {row[1]}: TSM / TSN (wall)"] = f"{row[4]:.3f}x"
            print(" ".join(map(str, row)), file=sys.stderr)
    load = os.getloadavg()[0]
    caption = (
        f"TSM vs TSN latency, TensorFlow {tf.__version__} on CPU ({os.cpu_count()} cores, load average "
        f"{load:.1f}), 1 clip x {args.frames} x {args.size} x {args.size}, median ± IQR of {args.repeats} "
        "alternating runs; wall time, then CPU time of all threads (less sensitive to other jobs)"
    )
    print(f"\n{caption}\n")
    columns = ["backbone", "mode", "TSN wall ms", "TSM wall ms", "wall ratio", "copy/TSN wall"]
    columns += ["TSN CPU ms", "TSM CPU ms", "CPU ratio", "copy/TSN CPU"]
    print_table(columns, rows)
    write_entry(
        "shift-cost-latency",
        "shift-cost",
        "Inference latency of TSM against its TSN twin and a copy in place of each shift, Keras on the CPU",
        command(),
        columns,
        rows,
        summary=summary,
        notes=caption + ".",
        conditions=f"load average {load:.1f}",
    )


if __name__ == "__main__":
    main()
