"""LiteRT latency on this machine: warm-up, repeats, median and spread, per signature.

The explicit-state model is timed as an app runs it: each call gets the previous call's
buffers. Times include the Python signature-runner call (setting inputs, reading outputs),
a few microseconds, which matters only for the smallest models.
"""

import os
import time

import numpy as np

from tsm_keras.export.kinds import CLIP, STEP, STREAM, STREAM_STATE
from tsm_keras.export.runtime import ACCELERATORS, CPU, GPU, interpreter, kind_of, read_bytes
from tsm_keras.streaming import FRAME


def _random_input(detail, rng):
    dtype, shape = detail["dtype"], detail["shape"]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(0, 255, size=shape).astype(dtype)


def summarize(seconds):
    """Milliseconds: median, mean, min, max, 10th and 90th percentiles."""
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "p10_ms": float(np.percentile(ms, 10)),
        "p90_ms": float(np.percentile(ms, 90)),
        "runs": int(ms.size),
    }


def default_threads():
    """Threads used when none are given: the cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def benchmark(model, threads=None, signature=None, warmup=5, repeats=30, seed=0, accelerator=CPU):
    """Latency of each signature of a .tflite (path or bytes).

    Args:
        threads: interpreter threads (default `default_threads()`; CPU only).
        signature: time only this signature (default: every signature of the model).
        warmup, repeats: untimed and timed calls (on the GPU the first call compiles its shaders).
        accelerator: 'cpu' (the Interpreter, XNNPACK) or 'gpu' (LiteRT's GPU accelerator:
            `tsm_keras.export.gpu`; the model must run on it entirely).

    Returns `{"kind", "accelerator", "threads", "signatures": {name: summarize(...)}}`, and
    on the GPU `"device"` (as LiteRT names it) and `"software_device"` (llvmpipe: CPU time,
    not a GPU's).
    """
    if accelerator not in ACCELERATORS:
        raise ValueError(f"`accelerator` must be one of {ACCELERATORS}. Received: accelerator={accelerator!r}")
    content = read_bytes(model)
    threads = threads or default_threads()
    litert = interpreter(content, threads)
    compiled = None
    if accelerator == GPU:
        from tsm_keras.export import gpu

        compiled = gpu.compile_model(content, name=model if isinstance(model, str) else "model")
    signatures = litert.get_signature_list()
    kind = kind_of(signatures, model if isinstance(model, str) else "model")
    names = [signature] if signature else sorted(signatures)
    unknown = [n for n in names if n not in signatures]
    if unknown:
        raise ValueError(
            f"{model if isinstance(model, str) else 'model'}: no signature {unknown[0]!r}; it has {sorted(signatures)}"
        )
    rng = np.random.default_rng(seed)
    results = {}
    for name in names:
        runner = litert.get_signature_runner(name)
        if compiled is not None:
            runner = gpu.SignatureRunner(compiled, name, runner)
        inputs = {k: _random_input(d, rng) for k, d in runner.get_input_details().items()}
        if kind == STREAM_STATE:
            # Zero buffers to start with (real zero: the zero point when quantized).
            for key, detail in runner.get_input_details().items():
                if key != FRAME:
                    scale, zero = detail["quantization"]
                    inputs[key] = np.full(detail["shape"], zero if scale else 0, detail["dtype"])
        times = []
        for index in range(warmup + repeats):
            start = time.perf_counter()
            outputs = runner(**inputs)
            elapsed = time.perf_counter() - start
            if kind == STREAM_STATE:
                inputs.update({k: v for k, v in outputs.items() if k in inputs and k != FRAME})
            if index >= warmup:
                times.append(elapsed)
        results[name] = summarize(times)
    result = {"kind": kind, "accelerator": accelerator, "threads": threads, "signatures": results}
    if compiled is not None:
        result.update(device=gpu.adapter(), software_device=gpu.is_software(gpu.adapter()))
    return result


def benchmark_runner(runner, warmup=5, repeats=30, seed=0):
    """Latency of one call of a runner of any runtime (`tsm_keras.export.sessions.open_model`):
    `runner(clip)` for a clip model, `runner.step(frame)` for a streaming model, each step fed
    the previous step's buffers as an app feeds them.

    Returns `summarize(...)` with the runner's `kind` and `threads`.
    """
    rng = np.random.default_rng(seed)
    shape = [int(d) for d in runner.input["shape"]][1:]
    sample = rng.uniform(0, 255, size=shape).astype("float32")
    call = runner if runner.kind == CLIP else runner.step
    if runner.kind != CLIP:
        runner.reset()
    times = []
    for index in range(warmup + repeats):
        start = time.perf_counter()
        call(sample)
        elapsed = time.perf_counter() - start
        if index >= warmup:
            times.append(elapsed)
    return {"kind": runner.kind, "threads": getattr(runner, "threads", None), **summarize(times)}


def benchmark_model_flags(model):
    """Flags of the C++ benchmark_model tool for this model, besides --graph and threads.

    - clip: none (one signature, one input).
    - stream: `--signature_to_run_for=step` (the model has `step` and `reset`).
    - stream_state: the input tensor names and shapes (`--input_layer`,
      `--input_layer_shape`).
    """
    litert = interpreter(read_bytes(model))
    signatures = litert.get_signature_list()
    kind = kind_of(signatures, model if isinstance(model, str) else "model")
    if kind == STREAM:
        return [f"--signature_to_run_for={STEP}"]
    if kind != STREAM_STATE:
        return []
    details = sorted(litert.get_signature_runner(STEP).get_input_details().items(), key=lambda item: item[1]["index"])
    tensors = {d["index"]: d["name"] for d in litert.get_input_details()}
    names = [tensors[d["index"]] for _, d in details]
    shapes = [",".join(str(int(v)) for v in d["shape"]) for _, d in details]
    return [f"--input_layer={','.join(names)}", f"--input_layer_shape={':'.join(shapes)}"]
