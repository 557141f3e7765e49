"""Names shared by the exported models, the runtime and the checks."""

CLIP, STREAM, STREAM_STATE = "clip", "stream", "stream_state"
KINDS = (CLIP, STREAM, STREAM_STATE)
FLOAT32, FLOAT16, INT8 = "float32", "float16", "int8"
PRECISIONS = (FLOAT32, FLOAT16, INT8)

CLIP_INPUT = "clip"  # the clip model's input; streaming models take "frame" (tsm_keras.streaming.FRAME)
SERVING = "serving_default"  # the clip model's signature
STEP, RESET = "step", "reset"  # the streaming models' signatures
DONE = "done"  # the output of `reset` (a signature needs one)

MAX_INT8_DROP = 1.0  # top-1 points: the int8 gate of convert (docs/tflite.md)


def file_name(kind, precision):
    """clip_float32.tflite, stream_int8.tflite, stream_state_float16.tflite, ..."""
    return f"{kind}_{precision}.tflite"
