"""Running the exported models in LiteRT (ai_edge_litert), whatever their kind and precision.

`open_model(path)` reads a .tflite, finds its kind from its signatures, and returns a runner
with one interface per kind:

- `ClipRunner(clip)`: clip `(T, H, W, 3)` raw RGB -> float logits `(K,)`.
- `StreamRunner.step(frame)`: frame `(H, W, 3)` raw RGB -> float logits `(K,)` of this
  frame; `StreamRunner.reset()` zeros the buffers. For the explicit-state kind it keeps the
  buffers itself and feeds each output back unchanged, in the model's own dtype.

Quantized inputs are quantized from raw pixel values with the model's own input scale and
zero point, and quantized outputs dequantized, so callers always see raw frames and float
logits.

`accelerator="cpu"` (the default) runs the model in the LiteRT Interpreter (XNNPACK);
`accelerator="gpu"` compiles it for LiteRT's GPU accelerator, entirely
(`tsm_keras.export.gpu`), and runs it there with the same interface.
"""

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils

from tsm_keras.export.kinds import CLIP, CLIP_INPUT, RESET, STEP, STREAM, STREAM_CPU_NOTE, STREAM_STATE
from tsm_keras.streaming import FRAME, LOGITS

CPU, GPU = "cpu", "gpu"
ACCELERATORS = (CPU, GPU)


class ModelKindError(ValueError):
    """The .tflite is not the kind of model the caller needs."""


def read_bytes(model):
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if not os.path.isfile(model):
        raise FileNotFoundError(f"{model}: no such .tflite file")
    with open(model, "rb") as file:
        return file.read()


def interpreter(model, threads=None):
    """An ai_edge_litert Interpreter for a path or bytes (XNNPACK on by default)."""
    return Interpreter(model_content=read_bytes(model), num_threads=threads)


def kind_of(signatures, name="model"):
    """'clip', 'stream' or 'stream_state' from a `get_signature_list()` dict."""
    keys = set(signatures)
    if keys == {STEP, RESET}:
        return STREAM
    if keys == {STEP} and FRAME in signatures[STEP]["inputs"]:
        return STREAM_STATE
    if len(keys) == 1 and CLIP_INPUT in next(iter(signatures.values()))["inputs"]:
        return CLIP
    raise ModelKindError(
        f"{name}: not a tsm_keras video model (signatures {sorted(keys)}); expected a clip "
        "model (input 'clip') or a streaming model (signature 'step', input 'frame')"
    )


def signatures(model):
    """Inputs and outputs of every signature of a .tflite (path or bytes), as ai_edge_litert
    reads them: `{key: {"inputs": {name: {"shape", "dtype", "quantization"}}, "outputs": ...}}`,
    quantization `[scale, zero point]` (`[0.0, 0]` when not quantized)."""
    litert = interpreter(model)

    def tensors(details):
        return {
            name: {
                "shape": [int(d) for d in detail["shape"]],
                "dtype": np.dtype(detail["dtype"]).name,
                "quantization": list(quantization(detail)),
            }
            for name, detail in details.items()
        }

    out = {}
    for key in sorted(litert.get_signature_list()):
        runner = litert.get_signature_runner(key)
        out[key] = {"inputs": tensors(runner.get_input_details()), "outputs": tensors(runner.get_output_details())}
    return out


def operators(model):
    """Sorted operator names of every subgraph of a .tflite (path or bytes)."""
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(read_bytes(model)))
    names = set()
    for subgraph in tree.subgraphs:
        for op in subgraph.operators:
            code = tree.operatorCodes[op.opcodeIndex]
            name = flatbuffer_utils.opcode_to_name(tree, op.opcodeIndex)
            if name == "CUSTOM":
                custom = code.customCode
                name = "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom))
            names.add(name)
    return sorted(names)


def non_builtin_operators(model):
    """Custom and Flex (SELECT_TF_OPS) operators: what a stock LiteRT runtime cannot run."""
    return [name for name in operators(model) if name.startswith("CUSTOM") or name is None]


def _quantize(values, detail):
    """Raw values -> the input's dtype (quantized with its scale and zero point if integer)."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(values, dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    q = np.round(np.asarray(values, "float64") / scale + zero)
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(values, detail):
    if not np.issubdtype(detail["dtype"], np.integer):
        return np.asarray(values, "float32")
    scale, zero = detail["quantization"]
    return ((np.asarray(values, "float32") - zero) * scale).astype("float32")


def quantization(detail):
    """(scale, zero point) of a signature input or output, (0.0, 0) when not quantized."""
    scale, zero = detail["quantization"]
    return float(scale), int(zero)


class _Runner:
    """Args: model (a .tflite path or bytes), threads (CPU only), name (for messages),
    accelerator ('cpu' or 'gpu'), enforce_f32 (GPU only: float32 arithmetic instead of the
    GPU's default float16)."""

    def __init__(self, model, threads=None, name=None, accelerator=CPU, enforce_f32=False):
        if accelerator not in ACCELERATORS:
            raise ValueError(f"`accelerator` must be one of {ACCELERATORS}. Received: accelerator={accelerator!r}")
        self.name = name or (model if isinstance(model, str) else "model")
        self.content = read_bytes(model)
        # The interpreter reads the signatures and the quantization of inputs and outputs
        # (which the GPU's CompiledModel does not report), and runs the model on the CPU.
        self.interpreter = interpreter(self.content, threads)
        self.signatures = self.interpreter.get_signature_list()
        self.kind = kind_of(self.signatures, self.name)
        self.accelerator = accelerator
        self.compiled = None
        if accelerator == GPU:
            from tsm_keras.export import gpu  # loads LiteRT's GPU accelerator only when asked for

            try:
                self.compiled = gpu.compile_model(self.content, enforce_f32=enforce_f32, name=self.name)
            except gpu.GpuError as error:
                if self.kind != STREAM:
                    raise
                raise gpu.GpuError(f"{error} (a stream_* model is {STREAM_CPU_NOTE})", error.reason) from None

    def signature_runner(self, key):
        """`runner(**inputs) -> {output name: array}` for a signature, on this runner's accelerator."""
        runner = self.interpreter.get_signature_runner(key)
        if self.compiled is None:
            return runner
        from tsm_keras.export import gpu

        return gpu.SignatureRunner(self.compiled, key, runner)

    @property
    def size_bytes(self):
        return len(self.content)


class ClipRunner(_Runner):
    """A clip model: `runner(clip)` -> float logits (K,)."""

    def __init__(self, model, threads=None, name=None, accelerator=CPU, enforce_f32=False):
        super().__init__(model, threads, name, accelerator, enforce_f32)
        if self.kind != CLIP:
            raise ModelKindError(f"{self.name}: a {self.kind} model, not a clip model")
        self.signature = next(iter(self.signatures))
        self.runner = self.signature_runner(self.signature)
        self.input = self.runner.get_input_details()[CLIP_INPUT]
        self.output = self.runner.get_output_details()[LOGITS]
        # [T, H, W, 3]; files written before the input became 4-D take [1, T, H, W, 3].
        self.num_segments, self.input_size = int(self.input["shape"][-4]), int(self.input["shape"][-3])

    def __call__(self, clip):
        clip = np.asarray(clip).reshape(self.input["shape"])
        out = self.runner(**{CLIP_INPUT: _quantize(clip, self.input)})
        return _dequantize(out[LOGITS], self.output)[0]


class StreamRunner(_Runner):
    """A streaming model (either kind): `reset()`, then `step(frame)` -> float logits (K,)."""

    def __init__(self, model, threads=None, name=None, accelerator=CPU, enforce_f32=False):
        super().__init__(model, threads, name, accelerator, enforce_f32)
        if self.kind == CLIP:
            shape = list(
                self.interpreter.get_signature_runner(next(iter(self.signatures))).get_input_details()[CLIP_INPUT][
                    "shape"
                ]
            )
            raise ModelKindError(
                f"{self.name}: a clip model (input 'clip' {shape}), not a streaming model; "
                "pass a stream_*.tflite or stream_state_*.tflite written by tflite/convert.py"
            )
        self.runner = self.signature_runner(STEP)
        inputs = self.runner.get_input_details()
        self.input = inputs[FRAME]
        self.output = self.runner.get_output_details()[LOGITS]
        self.input_size = int(self.input["shape"][1])
        self.state_details = {k: v for k, v in inputs.items() if k != FRAME}
        self._reset = self.signature_runner(RESET) if self.kind == STREAM else None
        self.states = None
        self.reset()

    def reset(self):
        """Zero buffers: the next frame is the first of a new video."""
        if self._reset is not None:
            self._reset()
        else:
            # Real zero, quantized: the zero point of an int8 buffer.
            self.states = {k: _quantize(np.zeros(d["shape"]), d) for k, d in self.state_details.items()}

    def step(self, frame):
        """Logits of one frame `(H, W, 3)` (raw RGB); the buffers advance by one frame."""
        out = self.runner(**{FRAME: _quantize(np.asarray(frame)[None], self.input)}, **(self.states or {}))
        if self.states is not None:
            self.states = {k: out[k] for k in self.states}
        return _dequantize(out[LOGITS], self.output)[0]

    def run(self, frames):
        """Per-frame logits `(T, K)` of frames `(T, H, W, 3)`, continuing from the current state."""
        return np.stack([self.step(frame) for frame in frames])


def open_model(model, threads=None, accelerator=CPU, enforce_f32=False):
    """A `ClipRunner` or `StreamRunner` for a .tflite path or bytes, by the model's kind."""
    content = read_bytes(model)
    name = model if isinstance(model, str) else "model"
    kind = kind_of(interpreter(content).get_signature_list(), name)
    runner = ClipRunner if kind == CLIP else StreamRunner
    return runner(content, threads, name, accelerator, enforce_f32)
