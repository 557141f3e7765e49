"""Names shared by the exported models, the runtime and the checks."""

CLIP, STREAM, STREAM_STATE = "clip", "stream", "stream_state"
KINDS = (CLIP, STREAM, STREAM_STATE)
FLOAT32, FLOAT16, INT8 = "float32", "float16", "int8"
PRECISIONS = (FLOAT32, FLOAT16, INT8)

CLIP_INPUT = "clip"  # the clip model's input; streaming models take "frame" (tsm_keras.streaming.FRAME)
SERVING = "serving_default"  # the clip model's signature
STEP, RESET = "step", "reset"  # the streaming models' signatures
DONE = "done"  # the output of `reset` (a signature needs one)

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


def file_name(kind, precision):
    """clip_float32.tflite, stream_int8.tflite, stream_state_float16.tflite, ..."""
    return f"{kind}_{precision}.tflite"
