"""Representative samples for full-integer quantization, from plain iterables of clips.

A clip is an array `(T, H, W, 3)` of raw RGB frames in [0, 255] (uint8 or float). The
converter takes a callable returning an iterator of `(signature key, {input name: array})`.

Streaming models are calibrated with the states they will really see (MoViNet's recipe):
the float model is rolled over each clip frame by frame, from zero states, and every time
step is a sample, t = 0 (zero buffers) included. The resource-variable model is made from
the calibrated explicit-state model (`tsm_keras.export.variables`), so it needs no
calibration of its own.
"""

import itertools

import numpy as np

from tsm_keras.export.kinds import CLIP, CLIP_INPUT, SERVING, STEP, STREAM, STREAM_STATE
from tsm_keras.streaming import FRAME, initial_states


def _float(frames):
    return np.asarray(frames, "float32")


def pin_input_range(frames):
    """A copy of the frames with one pixel at 0 and one at 255.

    The int8 input scale comes from the calibrated range of the frames; pinning it to
    [0, 255] gives scale 1 and zero point -128, so an int8 frame is exactly pixel - 128
    whatever the calibration clips contain (changing two pixels of one frame moves no
    other range measurably).
    """
    frames = _float(frames).copy()
    frames.reshape(-1, 3)[0] = 0.0
    frames.reshape(-1, 3)[1] = 255.0
    return frames


def _pinned(clips, pin=True):
    for index, clip in enumerate(clips):
        yield pin_input_range(clip) if pin and index == 0 else _float(clip)


def clip_samples(clips, pin=True):
    """Samples for the clip model: one per clip, `(T, H, W, 3)` (its input: frames as the batch)."""
    for clip in _pinned(clips, pin):
        yield SERVING, {CLIP_INPUT: clip}


def stream_state_samples(stream, clips, pin=True):
    """Samples for the explicit-state model: `{frame, **states}` at every step of each clip.

    `stream` is the float Keras streaming model (`build_streaming_model`); its new states
    become the next sample's states.
    """
    for clip in _pinned(clips, pin):
        states = initial_states(stream, batch_size=1)
        for frame in clip:
            inputs = {FRAME: frame[None], **states}
            yield STEP, inputs
            outputs = stream.predict_on_batch(inputs)
            states = {key: np.asarray(outputs[key]) for key in states}


def representative(kind, clips, stream=None, limit=None, pin_range=True):
    """The `representative_dataset` callable for a model kind.

    Args:
        kind: 'clip', 'stream' or 'stream_state'.
        clips: a re-iterable collection of clips `(T, H, W, 3)` (a list, or an object
            whose `__iter__` starts over), or a callable returning a fresh iterator.
        stream: the float Keras streaming model (needed for the streaming kinds: both are
            calibrated as the explicit-state model).
        limit: use at most this many clips.
        pin_range: pin the calibrated input range to [0, 255] (`pin_input_range`): for
            raw-pixel inputs, which all tsm_keras models take.
    """
    if kind in (STREAM, STREAM_STATE) and stream is None:
        raise ValueError("calibrating the explicit-state model needs the float streaming model")

    def source():
        iterator = clips() if callable(clips) else iter(clips)
        return itertools.islice(iterator, limit) if limit else iterator

    def samples():
        if kind == CLIP:
            return clip_samples(source(), pin_range)
        if kind in (STREAM, STREAM_STATE):
            return stream_state_samples(stream, source(), pin_range)
        raise ValueError(f"unknown model kind {kind!r}")

    return samples
