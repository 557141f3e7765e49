"""The exported models on LiteRT's GPU accelerator, on this machine's Vulkan device: Mesa's
software llvmpipe where there is no GPU (.ci/run installs it). It runs the GPU's shaders on
the CPU, so it checks what a GPU computes, not how fast. The first run of each model compiles
its shaders (tens of seconds on llvmpipe; Mesa caches them for later runs)."""

import json

import numpy as np
import pytest
from ai_edge_litert.tools import flatbuffer_utils

from tsm_keras.export import gpu
from tsm_keras.export.benchmark import benchmark
from tsm_keras.export.calibration import representative
from tsm_keras.export.kinds import CLIP, FLOAT32, INT8, STREAM, STREAM_STATE
from tsm_keras.export.runtime import ClipRunner, StreamRunner
from tsm_keras.export.tflite import convert
from tsm_keras.export.verify import float_bound, predict_clips
from tsm_keras.streaming import build_streaming_model


@pytest.fixture(scope="module")
def gpu_device():
    adapter, reason = gpu.device()
    if adapter is None:
        pytest.skip(f"no GPU device can be made here: {reason}")
    return adapter


def max_rank(content):
    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    return max(len(t.shape) for graph in tree.subgraphs for t in graph.tensors if t.shape is not None)


def agreement(a, b):
    return 100.0 * np.mean(np.argmax(a, 1) == np.argmax(b, 1))


def test_no_model_has_a_tensor_of_rank_5(float_models, int8_models):
    # The GPU accelerator refuses tensors of rank 5 ("RESHAPE: Tensor dimensions must be less
    # than 5"): the clip model takes one clip's frames as its batch, (T, H, W, 3).
    for models in (float_models, int8_models):
        assert {kind: max_rank(content) for kind, content in models.items()} == {CLIP: 4, STREAM: 4, STREAM_STATE: 4}
    assert list(ClipRunner(float_models[CLIP]).input["shape"]) == [4, 32, 32, 3]


def test_float32_with_enforce_f32_equals_the_cpu_for_the_clip_and_frame_by_frame(gpu_device, float_models, test_clips):
    expected = predict_clips(ClipRunner(float_models[CLIP]), test_clips)
    got = predict_clips(ClipRunner(float_models[CLIP], accelerator="gpu", enforce_f32=True), test_clips)
    assert np.max(np.abs(got - expected)) <= float_bound(expected)

    on_gpu = StreamRunner(float_models[STREAM_STATE], accelerator="gpu", enforce_f32=True)
    on_cpu = StreamRunner(float_models[STREAM_STATE])
    first = None
    for clip in test_clips:  # every frame; on the GPU the buffers are the GPU's own outputs
        on_gpu.reset(), on_cpu.reset()
        got, expected = on_gpu.run(clip), on_cpu.run(clip)
        assert np.max(np.abs(got - expected)) <= float_bound(expected)
        first = got if first is None else first
    on_gpu.reset()  # zero buffers again: the first clip gives its first numbers
    np.testing.assert_allclose(on_gpu.run(test_clips[0]), first, rtol=0, atol=1e-6)


def test_the_resource_variable_model_is_refused_and_said_to_be_for_the_cpu(gpu_device, float_models):
    with pytest.raises(gpu.GpuError, match=r"refused by the GPU accelerator: .*VAR.*for the CPU") as refused:
        StreamRunner(float_models[STREAM], accelerator="gpu")
    assert "ASSIGN_VARIABLE" in refused.value.reason


def test_default_precision_agrees_with_the_cpu_on_a_trained_model(gpu_device, sweeping_bars_model):
    """The GPU's default float16 arithmetic on a trained model's 200 validation clips: the
    same top-1 as the CPU's float32 on at least 99% of them, for the clip model and the
    explicit-state streaming model."""
    model, val = sweeping_bars_model["model"], sweeping_bars_model["val"]
    stream = build_streaming_model(model, batch_size=1)
    for kind, content in (
        (CLIP, convert(model, CLIP, FLOAT32)),
        (STREAM_STATE, convert(stream, STREAM_STATE, FLOAT32)),
    ):
        runner = ClipRunner if kind == CLIP else StreamRunner
        on_cpu = predict_clips(runner(content), val)
        on_gpu = predict_clips(runner(content, accelerator="gpu"), val)
        print(
            f"{kind}_float32 on the GPU at its default precision: agreement {agreement(on_gpu, on_cpu):.1f}%, "
            f"max |gpu - cpu| {np.max(np.abs(on_gpu - on_cpu)):.3f} (logits up to {np.max(np.abs(on_cpu)):.1f})"
        )
        assert agreement(on_gpu, on_cpu) >= 99.0, kind


def test_int8_on_the_gpu_follows_the_cpu_int8_kernels(gpu_device, sweeping_bars_model):
    """int8 models on the GPU: it dequantizes them and computes in float16, where the CPU's
    int8 kernels requantize after every operator, so the two differ by int8 rounding, not by
    float rounding, and only clips whose two best logits are that close can change.

    Measured (llvmpipe, this model's 200 validation clips): clip_int8 top-1 98.5 on the GPU
    against 99.0 on the CPU, agreement 99.5% (1 clip), logits up to 0.96 apart at a scale of
    17.8; the demo's 500 clips: 98.8% (clip) and 99.2% (stream_state). Bounds: agreement >= 97%
    and top-1 within 2 points of the CPU's int8: three times the measured flip rate, while a
    wrong dequantization (scale or zero point) gives chance agreement, about 25% with 4 classes.

    This model's stream_state_int8 meets a shader bug of the accelerator (LiteRT 2.3: `cannot
    assign 'vec4<f16>' to 'vec4<i32>'` in a generated WGSL shader); convert reports it as
    `failed`. The test fails once it runs, to set its bound then."""
    model, train = sweeping_bars_model["model"], sweeping_bars_model["train"]
    val, labels = sweeping_bars_model["val"], sweeping_bars_model["val_labels"]
    stream = build_streaming_model(model, batch_size=1)
    calibration = list(train[:50])
    clip = convert(model, CLIP, INT8, representative(CLIP, calibration))
    on_cpu = predict_clips(ClipRunner(clip), val)
    on_gpu = predict_clips(ClipRunner(clip, accelerator="gpu"), val)
    top1_cpu = 100.0 * np.mean(np.argmax(on_cpu, 1) == labels)
    top1_gpu = 100.0 * np.mean(np.argmax(on_gpu, 1) == labels)
    print(
        f"clip_int8 on the GPU: top-1 {top1_gpu:.1f} (CPU {top1_cpu:.1f}), agreement "
        f"{agreement(on_gpu, on_cpu):.1f}%, max |gpu - cpu| {np.max(np.abs(on_gpu - on_cpu)):.3f} "
        f"(logits up to {np.max(np.abs(on_cpu)):.1f})"
    )
    assert agreement(on_gpu, on_cpu) >= 97.0 and abs(top1_gpu - top1_cpu) <= 2.0

    state = convert(stream, STREAM_STATE, INT8, representative(STREAM_STATE, calibration, stream=stream))
    with pytest.raises(gpu.ShaderError, match=r"WGSL.*cannot assign 'vec4<f16>' to 'vec4<i32>'"):
        StreamRunner(state, accelerator="gpu")


def test_convert_reports_every_model_on_the_gpu(gpu_device, online_model, tmp_path):
    from tests.tiny import smooth_clips, write_run
    from tsm_keras.export.pipeline import convert_run

    run = write_run(tmp_path / "run", online_model)
    clips = smooth_clips(4, seed=11)
    labels = np.argmax(online_model.predict_on_batch(clips), 1)
    report = convert_run(
        run, validation=list(zip(clips, labels)), latency_repeats=1, gpu_check="always", log=lambda _: None
    )
    saved = json.loads((tmp_path / "run" / "tflite" / "report.json").read_text())
    assert saved["gpu"] == json.loads(json.dumps(report["gpu"]))
    checked = saved["gpu"]
    assert checked["checked"] and checked["device"] == gpu_device
    models = checked["models"]
    assert set(models) == {"clip_float32.tflite", "stream_state_float32.tflite", "stream_float32.tflite"}
    assert not models["stream_float32.tflite"]["fully_accelerated"]
    assert "ASSIGN_VARIABLE" in models["stream_float32.tflite"]["refused"]
    assert saved["files"]["stream_float32.tflite"]["runs_on"] == ["cpu"]
    for name in ("clip_float32.tflite", "stream_state_float32.tflite"):
        assert models[name]["fully_accelerated"] and models[name]["enforce_f32"]["within_bound"], models[name]
        assert models[name]["default"]["validation_clips"] == 4
        assert 0.0 <= models[name]["default"]["agreement_with_cpu"] <= 100.0
        assert saved["files"][name]["runs_on"] == ["cpu", "gpu"]


def test_without_a_device_convert_says_not_checked_and_why(monkeypatch):
    monkeypatch.setattr(gpu, "device", lambda: (None, "no Vulkan device: No adapters found"))
    assert gpu.check_models({}, [], log=lambda _: None) == {
        "checked": False,
        "not_checked": "no Vulkan device: No adapters found",
    }


def test_the_accelerators_own_reason_is_kept():
    # What the accelerator writes when Vulkan has no device (Mesa not installed), and when it
    # refuses an operator: the reason is its words, without the log's noise.
    no_device = (
        "INFO: [gpu_registry.cc:138] Dynamically loaded GPU accelerator registered.\n"
        "WARNING: [compiler_plugin.cc:312] Failed to load plugin at: libLiteRtCompilerPlugin_IntelOpenvino.so\n"
        "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: INTERNAL: No adapters found\n"
    )
    assert (
        gpu._reason(no_device, RuntimeError("x"))
        == "Failed to initialize WebGPU environment: INTERNAL: No adapters found"
    )
    refused = (
        "ERROR: Following operations are not supported by GPU delegate:\n"
        "RESHAPE: Tensor dimensions must be less than 5. clip\n"
        "128 operations will run on the GPU, and the remaining 1 operations will run on the CPU.\n"
    )
    assert gpu._reason(refused, RuntimeError("x")) == "RESHAPE: Tensor dimensions must be less than 5. clip"
    assert (
        gpu._reason("", RuntimeError("ERROR: [compiled_model.h:1961]\n└ Some ops"))
        == "ERROR: [compiled_model.h:1961] └ Some ops"
    )


def test_benchmark_on_the_gpu_names_the_device(gpu_device, float_models):
    result = benchmark(float_models[STREAM_STATE], warmup=1, repeats=2, accelerator="gpu")
    assert result["accelerator"] == "gpu" and result["device"] == gpu_device
    assert result["software_device"] == gpu.is_software(gpu_device)
    assert result["signatures"]["step"]["runs"] == 2
    with pytest.raises(gpu.GpuError, match="VAR"):
        benchmark(float_models[STREAM], repeats=1, accelerator="gpu")
