"""The ONNX and OpenVINO IR files in ONNX Runtime and OpenVINO, behind the LiteRT runners' interface.

    runner = open_model("runs/x/tflite/stream_state_float32.onnx", "onnxruntime")
    runner.reset(); logits = runner.step(frame)

- `SessionClipRunner(path, runtime)`: `runner(clip)`, clip `(T, H, W, 3)` raw RGB -> logits `(K,)`.
- `SessionStreamRunner(path, runtime)`: `reset()`, `step(frame)` -> logits `(K,)`, `run(frames)`;
  it keeps the buffers and feeds each `<name>_next` output back as input `<name>`.

Both carry `kind`, `name`, `input_size` and `output`, as `ClipRunner` and `StreamRunner` do, so
the checks of `tsm_keras.export.verify` and the streaming app take them unchanged.
`open_model(path, runtime)` and `stream_runner(path, runtime)` pick the runner for any runtime,
LiteRT included; `find_model` picks a run's file for a runtime.

OpenVINO runs on its CPU plugin with float32 arithmetic asked for explicitly: on CPUs with
bfloat16 units it would otherwise compute in bfloat16.
"""

import os
from pathlib import Path

import numpy as np

from tsm_keras.export.benchmark import default_threads
from tsm_keras.export.kinds import (
    CLIP,
    CLIP_INPUT,
    EXTENSIONS,
    FLOAT32,
    LITERT,
    NEXT,
    ONNXRUNTIME,
    OPENVINO,
    RUNTIMES,
    STREAM,
    STREAM_STATE,
    file_name,
)
from tsm_keras.export.runtime import ModelKindError
from tsm_keras.streaming import FRAME, LOGITS

EXPORT_FOLDER = "tflite"  # RUN/tflite/: every format's files, labels.txt and report.json


class ModelFileError(ValueError):
    """A model file that its runtime cannot load (corrupted, truncated, not that format)."""


def _shape(dims):
    return [int(d) if isinstance(d, (int, np.integer)) else -1 for d in dims]


class _OnnxRuntime:
    """An onnxruntime.InferenceSession on the CPU: `inputs`, `outputs` ({name: shape}), `session(feeds)`."""

    def __init__(self, path, threads):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors are raised; its warnings are not ours to show
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it: {_first_line(error)}") from error
        self.inputs = {i.name: _shape(i.shape) for i in self.session.get_inputs()}
        self.outputs = {o.name: _shape(o.shape) for o in self.session.get_outputs()}
        self.names = list(self.outputs)

    def __call__(self, feeds):
        return dict(zip(self.names, self.session.run(self.names, feeds)))


class _OpenVino:
    """An OpenVINO model compiled for the CPU plugin in float32, with one infer request."""

    def __init__(self, path, threads):
        import openvino

        core = openvino.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        try:
            compiled = core.compile_model(core.read_model(path), "CPU", config)
        except RuntimeError as error:
            raise ModelFileError(f"{path}: OpenVINO cannot load it: {_first_line(error)}") from error
        self.request = compiled.create_infer_request()
        self.inputs = {port.get_any_name(): _shape(port.get_partial_shape().to_shape()) for port in compiled.inputs}
        # An output has several names (the TensorFlow op's too): take the one the converter gave.
        self.ports = {_our_name(port.get_names()): port for port in compiled.outputs}
        self.outputs = {name: _shape(port.get_partial_shape().to_shape()) for name, port in self.ports.items()}

    def __call__(self, feeds):
        result = self.request.infer(feeds)
        return {name: np.asarray(result[port]) for name, port in self.ports.items()}


def _our_name(names):
    ours = [n for n in names if n == LOGITS or n.endswith(NEXT)]
    return ours[0] if ours else sorted(names)[0]


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


SESSIONS = {ONNXRUNTIME: _OnnxRuntime, OPENVINO: _OpenVino}


def kind_of(inputs, outputs, name="model"):
    """'clip' or 'stream_state' from the input and output names of an ONNX or OpenVINO model."""
    if set(inputs) == {CLIP_INPUT} and LOGITS in outputs:
        return CLIP
    states = set(inputs) - {FRAME}
    if FRAME in inputs and LOGITS in outputs and states and {s + NEXT for s in states} <= set(outputs):
        return STREAM_STATE
    raise ModelKindError(
        f"{name}: not a tsm_keras video model (inputs {sorted(inputs)}, outputs {sorted(outputs)}); expected a "
        f"clip model (input 'clip') or an explicit-state streaming model (inputs 'frame' and 'state_*', "
        f"outputs 'logits' and 'state_*{NEXT}'), as convert_run(formats=...) writes them"
    )


def load(path, runtime, threads):
    """The loaded model file in `runtime` ('onnxruntime' or 'openvino'), `threads` CPU threads."""
    if runtime not in SESSIONS:
        raise ValueError(f"`runtime` must be one of {sorted(SESSIONS)}. Received: runtime={runtime!r}")
    path, extension = str(path), EXTENSIONS[RUNTIMES[runtime]]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such {extension} file")
    if not path.endswith(extension):
        raise ModelFileError(f"{path}: {runtime} runs {extension} files, not {Path(path).suffix or 'suffix-less'} ones")
    return SESSIONS[runtime](path, threads)


class _SessionRunner:
    def __init__(self, path, runtime, threads=None, name=None, session=None):
        self.path, self.runtime = str(path), runtime
        self.name = name or self.path
        self.threads = threads or default_threads()
        self.session = session or load(path, runtime, self.threads)
        self.kind = kind_of(self.session.inputs, self.session.outputs, self.name)
        self.output = {"shape": self.session.outputs[LOGITS], "dtype": np.float32}

    @property
    def size_bytes(self):
        """Bytes of the model file(s): an OpenVINO .xml and its .bin."""
        files = [self.path] + ([str(Path(self.path).with_suffix(".bin"))] if self.runtime == OPENVINO else [])
        return sum(os.path.getsize(f) for f in files if os.path.isfile(f))


class SessionClipRunner(_SessionRunner):
    """A clip model in ONNX Runtime or OpenVINO: `runner(clip)` -> float logits (K,)."""

    def __init__(self, path, runtime, threads=None, name=None, session=None):
        super().__init__(path, runtime, threads, name, session)
        if self.kind != CLIP:
            raise ModelKindError(f"{self.name}: a {self.kind} model, not a clip model")
        self.input = {"shape": self.session.inputs[CLIP_INPUT], "dtype": np.float32}
        self.num_segments, self.input_size = self.input["shape"][1], self.input["shape"][2]

    def __call__(self, clip):
        return self.session({CLIP_INPUT: np.asarray(clip, "float32")[None]})[LOGITS][0]


class SessionStreamRunner(_SessionRunner):
    """An explicit-state streaming model in ONNX Runtime or OpenVINO: `reset()`, then
    `step(frame)` -> float logits (K,) of this frame."""

    def __init__(self, path, runtime, threads=None, name=None, session=None):
        super().__init__(path, runtime, threads, name, session)
        if self.kind != STREAM_STATE:
            raise ModelKindError(
                f"{self.name}: a {self.kind} model (input 'clip' {self.session.inputs.get(CLIP_INPUT)}), not a "
                f"streaming model; pass a stream_state_*{EXTENSIONS[RUNTIMES[runtime]]} written by tflite/convert.py"
            )
        self.input = {"shape": self.session.inputs[FRAME], "dtype": np.float32}
        self.input_size = self.input["shape"][1]
        self.state_shapes = {k: v for k, v in self.session.inputs.items() if k != FRAME}
        self.states = None
        self.reset()

    def reset(self):
        """Zero buffers: the next frame is the first of a new video."""
        self.states = {name: np.zeros(shape, "float32") for name, shape in self.state_shapes.items()}

    def step(self, frame):
        """Logits of one frame `(H, W, 3)` (raw RGB); the buffers advance by one frame."""
        out = self.session({FRAME: np.asarray(frame, "float32")[None], **self.states})
        self.states = {name: out[name + NEXT] for name in self.states}
        return out[LOGITS][0]

    def run(self, frames):
        """Per-frame logits `(T, K)` of frames `(T, H, W, 3)`, continuing from the current state."""
        return np.stack([self.step(frame) for frame in frames])


def open_model(path, runtime=LITERT, threads=None, name=None):
    """A clip or streaming runner for a model file, by its kind, in `runtime` ('litert',
    'onnxruntime' or 'openvino')."""
    if runtime == LITERT:
        from tsm_keras.export.runtime import open_model as open_litert

        return open_litert(str(path), threads)
    threads = threads or default_threads()
    session = load(path, runtime, threads)
    kind = kind_of(session.inputs, session.outputs, name or str(path))
    runner = SessionClipRunner if kind == CLIP else SessionStreamRunner
    return runner(path, runtime, threads, name, session)


def stream_runner(path, runtime=LITERT, threads=None, accelerator="cpu"):
    """A streaming runner for a model file in `runtime` (ModelKindError for a clip model);
    `accelerator="gpu"`: LiteRT's GPU accelerator."""
    if runtime == LITERT:
        from tsm_keras.export.runtime import StreamRunner

        return StreamRunner(str(path), threads=threads, accelerator=accelerator)
    if accelerator != "cpu":
        raise ValueError(f"`accelerator={accelerator!r}` is LiteRT's GPU accelerator, not {runtime}'s")
    return SessionStreamRunner(path, runtime, threads)


def find_model(path, runtime=LITERT, kind=None, precision=FLOAT32):
    """The model file to run: `path` itself if it is a file of `runtime`'s format, or, for a
    run directory or its export folder, its `kind` file of that format (default: the streaming
    model that runtime runs: `stream_*.tflite` for LiteRT, `stream_state_*` for the others).

    Raises FileNotFoundError or ModelFileError naming the file and the command that writes it.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"`runtime` must be one of {sorted(RUNTIMES)}. Received: runtime={runtime!r}")
    file_format = RUNTIMES[runtime]
    extension = EXTENSIONS[file_format]
    path = Path(path)
    if path.is_dir():
        folder = path / EXPORT_FOLDER if (path / EXPORT_FOLDER).is_dir() else path
        kind = kind or (STREAM if runtime == LITERT else STREAM_STATE)
        found = folder / file_name(kind, precision, file_format)
        if not found.is_file():
            flag = "" if runtime == LITERT else f" --formats tflite {file_format}"
            raise FileNotFoundError(
                f"{folder}: no {found.name} for {runtime}; write it with python tflite/convert.py RUN_DIR{flag}"
            )
        return str(found)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file or run directory")
    if path.suffix != extension:
        raise ModelFileError(
            f"{path}: a {path.suffix or 'suffix-less'} file, but runtime {runtime!r} runs {extension} files "
            f"(pass the {extension} file, or the run directory to pick it)"
        )
    return str(path)
