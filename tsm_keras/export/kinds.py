"""Names shared by the exported models, the runtime and the checks."""

CLIP, STREAM, STREAM_STATE = "clip", "stream", "stream_state"
KINDS = (CLIP, STREAM, STREAM_STATE)
FLOAT32, FLOAT16, INT8 = "float32", "float16", "int8"
PRECISIONS = (FLOAT32, FLOAT16, INT8)

CLIP_INPUT = "clip"  # the clip model's input; streaming models take "frame" (tsm_keras.streaming.FRAME)
SERVING = "serving_default"  # the clip model's signature
STEP, RESET = "step", "reset"  # the streaming models' signatures
DONE = "done"  # the output of `reset` (a signature needs one)

# File formats and the runtimes that run them (docs/deploy.md). ONNX and OpenVINO IR hold the
# clip model and the explicit-state streaming model, float32 (tsm_keras.export.portable).
TFLITE, ONNX, OPENVINO = "tflite", "onnx", "openvino"
FORMATS = (TFLITE, ONNX, OPENVINO)
EXTENSIONS = {TFLITE: ".tflite", ONNX: ".onnx", OPENVINO: ".xml"}  # an OpenVINO .xml has its .bin beside it
LITERT, ONNXRUNTIME = "litert", "onnxruntime"
RUNTIMES = {LITERT: TFLITE, ONNXRUNTIME: ONNX, OPENVINO: OPENVINO}  # runtime -> the format it runs
RUNTIME_OF = {file_format: runtime for runtime, file_format in RUNTIMES.items()}
# ONNX (and so OpenVINO) cannot give a graph output the name of a graph input: there the
# explicit-state model returns buffer `state_NN_<layer>` as `state_NN_<layer>_next`.
NEXT = "_next"
# What each kind runs on (report.json "files"): LiteRT's GPU accelerator (and NNAPI) do not
# run resource variables, so the `stream` kind is the CPU's; `stream_state` is the GPU's.
RUNS_ON = {
    CLIP: ["cpu", "gpu"],
    STREAM: ["cpu"],
    STREAM_STATE: ["cpu", "gpu"],
}
STREAM_CPU_NOTE = (
    "for the CPU: resource variables, which LiteRT's GPU accelerator and NNAPI refuse; "
    "stream_state_* is the same model for the GPU"
)

MAX_INT8_DROP = 1.0  # top-1 points: the int8 gate of convert (docs/tflite.md)


def file_name(kind, precision, format=TFLITE):
    """clip_float32.tflite, stream_int8.tflite, stream_state_float32.onnx, clip_float32.xml, ..."""
    return f"{kind}_{precision}{EXTENSIONS[format]}"
