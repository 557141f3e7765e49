"""Keras video models -> ONNX and OpenVINO IR: the clip model and the explicit-state streaming model.

Both formats get the same graph as the TFLite files (raw RGB in, normalisation inside), float32:

- `clip`: input `clip` [1, T, H, W, 3] -> output `logits` [1, K].
- `stream_state`: inputs `frame` [1, H, W, 3] and one NHWC buffer per temporal layer
  (`state_NN_<layer>`, zeros to start); outputs `logits` [1, K] of this frame and each new
  buffer as `state_NN_<layer>_next` (ONNX cannot give an output the name of an input).

The resource-variable `stream` kind has no counterpart: ONNX has no variables, and an app
(or ONNX Runtime, OpenVINO, TensorRT) holds the buffers itself.

The path, chosen for what works with TensorFlow 2.21 (docs/deploy.md, "How the files are
made"): a `tf.function` over the Keras model with named inputs and outputs, converted by
tf2onnx (ONNX, opset `OPSET`) and by `openvino.convert_model` (OpenVINO IR, weights kept
in float32). Keras' own `model.export(format="onnx")` runs the same tf2onnx but cannot
convert the streaming model, whose outputs reuse its input names.
"""

import importlib
import importlib.metadata
import os
import tempfile
from pathlib import Path

import tensorflow as tf

from tsm_keras.export.kinds import CLIP, CLIP_INPUT, NEXT, ONNX, OPENVINO, STREAM_STATE
from tsm_keras.streaming import FRAME, LOGITS, state_specs

OPSET = 17  # ONNX opset: ONNX Runtime >= 1.12, OpenVINO, TensorRT >= 8.5 read it
KINDS = (CLIP, STREAM_STATE)  # what ONNX and OpenVINO IR files hold
PACKAGES = {ONNX: ("tf2onnx", "onnx", "onnxruntime"), OPENVINO: ("openvino",)}


class MissingRuntimeError(ImportError):
    """A format's converter or runtime is not installed."""


def require(file_format):
    """Import check for a format's packages; raises `MissingRuntimeError` with the install line."""
    missing = []
    for package in PACKAGES[file_format]:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise MissingRuntimeError(
            f"{file_format} export needs {', '.join(missing)}: pip install 'tsm-keras[{file_format}]' "
            f"(or pip install {' '.join(missing)})"
        )


def versions(file_format):
    """`{package: version}` of a format's converter and runtime, for the report."""
    return {package: importlib.metadata.version(package) for package in PACKAGES[file_format]}


def next_name(state):
    """The output name of buffer `state` of an ONNX or OpenVINO explicit-state model."""
    return state + NEXT


def named_function(model, kind):
    """`(tf.function, input specs)`: the model with one named input per tensor and named outputs.

    The function calls the Keras model (its weights are variables, which both converters
    freeze into constants); inputs come in the order of the specs: `clip`, or `frame` and
    the buffers in network order.
    """
    if kind == CLIP:
        specs = [tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32, name=CLIP_INPUT)]

        def call(clip):
            return {LOGITS: model(clip, training=False)}

    elif kind == STREAM_STATE:
        frame = tf.TensorSpec((1,) + tuple(model.input[FRAME].shape[1:]), tf.float32, name=FRAME)
        specs = [frame] + [tf.TensorSpec((1,) + s.shape, s.dtype, name=s.name) for s in state_specs(model)]
        names = [spec.name for spec in specs]

        def call(*tensors):
            outputs = model(dict(zip(names, tensors)), training=False)
            return {(key if key == LOGITS else next_name(key)): value for key, value in outputs.items()}

    else:
        raise ValueError(f"`kind` must be one of {KINDS} for ONNX and OpenVINO. Received: kind={kind!r}")
    return tf.function(call, input_signature=specs), specs


def convert(model, kind, file_format):
    """A Keras clip model (kind 'clip') or streaming model ('stream_state') as ONNX or OpenVINO IR.

    Returns the files as `{extension: bytes}`: `{".onnx": ...}`, or `{".xml": ..., ".bin": ...}`
    (the OpenVINO graph and its weights, which must lie side by side under one name).
    """
    require(file_format)
    function, specs = named_function(model, kind)
    if file_format == ONNX:
        import tf2onnx

        proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=OPSET)
        return {".onnx": proto.SerializeToString()}
    if file_format == OPENVINO:
        import openvino

        converted = openvino.convert_model(function)
        with tempfile.TemporaryDirectory(prefix="tsm_openvino_") as folder:
            path = os.path.join(folder, "model.xml")
            # save_model stores float16 weights unless told otherwise: keep the float32 model.
            openvino.save_model(converted, path, compress_to_fp16=False)
            return {suffix: Path(folder, "model" + suffix).read_bytes() for suffix in (".xml", ".bin")}
    raise ValueError(f"`file_format` must be {ONNX!r} or {OPENVINO!r}. Received: file_format={file_format!r}")
