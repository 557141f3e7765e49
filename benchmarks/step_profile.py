"""Where a training step's time goes: TensorFlow's and PyTorch's profilers on the same model.

    python benchmarks/step_profile.py [--backbone mobilenet_v2] [--size 112] [--batch-size 4]
                                      [--frames 8] [--steps 5]

The model and step are those of benchmarks/vs_pytorch.py (torchvision's layout, bidirectional
TSM, SGD with clipping). Each column is a fresh process that runs 3 warm-up steps and then
profiles `--steps` steps:
- PyTorch (eager, float32, the independent PyTorch TSM of tests/port/torch_reference.py);
- tsm-keras with TensorFlow's Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0) and with oneDNN's, each
  with Keras' BatchNormalization and with the fused one (`tsm_keras.layers.batch_norm`).
TensorFlow runs one op at a time here (one inter-op thread; each op still uses every core), as
PyTorch does, so the op times of a step add up to about its wall time in both. Ops are grouped
by the layer they belong to (TensorFlow: the Keras layer named in the op's name, forward and
gradient; PyTorch: the aten op). PyTorch's shift (slices and copies) counts as "other".
Printed: milliseconds per step by group, the sum, and the wall time per profiled step; the same
table is written as the ledger entry results/training-speed-step-profile.json (benchmarks/ledger.py).
"""

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GROUPS = ("convolution", "depthwise convolution", "batch normalization", "activation", "shift", "other")
COLUMNS = {  # name: (TF_ENABLE_ONEDNN_OPTS, fused BatchNormalization); None: PyTorch
    "PyTorch": None,
    "Eigen, Keras BN": ("0", False),
    "Eigen, fused BN": ("0", True),
    "oneDNN, Keras BN": ("1", False),
    "oneDNN, fused BN (fit.py)": ("1", True),
}


def _layer_groups(model):
    """Keras layer name -> group."""
    import keras

    from tsm_keras.layers import TemporalShift
    from tsm_keras.models import walk_layers

    groups = {}
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            groups[layer.name] = "depthwise convolution"
        elif isinstance(layer, keras.layers.Conv2D):
            groups[layer.name] = "convolution"
        elif isinstance(layer, keras.layers.BatchNormalization):
            groups[layer.name] = "batch normalization"
        elif isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
            groups[layer.name] = "activation"
        elif isinstance(layer, TemporalShift):
            groups[layer.name] = "shift"
    return groups


def _group_of(op_name, groups):
    # "gradient_tape/video_classifier_1/backbone_1/block_1_expand_BN_1/moments/mean": Keras adds
    # "_1" to a layer's name scope when it is called inside the training step.
    for part in op_name.split("/"):
        for name in (part, re.sub(r"_\d+$", "", part)):
            if name in groups:
                return groups[name]
    return "other"


def profile_keras(backbone, size, batch, frames, steps, fused):
    # isort: off
    from tsm_keras_start import prepare_process  # first: oneDNN's kernels, as the commands run

    prepare_process()

    # isort: on
    import tensorflow as tf

    try:  # the protobuf of TensorFlow's profiler traces (an internal module of TensorFlow 2.21)
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:
        raise SystemExit(f"this TensorFlow has no profiler protobuf to read the trace: {error}") from None

    from vs_pytorch import keras_training

    from tsm_keras._startup import onednn_enabled

    tf.config.threading.set_inter_op_parallelism_threads(1)
    model, clips, labels = keras_training(
        backbone + "_tv", "tsm", "fused-bn" if fused else "graph", frames, size, batch
    )
    for _ in range(3):
        model.train_on_batch(clips, labels)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(clips, labels)
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    groups = _layer_groups(model)
    per_group = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the threads that run ops
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:  # "op name:OpType"; not executor bookkeeping
                    per_group[_group_of(name.rsplit(":", 1)[0], groups)] += event.duration_ps / 1e9 / steps
    return {"groups": dict(per_group), "wall_ms": 1000 * wall, "onednn": onednn_enabled()}


def profile_torch(backbone, size, batch, frames, steps):
    import torch
    from vs_pytorch import torch_training

    _, _, step, _ = torch_training(backbone, "tsm", frames, size, batch)
    for _ in range(3):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - start) / steps
    per_group = collections.Counter()
    for op in profiler.key_averages():
        name = op.key.lower()
        if "batch_norm" in name:
            group = "batch normalization"
        elif "convolution" in name or "conv2d" in name:
            group = "convolution"  # depthwise included: the aten op does not tell them apart
        elif any(word in name for word in ("hardtanh", "clamp", "relu", "threshold")):
            group = "activation"
        else:
            group = "other"
        per_group[group] += op.self_cpu_time_total / 1000 / steps
    return {"groups": dict(per_group), "wall_ms": 1000 * wall, "onednn": None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "resnet50"])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="profiled training steps per process")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one column, as JSON
    args = parser.parse_args(argv)
    shape = dict(backbone=args.backbone, size=args.size, batch=args.batch_size, frames=args.frames, steps=args.steps)
    if args.one:
        setting = json.loads(args.one)
        result = profile_torch(**shape) if setting is None else profile_keras(**shape, fused=setting[1])
        print("RESULT " + json.dumps(result))
        return

    from _timing import print_table
    from ledger import command, write_entry

    results = {}
    for column, setting in COLUMNS.items():
        env = dict(os.environ)
        if setting is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = setting[0]
        child = [sys.executable, os.path.abspath(__file__), "--one", json.dumps(setting)] + (argv or sys.argv[1:])
        done = subprocess.run(child, capture_output=True, text=True, env=env)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            raise SystemExit(f"{column}: failed\n{done.stderr[-2000:]}")
        results[column] = json.loads(lines[0][len("RESULT ") :])
        if setting is not None and results[column]["onednn"] != (setting[0] == "1"):
            raise SystemExit(f"{column}: oneDNN is {results[column]['onednn']}, not as asked")
        print(f"{column}: {results[column]['wall_ms']:.0f} ms/step", file=sys.stderr)

    caption = (
        f"TSM-{args.backbone}, {args.batch_size} clips x {args.frames} x {args.size} px, training step; "
        f"ms per step (mean of {args.steps} profiled steps)"
    )
    print(f"\n{caption}\n")
    rows = [[group] + [round(r["groups"].get(group, 0)) for r in results.values()] for group in GROUPS]
    rows.append(["sum of ops"] + [round(sum(r["groups"].values())) for r in results.values()])
    rows.append(["wall, profiled"] + [round(r["wall_ms"]) for r in results.values()])
    columns = ["group"] + list(COLUMNS)
    print_table(columns, rows)
    write_entry(
        "training-speed-step-profile",
        "training-speed",
        "Where a training step's time goes: TensorFlow's and PyTorch's profilers on the same TSM",
        command(),
        columns,
        rows,
        notes=f"{caption}; one process per column, one op at a time (one inter-op thread).",
    )


if __name__ == "__main__":
    main()
