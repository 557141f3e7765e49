"""The per-frame (online) model: one frame and the temporal buffers in, logits and new buffers out.

A causal video classifier (`temporal='tsm-online'` or `'tam-online'`) gives for frame t an
output that depends only on frames <= t. Each causal temporal layer keeps what it needs of
the past in a buffer (for the unidirectional shift: the first `fold` channels of the previous
frame's block input; for TAM with offsets (-1, 0): the whole block input of the previous
frame). The streaming model makes those buffers explicit:

    inputs:  {"frame": (B, H, W, 3) raw RGB, <layer name>: (B, h, w, c) per temporal layer}
    outputs: {"logits": (B, K) for this frame, <layer name>: the buffer for the next frame}

It runs through the very layers of the clip model (weights shared), so starting from
`initial_states` and feeding the new buffers back frame after frame gives the per-frame
logits of the clip model; their mean over the clip is the clip model's output.

A temporal layer streams if it implements the protocol

    layer.is_causal -> bool
    layer.state_shape(frame_shape_hwc) -> (h, w, c)
    layer.step(frame, state) -> (output, new_state)

(`TemporalShift(mode='unidirectional')` and a causal `TemporalAggregation` do; so can any
other causal temporal module). Nothing here or in the TFLite export depends on what a
buffer holds: it is a named 4-D tensor that comes back under its own name.
"""

import dataclasses

import keras
import numpy as np

from tsm_keras._keras_private import replay_graph
from tsm_keras.layers.video import FoldTime, SegmentConsensus
from tsm_keras.models.insertion import TEMPORAL_LAYERS, walk_layers

FRAME = "frame"
LOGITS = "logits"


class NotStreamableError(ValueError):
    """The model cannot run frame by frame (no temporal layer, or a non-causal one)."""


@dataclasses.dataclass(frozen=True)
class StateSpec:
    """One named buffer of the streaming model.

    Attributes:
        name: `state_NN_<layer>`: the name of the input and of the output of the streaming
            model that carry it, where NN is the owning temporal layer's position in the
            network (00 first) and <layer> its name. Names therefore sort in network order,
            as TFLite lists a signature's inputs (block_11 would sort before block_2).
        shape: its shape without the batch axis, (h, w, c): NHWC, 4-D with the batch, so
            that every TFLite delegate can hold it.
        dtype: its dtype.
    """

    name: str
    shape: tuple
    dtype: str = "float32"

    @property
    def size(self):
        return int(np.prod(self.shape))


def _streams(layer):
    return all(hasattr(layer, attribute) for attribute in ("step", "state_shape", "is_causal"))


def streaming_modules(model):
    """The temporal layers of `model` that carry state when it runs frame by frame.

    Raises `NotStreamableError` with the reason and the fix when the model cannot stream:
    no temporal layer at all (a TSN model: a model without a shift), a non-local block or a
    bidirectional (non-causal) layer, or a temporal layer without the streaming protocol (e.g. temporal
    pooling, which halves the frames).
    """
    layers = list(walk_layers(model))
    temporal = [l for l in layers if _streams(l) or isinstance(l, TEMPORAL_LAYERS)]
    if not temporal:
        raise NotStreamableError(
            f"model '{model.name}' has no temporal layer (a model without a shift, e.g. TSN "
            "with `temporal='none'`): there is no state to stream. Train with `temporal='tsm-online'` (or tam-online)"
        )
    blocking = [l.name for l in temporal if not _streams(l)]
    if blocking:
        raise NotStreamableError(
            f"model '{model.name}' has temporal layers that cannot run frame by frame: "
            f"{blocking} (e.g. temporal pooling). Train without them, with `temporal='tsm-online'` (or tam-online)"
        )
    # A layer that no model containing it can stream with (bLVNet's frame pairing, a non-local
    # block), whatever its settings, says why in `streaming_refusal`.
    refusals = [l for l in temporal if getattr(l, "streaming_refusal", None)]
    if refusals:
        raise NotStreamableError(f"model '{model.name}' ({refusals[0].name}): {refusals[0].streaming_refusal}")
    offline = [l.name for l in temporal if not l.is_causal]
    if offline:
        raise NotStreamableError(
            f"model '{model.name}' was built with a bidirectional (offline) temporal module, "
            f"which reads the next frame: {offline[0]} and {len(offline) - 1} more. Streaming "
            "needs a causal model: train with `temporal='tsm-online'` (or tam-online)"
        )
    return temporal


def state_name(index, layer_name):
    """The name of the buffer of the `index`-th temporal layer: `state_03_block_7_shift`."""
    return f"state_{index:02d}_{layer_name}"


def build_streaming_model(model, batch_size=None, name=None):
    """The per-frame model of a causal video classifier, sharing all of its weights.

    Example:

    >>> from tsm_keras.models import build_video_classifier
    >>> clip_model = build_video_classifier(5, num_segments=4, input_size=32, width=0.35,
    ...                                     temporal="tsm-online")
    >>> stream = build_streaming_model(clip_model)
    >>> [spec.shape for spec in state_specs(stream)][:3]
    [(8, 8, 1), (4, 4, 2), (4, 4, 2)]
    >>> states = initial_states(stream, batch_size=1)
    >>> frame = np.zeros((1, 32, 32, 3), "float32")
    >>> out = stream({"frame": frame, **states})
    >>> tuple(out["logits"].shape), sorted(out) == sorted(["logits", *states])
    ((1, 5), True)

    Args:
        model: a Functional video classifier taking clips `(B, T, H, W, 3)` (the layout of
            `build_video_classifier`: frames folded into the batch by `FoldTime`, averaged
            by `SegmentConsensus`), with at least one causal temporal layer.
        batch_size: fixed batch size of the inputs (None: any; TFLite export uses 1).
        name: name of the new model (default: '<model name>_stream').

    Returns:
        A Functional model with dict inputs `{"frame", <state names>}` and dict outputs
        `{"logits", <state names>}`. Its state specs: `state_specs(streaming_model)`.
    """
    streaming_modules(model)  # refuse early, with the reason
    clip_shape = _check_clip_input(model)
    frame = keras.Input(batch_shape=(batch_size,) + tuple(clip_shape[2:]), name=FRAME)
    states, new_states = {}, {}

    seen = set()

    def temporal(layer, x):
        if layer.name in seen:
            raise ValueError(f"temporal layer '{layer.name}' is used twice: its state would be ambiguous")
        seen.add(layer.name)
        name = state_name(len(states), layer.name)
        shape = tuple(int(d) for d in layer.state_shape(tuple(x.shape[1:])))
        state = keras.Input(batch_shape=(batch_size,) + shape, name=name, dtype=x.dtype)
        output, new_state = layer.step(x, state)
        states[name], new_states[name] = state, new_state
        return output

    logits = _replay(model, frame, temporal)
    stream = keras.Model(
        inputs={FRAME: frame, **states},
        outputs={LOGITS: logits, **new_states},
        name=name or f"{model.name}_stream",
    )
    check_state_io(stream)
    return stream


def _check_clip_input(model):
    clip_shape = model.input_shape
    if isinstance(clip_shape, (list, dict)) or len(clip_shape) != 5:
        raise ValueError(
            f"model '{model.name}' must take one clip input (B, T, H, W, C). Received input shape {clip_shape}"
        )
    return clip_shape


def _replay(model, frame, temporal):
    """The clip model's graph on one frame, through the same layers: frames are not folded
    nor averaged, and each temporal layer is replaced by `temporal(layer, x)`."""

    def call(layer, *args, **kwargs):
        if isinstance(layer, (FoldTime, SegmentConsensus)):
            return args[0]  # one frame per clip: nothing to fold or average
        if isinstance(layer, keras.Model):  # a nested Functional model (the backbone)
            return replay_graph(layer, args[0], call)
        if _streams(layer) or isinstance(layer, TEMPORAL_LAYERS):
            return temporal(layer, args[0])
        return layer(*args, **kwargs)

    # What keras.models.clone_model runs: the graph replayed through the same layers.
    # clone_model itself cannot be used, because the state inputs created on the way are not
    # inputs of the model being cloned.
    return replay_graph(model, frame, call)


def build_frame_model(model, batch_size=None, name=None):
    """The per-frame model of a clip model without temporal layers (TSN): `{"frame"} ->
    {"logits"}`, sharing its weights. The baseline a streaming model is compared with."""
    clip_shape = _check_clip_input(model)
    temporal = [l.name for l in walk_layers(model) if _streams(l) or isinstance(l, TEMPORAL_LAYERS)]
    if temporal:
        raise ValueError(f"model '{model.name}' has temporal layers {temporal[:3]}...: use build_streaming_model")
    frame = keras.Input(batch_shape=(batch_size,) + tuple(clip_shape[2:]), name=FRAME)
    logits = _replay(model, frame, None)
    return keras.Model({FRAME: frame}, {LOGITS: logits}, name=name or f"{model.name}_frame")


def check_state_io(stream):
    """Every state input has an output of the same name, shape and dtype, and vice versa."""
    inputs = {k: v for k, v in stream.input.items() if k != FRAME}
    outputs = {k: v for k, v in stream.output.items() if k != LOGITS}
    if set(inputs) != set(outputs):
        raise ValueError(
            f"state inputs and outputs differ: inputs only {sorted(set(inputs) - set(outputs))}, "
            f"outputs only {sorted(set(outputs) - set(inputs))}"
        )
    for key, tensor in inputs.items():
        out = outputs[key]
        if tuple(tensor.shape[1:]) != tuple(out.shape[1:]) or tensor.dtype != out.dtype:
            raise ValueError(
                f"state '{key}': input {tuple(tensor.shape)} {tensor.dtype} but output "
                f"{tuple(out.shape)} {out.dtype}; a buffer must come back as it went in"
            )


def state_specs(stream):
    """The `StateSpec`s of a streaming model, in graph order."""
    return tuple(
        StateSpec(key, tuple(int(d) for d in tensor.shape[1:]), str(tensor.dtype))
        for key, tensor in stream.input.items()
        if key != FRAME
    )


def initial_states(stream_or_specs, batch_size=1):
    """Zero buffers `{name: array (batch_size, h, w, c)}`: the state before the first frame."""
    specs = stream_or_specs if isinstance(stream_or_specs, (tuple, list)) else state_specs(stream_or_specs)
    return {spec.name: np.zeros((batch_size,) + spec.shape, spec.dtype) for spec in specs}


def run_frames(stream, frames, states=None):
    """Run a streaming Keras model over frames `(T, H, W, 3)` (batch 1), in order.

    Returns the per-frame logits `(T, K)` and the final states.
    """
    states = initial_states(stream, 1) if states is None else states
    logits = []
    for frame in frames:
        out = stream({FRAME: np.asarray(frame, "float32")[None], **states}, training=False)
        logits.append(np.asarray(out[LOGITS])[0])
        states = {key: np.asarray(out[key]) for key in states}
    return np.stack(logits), states
