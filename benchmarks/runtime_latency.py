"""Per-frame latency of the explicit-state streaming model in every runtime, side by side.

    python benchmarks/runtime_latency.py [RUN_DIR] [--threads 1] [--repeats 200]
    python benchmarks/runtime_latency.py RUN_DIR --models run --repeats 5   # a quick look

Two models: the run's (its files in RUN_DIR/tflite/: stream_state_{float32,float16,int8}.tflite
where written, .onnx and .xml where written, converted here otherwise) and an untrained
MobileNetV2 x1.0 TSM-online at 224 px, 8 frames (converted here; int8 calibrated on random
clips: latency does not depend on the weights). Each is timed in every runtime and precision
available on this machine:

- LiteRT on the CPU (XNNPACK): float32, float16 weights, int8;
- ONNX Runtime on the CPU: float32;
- OpenVINO on the CPU plugin, float32 arithmetic asked for: float32.

A step is one call of the runtime with the frame and the buffers the previous call returned,
as an app runs it (inputs prepared beforehand, so an int8 step does not include quantizing
the frame in Python). All of a model's runtimes are called in turn (A B C A B C ...) so that
the load of other processes falls on all of them alike; the table gives the median and the
interquartile range of every timed call, the fastest call, and the ratio of the median to
LiteRT float32's. The last column is the largest logit difference to LiteRT float32 after the
same three frames: a wrong model is not timed silently.

Each row is one (runtime, accelerator) of `RUNTIMES`; an accelerator that is not a CPU is
added there, and a software device (a GPU emulated on the CPU) is printed as such, never as
the speed of a GPU. Not a test: it prints a table, then writes its ledger entry,
results/latency-runtimes.json (benchmarks/ledger.py).
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _timing import alternate, median_ms, spread_ms  # noqa: E402
from ledger import command, write_entry  # noqa: E402

CHECK_FRAMES = 3  # frames run in every runtime before timing, to compare their logits


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a tsm-online run directory (default: newest under runs/)")
    parser.add_argument(
        "--models", nargs="+", choices=["run", "mobilenet"], default=["run", "mobilenet"], help="which models to time"
    )
    parser.add_argument("--threads", type=int, default=1, help="threads of every runtime (default 1)")
    parser.add_argument("--repeats", type=int, default=200, help="timed steps per runtime")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--input-size", type=int, default=224, help="the MobileNetV2 model's input size")
    parser.add_argument("--segments", type=int, default=8, help="the MobileNetV2 model's frames")
    return parser.parse_args(argv)


def litert_step(path, threads, accelerator="cpu"):
    """`(step, logits, runner)`: `step()` is one call of a stream_state .tflite's `step`
    signature, fed its previous buffers; `logits(frames)` runs frames from zero buffers."""
    from tsm_keras.export.runtime import StreamRunner

    runner = StreamRunner(str(path), threads=threads, accelerator=accelerator)
    signature = runner.runner
    rng = np.random.default_rng(0)
    dtype = runner.input["dtype"]
    frame = (
        rng.integers(-128, 128, runner.input["shape"])
        if np.issubdtype(dtype, np.integer)
        else rng.uniform(0, 255, runner.input["shape"])
    )
    inputs = {"frame": frame.astype(dtype)}
    runner.reset()
    inputs.update(runner.states)

    def step():
        out = signature(**inputs)
        inputs.update({k: out[k] for k in runner.state_details})

    def logits(frames):
        runner.reset()
        return runner.run(frames)

    return step, logits, runner


def session_step(path, runtime, threads):
    """The same for an ONNX Runtime or OpenVINO explicit-state model."""
    from tsm_keras.export.kinds import NEXT
    from tsm_keras.export.sessions import SessionStreamRunner

    runner = SessionStreamRunner(str(path), runtime, threads)
    session = runner.session
    rng = np.random.default_rng(0)
    feeds = {"frame": rng.uniform(0, 255, runner.input["shape"]).astype("float32")}
    feeds.update({name: np.zeros(shape, "float32") for name, shape in runner.state_shapes.items()})

    def step():
        out = session(feeds)
        feeds.update({name: out[name + NEXT] for name in runner.state_shapes})

    def logits(frames):
        runner.reset()
        return runner.run(frames)

    return step, logits, runner


# (runtime, accelerator) -> (precisions, device as printed, file format, step factory)
RUNTIMES = {
    ("litert", "cpu"): (("float32", "float16", "int8"), "CPU (XNNPACK)", "tflite", litert_step),
    ("onnxruntime", "cpu"): (("float32",), "CPU", "onnx", lambda p, t: session_step(p, "onnxruntime", t)),
    ("openvino", "cpu"): (("float32",), "CPU, f32", "openvino", lambda p, t: session_step(p, "openvino", t)),
    # LiteRT's GPU accelerator, where a device can be made; its device is named in `main`
    ("litert", "gpu"): (("float32", "int8"), "GPU accelerator", "tflite", lambda p, t: litert_step(p, t, "gpu")),
}


def name_gpu_device():
    """Drops the GPU row where no device can be made; names a software device as such."""
    from tsm_keras.export import gpu

    adapter, reason = gpu.device()
    precisions, _, file_format, step = RUNTIMES.pop(("litert", "gpu"))
    if adapter is None:
        print(f"# LiteRT GPU accelerator: left out ({reason})", flush=True)
        return
    label = "software Vulkan (the CPU): not a GPU time" if gpu.is_software(adapter) else f"GPU ({adapter})"
    RUNTIMES[("litert", "gpu")] = (precisions, label, file_format, step)


def run_files(run_dir, folder):
    """{(runtime, accelerator, precision): path} of a run: its written files, and ONNX and
    OpenVINO files converted into `folder` where the run has none."""
    from tsm_keras.export import portable
    from tsm_keras.export.kinds import STREAM_STATE, file_name
    from tsm_keras.run_dir import load_run
    from tsm_keras.streaming import build_streaming_model

    run = load_run(run_dir, float32=True)
    if run.model_config.get("temporal") not in ("tsm-online", "tam-online"):
        sys.exit(f"error: {run.path}: a streaming run is needed (--temporal tsm-online)")
    exported = Path(run.path) / "tflite"
    stream, files = None, {}
    for (runtime, accelerator), (precisions, _, file_format, _) in RUNTIMES.items():
        for precision in precisions:
            path = exported / file_name(STREAM_STATE, precision, file_format)
            if not path.is_file() and file_format != "tflite" and _installed(file_format):
                stream = stream or build_streaming_model(run.model, batch_size=1)
                path = _write(folder / f"run_{path.name}", portable.convert(stream, STREAM_STATE, file_format))
            if path.is_file():
                files[(runtime, accelerator, precision)] = path
    return f"run {run.path}", files


def mobilenet_files(size, segments, folder):
    """The same for an untrained MobileNetV2 x1.0 TSM-online, every precision converted here."""
    from tsm_keras.export import portable
    from tsm_keras.export.calibration import representative
    from tsm_keras.export.kinds import STREAM_STATE, file_name
    from tsm_keras.export.tflite import convert
    from tsm_keras.models import build_video_classifier
    from tsm_keras.streaming import build_streaming_model

    model = build_video_classifier(
        27,
        backbone="mobilenet_v2",
        num_segments=segments,
        input_size=size,
        temporal="tsm-online",
        dropout=0.0,
        bn_momentum=0.0,
    )
    rng = np.random.default_rng(0)
    clips = [rng.uniform(0, 255, (segments, size, size, 3)).astype("uint8") for _ in range(4)]
    # A fresh network's BatchNormalization statistics make its activations vanish (logits of
    # 1e-16): one training-mode call with momentum 0 sets them from two clips, so that the
    # logit column compares logits of order 1.
    model(np.stack(clips[:2]).astype("float32"), training=True)
    stream = build_streaming_model(model, batch_size=1)
    files = {}
    for (runtime, accelerator), (precisions, _, file_format, _) in RUNTIMES.items():
        if file_format != "tflite" and not _installed(file_format):
            continue
        for precision in precisions:
            path = folder / f"mobilenet_{file_name(STREAM_STATE, precision, file_format)}"
            if file_format == "tflite":
                samples = representative(STREAM_STATE, clips, stream=stream) if precision == "int8" else None
                path.write_bytes(convert(stream, STREAM_STATE, precision, samples))
            else:
                _write(path, portable.convert(stream, STREAM_STATE, file_format))
            files[(runtime, accelerator, precision)] = path
    return f"untrained MobileNetV2 x1.0 TSM-online, {size} px, {segments} frames", files


def _installed(file_format):
    from tsm_keras.export import portable

    try:
        portable.require(file_format)
        return True
    except portable.MissingRuntimeError as error:
        print(f"# {error}: left out", flush=True)
        return False


def _write(path, parts):
    for extension, content in parts.items():
        path.with_suffix(extension).write_bytes(content)
    return path


def _size(path):
    extra = [path.with_suffix(".bin")] if path.suffix == ".xml" else []
    return sum(p.stat().st_size for p in [path, *extra])


def time_model(name, files, args):
    """Rows of one model: every runtime and precision, timed in turn."""
    steps, logits = {}, {}
    for key, path in files.items():
        runtime, accelerator, precision = key
        steps[key], run, runner = RUNTIMES[(runtime, accelerator)][3](path, args.threads)
        size = runner.input_size
        logits[key] = run(np.random.default_rng(1).uniform(0, 255, (CHECK_FRAMES, size, size, 3)).astype("float32"))
    reference = logits.get(("litert", "cpu", "float32"))
    times = alternate(steps, args.repeats, warmup=args.warmup)
    base = median_ms(times[("litert", "cpu", "float32")]) if ("litert", "cpu", "float32") in times else None
    rows = []
    for key, samples in times.items():
        runtime, accelerator, precision = key
        median = median_ms(samples)
        difference = None if reference is None else float(np.max(np.abs(logits[key] - reference)))
        rows.append(
            [name, runtime, precision, RUNTIMES[(runtime, accelerator)][1], round(_size(files[key]) / 2**20, 2)]
            + [round(median, 3), round(spread_ms(samples), 3), round(1000 * min(samples), 3)]
            + [
                None if base is None else round(median / base, 3),
                None if difference is None else float(f"{difference:.3g}"),
            ]
        )
    return rows


def main(argv=None):
    args = parse_args(argv)
    from tsm_keras.run_dir import newest_run
    from tsm_keras_start import prepare_process

    prepare_process()
    name_gpu_device()
    started = time.time()
    print(
        f"# threads {args.threads}; {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    columns = ["model", "runtime", "precision", "device", "size MB", "median ms", "IQR ms", "min ms"]
    columns += ["ratio to litert float32", "max |logit - litert float32|"]
    rows, sources, summary = [], [], {}
    with tempfile.TemporaryDirectory(prefix="runtime_latency_") as folder:
        folder = Path(folder)
        models = []
        if "run" in args.models:
            models.append(("run",) + run_files(args.run_dir or newest_run(), folder))
        if "mobilenet" in args.models:
            models.append((f"MobileNetV2 {args.input_size}",) + mobilenet_files(args.input_size, args.segments, folder))
        print(f"# converted ({time.time() - started:.0f} s)", flush=True)
        for name, source, files in models:
            sources.append(f"{name}: {source}")
            model_rows = time_model(name, files, args)
            rows.extend(model_rows)
            for row in model_rows:
                summary[f"{name}, {row[1]} {row[2]}, {row[3]}"] = f"{row[5]:.2f} ms"
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(["---"] * 4 + ["---:"] * (len(columns) - 4)) + "|")
    for row in rows:
        print("| " + " | ".join("" if c is None else str(c) for c in row) + " |")
    load = os.getloadavg()[0]
    print(f"\n# load at the end {load:.1f}; {time.time() - started:.0f} s in all")
    write_entry(
        "latency-runtimes",
        "latency",
        "Per-frame latency of the explicit-state streaming model in LiteRT (CPU, GPU accelerator), ONNX Runtime and "
        "OpenVINO",
        command(),
        columns,
        rows,
        summary=summary,
        notes=(
            "; ".join(sources) + f"; {args.threads} thread(s); median and interquartile range of {args.repeats} "
            "steps per runtime, the runtimes of a model called in turn; a step is one call with the previous "
            "call's buffers; the last column compares the logits of the same 3 frames."
        ),
        conditions=f"load average {load:.1f} at the end",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
