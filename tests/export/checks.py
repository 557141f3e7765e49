"""Checks shared by the TSM and TAM export tests."""

import numpy as np

from tsm_keras.export.kinds import CLIP, STREAM, STREAM_STATE
from tsm_keras.export.runtime import ClipRunner, StreamRunner
from tsm_keras.export.verify import predict_clips, streaming_vs_clip


def assert_streams_agree_and_reset_exactly(models, clips):
    """Both streaming models of `models` ({kind: TFLite bytes}) give identical outputs on every
    clip, and after `reset` the resource-variable model repeats the clip model's stream exactly."""
    variables, explicit = StreamRunner(models[STREAM]), StreamRunner(models[STREAM_STATE])
    for clip in clips:
        variables.reset(), explicit.reset()
        np.testing.assert_array_equal(variables.run(clip), explicit.run(clip))
    clip_logits = predict_clips(ClipRunner(models[CLIP]), clips)
    assert streaming_vs_clip(variables, clip_logits, clips, tolerance=None)["reset_max_abs_difference"] == 0.0
