"""LiteRT (XNNPACK) latency on this machine: what the temporal shift and TAM cost in TFLite.

    python benchmarks/tflite_latency.py [RUN_DIR] [--threads 1] [--rounds 5] [--repeats 20]
    python benchmarks/tflite_latency.py --build --input-size 224 --width 1.0 --segments 8

Same weights everywhere: the run's TSM-online model, its TSN twin (the same weights without
the shifts: a shift has no weights) and its bidirectional-TSM twin. Rows:

- per frame: streaming TSM (explicit state and resource variables) vs the plain per-frame
  network (the TSN twin: MobileNetV2 + classifier), int8 and float32. Target ratio <= 1.05.
  Also the plain network without the in-graph normalisation (frames normalised outside):
  the cost of the normalisation's MUL + ADD.
- per clip: clip TSM (online and bidirectional) vs clip TSN, float32 and int8. Target <= 1.03.
- TAM (`--tam`, on by default): the same rows for TAM twins built with the same config and
  the 2D weights copied by layer name (their TAM kernels keep the "shift" start: latency
  does not depend on them): streaming TAM-online per frame (explicit state and resource
  variables) vs the plain per-frame network, and clip TAM (r = 3) and TAM-online vs TSN.

Models are timed in interleaved rounds (A, B, C, A, B, C, ...) so that the load of other
processes on a shared machine falls on all of them alike; the table gives the median of all
timed calls, the 10th-90th percentile spread and the ratio to the baseline of its group,
and the fastest call and its ratio (the least disturbed by other processes).
With --build, an untrained model of the given size is used (latency does not depend on the
weights; int8 is then calibrated on random clips). Not a test: it prints a table, then writes
its ledger entry, results/latency-temporal-modules.json (benchmarks/ledger.py).
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from ledger import command, write_entry  # noqa: E402

# Summarised rows: the streaming and the clip model that the demo deploys.
HEADLINE = ("TSM stream (explicit state)", "TSM-online clip")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a run directory (default: newest under runs/)")
    parser.add_argument("--build", action="store_true", help="time an untrained model instead of a run")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--shift-div", type=int, default=8, help="with --build: 1/shift_div of the channels move")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per model per round")
    parser.add_argument("--calibration-clips", type=int, default=8)
    parser.add_argument("--keep", help="also write the .tflite files to this folder")
    parser.add_argument("--no-tam", dest="tam", action="store_false", help="leave out the TAM rows")
    return parser.parse_args(argv)


def twins(model, config):
    """The TSM-online model and its TSN and bidirectional-TSM twins, sharing its weights."""
    from tsm_keras.models import build_video_classifier

    kwargs = {k: v for k, v in config.items() if k not in ("temporal", "weights")}
    out = {}
    for temporal in ("none", "tsm"):
        twin = build_video_classifier(**{**kwargs, "temporal": temporal})
        twin.set_weights(model.get_weights())
        out[temporal] = twin
    return out


def _weighted_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _weighted_layers(layer)
        elif layer.weights:
            yield layer


def tam_twins(model, config):
    """TAM (r = 3) and TAM-online models of the same config with the 2D weights of `model`,
    copied by layer name (the TAM kernels are new weights and keep their initial values)."""
    from tsm_keras.models import build_video_classifier

    kwargs = {k: v for k, v in config.items() if k not in ("temporal", "weights")}
    source = {layer.name: layer for layer in _weighted_layers(model)}
    out = {}
    for temporal in ("tam", "tam-online"):
        twin = build_video_classifier(**{**kwargs, "temporal": temporal})
        for layer in _weighted_layers(twin):
            if layer.name in source:
                layer.set_weights(source[layer.name].get_weights())
        out[temporal] = twin
    return out


def unnormalized_frame_model(tsn):
    """The per-frame TSN network without its normalisation layer (input already normalised):
    what the in-graph MUL + ADD of the normalisation costs."""
    import keras

    frame = keras.Input(batch_shape=(1,) + tuple(tsn.input_shape[2:]), name="frame")
    x = tsn.get_layer("backbone")(frame)
    for name in ("avg_pool", "dropout", "logits"):
        x = tsn.get_layer(name)(x)
    return keras.Model({"frame": frame}, {"logits": x})


class NormalizedClips:
    """Calibration frames passed through the model's own normalisation layer."""

    def __init__(self, clips, normalize):
        self.clips, self.normalize = clips, normalize

    def __iter__(self):
        return (np.asarray(self.normalize(np.asarray(c, "float32"))) for c in self.clips)


def calibration_clips(run, count, segments, size):
    """The run's training clips when the data pipeline can read them, else random clips."""
    data = (run.config.get("data") or {}) if run is not None else {}
    if data.get("train"):
        try:
            from tsm_keras.data import make_eval_dataset, open_source
            from tsm_keras.data.view import View

            source = open_source(data["train"], split="train")
            clips, view = [], View.of_run(run.config)
            for batch, _ in make_eval_dataset(source, segments, size, batch_size=8, view=view):
                clips.extend(np.asarray(batch)[:, 0])
                if len(clips) >= count:
                    return clips[:count], "training clips of the run"
        except ImportError:
            pass
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, (segments, size, size, 3)).astype("uint8") for _ in range(count)], "random clips"


def timed_rounds(models, threads, rounds, repeats):
    """Interleaved timing of several models: {name: [seconds, ...]}."""
    from tsm_keras.export.benchmark import benchmark

    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, (content, signature) in models.items():
            result = benchmark(content, threads=threads, signature=signature, warmup=3, repeats=repeats)
            times[name].append(result["signatures"][signature])
    return times


def merge(rounds):
    """Pool the rounds: median of the per-round medians, spread of the per-round p10/p90,
    and the fastest call (the least disturbed by other processes on a shared machine)."""
    return {
        "median_ms": float(np.median([r["median_ms"] for r in rounds])),
        "p10_ms": float(np.median([r["p10_ms"] for r in rounds])),
        "p90_ms": float(np.median([r["p90_ms"] for r in rounds])),
        "min_ms": float(np.min([r["min_ms"] for r in rounds])),
    }


def main(argv=None):
    args = parse_args(argv)
    from tsm_keras.export.calibration import representative
    from tsm_keras.export.kinds import CLIP, FLOAT32, INT8, STREAM_STATE
    from tsm_keras.export.tflite import convert
    from tsm_keras.export.variables import with_resource_variables
    from tsm_keras.models import build_video_classifier
    from tsm_keras.run_dir import load_run, newest_run
    from tsm_keras.streaming import build_frame_model, build_streaming_model

    run = None
    if args.build:
        config = dict(
            num_classes=27,
            backbone="mobilenet_v2",
            num_segments=args.segments,
            input_size=args.input_size,
            temporal="tsm-online",
            width=args.width,
            dropout=0.0,
            shift_div=args.shift_div,
        )
        model = build_video_classifier(**config)
        source = (
            f"untrained MobileNetV2 x{args.width}, {args.input_size} px, {args.segments} frames, "
            f"shift_div {args.shift_div}"
        )
    else:
        run = load_run(args.run_dir or newest_run(), float32=True)
        config = dict(run.model_config)
        model = run.model
        source = f"run {run.path}"
        if config.get("temporal") != "tsm-online":
            sys.exit(f"error: {run.path}: the streaming rows need a run trained with --temporal tsm-online")
    segments, size = int(model.input_shape[1]), int(model.input_shape[2])
    others = twins(model, config)
    if args.tam:
        others.update(tam_twins(model, config))
        tam_stream = build_streaming_model(others["tam-online"], batch_size=1)
    clips, calibration_source = calibration_clips(run, args.calibration_clips, segments, size)

    print(
        f"# {source}; threads {args.threads}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; int8 calibrated on {calibration_source}",
        flush=True,
    )
    stream = build_streaming_model(model, batch_size=1)
    frame = build_frame_model(others["none"], batch_size=1)
    files = {}
    started = time.time()
    for precision in (INT8, FLOAT32):

        def rep(kind, streaming=None):
            return representative(kind, clips, stream=streaming) if precision == INT8 else None

        state = convert(stream, STREAM_STATE, precision, rep(STREAM_STATE, stream))
        files[("frame", "TSM stream (explicit state)", precision)] = (state, "step")
        files[("frame", "TSM stream (resource variables)", precision)] = (with_resource_variables(state), "step")
        files[("frame", "MobileNetV2 per frame (TSN)", precision)] = (
            convert(frame, STREAM_STATE, precision, rep(STREAM_STATE, frame)),
            "step",
        )
        bare = unnormalized_frame_model(others["none"])
        normalized = NormalizedClips(clips, others["none"].get_layer("normalize"))
        files[("frame", "MobileNetV2 per frame, normalisation outside", precision)] = (
            convert(
                bare,
                STREAM_STATE,
                precision,
                representative(STREAM_STATE, normalized, stream=bare, pin_range=False) if precision == INT8 else None,
            ),
            "step",
        )
        files[("clip", "TSM-online clip", precision)] = (convert(model, CLIP, precision, rep(CLIP)), "serving_default")
        files[("clip", "TSM (bidirectional) clip", precision)] = (
            convert(others["tsm"], CLIP, precision, rep(CLIP)),
            "serving_default",
        )
        files[("clip", "TSN clip", precision)] = (
            convert(others["none"], CLIP, precision, rep(CLIP)),
            "serving_default",
        )
        if args.tam:
            tam_state = convert(tam_stream, STREAM_STATE, precision, rep(STREAM_STATE, tam_stream))
            files[("frame", "TAM-online stream (explicit state)", precision)] = (tam_state, "step")
            files[("frame", "TAM-online stream (resource variables)", precision)] = (
                with_resource_variables(tam_state),
                "step",
            )
            files[("clip", "TAM-online clip", precision)] = (
                convert(others["tam-online"], CLIP, precision, rep(CLIP)),
                "serving_default",
            )
            files[("clip", "TAM (r = 3) clip", precision)] = (
                convert(others["tam"], CLIP, precision, rep(CLIP)),
                "serving_default",
            )
        print(f"# converted {precision} models ({time.time() - started:.0f} s)", flush=True)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        for (group, name, precision), (content, _) in files.items():
            slug = name.lower().replace(" ", "_").replace("(", "").replace(")", "")
            Path(args.keep, f"{group}_{slug}_{precision}.tflite").write_bytes(content)

    print()
    columns = ["group", "model", "precision", "size MB", "median ms", "p10-p90 ms", "ratio", "min ms", "ratio of min"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    rows, summary = [], {}
    for group, baseline in (("frame", "MobileNetV2 per frame (TSN)"), ("clip", "TSN clip")):
        for precision in (INT8, FLOAT32):
            chosen = {k: v for k, v in files.items() if k[0] == group and k[2] == precision}
            times = timed_rounds(chosen, args.threads, args.rounds, args.repeats)
            stats = {k: merge(v) for k, v in times.items()}
            base = stats[(group, baseline, precision)]
            for key, s in stats.items():
                ratio = s["median_ms"] / base["median_ms"]
                rows.append(
                    [group, key[1], precision, round(len(chosen[key][0]) / 2**20, 2), round(s["median_ms"], 2)]
                    + [f"{s['p10_ms']:.2f}-{s['p90_ms']:.2f}", round(ratio, 3), round(s["min_ms"], 2)]
                    + [round(s["min_ms"] / base["min_ms"], 3)]
                )
                print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
                if key[1] in HEADLINE:
                    summary[f"{key[1]}, {precision}: / {baseline}"] = f"{ratio:.3f}x"
    load = os.getloadavg()[0]
    print(f"\n# load at the end {load:.1f}; {time.time() - started:.0f} s in all")
    write_entry(
        "latency-temporal-modules",
        "latency",
        "LiteRT (XNNPACK) latency of TSM and TAM, streaming and per clip, against the same network without them",
        command(),
        columns,
        rows,
        summary=summary,
        notes=(
            f"{source}; {args.threads} thread(s); int8 calibrated on {calibration_source}; median of every timed "
            f"call over {args.rounds} interleaved rounds of {args.repeats}; ratio: to the baseline of its group "
            "and precision (MobileNetV2 per frame, TSN clip)."
        ),
        conditions=f"load average {load:.1f} at the end",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
