#!/usr/bin/env bash
# Benchmark a tsm-keras .tflite on an Android phone with TFLite's benchmark_model (adb).
#
#   tflite/benchmark_android.sh MODEL.tflite --benchmark_model PATH/TO/benchmark_model \
#       [--threads 4] [--delegate xnnpack|cpu|gpu|nnapi] [--profile] [--runs 100] \
#       [--serial DEVICE] [--out DIR] [-- EXTRA benchmark_model FLAGS]
#
# benchmark_model is the android_aarch64 binary of TFLite's tools/benchmark (not on PyPI:
# build it with bazel or download the nightly prebuilt; see docs/tflite.md). The flags that
# depend on the model kind are added for you:
#   clip_*.tflite          nothing more (one signature, one input)
#   stream_*.tflite        --signature_to_run_for=step (it also has `reset`)
#   stream_state_*.tflite  --input_layer / --input_layer_shape for the frame and every buffer
# --profile adds --enable_op_profiling=true and pulls the per-op CSV.
# The summary (timings, memory, delegate lines) is written to OUT/<model>_<delegate>_t<threads>.txt.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "error: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
MODEL="$1"; shift
[[ "$MODEL" == -h || "$MODEL" == --help ]] && usage
BINARY="${BENCHMARK_MODEL:-}"; THREADS=4; DELEGATE=xnnpack; PROFILE=0; RUNS=100; SERIAL=""; OUT="."
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --benchmark_model) BINARY="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --delegate) DELEGATE="$2"; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --runs) RUNS="$2"; shift 2 ;;
    --serial) SERIAL="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[[ -f "$MODEL" ]] || die "$MODEL: no such .tflite file"
[[ -n "$BINARY" ]] || die "give the phone's benchmark_model binary: --benchmark_model PATH (or BENCHMARK_MODEL=PATH)"
[[ -f "$BINARY" ]] || die "$BINARY: no such benchmark_model binary"
command -v adb >/dev/null || die "adb not found (Android platform-tools)"
ADB=(adb); [[ -n "$SERIAL" ]] && ADB=(adb -s "$SERIAL")
"${ADB[@]}" get-state >/dev/null 2>&1 || die "no device: connect a phone with USB debugging on (adb devices)"

HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python}"
MODEL_FLAGS=$("$PYTHON" "$HERE/benchmark.py" "$MODEL" --flags) || die "$MODEL: cannot read the model"
NAME="$(basename "$MODEL" .tflite)"

case "$DELEGATE" in
  xnnpack) DELEGATE_FLAGS=(--use_xnnpack=true) ;;
  cpu) DELEGATE_FLAGS=(--use_xnnpack=false) ;;
  gpu) DELEGATE_FLAGS=(--use_gpu=true) ;;
  nnapi) DELEGATE_FLAGS=(--use_nnapi=true) ;;
  *) die "--delegate must be xnnpack, cpu, gpu or nnapi (got $DELEGATE)" ;;
esac
if [[ "$MODEL_FLAGS" == *signature_to_run_for* && ( "$DELEGATE" == gpu || "$DELEGATE" == nnapi ) ]]; then
  echo "warning: $MODEL keeps its buffers in resource variables, which the $DELEGATE delegate does not run:" \
       "the graph is split and the variable ops stay on the CPU. Use the stream_state_*.tflite model for $DELEGATE." >&2
fi

REMOTE=/data/local/tmp/tsm_keras
"${ADB[@]}" shell mkdir -p "$REMOTE"
"${ADB[@]}" push "$BINARY" "$REMOTE/benchmark_model" >/dev/null
"${ADB[@]}" shell chmod +x "$REMOTE/benchmark_model"
"${ADB[@]}" push "$MODEL" "$REMOTE/$NAME.tflite" >/dev/null

FLAGS=(--graph="$REMOTE/$NAME.tflite" --num_threads="$THREADS" --warmup_runs=10 --num_runs="$RUNS"
       --report_peak_memory_footprint=true "${DELEGATE_FLAGS[@]}")
# shellcheck disable=SC2206  # the model flags are plain words without spaces
FLAGS+=($MODEL_FLAGS)
if [[ $PROFILE == 1 ]]; then
  FLAGS+=(--enable_op_profiling=true --profiling_output_csv_file="$REMOTE/${NAME}_ops.csv")
fi
FLAGS+=("${EXTRA[@]}")

mkdir -p "$OUT"
LOG="$OUT/${NAME}_${DELEGATE}_t${THREADS}.log"
SUMMARY="$OUT/${NAME}_${DELEGATE}_t${THREADS}.txt"
echo "running: $REMOTE/benchmark_model ${FLAGS[*]}"
"${ADB[@]}" shell "$REMOTE/benchmark_model" "${FLAGS[@]}" >"$LOG" 2>&1 || { tail -20 "$LOG" >&2; die "benchmark_model failed (full log: $LOG)"; }
{
  echo "model: $MODEL ($(wc -c <"$MODEL") bytes), delegate: $DELEGATE, threads: $THREADS"
  echo "device: $("${ADB[@]}" shell getprop ro.product.model | tr -d '\r') ($("${ADB[@]}" shell getprop ro.board.platform | tr -d '\r'))"
  grep -E "Inference timings in us|Memory footprint delta|Peak memory footprint|Explicitly applied|delegate created|nodes delegated|Replacing [0-9]+ out of" "$LOG" || true
} | tee "$SUMMARY"
if [[ $PROFILE == 1 ]]; then
  "${ADB[@]}" pull "$REMOTE/${NAME}_ops.csv" "$OUT/" >/dev/null && echo "per-op profile: $OUT/${NAME}_ops.csv"
fi
echo "summary: $SUMMARY; full log: $LOG"
