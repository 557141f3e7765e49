"""LiteRT latency of a .tflite on this machine (XNNPACK, or the GPU accelerator), per signature.

    python tflite/benchmark.py MODEL.tflite [--threads N] [--signature step] [--repeats 50] [--accelerator gpu]

Prints median and spread (ms) for each signature; the explicit-state streaming model is
run as an app runs it, each call fed the previous call's buffers. --flags prints the
benchmark_model flags for this model instead (used by tflite/benchmark_android.sh).
"""

import argparse
import json
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=".tflite file")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: cores, at most 4)")
    parser.add_argument("--signature", default=None, help="time only this signature (e.g. step)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--accelerator",
        choices=("cpu", "gpu"),
        default="cpu",
        help="cpu: the LiteRT Interpreter with XNNPACK (default); gpu: LiteRT's GPU accelerator",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--flags",
        action="store_true",
        help="print the benchmark_model flags for this model (kind, signature, input layers)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from tsm_keras.export.benchmark import benchmark, benchmark_model_flags
    from tsm_keras.export.gpu import GpuError
    from tsm_keras.export.runtime import ModelKindError

    try:
        if args.flags:
            print(" ".join(benchmark_model_flags(args.model)))
            return 0
        result = benchmark(
            args.model,
            threads=args.threads,
            signature=args.signature,
            warmup=max(args.warmup, 1) if args.accelerator == "gpu" else args.warmup,
            repeats=args.repeats,
            accelerator=args.accelerator,
        )
    except (FileNotFoundError, ModelKindError, ValueError, GpuError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if args.accelerator == "gpu":
        where = f"GPU accelerator on {result['device']}"
        if result["software_device"]:
            where += " (software Vulkan, not a GPU time)"
    else:
        where = f"{result['threads']} thread(s)"
    print(f"{args.model}: {result['kind']} model, {where}, {os.path.getsize(args.model) / 2**20:.2f} MB")
    print(f"{'signature':<18}{'median':>9}{'p10':>9}{'p90':>9}{'min':>9}{'max':>9}  ms, {args.repeats} runs")
    for name, s in result["signatures"].items():
        print(
            f"{name:<18}{s['median_ms']:9.3f}{s['p10_ms']:9.3f}{s['p90_ms']:9.3f}{s['min_ms']:9.3f}{s['max_ms']:9.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
