"""Latency of an exported model on this machine: LiteRT per signature (XNNPACK on the CPU, or
LiteRT's GPU accelerator), or ONNX Runtime / OpenVINO.

    python tflite/benchmark.py MODEL.tflite [--threads N] [--signature step] [--repeats 50] [--accelerator gpu]
    python tflite/benchmark.py MODEL.onnx|MODEL.xml|RUN_DIR --runtime onnxruntime|openvino

Prints median and spread (ms) for each signature; the explicit-state streaming model is
run as an app runs it, each call fed the previous call's buffers. With --runtime onnxruntime
or openvino MODEL is a .onnx or .xml written by convert.py --formats onnx openvino (given a
run directory: its stream_state_float32 file of that format), timed on the CPU in float32. --flags prints the
benchmark_model flags for this model instead (used by tflite/benchmark_android.sh).
"""

import argparse
import json
import os
import sys

from tsm_keras.cli import add_runtime_arguments
from tsm_keras.export.kinds import CLIP, LITERT, SERVING, STEP


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file (.tflite, .onnx, .xml) or a run directory")
    add_runtime_arguments(parser)
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: cores, at most 4)")
    parser.add_argument("--signature", default=None, help="time only this signature (e.g. step)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--flags",
        action="store_true",
        help="print the benchmark_model flags for this model (kind, signature, input layers)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from tsm_keras.export.benchmark import benchmark, benchmark_model_flags, benchmark_runner
    from tsm_keras.export.gpu import GpuError
    from tsm_keras.export.portable import MissingRuntimeError
    from tsm_keras.export.runtime import ModelKindError
    from tsm_keras.export.sessions import find_model, open_model

    try:
        model = find_model(args.model, args.runtime)
        if args.flags:
            if args.runtime != LITERT:
                raise ValueError("--flags are benchmark_model's, for a .tflite (--runtime litert)")
            print(" ".join(benchmark_model_flags(model)))
            return 0
        if args.accelerator == "gpu" and args.runtime != LITERT:
            raise ValueError("--accelerator gpu is LiteRT's GPU accelerator (--runtime litert)")
        if args.runtime == LITERT:
            result = benchmark(
                model,
                threads=args.threads,
                signature=args.signature,
                warmup=max(args.warmup, 1) if args.accelerator == "gpu" else args.warmup,
                repeats=args.repeats,
                accelerator=args.accelerator,
            )
        else:
            runner = open_model(model, args.runtime, args.threads)
            timed = SERVING if runner.kind == CLIP else STEP
            if args.signature not in (None, timed):
                raise ValueError(f"{model}: a {runner.kind} model has one call to time, {timed!r}")
            summary = benchmark_runner(runner, warmup=args.warmup, repeats=args.repeats)
            result = {"kind": runner.kind, "threads": runner.threads, "signatures": {timed: summary}}
    except (FileNotFoundError, ModelKindError, ValueError, MissingRuntimeError, GpuError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    size = runner.size_bytes if args.runtime != LITERT else os.path.getsize(model)
    if args.accelerator == "gpu":
        where = f"GPU accelerator on {result['device']}"
        if result["software_device"]:
            where += " (software Vulkan, not a GPU time)"
    else:
        where = f"{result['threads']} thread(s)"
    print(f"{model}: {result['kind']} model, {args.runtime}, {where}, {size / 2**20:.2f} MB")
    print(f"{'signature':<18}{'median':>9}{'p10':>9}{'p90':>9}{'min':>9}{'max':>9}  ms, {args.repeats} runs")
    for name, s in result["signatures"].items():
        print(
            f"{name:<18}{s['median_ms']:9.3f}{s['p10_ms']:9.3f}{s['p90_ms']:9.3f}{s['min_ms']:9.3f}{s['max_ms']:9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
