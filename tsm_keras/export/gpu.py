"""LiteRT's GPU accelerator: compile an exported model for it, run it, check it against the CPU.

ai-edge-litert's `CompiledModel` compiles a .tflite for its GPU accelerator (WebGPU; on Linux
over Vulkan). A model is *fully accelerated* when it compiles for the GPU alone, with no CPU
fallback: every operator runs on the GPU. `compile_model` asks for exactly that, so a model
that needs the CPU for one operator is refused, with the accelerator's own reason (e.g.
`RESHAPE: Tensor dimensions must be less than 5`, or `ASSIGN_VARIABLE: Operation is not
supported` for the resource-variable streaming model).

The GPU computes in float16 by default (what a phone's GPU does), in float32 with
`enforce_f32=True`; int8 models are dequantized and computed in float there too.

Without a GPU, Mesa's software Vulkan device (llvmpipe; `mesa-vulkan-drivers` 25 or later,
from Debian's bookworm-backports: Debian 12's own 22.x is refused) runs the same shaders on
the CPU. That checks what the GPU computes, not how fast a GPU is: its times are not GPU times.

    runner = StreamRunner("stream_state_float32.tflite", accelerator="gpu")  # tsm_keras.export.runtime
    report = check_models({(kind, precision): content, ...}, verification_clips, validation)
"""

import contextlib
import functools
import os
import re
import sys
import tempfile

import numpy as np

from tsm_keras.export.kinds import CLIP, FLOAT16, FLOAT32, file_name

GPU_NOTE = (
    "LiteRT's GPU accelerator (CompiledModel, GPU only: a model is fully accelerated when it "
    "compiles with no CPU fallback). 'default': the GPU's default float16 arithmetic, on the "
    "validation clips against the same file on the CPU (XNNPACK): top-1 and the share of clips "
    "with the same top-1; a streaming model: T frames from reset, mean logits. 'enforce_f32': "
    "float32 arithmetic, max abs logit difference from the CPU on the verification clips (every "
    "frame, for a streaming model). A software device (llvmpipe) checks the arithmetic only: "
    "no time here is a GPU time"
)


class GpuError(RuntimeError):
    """A model cannot run on the GPU accelerator (no GPU device, or an operator it refuses).
    `reason`: the accelerator's own words."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason or message


class ShaderError(GpuError):
    """The accelerator took every operator, but a shader it generated does not compile."""


def _shader_errors(log):
    """WebGPU's validation errors in the log: the shader error and the line of shader source."""
    lines = log.splitlines()
    found = []
    for index, line in enumerate(lines):
        if "Error while parsing WGSL" in line:
            source = lines[index + 1].strip() if index + 1 < len(lines) else ""
            error = f"{line[line.index('Error while parsing WGSL') :].strip()} in `{source}`"
            if error not in found:
                found.append(error)
    return "; ".join(found)


@contextlib.contextmanager
def _native_log():
    """Captures what the native LiteRT and WebGPU code writes to file descriptor 2 (its
    reasons for refusing a model, the adapter it selected) instead of printing it.
    Yields a list that holds the captured text afterwards."""
    captured = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            captured.append(log.read().decode("utf-8", "replace"))


_ADAPTER = re.compile(r"Selected adapter: (.+)")
_OPERATOR = re.compile(r"([A-Z][A-Z0-9_]*): (.+)")  # "RESHAPE: Tensor dimensions must be less than 5. clip"
_adapter = []  # the adapter LiteRT selected: it logs it once per process, at its first GPU compile


def _reason(log, error):
    """The accelerator's own reasons in its log (operators it refuses, a device it cannot
    make), else the exception's text."""
    found = []
    for line in (line.strip() for line in log.splitlines()):
        operator = _OPERATOR.match(line)
        if operator and operator.group(1) not in ("INFO", "WARNING", "ERROR"):
            reason = line
        elif "Failed to" in line and not line.startswith("WARNING"):
            reason = line[line.index("Failed to") :]
        else:
            continue
        if reason not in found:
            found.append(reason)
    return "; ".join(found) if found else " ".join(str(error).split())


# Where Vulkan loaders look for Mesa's software driver (llvmpipe) and its ICD manifest.
_ICD_FOLDERS = ("/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/etc/vulkan/icd.d")


@functools.cache
def _isolate_software_vulkan():
    """Loads Mesa's llvmpipe Vulkan driver with RTLD_DEEPBIND when TensorFlow is loaded.

    TensorFlow exports the LLVM it is built with to the whole process, and llvmpipe, itself
    built on the system's LLVM, would call those functions instead of its own: a
    segmentation fault in `vkCreateDevice` (TensorFlow 2.21, Mesa 25.0). Loaded first with
    RTLD_DEEPBIND, the driver binds to its own LLVM; the Vulkan loader then reuses it. A
    process without TensorFlow (an app) needs none of this.
    """
    if "tensorflow" not in sys.modules or not hasattr(os, "RTLD_DEEPBIND"):
        return
    import ctypes
    import glob
    import json

    for manifest in sorted(p for folder in _ICD_FOLDERS for p in glob.glob(os.path.join(folder, "lvp_icd*.json"))):
        try:
            with open(manifest) as file:
                library = json.load(file)["ICD"]["library_path"]
            ctypes.CDLL(library, mode=os.RTLD_NOW | os.RTLD_DEEPBIND)
            return
        except (OSError, ValueError, KeyError):
            continue


def compile_model(content, enforce_f32=False, name="model"):
    """A `CompiledModel` of .tflite bytes on the GPU accelerator alone. Raises `GpuError`
    with the accelerator's reason when it cannot (no device, an operator it refuses)."""
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import GpuOptions, Options

    _isolate_software_vulkan()
    options = Options(hardware_accelerators=HardwareAccelerator.GPU, gpu_options=GpuOptions(enforce_f32=enforce_f32))
    with _native_log() as log:
        try:
            compiled = CompiledModel.from_buffer(bytes(content), options=options)
            error = None if compiled.is_fully_accelerated() else "not fully accelerated"
        except RuntimeError as raised:
            error = raised
    found = _ADAPTER.search(log[0])
    if found and not _adapter:
        _adapter.append(found.group(1).strip())
    if error is not None:
        reason = _reason(log[0], error)
        raise GpuError(f"{name}: refused by the GPU accelerator: {reason}", reason)
    shader = _shader_errors(log[0])
    if shader:
        raise ShaderError(f"{name}: the GPU accelerator takes every operator, but a shader fails: {shader}", shader)
    return compiled


class SignatureRunner:
    """One signature of a `CompiledModel`, called like the Interpreter's signature runner:
    `runner(**inputs) -> {output name: array}`. `details` is the Interpreter's runner of the
    same signature: it gives names, shapes, dtypes and quantization."""

    def __init__(self, compiled, key, details):
        self.compiled, self.key = compiled, key
        self._inputs, self._outputs = details.get_input_details(), details.get_output_details()
        self.input_buffers = {n: compiled.create_input_buffer_by_name(key, n) for n in self._inputs}
        self.output_buffers = {n: compiled.create_output_buffer_by_name(key, n) for n in self._outputs}

    def get_input_details(self):
        return self._inputs

    def get_output_details(self):
        return self._outputs

    def __call__(self, **inputs):
        for name, detail in self._inputs.items():
            self.input_buffers[name].write(np.ascontiguousarray(inputs[name], detail["dtype"]))
        self.compiled.run_by_name(self.key, self.input_buffers, self.output_buffers)
        out = {}
        for name, detail in self._outputs.items():
            shape = tuple(int(d) for d in detail["shape"])
            out[name] = self.output_buffers[name].read(int(np.prod(shape)), detail["dtype"]).reshape(shape)
        return out


def _probe_model():
    """A one-operator float model (x + x) that every GPU accelerator runs."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 2, 2, 4), tf.float32)], autograph=False)
    def double(x):
        return x + x

    return tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double).convert()


@functools.cache
def device():
    """`(adapter, None)` when a GPU device can be made (adapter: the device LiteRT selected,
    as it names it), `(None, reason)` when not: the accelerator's or the exception's words."""
    try:
        compile_model(_probe_model(), name="a one-operator model")
    except (GpuError, ImportError, OSError) as error:
        return None, str(error)
    return adapter() or "unnamed GPU device", None


def adapter():
    """The GPU device LiteRT selected in this process (as it names it), None before the first
    compile or when it did not say."""
    return _adapter[0] if _adapter else None


def is_software(adapter):
    """Whether the adapter is a software device (llvmpipe, SwiftShader): the CPU, not a GPU."""
    return bool(adapter) and bool(re.search(r"software|llvmpipe|swiftshader", adapter, re.IGNORECASE))


def outputs(runner, clips):
    """Logits of a clip runner `(N, K)`, or of a streaming runner for every frame of every
    clip, each clip from reset `(N * T, K)`."""
    if runner.kind == CLIP:
        return np.stack([runner(clip) for clip in clips])
    per_frame = []
    for clip in clips:
        runner.reset()
        per_frame.append(runner.run(clip))
    return np.concatenate(per_frame)


def check_model(content, kind, precision, check_clips, validation=None):
    """One model on the GPU accelerator against the same file on the CPU.

    Returns `{"fully_accelerated": False, "refused": reason}`, or for a model that runs:
    `enforce_f32` max abs difference on `check_clips` (every frame for a streaming model;
    with the float bound for float32 and float16 files, whose weights both sides read the
    same), the default precision's max abs difference there, and with `validation`
    `(clips, labels)`: top-1 on the GPU and the CPU and their agreement, in %.
    """
    from tsm_keras.export.runtime import ClipRunner, StreamRunner

    name = file_name(kind, precision)
    runner = ClipRunner if kind == CLIP else StreamRunner
    try:
        runner(content, name=name, accelerator="gpu")
    except ShaderError as error:
        return {"fully_accelerated": True, "failed": f"shader: {error.reason}"}
    except GpuError as error:
        return {"fully_accelerated": False, "refused": error.reason}
    failures = []
    # A model that compiled can still fail its first run on a software device under load (seen:
    # "Failed to lock custom tensor buffer" while llvmpipe compiled the shaders); its second try
    # starts from Mesa's shader cache. The first failure is reported with the numbers.
    for _ in range(2):
        try:
            try:
                exact = runner(content, name=name, accelerator="gpu", enforce_f32=True)
            except ShaderError as error:  # seen: clip_float16 with enforce_f32 (LiteRT 2.3)
                exact = error
            result = _measure(
                runner(content, name=name, accelerator="gpu"),
                exact,
                runner(content, name=name),
                precision,
                check_clips,
                validation,
            )
            return {**result, "failed_first": failures[0]} if failures else result
        except (GpuError, RuntimeError) as error:  # compiled, but failed to run
            failures.append(" ".join(str(error).split()))
    return {"fully_accelerated": True, "failed": failures[-1], "failed_first": failures[0]}


def _measure(default, exact, cpu, precision, check_clips, validation):
    from tsm_keras.export.verify import float_bound, predict_clips

    reference = outputs(cpu, check_clips)
    if isinstance(exact, ShaderError):
        f32 = {"failed": f"shader: {exact.reason}"}
    else:
        f32 = {"max_abs_difference_vs_cpu": float(np.max(np.abs(outputs(exact, check_clips) - reference)))}
    result = {
        "fully_accelerated": True,
        "enforce_f32": f32,
        "default": {"max_abs_difference_vs_cpu": float(np.max(np.abs(outputs(default, check_clips) - reference)))},
        "logit_scale": float(np.max(np.abs(reference))),
        "verification_clips": len(check_clips),
    }
    if precision in (FLOAT32, FLOAT16) and "failed" not in f32:
        bound = float_bound(reference)
        result["enforce_f32"].update(
            bound=bound, within_bound=result["enforce_f32"]["max_abs_difference_vs_cpu"] <= bound
        )
    if validation is not None:
        clips, labels = validation
        on_gpu, on_cpu = predict_clips(default, clips), predict_clips(cpu, clips)
        labels = np.asarray(labels)
        result["default"].update(
            top1=float(np.mean(np.argmax(on_gpu, 1) == labels) * 100),
            top1_cpu=float(np.mean(np.argmax(on_cpu, 1) == labels) * 100),
            agreement_with_cpu=float(np.mean(np.argmax(on_gpu, 1) == np.argmax(on_cpu, 1)) * 100),
            validation_max_abs_difference_vs_cpu=float(np.max(np.abs(on_gpu - on_cpu))),
            validation_clips=len(clips),
        )
    return result


def check_models(written, check_clips, validation=None, log=print, software=True):
    """`report["gpu"]`: every model of `written` (`{(kind, precision): bytes}`) through
    `check_model`, or `{"checked": False, "not_checked": reason}` where no GPU device can be made
    (or, with `software=False`, where the only one is a software device such as Mesa's llvmpipe,
    which compiles each model's shaders for minutes)."""
    adapter, reason = device()
    if adapter is not None and not software and is_software(adapter):
        reason = f"the only Vulkan device is a software one ({adapter}); gpu_check='always' checks on it"
        adapter = None
    if adapter is None:
        log(f"GPU accelerator: not checked ({reason})")
        return {"checked": False, "not_checked": reason}
    log(f"checking every model on the GPU accelerator ({adapter})")
    models = {}
    for (kind, precision), content in written.items():
        models[file_name(kind, precision)] = result = check_model(content, kind, precision, check_clips, validation)
        if not result["fully_accelerated"]:
            log(f"  {file_name(kind, precision)}: not on the GPU ({result['refused']})")
        elif "failed" in result:
            log(f"  {file_name(kind, precision)}: compiled for the GPU, failed to run ({result['failed']})")
        elif "top1" in result["default"]:
            log(
                f"  {file_name(kind, precision)}: fully accelerated; top-1 {result['default']['top1']:.2f} "
                f"(CPU {result['default']['top1_cpu']:.2f}), agreement {result['default']['agreement_with_cpu']:.2f}%"
            )
        else:
            log(f"  {file_name(kind, precision)}: fully accelerated")
    return {
        "checked": True,
        "device": adapter,
        "software_device": is_software(adapter),
        "note": GPU_NOTE,
        "models": models,
    }
