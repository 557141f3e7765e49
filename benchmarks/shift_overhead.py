"""What the shift costs: TSM against its TSN twin (same backbone, same weights layout), Keras on the CPU.

    python benchmarks/shift_overhead.py [--frames 8] [--size 224] [--repeats 15] [--backbones mobilenet_v2 resnet50]
    python benchmarks/shift_overhead.py --layer [--repeats 15]
    python benchmarks/shift_overhead.py --train [--configs resnet50-112 ...] [--repeats 15] [--steps 2] [--no-torch]

Default: inference latency, one clip of T frames per call, the models called alternately, medians
over repeats, with and without XLA. The paper measured about 3% for shifting a quarter of the
channels.

`--layer`: the shift layer alone in training, forward and backward, on a ResNet-50 stage-1
tensor (8 frames x 56 x 56 x 256): the layer as it trains in TensorFlow (the XLA-fused selection,
`select_shift`) and as it runs in inference and export (slices and concatenations), both with the
opposite shift as written-out gradient, against the same slices and concatenations
differentiated by TensorFlow, and a plain copy.

`--train`: what a user feels, the training step of TSM (and TAM, and a copy) against its TSN twin,
for each of `--configs` (ResNet-50 at 112 and 224 px, MobileNetV2 at the demo's 64 px and at 224
px by default; `blresnet50-128` adds bLVNet-TAM against bLVNet without TAM): torchvision's layouts,
`--batch-size` clips of 8 frames, SGD with momentum and gradient clipping, in fit.py's mode (graph,
fused BatchNormalization, oneDNN's kernels). The same models in PyTorch (tests/port/torch_reference.py)
give PyTorch's TSM/TSN in the same run. Each framework and model runs in its own process, the
variants alternating in rounds of `--steps` steps; each round's ratio to TSN is taken within the
round, and the median and quartiles of those ratios are printed, in wall time and in CPU time.

The "copy" twin puts a plain copy (x times a scalar variable equal to 1) where each shift goes:
one read and one write of every shifted tensor, the least that any shift that materialises its
output can cost. Its ratio to TSN is the floor of the TSM ratio on this machine.

Each mode ends by writing its ledger entry (benchmarks/ledger.py): results/shift-cost-latency.json,
shift-cost-layer.json, or with --train one per configuration, written as soon as it is measured:
shift-cost-training-<config>.json (resnet50-112, mobilenet-v2-64, ...).
"""

import argparse
import json
import os
import statistics
import subprocess
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

from tsm_keras.layers import TemporalShift
from tsm_keras.layers.temporal_shift import shift_clips
from tsm_keras.models import build_video_classifier
from tsm_keras.models.insertion import module_name


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

    fns = {
        "layer, training (fused)": gradient_of(lambda v: layer(v, training=True)),
        "layer, inference": gradient_of(layer),
        "autodiff": gradient_of(autodiff),
        "copy": gradient_of(lambda v: v * 1.0),
    }
    for name in ("layer, training (fused)", "layer, inference"):
        np.testing.assert_array_equal(fns[name](), fns["autodiff"]())  # the same numbers
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
        summary={f"{name} / copy": f"{ratio[name]:.2f}x" for name in fns if name != "copy"},
        notes=caption + ".",
        conditions=f"load average {load:.1f}",
    )


# --train: name -> (tsm-keras backbone, PyTorch backbone or None, frame side, frames, Keras twins)
TRAIN_CONFIGS = {
    "resnet50-112": ("resnet50_tv", "resnet50", 112, 8, ("tsm", "copy", "tam")),
    "resnet50-224": ("resnet50_tv", "resnet50", 224, 8, ("tsm", "copy", "tam")),
    "mobilenet_v2-64": ("mobilenet_v2_tv", "mobilenet_v2", 64, 8, ("tsm", "copy")),
    "mobilenet_v2-224": ("mobilenet_v2_tv", "mobilenet_v2", 224, 8, ("tsm", "copy")),
    "blresnet50-128": ("blresnet50", None, 128, 16, ("tam", "tsm")),
}
DEFAULT_TRAIN = ("resnet50-112", "resnet50-224", "mobilenet_v2-64", "mobilenet_v2-224")


def train_rounds(framework, backbone, size, frames, twins, batch, rounds, steps):
    """One process: TSN and each twin trained in alternating rounds of `steps` steps.
    {"wall"|"cpu": {name: [seconds per step, one per round]}}."""
    if framework == "keras":
        from vs_pytorch import keras_training

        def make(temporal):
            keras.utils.set_random_seed(0)
            model, clips, labels = keras_training(
                backbone, make_copy if temporal == "copy" else temporal, "fused-bn", frames, size, batch
            )
            return lambda: [model.train_on_batch(clips, labels) for _ in range(steps)]
    else:
        from vs_pytorch import torch_training

        def make(temporal):
            return lambda: [torch_training_steps[temporal]() for _ in range(steps)]

        torch_training_steps = {t: torch_training(backbone, t, frames, size, batch)[2] for t in ("none", *twins)}
    fns = {t: make(t) for t in ("none", *twins)}
    for fn in fns.values():
        fn()  # warm-up: tracing, allocation
    result = {"wall": {t: [] for t in fns}, "cpu": {t: [] for t in fns}}
    for _ in range(rounds):
        for t, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            result["wall"][t].append((time.perf_counter() - wall) / steps)
            result["cpu"][t].append((time.process_time() - cpu) / steps)
    return result


def _ratio(result, clock, twin):
    """Median and quartiles of the per-round ratios twin / TSN."""
    ratios = [a / b for a, b in zip(result[clock][twin], result[clock]["none"])]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return statistics.median(ratios), q[0], q[2]


def _in_process(config):
    """Runs train_rounds in a fresh process (memory and threads do not carry over)."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one", json.dumps(config)], capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{config}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(lines[0][len("RESULT ") :])


def training_step(args):
    """TSM's (and TAM's, and a copy's) training step against TSN's, in Keras and in PyTorch:
    one table and one ledger entry per configuration, written as soon as it is measured."""
    columns = ["framework", "TSN ms/step", "twin", "twin ms/step", "twin / TSN (wall)", "quartiles"]
    columns += ["twin / TSN (CPU)", "CPU quartiles"]
    caption = (
        f"{args.batch_size} clips per step (bLVNet: 16 frames, the others 8), SGD with momentum and clipping; "
        "tsm-keras in fit.py's mode (graph, fused BatchNormalization, oneDNN), TensorFlow "
        f"{tf.__version__}; PyTorch eager float32. Each framework in its own process; {args.repeats} "
        f"alternating rounds of {args.steps} steps; a ratio is taken within each round: median and quartiles "
        "over rounds. copy: a plain copy where each shift goes (the floor of any shift that writes a new tensor)"
    )
    for name in args.configs:
        backbone, torch_backbone, size, frames, twins = TRAIN_CONFIGS[name]
        runs = [("tsm-keras", backbone, twins)]
        if torch_backbone and not args.no_torch:
            runs.append(("PyTorch", torch_backbone, ("tsm",)))
        rows, summary = [], {}
        for framework, model, model_twins in runs:
            config = dict(
                framework="keras" if framework == "tsm-keras" else "torch",
                backbone=model,
                size=size,
                frames=frames,
                twins=model_twins,
                batch=args.batch_size,
                rounds=args.repeats,
                steps=args.steps,
            )
            result = _in_process(config)
            tsn = median_ms(result["wall"]["none"])
            for twin in model_twins:
                wall, cpu = _ratio(result, "wall", twin), _ratio(result, "cpu", twin)
                row = [framework, round(tsn), twin.upper(), round(median_ms(result["wall"][twin]))]
                row += [round(wall[0], 3), f"{wall[1]:.3f}-{wall[2]:.3f}"]
                row += [round(cpu[0], 3), f"{cpu[1]:.3f}-{cpu[2]:.3f}"]
                rows.append(row)
                if twin != "copy":
                    summary[f"{framework}: {twin.upper()} / TSN"] = f"{wall[0]:.3f}x ({wall[1]:.3f}-{wall[2]:.3f})"
        print(f"\n{name}: {caption}\n")
        print_table(columns, rows)
        load = os.getloadavg()[0]
        write_entry(
            f"shift-cost-training-{name.replace('_', '-')}",
            "shift-cost",
            f"The training step against TSN, {backbone} at {size} px, in tsm-keras and in PyTorch",
            command(),
            columns,
            rows,
            summary=summary,
            notes=caption + ".",
            conditions=f"load average {load:.1f}",
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="frame side (not with --train)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--layer", action="store_true", help="the shift layer alone, forward and backward")
    parser.add_argument("--train", action="store_true", help="training steps against TSN, tsm-keras and PyTorch")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_TRAIN, choices=TRAIN_CONFIGS, help="with --train")
    parser.add_argument("--no-torch", action="store_true", help="with --train: tsm-keras only")
    parser.add_argument("--batch-size", type=int, default=4, help="with --train: clips per step")
    parser.add_argument("--steps", type=int, default=2, help="with --train: steps per round")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one --train process, as JSON
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(train_rounds(**json.loads(args.one))))
        return
    if args.train:
        training_step(args)
        return
    if args.layer:
        layer_in_training(args.repeats)
        return

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
