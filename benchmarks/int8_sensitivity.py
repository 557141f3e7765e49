"""Where does int8 lose top-1? Keep one group of tensors in float, the rest int8, and measure.

    python benchmarks/int8_sensitivity.py RUN_DIR [--stream] [--latency] [--calibration-clips 100]
                                          [--validation-clips 500] [--groups NAME ...]

For the clip model (and, with --stream, the explicit-state streaming model) of a trained run,
each row is one conversion: full int8, then int8 with one group of operators left in float
(TFLite's selective quantization: `denylisted_nodes` of the MLIR quantizer, the mechanism of
tf.lite.experimental.QuantizationDebugger), then 16-bit activations with 8-bit weights.
Columns: validation top-1, its change against float, agreement with float's predictions, the
largest logit difference, the median float top-1/top-2 margin of the clips whose prediction
int8 changes, those clips by true class, and how many operators compute in float (with
--latency, the model's median time). Measurement only: convert.py quantizes everything
(docs/tflite.md, "int8: where the loss comes from", has the table and what it showed).
Ends by writing its ledger entry, results/int8-sensitivity.json (benchmarks/ledger.py).
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.tools import flatbuffer_utils  # noqa: E402
from ledger import command, write_entry  # noqa: E402
from tensorflow.lite.python import convert as lite_convert  # noqa: E402

from tsm_keras.export import calibration  # noqa: E402
from tsm_keras.export.kinds import CLIP, STREAM_STATE  # noqa: E402
from tsm_keras.export.runtime import ClipRunner, StreamRunner, interpreter  # noqa: E402
from tsm_keras.export.tflite import _ClipExport, _ExplicitExport  # noqa: E402
from tsm_keras.export.verify import predict_clips  # noqa: E402
from tsm_keras.streaming import LOGITS  # noqa: E402


# Groups of operators. Layer names survive conversion in the output tensor names (the clip
# model prefixes them with "backbone_1/"); the head is found by position: what follows the
# last convolution (pool, classifier, consensus), or the classifier onwards.
def _after(op_type, include=True):
    def select(ops):
        last = max(i for i, (kind, _) in enumerate(ops) if kind == op_type)
        return [name for kind, name in ops[last if include else last + 1 :]]

    return select


def _named(pattern):
    return lambda ops: [name for _, name in ops if re.search(pattern, name)]


GROUPS = {
    "head (pool, classifier, consensus)": _after("CONV_2D", include=False),
    "classifier and consensus": _after("FULLY_CONNECTED"),
    "temporal modules (shift slices and concatenations, TAM)": _named(r"_(shift|tam)"),
    "stem and blocks 1-4": _named(r"(^|/)(Conv1|bn_Conv1|expanded_conv|block_[1-4]_)"),
    "blocks 13-16 and last conv": _named(r"(^|/)(block_1[3-6]_|Conv_1|out_relu)"),
}


def _converter(model, kind, representative):
    module = _ClipExport(model) if kind == CLIP else _ExplicitExport(model)
    signatures = module.signatures()
    folder = tempfile.mkdtemp(prefix="tsm_sensitivity_")
    tf.saved_model.save(module, folder, signatures=signatures)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=list(signatures))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    return converter


def calibrated(model, kind, representative):
    """The float model with calibration statistics, before quantization."""
    converter = _converter(model, kind, representative)
    converter._experimental_calibrate_only = True
    return converter.convert()


def op_outputs(content):
    """(operator type, output tensor name) of every operator, in execution order."""
    litert = interpreter(content)
    return [
        (op["op_name"], litert._get_tensor_details(i, 0)["name"])
        for op in litert._get_ops_details()
        for i in op["outputs"]
    ]


def quantize(calibrated_model, group=None, output=tf.int8):
    """int8 everywhere, except the operators of `group` (float)."""
    nodes = group(op_outputs(calibrated_model)) if group else None
    return lite_convert.mlir_quantize(
        calibrated_model, fully_quantize=True, input_data_type=tf.int8, output_data_type=output, denylisted_nodes=nodes
    )


# The classifier in float with float32 logits: the classifier's operators on the quantizer's
# deny list, then the final QUANTIZE of the logits removed from the flatbuffer.
def with_float_logits(content):
    """The model with its `logits` outputs taken before their final int8 QUANTIZE.

    Every signature output named `logits` whose tensor is made by a QUANTIZE of a float32
    tensor is re-pointed at that float tensor, and the QUANTIZE is removed. Other outputs
    (the shift buffers) are untouched.
    """
    tree = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    changed = 0
    for signature in tree.signatureDefs or []:
        graph = tree.subgraphs[signature.subgraphIndex]
        for output in signature.outputs:
            if _text(output.name) != LOGITS:
                continue
            index = output.tensorIndex
            producers = [op for op in graph.operators if index in list(op.outputs)]
            if len(producers) != 1:
                continue
            op = producers[0]
            code = flatbuffer_utils.get_builtin_code_from_operator_code(tree.operatorCodes[op.opcodeIndex])
            source = int(op.inputs[0])
            if code != schema.BuiltinOperator.QUANTIZE or graph.tensors[source].type != schema.TensorType.FLOAT32:
                continue
            if any(index in list(other.inputs) for other in graph.operators):
                continue  # the int8 logits feed something else: leave the graph as it is
            graph.operators.remove(op)
            graph.outputs = [source if i == index else i for i in graph.outputs]
            output.tensorIndex = source
            changed += 1
    if not changed:
        raise ValueError("no int8 `logits` output made by a QUANTIZE of a float tensor: nothing to change")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def sixteen_by_eight(model, kind, representative):
    converter = _converter(model, kind, representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter.convert()


def float_ops(content):
    """How many operators compute in float (their output is float32)."""
    litert = interpreter(content)
    return sum(
        1
        for op in litert._get_ops_details()
        if op["op_name"] not in ("DEQUANTIZE",)
        and any(litert._get_tensor_details(i, 0)["dtype"] == np.float32 for i in op["outputs"])
    )


def _median_ms(content):
    from tsm_keras.export.benchmark import benchmark

    result = benchmark(content, threads=1, repeats=50)
    return round(next(iter(result["signatures"].values()))["median_ms"], 3)


def margins(logits):
    top = np.sort(logits, axis=1)
    return top[:, -1] - top[:, -2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--calibration-clips", type=int, default=100)
    parser.add_argument("--validation-clips", type=int, default=500)
    parser.add_argument("--stream", action="store_true", help="also the explicit-state streaming model")
    parser.add_argument("--groups", nargs="*", help="only these groups (default: all)")
    parser.add_argument(
        "--latency",
        action="store_true",
        help="also time each model (LiteRT, 1 thread, median ms per clip or per frame)",
    )
    args = parser.parse_args(argv)

    from tsm_keras.data import calibration_clips, validation_pairs
    from tsm_keras.data.view import View
    from tsm_keras.run_dir import load_run
    from tsm_keras.streaming import build_streaming_model

    run = load_run(args.run_dir, float32=True)
    config = run.config
    segments, view = run.model_config["num_segments"], View.of_run(config)
    calib = calibration_clips(config["data"]["train"], segments, view, run.class_names, args.calibration_clips)
    val, labels = [], []
    for clip, label in validation_pairs(config["data"]["val"], segments, view, run.class_names):
        if len(val) >= args.validation_clips:
            break
        val.append(clip)
        labels.append(label)
    labels = np.asarray(labels)
    model = run.model

    kinds = [CLIP] + ([STREAM_STATE] if args.stream else [])
    rows, summary, failed = [], {}, []
    for kind in kinds:
        stream = build_streaming_model(model, batch_size=1) if kind == STREAM_STATE else None
        runner_type = ClipRunner if kind == CLIP else StreamRunner
        representative = calibration.representative(kind, calib, stream=stream)
        keras_model = model if kind == CLIP else stream
        float_model = _converter(keras_model, kind, representative)
        float_model.optimizations = []
        float_logits = predict_clips(runner_type(float_model.convert()), val)
        float_pred = np.argmax(float_logits, 1)
        float_top1 = 100.0 * np.mean(float_pred == labels)
        float_margins = margins(float_logits)
        step = None

        def row(name, content):
            logits = predict_clips(runner_type(content), val)
            pred = np.argmax(logits, 1)
            top1 = 100.0 * np.mean(pred == labels)
            flipped = pred != float_pred
            by_class = np.bincount(labels[flipped], minlength=len(run.class_names))
            rows.append(
                [
                    kind,
                    name,
                    round(top1, 2),
                    round(top1 - float_top1, 2),
                    round(100.0 * np.mean(pred == float_pred), 2),
                    round(float(np.max(np.abs(logits - float_logits))), 2),
                    round(float(np.median(float_margins[flipped])), 2) if flipped.any() else None,
                    " ".join(str(c) for c in by_class),
                    float_ops(content),
                    _median_ms(content) if args.latency else None,
                ]
            )
            print("| " + " | ".join("-" if v is None else str(v) for v in rows[-1]) + " |", flush=True)

        print(
            f"{kind}: float top-1 {float_top1:.2f}; float top-1/top-2 logit margin: median "
            f"{np.median(float_margins):.3f}, 10th percentile {np.percentile(float_margins, 10):.3f}; "
            "per class float top-1 % "
            + " ".join(f"{100 * np.mean(float_pred[labels == k] == k):.0f}" for k in range(len(run.class_names))),
            flush=True,
        )
        print(
            "| model | int8 variant | top-1 | vs float | agreement % | max abs logit diff "
            "| median float margin of the changed | changed clips by true class | float ops | ms |",
            flush=True,
        )
        print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
        cal = calibrated(keras_model, kind, representative)
        plain = quantize(cal)
        out = runner_type(plain).output
        step = float(out["quantization"][0])
        row(f"all int8 (logit step {step:.3f})", plain)
        for name, group in GROUPS.items():
            if args.groups and name not in args.groups:
                continue
            if kind == STREAM_STATE and "shift" in name:
                continue  # the buffers are int8 inputs and outputs by design
            try:
                row(f"{name} in float", quantize(cal, group, output=tf.int8 if kind == STREAM_STATE else tf.float32))
            except Exception as error:  # noqa: BLE001 - a measurement script reports and goes on
                failed.append(f"{kind} | {name} in float | failed: {str(error).splitlines()[0][:120]}")
                print(f"| {failed[-1]} |", flush=True)
        row(
            "classifier (and consensus) in float, float32 logits",
            with_float_logits(quantize(cal, GROUPS["classifier and consensus"])),
        )
        try:
            row("16-bit activations, 8-bit weights", sixteen_by_eight(keras_model, kind, representative))
        except Exception as error:  # noqa: BLE001
            failed.append(f"{kind} | 16x8 | failed: {str(error).splitlines()[0][:120]}")
            print(f"| {failed[-1]} |", flush=True)
        summary[f"{kind}: float top-1"] = f"{float_top1:.2f}"
    columns = ["model", "int8 variant", "top-1", "vs float", "agreement %", "max abs logit diff"]
    columns += ["median float margin of the changed", "changed clips by true class", "float ops", "ms"]
    notes = (
        f"Run {run.path}: {len(val)} validation clips, int8 calibrated on {args.calibration_clips} training clips; "
        "ms: LiteRT, 1 thread, median per clip (clip) or per frame (stream), with --latency."
    )
    write_entry(
        "int8-sensitivity",
        "int8",
        "Where int8 loses top-1: one group of operators kept in float at a time",
        command(),
        columns,
        rows,
        summary=summary,
        notes=notes + "".join(f" Failed: {f}." for f in failed),
    )


if __name__ == "__main__":
    main()
