"""Keras video models -> TFLite flatbuffers: the clip model and the two streaming models.

Three kinds of model, all taking raw RGB frames (normalisation is inside):

- `clip`: signature `serving_default`, input `clip` [T, H, W, 3] (one clip, its frames as the
  batch: every tensor has rank <= 4, as the GPU accelerator needs) -> `logits` [1, K].
- `stream`: resource variables hold the buffers. Signature `step`: `frame` [1, H, W, 3] ->
  `logits` [1, K] of this frame (the buffers advance by one frame); signature `reset`: zeros
  every buffer (its output `done` is a constant 1). Runs on the CPU kernels and XNNPACK.
- `stream_state`: explicit buffers, for the GPU delegate and NNAPI (which do not support
  resource variables). Signature `step`: inputs `frame` and one 4-D NHWC input per buffer,
  named after its temporal layer; outputs `logits` and the new buffers under the same names.
  Zero buffers are the initial state.

Precisions: `float32`; `float16` (weights stored in float16); `int8` (full integer: int8
weights and activations, TFLITE_BUILTINS_INT8 only, int8 inputs and outputs, calibrated on a
representative data set; see `tsm_keras.export.calibration`).
"""

import tempfile

import numpy as np
import tensorflow as tf

from tsm_keras.export.kinds import (
    CLIP,
    CLIP_INPUT,
    FLOAT16,
    FLOAT32,
    INT8,
    KINDS,
    PRECISIONS,
    SERVING,
    STEP,
    STREAM,
    STREAM_STATE,
)
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.streaming import FRAME, LOGITS, state_specs


def frozen_call(model):
    """`f(inputs) -> outputs` of a Keras model with its weights as graph constants.

    A plain `model(x)` inside a tf.function reads the weights from resource variables. The
    converter freezes them into constants, except when resource variables are enabled (the
    `stream` kind): then it keeps all of them as variables, initialised at load time, and
    BatchNormalization is no longer folded into the convolutions. `stateless_call` with
    constant values gives the same graph for every kind.
    """
    trainable = [tf.constant(np.asarray(v)) for v in model.trainable_variables]
    non_trainable = [tf.constant(np.asarray(v)) for v in model.non_trainable_variables]

    def call(inputs):
        outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
        return outputs

    return call


class _ClipExport(tf.Module):
    def __init__(self, model):
        super().__init__()
        call = frozen_call(model)
        frames = tuple(model.input_shape[1:])  # (T, H, W, 3)
        spec = tf.TensorSpec(frames, tf.float32, name=CLIP_INPUT)

        def serve(clip):
            # One clip, its frames as the batch: the graph's input is 4-D, and the model's
            # (1, T, H, W, 3) view meets FoldTime's reshape back to (T, H, W, 3), which the
            # converter folds away. No tensor of rank 5 is left: the GPU accelerator
            # refuses them (`RESHAPE: Tensor dimensions must be less than 5`).
            return {LOGITS: call(tf.reshape(clip, (1,) + frames))}

        self.serve = tf.function(serve, input_signature=[spec])

    def signatures(self):
        return {SERVING: self.serve.get_concrete_function()}


def _frame_spec(stream):
    return tf.TensorSpec((1,) + tuple(stream.input[FRAME].shape[1:]), tf.float32, name=FRAME)


class _ExplicitExport(tf.Module):
    def __init__(self, stream):
        super().__init__()
        call = frozen_call(stream)
        specs = {FRAME: _frame_spec(stream)}
        for spec in state_specs(stream):
            specs[spec.name] = tf.TensorSpec((1,) + spec.shape, spec.dtype, name=spec.name)
        self.step = tf.function(call)
        # Traced here: a dict kept on a tf.Module becomes a tracked wrapper tf.function rejects.
        self.concrete_step = self.step.get_concrete_function(specs)

    def signatures(self):
        return {STEP: self.concrete_step}


def convert(model, kind, precision=FLOAT32, representative=None):
    """Convert a Keras clip model (kind 'clip') or streaming model (the others) to TFLite bytes.

    Args:
        model: `build_video_classifier(...)` output for 'clip'; for 'stream' and
            'stream_state', `tsm_keras.streaming.build_streaming_model(...)` output.
        kind: 'clip', 'stream' or 'stream_state'. 'stream' is the 'stream_state' model with
            its buffers moved into resource variables (`tsm_keras.export.variables`).
        precision: 'float32', 'float16' or 'int8'.
        representative: for int8, a callable returning an iterator of
            `(signature key, {input name: float32 array})` samples of the clip model (for
            'clip') or of the explicit-state model (for both streaming kinds); see
            `tsm_keras.export.calibration.representative`.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}. Received: precision={precision!r}")
    if precision == INT8 and representative is None:
        raise ValueError("int8 conversion needs `representative` calibration samples")
    if kind == STREAM:
        return with_resource_variables(convert(model, STREAM_STATE, precision, representative))
    module = _ClipExport(model) if kind == CLIP else _ExplicitExport(model)
    signatures = module.signatures()
    with tempfile.TemporaryDirectory(prefix="tsm_savedmodel_") as saved:
        tf.saved_model.save(module, saved, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=list(signatures))
        if precision == FLOAT16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == INT8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            # int8 at the boundary too: a frame is int8 (pixel - 128: the calibrated input
            # range is pinned to [0, 255]) and the buffers go out and come back unchanged.
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()
