"""A ported streaming-demo checkpoint goes through tflite/convert.py as it is, and both
streaming TFLite models give PyTorch's per-frame logits (PyTorch keeps its own buffers).

Skipped without torch (`pip install -e .[port]`).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.port import torch_reference as ref  # noqa: E402
from tsm_keras.export.runtime import ClipRunner, StreamRunner  # noqa: E402
from tsm_keras.port import port_checkpoint  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE, SEGMENTS, FRAMES, CLASSES = 64, 4, 8, 27
TOLERANCE = 1e-4  # max abs difference of the per-frame logits, float32


def clips(batch, seed):
    """Raw RGB clips in [0, 255] whose frames all differ."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, FRAMES, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The demo's bare state dict (random weights, BN statistics measured on random clips),
    ported, then converted by the script in a subprocess, float32 only (the default)."""
    tmp = tmp_path_factory.mktemp("jester")
    torch.manual_seed(0)
    net = ref.StreamingMobileNetV2(CLASSES)
    calibration = ref.normalize(clips(4, seed=1))
    ref.randomize(net, seed=0, calibrate=lambda: net.run(calibration))
    path = tmp / "mobilenetv2_jester_online.pth.tar"
    torch.save(net.state_dict(), path)
    labels = tmp / "jester_labels.txt"
    labels.write_text("".join(f"gesture {i}\n" for i in range(CLASSES)))
    run = tmp / "runs" / "jester_online"
    ported, _ = port_checkpoint(path, run, input_size=SIZE, segments=SEGMENTS, labels=labels)
    assert ported.streaming_demo and ported.model_config["temporal"] == "tsm-online"
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tflite", "convert.py"), str(run)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return net, run


def test_convert_accepts_the_ported_run_as_is(converted):
    _, run = converted
    out = run / "tflite"
    assert {
        "clip_float32.tflite",
        "stream_float32.tflite",
        "stream_state_float32.tflite",
        "labels.txt",
        "report.json",
    } == {p.name for p in out.iterdir()}
    assert (out / "labels.txt").read_text() == "".join(f"gesture {i}\n" for i in range(CLASSES))
    report = json.loads((out / "report.json").read_text())
    assert report["class_names"] == [f"gesture {i}" for i in range(CLASSES)]
    assert report["num_segments"] == SEGMENTS and report["input_size"] == SIZE
    # The demo's 10 buffers, at 64 px: 16x16x3, 8x8x4 x2, 4x4x8 x3, 4x4x12 x2, 2x2x20 x2.
    shapes = sorted(tuple(s["shape"]) for s in report["streaming"]["states"])
    assert shapes == sorted(
        [(1, 16, 16, 3)] + [(1, 8, 8, 4)] * 2 + [(1, 4, 4, 8)] * 3 + [(1, 4, 4, 12)] * 2 + [(1, 2, 2, 20)] * 2
    )
    for name, numbers in report["verification"].items():
        difference = numbers.get("max_abs_difference", numbers.get("max_abs_difference_vs_keras"))
        print(f"convert's own check, {name}: {difference:.2e}")
        assert difference <= TOLERANCE


def test_clip_tflite_matches_pytorch(converted):
    # The causal clip model's logits are the mean of PyTorch's per-frame logits over its frames.
    net, run = converted
    runner = ClipRunner(str(run / "tflite" / "clip_float32.tflite"))
    video = clips(2, seed=2)[:, :SEGMENTS]
    with torch.no_grad():
        expected = net.run(ref.normalize(video)).numpy().mean(axis=1)
    difference = np.abs(np.stack([runner(clip) for clip in video]) - expected).max()
    print(f"clip_float32.tflite: max |tflite - torch| = {difference:.2e}")
    assert difference <= TOLERANCE


@pytest.mark.parametrize("name", ["stream_float32.tflite", "stream_state_float32.tflite"])
def test_streaming_tflite_matches_pytorch_frame_by_frame(converted, name):
    net, run = converted
    runner = StreamRunner(str(run / "tflite" / name))
    video = clips(2, seed=0)
    with torch.no_grad():
        expected = net.run(ref.normalize(video)).numpy()  # (2, FRAMES, 27), PyTorch's own buffers
    worst = 0.0
    for clip, want in zip(video, expected):
        runner.reset()
        got = runner.run(clip)  # FRAMES steps, more than the SEGMENTS the clip model has
        worst = max(worst, float(np.abs(got - want).max()))
    print(
        f"{name}: max |tflite - torch| per frame = {worst:.2e} over {FRAMES} frames "
        f"(logits up to {np.abs(expected).max():.2f})"
    )
    assert worst <= TOLERANCE
    # The buffers carry something: later frames differ from what a fresh state gives.
    assert np.abs(expected[:, 1:] - expected[:, :1]).max() > 100 * TOLERANCE


@pytest.mark.slow
def test_a_ported_non_local_model_converts_to_clip_models_only(tmp_path):
    """A `_nl` ResNet-50 (random weights, BN statistics measured) ported and converted by
    convert_run to float32 and int8: the clip models pass convert's checks (builtin
    operators, float32 within 1e-4 of Keras relative to the largest logit, int8 full integer
    with matching concatenation scales), and the streaming models are
    refused with the reason. The float clip model is as close to the float64 network as
    PyTorch's float32 is (within 3x), and the int8 one follows it."""
    from tests.port.test_torch_parity import torch_tsn
    from tsm_keras.export.pipeline import convert_run
    from tsm_keras.run_dir import load_run

    size, segments = 32, 4
    net = torch_tsn("resnet50", "blockres", True, False, size, non_local=True)
    path = tmp_path / f"TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment{segments}_e100_dense_nl.pth"
    ref.save_official(net, path, "resnet50")
    run = tmp_path / "run"
    port_checkpoint(path, run, input_size=size)
    rng = np.random.default_rng(3)
    video = rng.uniform(0, 255, (16, segments, size, size, 3)).astype("float32")
    # A random network has no classes to learn: the labels are the float model's own answers.
    # Its near-tied logits flip under int8 noise (tests/export/test_tflite.py measures it), so
    # the top-1 gate is opened here and int8 is checked by how its logits follow float's.
    labels = np.asarray(load_run(run).model.predict_on_batch(video[8:])).argmax(axis=1)
    report = convert_run(
        run,
        precisions=("float32", "int8"),
        calibration_clips=list(video[:8]),
        validation=list(zip(video[8:], labels)),
        latency_repeats=1,
        max_int8_drop=100.0,
        log=lambda *a: None,
    )
    files = {p.name for p in (run / "tflite").iterdir()}
    assert files == {"clip_float32.tflite", "clip_int8.tflite", "labels.txt", "report.json"}
    assert "non-local blocks" in report["streaming"]["refused"]
    assert "later frames included" in report["streaming"]["refused"]
    assert report["int8"]["written"] and report["accuracy"]["clip_float32"] == 100.0
    verification = report["verification"]["clip_float32.tflite"]
    float_difference = verification["max_abs_difference_vs_keras"]
    assert verification["bound"] == "0.0001 of the largest |logit| (at least 1)"
    with torch.no_grad():
        expected = net(ref.normalize(video[8:])).numpy()
        exact = net.double()(ref.normalize(video[8:]).double()).numpy()
    tflite = np.stack([ClipRunner(str(run / "tflite" / "clip_float32.tflite"))(clip) for clip in video[8:]])
    quantized = np.stack([ClipRunner(str(run / "tflite" / "clip_int8.tflite"))(clip) for clip in video[8:]])
    correlation = np.corrcoef(quantized.ravel(), expected.ravel())[0, 1]
    # The attention amplifies float32 rounding, more on these noise clips than on convert's
    # smooth ones: measured against the float64 network, PyTorch float32 is 4.9e-4 off and
    # TFLite float32 9.9e-4 (XNNPACK; 1.1e-4 without it), logits up to 3.6.
    torch_error, tflite_error = np.abs(expected - exact).max(), np.abs(tflite - exact).max()
    print(
        f"_nl ResNet-50 at {size} px: clip_float32 vs Keras {float_difference:.2e} (convert's check), "
        f"vs the float64 network {tflite_error:.2e} (PyTorch float32: {torch_error:.2e}; logits up to "
        f"{np.abs(exact).max():.2f}); clip_int8: top-1 {report['accuracy']['clip_int8']:.1f} against float's "
        f"answers, logits' correlation with PyTorch {correlation:.4f}, "
        f"{report['files']['clip_int8.tflite']['size_mb']} MB"
    )
    assert tflite_error <= 3 * torch_error
    assert correlation > 0.6  # measured 0.82: a random network's int8 noise (see tests/export/test_tflite.py)
