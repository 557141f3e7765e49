"""Convert a training run to TFLite: write, verify, calibrate, validate and time every model.

`convert_run(run_dir, ...)` is what `tflite/convert.py` runs. It takes its data as plain
iterables of clips (`(T, H, W, 3)` raw RGB) and `(clip, label)` pairs, so it depends on no
data pipeline. Files, in RUN_DIR/tflite/:

    clip_<precision>.tflite          the clip model
    stream_<precision>.tflite        the streaming model, buffers in resource variables
    stream_state_<precision>.tflite  the streaming model, buffers as inputs/outputs
    labels.txt, report.json

Float models are always written (they are the reference of the others). A model is written
only after it passed its checks; an int8 model more than `max_int8_drop` top-1 points below
float is not written unless `force`.
"""

import time
from pathlib import Path

import numpy as np

from tsm_keras.data.labels import write_labels
from tsm_keras.export import calibration
from tsm_keras.export.benchmark import benchmark
from tsm_keras.export.kinds import (
    CLIP,
    FLOAT32,
    INT8,
    MAX_INT8_DROP,
    PRECISIONS,
    STREAM,
    STREAM_STATE,
    file_name,
)
from tsm_keras.export.runtime import ClipRunner, StreamRunner, interpreter, operators
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
    """int8 validation top-1 is too far below float (the int8 files were not written)."""


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
    litert = interpreter(content)
    signatures = {}
    for key in sorted(litert.get_signature_list()):
        sig = litert.get_signature_runner(key)

        def tensors(details):
            return {
                name: {
                    "shape": [int(d) for d in detail["shape"]],
                    "dtype": np.dtype(detail["dtype"]).name,
                    "quantization": [float(detail["quantization"][0]), int(detail["quantization"][1])],
                }
                for name, detail in details.items()
            }

        signatures[key] = {"inputs": tensors(sig.get_input_details()), "outputs": tensors(sig.get_output_details())}
    return {
        "size_bytes": len(content),
        "size_mb": round(len(content) / 2**20, 3),
        "signatures": signatures,
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
    log=print,
):
    """Convert, verify and report a run. Returns the report (also written to report.json).

    Args:
        run_dir: a run directory (model.keras, config.json).
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

    Raises:
        VerificationError: a float model does not match Keras (nothing of it is written).
        Int8AccuracyError: int8 too far below float (float files kept, int8 not written).
    """
    started = time.time()
    precisions = [FLOAT32] + [p for p in precisions if p != FLOAT32]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r}; expected some of {PRECISIONS}")
    run = load_run(run_dir, float32=True)
    model = run.model
    out = Path(run.path) / OUTPUT_DIR
    out.mkdir(exist_ok=True)
    # Files of an earlier conversion at these precisions would not match this report.
    for precision in precisions:
        for stale in out.glob(f"*_{precision}.tflite"):
            stale.unlink()
    num_segments, size = int(model.input_shape[1]), int(model.input_shape[2])
    report = {
        "run_dir": str(run.path),
        "model": run.model_config,
        "class_names": run.class_names,
        "num_segments": num_segments,
        "input_size": size,
        "files": {},
        "verification": {},
        "int8": {},
        "accuracy": {},
        "latency": {},
    }

    stream_model = None
    if streaming:
        try:
            stream_model = build_streaming_model(model, batch_size=1)
            report["streaming"] = {
                "states": [{"name": s.name, "shape": [1, *s.shape], "values": s.size} for s in state_specs(stream_model)],
                "state_values": int(sum(s.size for s in state_specs(stream_model))),
            }
        except NotStreamableError as error:
            report["streaming"] = {"refused": str(error)}
            log(f"streaming models refused: {error}")

    kinds = [CLIP] + ([STREAM_STATE, STREAM] if stream_model is not None else [])
    check = verification_clips(num_segments, size)
    written = {}

    def write(kind, precision, content):
        path = out / file_name(kind, precision)
        atomic_write(path, content)
        written[(kind, precision)] = content
        report["files"][path.name] = {"kind": kind, "precision": precision, **describe(content)}
        log(f"wrote {path} ({len(content) / 2**20:.2f} MB)")

    def verify_streaming(kind, precision, content, clip_logits, tolerance):
        runner = StreamRunner(content, name=file_name(kind, precision))
        check_builtin_operators(runner)
        result = streaming_vs_clip(runner, clip_logits, check, tolerance)
        if kind == STREAM_STATE:
            result["state_quantization"] = state_quantization(runner)
        else:
            result["variable_types"] = variable_types(runner)
        return result

    # Float models: the reference. float16 weights are dequantized at load: compute is
    # float32 too, so the same streaming == clip bound holds; vs Keras it is reported.
    for precision in [p for p in precisions if p != INT8]:
        log(f"converting {precision} models")
        content = convert(model, CLIP, precision)
        runner = ClipRunner(content, name=file_name(CLIP, precision))
        check_builtin_operators(runner)
        tolerance = FLOAT_TOLERANCE if precision == FLOAT32 else None
        clip_logits = np.stack([runner(c) for c in check])
        report["verification"][file_name(CLIP, precision)] = {
            "max_abs_difference_vs_keras": clip_vs_keras(runner, model, check, tolerance),
            "clips": len(check),
        }
        write(CLIP, precision, content)
        if stream_model is not None:
            state = convert(stream_model, STREAM_STATE, precision)
            variables = with_resource_variables(state)
            for kind, data in ((STREAM_STATE, state), (STREAM, variables)):
                report["verification"][file_name(kind, precision)] = verify_streaming(
                    kind, precision, data, clip_logits, FLOAT_TOLERANCE)
            for kind, data in ((STREAM_STATE, state), (STREAM, variables)):
                write(kind, precision, data)

    labels_path = out / LABELS
    write_labels(labels_path, run.class_names)

    # Validation top-1: float reference first.
    val_clips, val_labels, float_logits = None, None, None
    if validation is not None:
        val_clips, val_labels = _materialize(validation, validation_limit)
        float_logits = predict_clips(ClipRunner(written[(CLIP, FLOAT32)]), val_clips)
        report["accuracy"]["note"] = "top-1 in %, 1 clip x 1 centre crop per video; stream = T frames from reset, mean logits"
        report["accuracy"]["clip_float32"] = top1(float_logits, val_labels)
        report["accuracy"]["validation_clips"] = len(val_clips)
        log(f"float32 top-1 {report['accuracy']['clip_float32']:.2f} on {len(val_clips)} validation clips")

    int8_error = None
    if INT8 in precisions:
        int8_error = _convert_int8(model, stream_model, kinds, calibration_clips, calibration_limit,
                                   val_clips, val_labels, float_logits, report, write, check, force,
                                   max_int8_drop, log)

    # Latency of every written model on this machine.
    for (kind, precision), content in written.items():
        result = benchmark(content, threads=threads, repeats=latency_repeats)
        entry = {"threads": result["threads"], "signatures": result["signatures"]}
        main = result["signatures"]["serving_default" if kind == CLIP else "step"]["median_ms"]
        entry["per_clip_ms" if kind == CLIP else "per_frame_ms"] = main
        if kind == CLIP:
            entry["per_frame_ms"] = main / num_segments
        report["latency"][file_name(kind, precision)] = entry
    report["seconds"] = round(time.time() - started, 1)
    write_json(out / REPORT_FILE, report, default=_json_default)
    log(f"wrote {out / REPORT_FILE}")
    if int8_error is not None:
        raise int8_error
    return report


def _convert_int8(model, stream_model, kinds, calibration_clips, limit, val_clips, val_labels,
                  float_logits, report, write, check, force, max_drop, log):
    """Calibrate, convert and check the int8 models; write them if they pass (or `force`)."""
    if calibration_clips is None:
        raise ValueError("int8 needs calibration clips (the run's training data)")
    report["int8"]["input"] = INT8_INPUT_NOTE
    report["int8"]["calibration_clips_limit"] = limit
    contents = {}
    log("calibrating and converting int8 models")
    contents[CLIP] = convert(model, CLIP, INT8, calibration.representative(CLIP, calibration_clips, limit=limit))
    if stream_model is not None:
        samples = calibration.representative(STREAM_STATE, calibration_clips, stream=stream_model, limit=limit)
        contents[STREAM_STATE] = convert(stream_model, STREAM_STATE, INT8, samples)
        contents[STREAM] = with_resource_variables(contents[STREAM_STATE])

    clip_runner = ClipRunner(contents[CLIP], name=file_name(CLIP, INT8))
    check_builtin_operators(clip_runner)
    clip_logits = np.stack([clip_runner(c) for c in check])
    keras_logits = np.asarray(model.predict_on_batch(check))
    report["verification"][file_name(CLIP, INT8)] = {
        "max_abs_difference_vs_keras": float(np.max(np.abs(clip_logits - keras_logits))),
        "keras_logit_range": float(np.ptp(keras_logits)),
    }
    for kind in kinds[1:]:
        # int8 streaming vs int8 clip: two calibrations, so not equal; reset must be exact.
        result = _verify_int8_streaming(kind, contents[kind], clip_logits, check)
        report["verification"][file_name(kind, INT8)] = result
    for kind in kinds:
        found = concatenation_scales(ClipRunner(contents[kind]) if kind == CLIP else StreamRunner(contents[kind]))
        report["verification"][file_name(kind, INT8)]["concatenation_scales"] = found
        if found["mismatched"]:
            raise VerificationError(f"{file_name(kind, INT8)}: int8 CONCATENATION with inputs of another "
                                    f"scale than its output: {found['mismatched']}")

    problems = []
    if val_clips is not None:
        reference = report["accuracy"]["clip_float32"]
        for kind in (CLIP, STREAM_STATE):
            if kind not in contents:
                continue
            runner = (ClipRunner if kind == CLIP else StreamRunner)(contents[kind])
            logits = predict_clips(runner, val_clips)
            name = f"{'clip' if kind == CLIP else 'stream'}_int8"
            report["accuracy"][name] = top1(logits, val_labels)
            drop = reference - report["accuracy"][name]
            report["accuracy"][f"{name}_drop_points"] = drop
            report["accuracy"][f"{name}_agreement_with_float"] = float(
                np.mean(np.argmax(logits, 1) == np.argmax(float_logits, 1)) * 100.0)
            log(f"int8 {name.replace('_int8', '')} top-1 {report['accuracy'][name]:.2f} (float {reference:.2f})")
            if drop > max_drop:
                problems.append(f"{name} top-1 {report['accuracy'][name]:.2f} is {drop:.2f} points below float {reference:.2f}")
    else:
        problems.append("no validation data to check int8 top-1 against float")
    if problems and not force:
        report["int8"]["written"] = False
        report["int8"]["refused"] = problems
        return Int8AccuracyError(
            "int8 models not written: " + "; ".join(problems) + " (max allowed drop "
            f"{max_drop} points; use --force to write them anyway)")
    report["int8"]["written"] = True
    if problems:
        report["int8"]["forced_despite"] = problems
    for kind, content in contents.items():
        write(kind, INT8, content)
    return None


def _verify_int8_streaming(kind, content, clip_logits, check):
    runner = StreamRunner(content, name=file_name(kind, INT8))
    check_builtin_operators(runner)
    result = streaming_vs_clip(runner, clip_logits, check, tolerance=None)
    if result["reset_max_abs_difference"] != 0.0:
        raise VerificationError(f"{runner.name}: reset does not restore the first pass "
                                f"(difference {result['reset_max_abs_difference']:.3g})")
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
