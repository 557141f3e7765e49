"""Convert a trained run to TFLite: clip model, streaming models, labels.txt, report.json.

    python tflite/convert.py [RUN_DIR] [--int8] [--float16] [--data PATH] [--force] [--threads N]
                             [--gpu-check hardware|always|never] [--formats tflite onnx openvino]

RUN_DIR defaults to the newest run under runs/. Files go to RUN_DIR/tflite/. --formats onnx
openvino also writes the float32 clip and explicit-state streaming models as ONNX and
OpenVINO IR, each checked in ONNX Runtime and OpenVINO (pip install 'tsm-keras[onnx,openvino]';
docs/deploy.md). With --int8
the models are calibrated on the run's training data and validated on its validation data,
or on --data (a video folder, a list file or a TFRecord folder: what a ported checkpoint
needs). A causal run (tsm-online, tam-online) also gets its two streaming models; a
bidirectional one gets its clip models and a line saying how to train a streamable run; a
bLVNet-TAM run (its frame pairing reads the next frame) gets its clip models and a line saying why.
Every model is also run on LiteRT's GPU accelerator where a hardware GPU device can be made
(report.json "gpu"; --gpu-check always includes a software Vulkan device, never skips it).
See docs/tflite.md.
"""

import argparse
import shlex
import sys
from pathlib import Path

from tsm_keras.export.kinds import FLOAT16, FLOAT32, FORMATS, INT8, MAX_INT8_DROP, RUNTIME_OF, TFLITE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="run directory (default: newest under runs/)")
    parser.add_argument("--runs", default="runs", help="where to look for the newest run (default: runs)")
    parser.add_argument("--int8", action="store_true", help="also write full-integer int8 models")
    parser.add_argument("--float16", action="store_true", help="also write float16-weight models")
    parser.add_argument(
        "--data",
        help="calibrate int8 on the train split and validate on the val split of "
        "this data (a video folder, a list file or a TFRecord folder; default: the data "
        "named in the run's run.json)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=MAX_INT8_DROP,
        help=f"largest int8 top-1 drop below float, in points (default: {MAX_INT8_DROP:g})",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write int8 models even if their top-1 is more than --max-drop points below float",
    )
    parser.add_argument("--clip-only", action="store_true", help="write only the clip model (no streaming models)")
    parser.add_argument("--calibration-clips", type=int, default=100, help="training clips for int8 calibration")
    parser.add_argument("--validation-clips", type=int, default=None, help="at most this many validation clips")
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads for the latency numbers")
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=FORMATS,
        default=[TFLITE],
        help="file formats to write (default: tflite; TFLite is always written): onnx and openvino add "
        "the float32 clip and explicit-state models for ONNX Runtime and OpenVINO",
    )
    parser.add_argument(
        "--gpu-check",
        choices=("hardware", "always", "never"),
        default="hardware",
        help="run the models on LiteRT's GPU accelerator: where a hardware GPU is found (default), also on "
        "a software Vulkan device (always: compiling each model's shaders there takes minutes), or never",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from tsm_keras.cli import as_flags
    from tsm_keras.data import DataError, calibration_clips, validation_pairs
    from tsm_keras.data.view import View
    from tsm_keras.export.pipeline import Int8AccuracyError, convert_run
    from tsm_keras.export.portable import MissingRuntimeError
    from tsm_keras.export.verify import VerificationError
    from tsm_keras.run_dir import RunError, newest_run, read_config

    try:
        run_dir = Path(args.run_dir) if args.run_dir else newest_run(args.runs)
        if not run_dir.is_dir():
            raise RunError(f"{run_dir}: no such run directory")
        config = read_config(run_dir)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    model = config["model"]
    precisions = [FLOAT32] + ([INT8] if args.int8 else []) + ([FLOAT16] if args.float16 else [])
    data = config.get("data") or {}
    train, val = (args.data, args.data) if args.data else (data.get("train"), data.get("val"))
    view, segments = View.of_run(config), model.get("num_segments")
    names = config.get("class_names")
    try:
        calibration = validation = None
        if args.int8:
            if not train:
                print(
                    f"error: {run_dir}: the run names no training data (run.json) to calibrate int8 on (a ported "
                    "checkpoint has none): pass --data PATH (a video folder, a list file or a TFRecord folder)",
                    file=sys.stderr,
                )
                return 2
            calibration = calibration_clips(train, segments, view, names, args.calibration_clips)
        if val:
            validation = validation_pairs(val, segments, view, names)
        report = convert_run(
            run_dir,
            precisions,
            calibration_clips=calibration,
            validation=validation,
            force=args.force,
            streaming=not args.clip_only,
            threads=args.threads,
            calibration_limit=args.calibration_clips,
            validation_limit=args.validation_clips,
            max_int8_drop=args.max_drop,
            formats=args.formats,
            gpu_check=False if args.gpu_check == "never" else args.gpu_check,
        )
    except (RunError, MissingRuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (Int8AccuracyError, VerificationError) as error:
        print(f"error: {run_dir}: {as_flags(error, {'force'})}", file=sys.stderr)
        return 4
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    refused = report.get("streaming", {}).get("refused")
    if refused:
        # A refusal names the training setting to change: fit.py's flags.
        print(f"no streaming models: {as_flags(refused, {'temporal', 'non_local'})}")
    elif not args.clip_only:
        model = shlex.quote(str(run_dir / "tflite" / f"stream_{INT8 if args.int8 else FLOAT32}.tflite"))
        print(f"next: python tflite/benchmark.py {model}   |   python tflite/stream.py {model} --video VIDEO")
        for file_format in [f for f in args.formats if f != TFLITE]:
            runtime, run = RUNTIME_OF[file_format], shlex.quote(str(run_dir))
            print(f"      python tflite/stream.py {run} --runtime {runtime} --video VIDEO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
