"""Convert a training run to TFLite: write, verify, calibrate, validate and time every model.

`convert_run(run_dir, ...)` is what `tflite/convert.py` runs. It takes its data as plain
iterables of clips (`(T, H, W, 3)` raw RGB) and `(clip, label)` pairs, so it depends on no
data pipeline. Files, in RUN_DIR/tflite/:

    clip_<precision>.tflite          the clip model
    stream_<precision>.tflite        the streaming model, buffers in resource variables
    stream_state_<precision>.tflite  the streaming model, buffers as inputs/outputs
    labels.txt, report.json

and with `formats` naming them, the clip and explicit-state models for ONNX Runtime and
OpenVINO (float32, verified like the TFLite files; `tsm_keras.export.portable`):

    clip_float32.onnx, stream_state_float32.onnx
    clip_float32.xml/.bin, stream_state_float32.xml/.bin

A conversion is a transaction: every file is written to a staging folder beside RUN/tflite/,
and replaces the earlier files, report included, only when every check has passed (an int8
model more than `max_int8_drop` top-1 points below float fails the conversion unless
`force`). A refused or failed conversion leaves RUN/tflite/ as it was, byte for byte.
"""

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tsm_keras.data.labels import write_labels
from tsm_keras.data.view import View
from tsm_keras.export import calibration, portable
from tsm_keras.export.benchmark import benchmark, benchmark_runner
from tsm_keras.export.gpu import check_models
from tsm_keras.export.kinds import (
    CLIP,
    EXTENSIONS,
    FLOAT32,
    FORMATS,
    INT8,
    MAX_INT8_DROP,
    ONNX,
    OPENVINO,
    PRECISIONS,
    RUNS_ON,
    RUNTIME_OF,
    SERVING,
    STEP,
    STREAM,
    STREAM_CPU_NOTE,
    STREAM_STATE,
    TFLITE,
    file_name,
)
from tsm_keras.export.runtime import ClipRunner, StreamRunner, operators, signatures
from tsm_keras.export.sessions import open_model
from tsm_keras.export.tflite import convert
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.export.verify import (
    FLOAT_TOLERANCE,
    VerificationError,
    check_builtin_operators,
    clip_vs_keras,
    concatenation_scales,
    predict_clips,
    state_quantization,
    streaming_vs_clip,
    variable_types,
)
from tsm_keras.files import atomic_write, write_json
from tsm_keras.run_dir import LABELS, load_run
from tsm_keras.streaming import NotStreamableError, build_streaming_model, state_specs

OUTPUT_DIR = "tflite"
REPORT_FILE = "report.json"
INT8_INPUT_NOTE = (
    "int8 models take int8 frames: q = pixel - 128 (input scale 1, zero point -128: the "
    "calibrated input range is pinned to [0, 255], so the raw bytes map exactly). The "
    "normalisation (x - mean) / std stays in the graph as one MUL and one ADD in int8."
)


class Int8AccuracyError(RuntimeError):
    """int8 validation top-1 is too far below float (nothing was written)."""


def verification_clips(num_segments, size, count=3, seed=0):
    """Smooth random clips whose frames all differ (a buffer off by one frame cannot hide).

    Low-frequency patterns (like real frames, unlike white noise) drifting over time, plus
    a little noise: raw RGB in [0, 255], float32 `(count, T, size, size, 3)`.
    """
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    clips = np.empty((count, num_segments, size, size, 3), "float32")
    for c in range(count):
        freq = rng.uniform(1.0, 4.0, (3, 2))
        phase = rng.uniform(0, 2 * np.pi, 3)
        speed = rng.uniform(0.3, 0.8, 3)
        for t in range(num_segments):
            for k in range(3):
                wave = np.sin(2 * np.pi * (freq[k, 0] * yy + freq[k, 1] * xx) + phase[k] + speed[k] * t)
                clips[c, t, :, :, k] = 127.5 + 100.0 * wave
        clips[c] += rng.normal(0.0, 4.0, clips[c].shape)
    return np.clip(clips, 0.0, 255.0)


def describe(content):
    """Sizes, signatures with their inputs and outputs (shape, dtype, quantization), operators."""
    return {
        "size_bytes": len(content),
        "size_mb": round(len(content) / 2**20, 3),
        "signatures": signatures(content),
        "operators": operators(content),
    }


def top1(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)) * 100.0)


def _materialize(pairs, limit=None):
    clips, labels = [], []
    for index, (clip, label) in enumerate(pairs):
        if limit is not None and index >= limit:
            break
        clips.append(np.asarray(clip))
        labels.append(int(label))
    return clips, np.asarray(labels, "int64")


@dataclasses.dataclass
class Int8Result:
    """The int8 models of a run, their checks and the accuracy gate's verdict."""

    contents: dict  # kind -> .tflite bytes
    verification: dict  # file name -> checks
    accuracy: dict = dataclasses.field(default_factory=dict)  # report["accuracy"] entries
    problems: list = dataclasses.field(default_factory=list)  # why the gate refuses them


class _Output:
    """A conversion's files, staged beside RUN/tflite/ until every check has passed."""

    def __init__(self, folder, log):
        self.folder, self.log = folder, log
        self.staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-staging-"))
        self.report = {}
        self.written = {}  # (kind, precision) -> bytes
        self.portable = {}  # (format, kind) -> staged path of an ONNX or OpenVINO model

    def __enter__(self):
        return self

    def __exit__(self, *error):
        shutil.rmtree(self.staging, ignore_errors=True)  # what `commit` did not move: nothing, or all

    def write(self, kind, precision, content):
        name = file_name(kind, precision)
        atomic_write(self.staging / name, content)
        self.written[(kind, precision)] = content
        self.report["files"][name] = {"kind": kind, "precision": precision, "runs_on": RUNS_ON[kind]}
        if kind == STREAM:
            self.report["files"][name]["note"] = STREAM_CPU_NOTE
        self.report["files"][name].update(describe(content))
        self.log(f"checked {name} ({len(content) / 2**20:.2f} MB)")

    def write_portable(self, file_format, kind, parts):
        """An ONNX or OpenVINO model (`{extension: bytes}`, float32); returns its staged path."""
        name = file_name(kind, FLOAT32, file_format)
        for extension, content in parts.items():
            atomic_write(self.staging / (Path(name).stem + extension), content)
        path = self.staging / name
        size = sum(len(content) for content in parts.values())
        self.portable[(file_format, kind)] = path
        self.report["files"][name] = {
            "kind": kind,
            "precision": FLOAT32,
            "format": file_format,
            "files": sorted(Path(name).stem + extension for extension in parts),
            "size_bytes": size,
            "size_mb": round(size / 2**20, 3),
        }
        self.log(f"checked {name} ({size / 2**20:.2f} MB)")
        return path

    def commit(self, precisions, formats=(TFLITE,)):
        """Moves the staged files into RUN/tflite/, the report last; files of the converted
        formats and precisions that this conversion did not make (a kind it no longer writes) go."""
        self.folder.mkdir(exist_ok=True)
        staged = {p.name for p in self.staging.iterdir()}
        suffixes = [EXTENSIONS[f] for f in formats] + ([".bin"] if OPENVINO in formats else [])
        for precision in precisions:
            for suffix in suffixes:
                for stale in self.folder.glob(f"*_{precision}{suffix}"):
                    if stale.name not in staged:
                        stale.unlink()
        for name in sorted(staged - {REPORT_FILE}) + [REPORT_FILE]:
            os.replace(self.staging / name, self.folder / name)
            self.log(f"wrote {self.folder / name}")


def convert_run(
    run_dir,
    precisions=(FLOAT32,),
    calibration_clips=None,
    validation=None,
    force=False,
    streaming=True,
    threads=None,
    calibration_limit=100,
    validation_limit=None,
    latency_repeats=30,
    max_int8_drop=MAX_INT8_DROP,
    formats=(TFLITE,),
    gpu_check=False,
    log=print,
):
    """Convert, verify and report a run. Returns the report (also written to report.json).

    The stages: float models (converted, checked against Keras, written), float top-1, int8
    models (calibrated, checked, gated on top-1 against float, written if they pass),
    latency of every written model, report.

    Args:
        run_dir: a run directory or preset (tsm_keras.run_dir).
        precisions: which of 'float32', 'float16', 'int8' (float32 is always written).
        calibration_clips: for int8, a re-iterable collection of training clips `(T, H, W, 3)`
            (or a callable returning a fresh iterator).
        validation: iterable of `(clip, label)` pairs for top-1 (float vs int8).
        force: write int8 models even when their top-1 is too far below float, or when
            there is no validation data to check it.
        streaming: also write the streaming models. When the model cannot stream
            (bidirectional, or no temporal layer) only the clip models are written, and
            `report["streaming"]["refused"]` says why and how to train a model that streams.
        threads: LiteRT threads for the latency measurements.
        max_int8_drop: largest allowed int8 top-1 drop below float, in points.
        formats: 'tflite' (always written) and any of 'onnx', 'openvino': their float32 clip
            and explicit-state models, each checked in its runtime (ONNX Runtime, OpenVINO).
        gpu_check: run every written model on LiteRT's GPU accelerator (`report["gpu"]`,
            `tsm_keras.export.gpu.check_models`): False (not checked), "hardware" (where a
            hardware GPU device can be made: what tflite/convert.py does by default) or
            "always" (a software Vulkan device too, on which each model's first run compiles
            its shaders for minutes).

    Raises:
        VerificationError: a model fails a check.
        Int8AccuracyError: int8 too far below float.
        In either case, as on any other error, RUN/tflite/ is left as it was.
    """
    started = time.time()
    precisions = [FLOAT32] + [p for p in precisions if p != FLOAT32]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r}; expected some of {PRECISIONS}")
    if INT8 in precisions and calibration_clips is None:
        raise ValueError("int8 needs calibration clips (the run's training data)")
    formats = [TFLITE] + [f for f in formats if f != TFLITE]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; expected some of {FORMATS}")
    for file_format in formats[1:]:
        portable.require(file_format)  # before any work: a missing package is the first thing said
    run = load_run(run_dir, float32=True)
    with _Output(Path(run.path) / OUTPUT_DIR, log) as output:
        model = run.model
        folder = output.staging
        num_segments, size = int(model.input_shape[1]), int(model.input_shape[2])
        report = output.report
        report.update(
            {
                "run_dir": str(run.path),
                "model": run.model_config,
                "class_names": run.class_names,
                "num_segments": num_segments,
                "input_size": size,
                # What the apps feed the models (stream.py, the web page) and what the
                # accuracy below was measured on: the run's view (tsm_keras/data/view.py).
                "preprocessing": View.of_run(run.config).record(),
                "files": {},
                "verification": {},
                "int8": {},
                "accuracy": {},
                "latency": {},
                "formats": {f: _format_note(f) for f in formats[1:]},
            }
        )
        stream_model, report["streaming"] = _streaming_model(model, streaming, log)
        kinds = [CLIP] + ([STREAM_STATE, STREAM] if stream_model is not None else [])
        check = verification_clips(num_segments, size)

        for precision in [p for p in precisions if p != INT8]:
            log(f"converting {precision} models")
            contents, verification = _float_models(model, stream_model, precision, check)
            report["verification"].update(verification)
            for kind in kinds:
                output.write(kind, precision, contents[kind])
        for file_format in formats[1:]:
            log(f"converting {file_format} models")
            report["verification"].update(_portable_models(output, file_format, model, stream_model, check))
        write_labels(folder / LABELS, run.class_names)

        val_clips = val_labels = float_logits = None
        if validation is not None:
            val_clips, val_labels = _materialize(validation, validation_limit)
            float_logits = predict_clips(ClipRunner(output.written[(CLIP, FLOAT32)]), val_clips)
            report["accuracy"].update(
                note="top-1 in %, 1 clip per video seen through the run's view ('preprocessing'); a "
                "streaming model: T frames from reset, mean logits",
                clip_float32=top1(float_logits, val_labels),
                validation_clips=len(val_clips),
            )
            log(f"float32 top-1 {report['accuracy']['clip_float32']:.2f} on {len(val_clips)} validation clips")
            for (file_format, kind), path in output.portable.items():
                logits = predict_clips(open_model(path, RUNTIME_OF[file_format]), val_clips)
                name = f"{kind}_{FLOAT32}_{file_format}"
                report["accuracy"][name] = top1(logits, val_labels)
                report["accuracy"][f"{name}_agreement_with_tflite"] = float(
                    np.mean(np.argmax(logits, 1) == np.argmax(float_logits, 1)) * 100
                )
                log(f"{file_format} {kind} top-1 {report['accuracy'][name]:.2f}")

        int8 = None
        if INT8 in precisions:
            log("calibrating and converting int8 models")
            int8 = _int8_models(model, stream_model, calibration_clips, calibration_limit, check)
            report["verification"].update(int8.verification)
            report["int8"].update(input=INT8_INPUT_NOTE, calibration_clips_limit=calibration_limit)
            _int8_gate(int8, val_clips, val_labels, float_logits, max_int8_drop, log)
            report["accuracy"].update(int8.accuracy)
            report["int8"]["written"] = not int8.problems or force
            if int8.problems:
                report["int8"]["forced_despite" if force else "refused"] = int8.problems
            if report["int8"]["written"]:
                for kind in kinds:
                    output.write(kind, INT8, int8.contents[kind])

        if not report["int8"].get("written", True):
            kept = f"{output.folder} is unchanged" if output.folder.exists() else "nothing was written"
            raise Int8AccuracyError(
                "int8 models refused: " + "; ".join(int8.problems) + f" (max allowed drop {max_int8_drop} "
                f"points; pass `force=True` to write them anyway). {kept}"
            )
        if gpu_check not in (False, "hardware", "always"):
            raise ValueError(f"`gpu_check` must be False, 'hardware' or 'always'. Received: gpu_check={gpu_check!r}")
        if gpu_check:
            validated = None if val_clips is None else (val_clips, val_labels)
            report["gpu"] = check_models(output.written, check, validated, log, software=gpu_check == "always")
        else:
            report["gpu"] = {"checked": False, "not_checked": "not asked for (gpu_check=False)"}
        report["latency"] = _latency(output.written, threads, latency_repeats, num_segments)
        report["latency"].update(_portable_latency(output.portable, threads, latency_repeats, num_segments))
        report["seconds"] = round(time.time() - started, 1)
        write_json(folder / REPORT_FILE, report, default=_json_default)
        output.commit(precisions, formats)
    return report


def _streaming_model(model, streaming, log):
    """(the Keras streaming model or None, report["streaming"])."""
    if not streaming:
        return None, {"refused": "not asked for (streaming=False)"}
    try:
        stream_model = build_streaming_model(model, batch_size=1)
    except NotStreamableError as error:
        log(f"streaming models refused: {error}")
        return None, {"refused": str(error)}
    specs = state_specs(stream_model)
    return stream_model, {
        "states": [{"name": s.name, "shape": [1, *s.shape], "values": s.size} for s in specs],
        "state_values": int(sum(s.size for s in specs)),
    }


def _float_models(model, stream_model, precision, check):
    """Float32 or float16 models, each checked: ({kind: bytes}, {file name: checks}).

    float16 weights are dequantized at load, so compute is float32 too: the same streaming ==
    clip bound holds, and the difference to Keras is reported, not bounded.
    """
    contents, verification = {CLIP: convert(model, CLIP, precision)}, {}
    runner = ClipRunner(contents[CLIP], name=file_name(CLIP, precision))
    check_builtin_operators(runner)
    tolerance = FLOAT_TOLERANCE if precision == FLOAT32 else None
    verification[file_name(CLIP, precision)] = {
        "max_abs_difference_vs_keras": clip_vs_keras(runner, model, check, tolerance),
        "clips": len(check),
        "bound": f"{FLOAT_TOLERANCE:g} of the largest |logit| (at least 1)" if tolerance else "reported, not bounded",
    }
    if stream_model is not None:
        clip_logits = np.stack([runner(c) for c in check])
        contents[STREAM_STATE] = convert(stream_model, STREAM_STATE, precision)
        contents[STREAM] = with_resource_variables(contents[STREAM_STATE])
        for kind in (STREAM_STATE, STREAM):
            stream = StreamRunner(contents[kind], name=file_name(kind, precision))
            check_builtin_operators(stream)
            result = streaming_vs_clip(stream, clip_logits, check, FLOAT_TOLERANCE)
            if kind == STREAM_STATE:
                result["state_quantization"] = state_quantization(stream)
            else:
                result["variable_types"] = variable_types(stream)
            verification[file_name(kind, precision)] = result
    return contents, verification


def _format_note(file_format):
    """How a format's files were made and are checked, with the packages' versions."""
    converter = f"tf2onnx, opset {portable.OPSET}" if file_format == ONNX else "openvino.convert_model"
    runtime = RUNTIME_OF[file_format]
    return {
        "converter": converter,
        "runtime": f"{runtime} (CPU, float32)",
        "versions": portable.versions(file_format),
        "kinds": list(portable.KINDS),
        "state_outputs": f"buffer <name> comes back as <name>{portable.NEXT}",
    }


def _portable_models(output, file_format, model, stream_model, check):
    """The ONNX or OpenVINO clip and explicit-state models, converted, written to the staging
    folder and checked in their runtime as the float32 TFLite files are: the clip model
    against Keras, the streaming model against this format's clip model. {file name: checks}."""
    runtime = RUNTIME_OF[file_format]
    bound = f"{FLOAT_TOLERANCE:g} of the largest |logit| (at least 1)"
    name = file_name(CLIP, FLOAT32, file_format)
    path = output.write_portable(file_format, CLIP, portable.convert(model, CLIP, file_format))
    clip = open_model(path, runtime, name=name)
    verification = {
        name: {
            "runtime": runtime,
            "max_abs_difference_vs_keras": clip_vs_keras(clip, model, check),
            "clips": len(check),
            "bound": bound,
        }
    }
    if stream_model is not None:
        name = file_name(STREAM_STATE, FLOAT32, file_format)
        content = portable.convert(stream_model, STREAM_STATE, file_format)
        path = output.write_portable(file_format, STREAM_STATE, content)
        stream = open_model(path, runtime, name=name)
        clip_logits = predict_clips(clip, check)
        verification[name] = {"runtime": runtime, **streaming_vs_clip(stream, clip_logits, check), "bound": bound}
    return verification


def _int8_models(model, stream_model, calibration_clips, limit, check):
    """Calibrated int8 models, checked (builtin ops, streaming reset, buffer and
    concatenation scales); the accuracy gate comes after."""
    contents = {CLIP: convert(model, CLIP, INT8, calibration.representative(CLIP, calibration_clips, limit=limit))}
    if stream_model is not None:
        samples = calibration.representative(STREAM_STATE, calibration_clips, stream=stream_model, limit=limit)
        contents[STREAM_STATE] = convert(stream_model, STREAM_STATE, INT8, samples)
        contents[STREAM] = with_resource_variables(contents[STREAM_STATE])
    clip_runner = ClipRunner(contents[CLIP], name=file_name(CLIP, INT8))
    check_builtin_operators(clip_runner)
    clip_logits = np.stack([clip_runner(c) for c in check])
    keras_logits = np.asarray(model.predict_on_batch(check))
    verification = {
        file_name(CLIP, INT8): {
            "max_abs_difference_vs_keras": float(np.max(np.abs(clip_logits - keras_logits))),
            "keras_logit_range": float(np.ptp(keras_logits)),
        }
    }
    for kind in contents:
        if kind != CLIP:
            # int8 streaming vs int8 clip: two calibrations, so not equal; reset must be exact.
            verification[file_name(kind, INT8)] = _verify_int8_streaming(kind, contents[kind], clip_logits, check)
        runner = ClipRunner(contents[kind]) if kind == CLIP else StreamRunner(contents[kind])
        found = concatenation_scales(runner)
        verification[file_name(kind, INT8)]["concatenation_scales"] = found
        if found["mismatched"]:
            raise VerificationError(
                f"{file_name(kind, INT8)}: int8 CONCATENATION with inputs of another "
                f"scale than its output: {found['mismatched']}"
            )
    return Int8Result(contents, verification)


def _int8_gate(int8, val_clips, val_labels, float_logits, max_drop, log):
    """Top-1 of every int8 model against float on the validation clips; fills
    `int8.accuracy` and, for each model more than `max_drop` points below, `int8.problems`."""
    if val_clips is None:
        int8.problems.append("no validation data to check int8 top-1 against float")
        return
    reference = top1(float_logits, val_labels)
    for kind, content in int8.contents.items():
        logits = predict_clips((ClipRunner if kind == CLIP else StreamRunner)(content), val_clips)
        name = f"{kind}_{INT8}"
        accuracy = top1(logits, val_labels)
        int8.accuracy.update(
            {
                name: accuracy,
                f"{name}_drop_points": reference - accuracy,
                f"{name}_agreement_with_float": float(
                    np.mean(np.argmax(logits, 1) == np.argmax(float_logits, 1)) * 100
                ),
            }
        )
        log(f"int8 {kind} top-1 {accuracy:.2f} (float {reference:.2f})")
        if reference - accuracy > max_drop + 1e-9:  # 481 vs 476 of 500 clips: a 1.0000000000000142 drop
            int8.problems.append(
                f"{name} top-1 {accuracy:.2f} is {reference - accuracy:.2f} points below float {reference:.2f}"
            )


def _latency(written, threads, repeats, num_segments):
    """Median latency of every written model on this machine, by file name."""
    latency = {}
    for (kind, precision), content in written.items():
        result = benchmark(content, threads=threads, repeats=repeats)
        entry = {"threads": result["threads"], "signatures": result["signatures"]}
        main = result["signatures"][SERVING if kind == CLIP else STEP]["median_ms"]
        entry["per_clip_ms" if kind == CLIP else "per_frame_ms"] = main
        if kind == CLIP:
            entry["per_frame_ms"] = main / num_segments
        latency[file_name(kind, precision)] = entry
    return latency


def _portable_latency(paths, threads, repeats, num_segments):
    """Median latency of the ONNX and OpenVINO models in their runtimes, by file name."""
    latency = {}
    for (file_format, kind), path in paths.items():
        runtime = RUNTIME_OF[file_format]
        result = benchmark_runner(open_model(path, runtime, threads), repeats=repeats)
        median = result["median_ms"]
        entry = {"runtime": runtime, "threads": result["threads"], "per_frame_ms": median}
        if kind == CLIP:
            entry.update(per_clip_ms=median, per_frame_ms=median / num_segments)
        latency[file_name(kind, FLOAT32, file_format)] = entry
    return latency


def _verify_int8_streaming(kind, content, clip_logits, check):
    runner = StreamRunner(content, name=file_name(kind, INT8))
    check_builtin_operators(runner)
    result = streaming_vs_clip(runner, clip_logits, check, tolerance=None)
    if result["reset_max_abs_difference"] != 0.0:
        raise VerificationError(
            f"{runner.name}: reset does not restore the first pass "
            f"(difference {result['reset_max_abs_difference']:.3g})"
        )
    if kind == STREAM_STATE:
        result["state_quantization"] = state_quantization(runner)
    else:
        types = variable_types(runner)
        if types != ["INT8"]:
            raise VerificationError(f"{runner.name}: variables of types {types}, expected int8 only")
        result["variable_types"] = types
    return result


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, Path)):
        return list(value) if isinstance(value, tuple) else str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
