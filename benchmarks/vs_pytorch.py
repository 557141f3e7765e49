"""tsm-keras against a PyTorch TSM of the same architecture, side by side, on this machine.

    python benchmarks/vs_pytorch.py [--backbones resnet50 mobilenet_v2] [--size 112] [--batch-size 4]
                                    [--frames 8] [--steps 5] [--rounds 3] [--modes fused-bn graph xla eigen]

For each backbone (torchvision's layout in both frameworks: `resnet50_tv`, `mobilenet_v2_tv`)
and each of TSM (bidirectional shift, 1/8 each way, residual branch) and TSN (no shift), it
measures a training step (forward, backward, gradient clipping at 20, SGD with momentum and
weight decay) on `--batch-size` clips, the inference latency of one clip, and the peak resident
memory of the process:
- tsm-keras in each of `--modes`: graph (tf.function with Keras' BatchNormalization), fused-bn
  (graph mode with `tsm_keras.layers.batch_norm`'s fused BatchNormalization kernel in training:
  what fit.py runs on a CPU), xla (jit_compile), mixed (graph mode in bfloat16 on a CPU, float16
  on a GPU), eigen (graph mode with TensorFlow's Eigen kernels, TF_ENABLE_ONEDNN_OPTS=0: what
  TensorFlow runs by default on x86 CPUs without AVX-512 VNNI/BF16 or AMX; every other mode
  runs oneDNN's kernels, which the commands turn on, see tsm_keras_start.py);
- PyTorch (eager, float32), with the independent PyTorch TSM of the tests
  (tests/port/torch_reference.py; the library never imports it).
Every configuration runs in a fresh process, one after the other, and the whole sequence is
repeated `--rounds` times: slow drifts of the machine hit all alike. A cell is the median over
rounds of each process's median step. "vs PyTorch" is PyTorch's step time over ours (> 1: we
are faster); "shift" is the TSM step over the TSN step of the same framework and mode. Ends by
writing its ledger entry, results/training-speed-vs-pytorch.json (benchmarks/ledger.py).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

NUM_CLASSES = 400
LR, WEIGHT_DECAY, CLIP_NORM = 0.01, 1e-4, 20.0
MODES = ["graph", "fused-bn", "xla", "mixed", "eigen"]


def _median_step(step, steps, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def keras_training(backbone, temporal, mode, frames, size, batch):
    """tsm-keras's model of `backbone` (as build_video_classifier names it), compiled for training
    in `mode`, and a batch for it: (model, clips, labels). TensorFlow must be loaded through
    tsm_keras (see measure_keras)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tsm_keras.layers.batch_norm import with_fused_batch_norm
    from tsm_keras.models import build_video_classifier
    from tsm_keras.training.recipe import make_optimizer

    if mode == "mixed":
        gpus = tf.config.list_physical_devices("GPU")
        keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "mixed_bfloat16")
    model = build_video_classifier(
        NUM_CLASSES, backbone=backbone, num_segments=frames, input_size=size, temporal=temporal
    )
    if mode == "fused-bn":  # graph mode with TensorFlow's fused BatchNormalization kernel
        model = with_fused_batch_norm(model)
    model.compile(
        optimizer=make_optimizer(LR, WEIGHT_DECAY, CLIP_NORM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=mode == "xla",
    )
    rng = np.random.default_rng(0)
    clips = tf.constant(rng.integers(0, 256, (batch, frames, size, size, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, NUM_CLASSES, batch))
    return model, clips, labels


def measure_keras(backbone, temporal, mode, frames, size, batch, steps):
    # isort: off
    from tsm_keras_start import prepare_process  # first: oneDNN's kernels, as the commands run

    prepare_process()

    # isort: on
    import tensorflow as tf

    from tsm_keras._startup import onednn_enabled

    gpus = tf.config.list_physical_devices("GPU")
    model, clips, labels = keras_training(backbone + "_tv", temporal, mode, frames, size, batch)
    train_ms = _median_step(lambda: model.train_on_batch(clips, labels), steps)  # returns NumPy: step done
    predict = tf.function(lambda x: model(x, training=False), jit_compile=mode == "xla")
    one = clips[:1]
    infer_ms = _median_step(lambda: predict(one).numpy(), steps * 2)
    if gpus:
        device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    else:
        device = f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
    return {
        "train_ms": train_ms,
        "infer_ms": infer_ms,
        "peak_mb": _peak_mb(),
        "device": device,
        "onednn": {True: "on", False: "off"}.get(onednn_enabled(), "?"),
    }


def torch_training(backbone, temporal, frames, size, batch):
    """The PyTorch TSM (or TSN) of `backbone` and one training step of it, on a fixed batch:
    (model, clips, train_step, device)."""
    import torch

    sys.path.insert(0, os.path.join(HERE, "..", "tests", "port"))
    import torch_reference as ref

    shift = temporal == "tsm"
    if backbone == "resnet50":
        base = ref.tsm_resnet(50, frames) if shift else ref.ResNet((3, 4, 6, 3))
        features = 2048
    else:
        base = ref.tsm_mobilenet_v2(frames) if shift else ref.MobileNetV2()
        features = 1280
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ref.TSN(base, NUM_CLASSES, features, frames).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn((batch, frames, 3, size, size), generator=generator).to(device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator).to(device)

    def train_step():
        model.train()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(clips), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        loss.item()  # waits for the step to finish (on a GPU too)

    return model, clips, train_step, device


def measure_torch(backbone, temporal, mode, frames, size, batch, steps):
    import torch

    model, clips, train_step, device = torch_training(backbone, temporal, frames, size, batch)

    def infer():
        model.eval()
        with torch.no_grad():
            model(clips[:1]).cpu()

    train_ms = _median_step(train_step, steps)
    infer_ms = _median_step(infer, steps * 2)
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {os.cpu_count()} cores"
    return {"train_ms": train_ms, "infer_ms": infer_ms, "peak_mb": _peak_mb(), "device": name}


def run_one(config):
    """One configuration in a fresh process: its result dict, or {'error': last line}."""
    env = dict(os.environ)
    if config["mode"] == "eigen":  # TensorFlow's default kernels on CPUs without AVX-512 VNNI/BF16 or AMX
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one", json.dumps(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(lines[0][len("RESULT ") :])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per process")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per configuration")
    parser.add_argument("--modes", nargs="+", default=["fused-bn", "graph", "xla", "eigen"], choices=MODES)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, as JSON
    args = parser.parse_args(argv)
    if args.one:
        config = json.loads(args.one)
        measure = measure_torch if config.pop("framework") == "pytorch" else measure_keras
        print("RESULT " + json.dumps(measure(**config)))
        return

    from _timing import print_table
    from ledger import command, write_entry

    shape = dict(frames=args.frames, size=args.size, batch=args.batch_size, steps=args.steps)
    runs = [("pytorch", "eager")] + [("tsm-keras", mode) for mode in args.modes]
    configs = [
        (backbone, temporal, framework, mode)
        for backbone in args.backbones
        for temporal in ("tsm", "none")
        for framework, mode in runs
    ]
    results = {c: [] for c in configs}
    device = "?"
    for round_ in range(args.rounds):
        for backbone, temporal, framework, mode in configs:
            config = dict(framework=framework, backbone=backbone, temporal=temporal, mode=mode, **shape)
            r = run_one(config)
            results[(backbone, temporal, framework, mode)].append(r)
            device = r.get("device", device)
            shown = r.get("error") or f"{r['train_ms']:.0f} ms/step"
            print(f"round {round_ + 1}: {backbone} {temporal} {framework} {mode}: {shown}", file=sys.stderr)

    def cell(config, key):
        values = [r[key] for r in results[config] if key in r]
        return statistics.median(values) if values else None

    def spread(config, key):
        values = [r[key] for r in results[config] if key in r]
        return f"{min(values):.0f}-{max(values):.0f}" if values else "failed"

    rows, summary = [], {}
    for backbone, temporal, framework, mode in configs:
        config = (backbone, temporal, framework, mode)
        train, peer = cell(config, "train_ms"), cell((backbone, temporal, "pytorch", "eager"), "train_ms")
        twin = cell((backbone, "none" if temporal == "tsm" else "tsm", framework, mode), "train_ms")
        if train is None:
            rows.append(
                [backbone, temporal, framework, mode, None, results[config][-1].get("error", "failed")] + [None] * 6
            )
            continue
        rows.append(
            [
                backbone,
                temporal,
                framework,
                mode,
                "/".join(sorted({r["onednn"] for r in results[config] if "onednn" in r})) or "-",
                round(train),
                spread(config, "train_ms"),
                round(args.batch_size * 1000 / train, 2),
                round(peer / train, 2) if peer else None,
                round(train / twin, 3) if temporal == "tsm" and twin else None,
                round(cell(config, "infer_ms")),
                round(cell(config, "peak_mb")),
            ]
        )
        if framework == "tsm-keras" and peer:
            summary[f"{backbone} {'TSM' if temporal == 'tsm' else 'TSN'}, {mode}: vs PyTorch"] = f"{peer / train:.2f}x"
    caption = (
        f"{device}: {args.frames} frames x {args.size} px, batch {args.batch_size}; median of "
        f"{args.rounds} processes x {args.steps} steps"
    )
    print(f"\n{caption}\n")
    header = ["backbone", "temporal", "framework", "mode", "oneDNN", "train ms/step", "range", "clips/s"]
    header += ["vs PyTorch", "shift (TSM/TSN)", "infer ms/clip", "peak MB"]
    print_table(header, rows)
    write_entry(
        "training-speed-vs-pytorch",
        "training-speed",
        "Training step of tsm-keras in each mode against a PyTorch TSM of the same model",
        command(),
        header,
        rows,
        summary=summary,
        notes=(
            f"{caption}. vs PyTorch: PyTorch's step time over ours (> 1: tsm-keras is faster); shift: the TSM "
            "step over the TSN step of the same framework and mode; fused-bn is what fit.py runs on a CPU."
        ),
    )


if __name__ == "__main__":
    main()
