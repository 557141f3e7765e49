"""Running a causal video model frame by frame: the per-frame model and its named buffers; `app`:
the streaming .tflite on OpenCV frames (tflite/stream.py)."""

from tsm_keras.streaming.model import (
    FRAME,
    LOGITS,
    NotStreamableError,
    StateSpec,
    build_frame_model,
    build_streaming_model,
    check_state_io,
    initial_states,
    run_frames,
    state_specs,
    streaming_modules,
)
