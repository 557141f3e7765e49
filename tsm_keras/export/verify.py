"""Checks of exported models against Keras and against each other, with numbers.

Every check returns what it measured and raises `VerificationError` (naming the model and
the number) when a bound is broken, so convert can report the numbers and tests can assert
on them.
"""

import numpy as np
from ai_edge_litert.tools import flatbuffer_utils

from tsm_keras.export.kinds import CLIP, STREAM, STREAM_STATE
from tsm_keras.export.runtime import non_builtin_operators, operators, quantization

# float32 TFLite against Keras (and streaming against the clip model): the largest logit
# difference may be this fraction of the largest |logit| (at least of 1). float32 rounds each
# result to 2^-24 of its size, so two correct implementations drift apart in proportion to the
# activations' scale: measured 5e-7 to 9e-6 of it (2.5e-5 for a non-local ResNet-50, earlier), against
# 7e-2 to 1.2 with every shift moving the wrong way (docs/tflite.md, "Verification").
FLOAT_TOLERANCE = 1e-4


def float_bound(reference, tolerance=FLOAT_TOLERANCE):
    """The bound on |exported - reference| for reference logits `reference`: `tolerance` of
    the largest |logit|, or `tolerance` itself for logits below 1."""
    return tolerance * max(1.0, float(np.max(np.abs(reference))))


class VerificationError(AssertionError):
    """An exported model does not do what its source model does."""


def check_frames_differ(clips):
    """Refuse test clips with two identical frames: they would hide a buffer off by a frame."""
    for index, clip in enumerate(clips):
        flat = np.asarray(clip).reshape(len(clip), -1)
        for t in range(1, len(flat)):
            if any(np.array_equal(flat[t], flat[s]) for s in range(t)):
                raise ValueError(f"clip {index}: frame {t} repeats an earlier frame; use clips whose frames all differ")


def check_builtin_operators(runner):
    """The model loads (it did, to make the runner) and uses builtin operators only."""
    foreign = non_builtin_operators(runner.content)
    if foreign:
        raise VerificationError(f"{runner.name}: non-builtin operators {foreign} (Flex or custom ops)")
    return operators(runner.content)


def clip_vs_keras(runner, model, clips, tolerance=FLOAT_TOLERANCE):
    """Max |exported - Keras| of the clip logits over `clips` `(N, T, H, W, 3)`, bounded by
    `float_bound` (`tolerance` of the largest Keras logit); None checks nothing."""
    clips = np.asarray(clips, "float32")
    check_frames_differ(clips)
    expected = np.asarray(model.predict_on_batch(clips))
    got = np.stack([runner(clip) for clip in clips])
    difference = float(np.max(np.abs(got - expected)))
    if tolerance is not None and difference > float_bound(expected, tolerance):
        raise VerificationError(
            f"{runner.name}: clip logits differ from Keras by {difference:.3g} > "
            f"{float_bound(expected, tolerance):.3g} ({tolerance:g} of the largest logit, "
            f"{float(np.max(np.abs(expected))):.3g})"
        )
    return difference


def streaming_vs_clip(runner, clip_logits, clips, tolerance=FLOAT_TOLERANCE):
    """Run each clip's T frames from reset, average the per-frame logits, compare with the
    clip model's logits `(N, K)` (bound: `float_bound` of those); then check that `reset`
    really resets: the first clip run again after reset (with other clips' states in the
    buffers before it) gives the same per-frame logits as its first pass.

    Returns `{"max_abs_difference": ..., "reset_max_abs_difference": ...}`.
    """
    if runner.kind not in (STREAM, STREAM_STATE):
        raise TypeError(f"{runner.name} is not a streaming model")
    clips = np.asarray(clips, "float32")
    check_frames_differ(clips)
    per_frame = []
    for clip in clips:
        runner.reset()
        per_frame.append(runner.run(clip))
    averaged = np.stack([logits.mean(axis=0) for logits in per_frame])
    difference = float(np.max(np.abs(averaged - np.asarray(clip_logits))))
    runner.reset()
    again = runner.run(clips[0])
    reset_difference = float(np.max(np.abs(again - per_frame[0])))
    bound = None if tolerance is None else float_bound(clip_logits, tolerance)
    if bound is not None and difference > bound:
        raise VerificationError(
            f"{runner.name}: mean per-frame streaming logits differ from the clip model by "
            f"{difference:.3g} > {bound:.3g} ({tolerance:g} of the largest logit)"
        )
    if bound is not None and reset_difference > bound:
        raise VerificationError(
            f"{runner.name}: after reset the same frames give different logits "
            f"(max difference {reset_difference:.3g}): reset does not clear the buffers"
        )
    return {"max_abs_difference": difference, "reset_max_abs_difference": reset_difference}


def state_quantization(runner):
    """Each buffer of an explicit-state model: `{name: {"input": (scale, zp), "output": ...}}`.

    Raises when a buffer's input and output dtypes or quantization parameters differ: an
    app must be able to feed every output back unchanged (int8 CONCATENATION of buffer and
    frame slices needs one scale on all of its inputs anyway).
    """
    if runner.kind != STREAM_STATE:
        raise TypeError(f"{runner.name} is a {runner.kind} model, not an explicit-state model")
    outputs = runner.runner.get_output_details()
    found = {}
    for name, detail in runner.state_details.items():
        out = outputs[name]
        found[name] = {
            "input": quantization(detail),
            "output": quantization(out),
            "dtype": np.dtype(detail["dtype"]).name,
        }
        if detail["dtype"] != out["dtype"] or quantization(detail) != quantization(out):
            raise VerificationError(
                f"{runner.name}: buffer '{name}' goes in as {np.dtype(detail['dtype']).name} "
                f"{quantization(detail)} but comes out as {np.dtype(out['dtype']).name} "
                f"{quantization(out)}; it cannot be fed back unchanged"
            )
    return found


def variable_types(runner):
    """Types of the resource variables of a `stream` model, as read in its `step` subgraph."""
    if runner.kind != STREAM:
        raise TypeError(f"{runner.name} is a {runner.kind} model, not a resource-variable model")
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(runner.content))
    types = set()
    for subgraph in tree.subgraphs:
        for op in subgraph.operators:
            if flatbuffer_utils.opcode_to_name(tree, op.opcodeIndex) == "READ_VARIABLE":
                tensor = subgraph.tensors[op.outputs[0]]
                types.add(flatbuffer_utils.type_to_name(tensor.type))
    return sorted(types)


def predict_clips(runner, clips):
    """Clip logits `(N, K)` from a clip runner, or from a streaming runner (reset, run the
    clip's frames, average: what the app would report after T frames). Any runner with a
    `kind`: LiteRT's (`tsm_keras.export.runtime`), ONNX Runtime's or OpenVINO's (`.sessions`)."""
    if runner.kind == CLIP:
        return np.stack([runner(clip) for clip in clips])
    logits = []
    for clip in clips:
        runner.reset()
        logits.append(runner.run(clip).mean(axis=0))
    return np.stack(logits)


def concatenation_scales(runner):
    """CONCATENATION ops whose inputs do not all share the output's quantization.

    int8 CONCATENATION is exact only when every input has the output's scale and zero
    point (otherwise the kernel requantizes, and XNNPACK does not delegate it). Returns
    `{"concatenations": n, "mismatched": [output tensor names]}`.
    """
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(runner.content))
    total, mismatched = 0, []
    for subgraph in tree.subgraphs:
        for op in subgraph.operators:
            if flatbuffer_utils.opcode_to_name(tree, op.opcodeIndex) != "CONCATENATION":
                continue
            total += 1
            output = subgraph.tensors[op.outputs[0]]
            if any(not _same_params(subgraph.tensors[i], output) for i in op.inputs):
                name = output.name.decode() if isinstance(output.name, bytes) else output.name
                mismatched.append(name)
    return {"concatenations": total, "mismatched": mismatched}


def _same_params(a, b):
    def params(tensor):
        q = tensor.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        return (tuple(np.asarray(q.scale, "float64").ravel()), tuple(np.asarray(q.zeroPoint).ravel()))

    return params(a) == params(b)
