"""ONNX Runtime and OpenVINO: the clip and explicit-state models equal Keras, stream like the
clip model, and a wrong model is refused. Each format is skipped only where its packages are
not installed (`pip install -e ".[test]"` installs them)."""

import importlib.util
import json

import numpy as np
import pytest

from tests.tiny import tiny_classifier, write_run
from tsm_keras.export import portable
from tsm_keras.export.kinds import CLIP, NEXT, ONNX, ONNXRUNTIME, OPENVINO, STREAM_STATE, file_name
from tsm_keras.export.runtime import ModelKindError
from tsm_keras.export.sessions import (
    ModelFileError,
    SessionClipRunner,
    SessionStreamRunner,
    find_model,
    open_model,
)
from tsm_keras.export.verify import VerificationError, clip_vs_keras, float_bound, predict_clips, streaming_vs_clip
from tsm_keras.streaming import run_frames, state_specs


def _available(file_format):
    missing = [p for p in portable.PACKAGES[file_format] if importlib.util.find_spec(p) is None]
    reason = f"{', '.join(missing)} not installed (pip install -e '.[{file_format}]')"
    return pytest.param(file_format, marks=pytest.mark.skipif(bool(missing), reason=reason), id=file_format)


FORMATS = [_available(ONNX), _available(OPENVINO)]
RUNTIME = {ONNX: ONNXRUNTIME, OPENVINO: OPENVINO}


def write(folder, kind, file_format, parts):
    for extension, content in parts.items():
        (folder / f"{kind}{extension}").write_bytes(content)
    return folder / (kind + (".onnx" if file_format == ONNX else ".xml"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, online_model, stream_model):
    """{format: {kind: path}} of the tiny online model's ONNX and OpenVINO files."""
    cache = {}

    def get(file_format):
        if file_format not in cache:
            folder = tmp_path_factory.mktemp(file_format)
            cache[file_format] = {
                CLIP: write(folder, CLIP, file_format, portable.convert(online_model, CLIP, file_format)),
                STREAM_STATE: write(
                    folder, STREAM_STATE, file_format, portable.convert(stream_model, STREAM_STATE, file_format)
                ),
            }
        return cache[file_format]

    return get


@pytest.mark.parametrize("file_format", FORMATS)
def test_clip_model_equals_keras(exported, online_model, test_clips, file_format):
    runner = open_model(exported(file_format)[CLIP], RUNTIME[file_format])
    assert isinstance(runner, SessionClipRunner) and runner.kind == CLIP
    assert runner.input["shape"] == [1, 4, 32, 32, 3] and runner.output["shape"] == [1, 5]
    difference = clip_vs_keras(runner, online_model, test_clips)
    expected = np.asarray(online_model.predict_on_batch(test_clips))
    assert difference <= float_bound(expected), difference
    # Not a constant model: the clips' logits differ by far more than the bound.
    assert np.ptp(expected, axis=0).max() > 100 * float_bound(expected)


@pytest.mark.parametrize("file_format", FORMATS)
def test_streaming_equals_keras_frame_by_frame_and_the_clip_model(exported, stream_model, test_clips, file_format):
    paths = exported(file_format)
    runner = open_model(paths[STREAM_STATE], RUNTIME[file_format])
    assert isinstance(runner, SessionStreamRunner) and runner.kind == STREAM_STATE
    specs = state_specs(stream_model)
    assert runner.state_shapes == {s.name: [1, *s.shape] for s in specs}
    assert set(runner.session.outputs) == {"logits", *(s.name + NEXT for s in specs)}
    for clip in test_clips:
        keras_frames, _ = run_frames(stream_model, clip)
        runner.reset()
        got = runner.run(clip)
        assert np.max(np.abs(got - keras_frames)) <= float_bound(keras_frames)
    clip_logits = predict_clips(open_model(paths[CLIP], RUNTIME[file_format]), test_clips)
    result = streaming_vs_clip(runner, clip_logits, test_clips)
    assert result["max_abs_difference"] <= float_bound(clip_logits)
    assert result["reset_max_abs_difference"] == 0.0


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_wrong_model_is_refused(exported, tmp_path, online_model, test_clips, file_format):
    paths, runtime = exported(file_format), RUNTIME[file_format]
    # Another network's clip model: the numbers, not the shapes, give it away.
    other = tiny_classifier("tsm-online", seed=3)
    stranger = write(tmp_path, CLIP, file_format, portable.convert(other, CLIP, file_format))
    with pytest.raises(VerificationError, match="differ from Keras"):
        clip_vs_keras(open_model(stranger, runtime), online_model, test_clips)
    # A streaming model that forgets its buffers between frames.
    runner = open_model(paths[STREAM_STATE], runtime)
    clip_logits = predict_clips(open_model(paths[CLIP], runtime), test_clips)
    step = runner.step
    runner.step = lambda frame: (runner.reset(), step(frame))[1]
    with pytest.raises(VerificationError, match="differ from the clip model"):
        streaming_vs_clip(runner, clip_logits, test_clips)
    # The wrong kind, a truncated file, another format.
    with pytest.raises(ModelKindError, match="not a streaming model"):
        SessionStreamRunner(paths[CLIP], runtime)
    with pytest.raises(ModelKindError, match="not a clip model"):
        SessionClipRunner(paths[STREAM_STATE], runtime)
    broken = tmp_path / f"broken{paths[CLIP].suffix}"
    broken.write_bytes(paths[CLIP].read_bytes()[:5000])
    if file_format == OPENVINO:
        (tmp_path / "broken.bin").write_bytes(paths[CLIP].with_suffix(".bin").read_bytes())
    with pytest.raises(ModelFileError, match=f"{broken}: .* cannot load it"):
        open_model(broken, runtime)
    tflite = tmp_path / "clip_float32.tflite"
    tflite.write_bytes(b"TFL3")
    with pytest.raises(ModelFileError, match=f"{runtime} runs .* files, not .tflite"):
        open_model(tflite, runtime)


def test_convert_run_writes_verified_files_and_stays_a_transaction(tmp_path, online_model, test_clips, monkeypatch):
    from tsm_keras.export.pipeline import convert_run

    formats = [f for f in (ONNX, OPENVINO) if all(importlib.util.find_spec(p) for p in portable.PACKAGES[f])]
    if not formats:
        pytest.skip("neither onnxruntime nor openvino installed (pip install -e '.[test]')")
    run = write_run(tmp_path / "run", online_model)
    validation = list(zip(test_clips.astype("uint8"), [0, 1, 2]))
    report = convert_run(
        run, formats=["tflite", *formats], validation=validation, latency_repeats=2, log=lambda *_: None
    )
    out = run / "tflite"
    saved = json.loads((out / "report.json").read_text())
    assert set(saved["formats"]) == set(formats) and report["formats"] == saved["formats"]
    for file_format in formats:
        names = [file_name(kind, "float32", file_format) for kind in (CLIP, STREAM_STATE)]
        assert all((out / name).is_file() for name in names)
        clip, stream = (saved["verification"][name] for name in names)
        assert clip["runtime"] == RUNTIME[file_format] and 0 <= clip["max_abs_difference_vs_keras"] <= 1e-3
        assert stream["max_abs_difference"] <= 1e-3 and stream["reset_max_abs_difference"] == 0.0
        assert saved["files"][names[0]]["format"] == file_format and saved["latency"][names[1]]["per_frame_ms"] > 0
        for kind in (CLIP, STREAM_STATE):  # the same predictions as the TFLite clip model
            assert saved["accuracy"][f"{kind}_float32_{file_format}_agreement_with_tflite"] == 100.0
        # The run directory (or its export folder) gives the runtime's streaming file.
        assert find_model(run, RUNTIME[file_format]) == str(out / names[1])
        with pytest.raises(ModelFileError, match="a .tflite file, but runtime '"):
            find_model(out / "stream_float32.tflite", RUNTIME[file_format])

    # A conversion whose file is another network's fails its check and changes nothing (the
    # clip models alone keep it short).
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, other = portable.convert, tiny_classifier("tsm-online", seed=3)
    monkeypatch.setattr(portable, "convert", lambda model, kind, f: real(other if kind == CLIP else model, kind, f))
    with pytest.raises(VerificationError, match="differ from Keras"):
        convert_run(run, formats=["tflite", formats[-1]], streaming=False, latency_repeats=1, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in run.iterdir() if "staging" in p.name] == []


@pytest.mark.parametrize("file_format", FORMATS)
def test_stream_and_benchmark_commands_take_a_runtime(exported, tmp_path, capsys, file_format):
    from tsm_keras.commands import benchmark

    runtime = RUNTIME[file_format]
    path = exported(file_format)[STREAM_STATE]
    assert benchmark.main([str(path), "--runtime", runtime, "--repeats", "3", "--warmup", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == STREAM_STATE and result["signatures"]["step"]["runs"] == 3
    assert benchmark.main([str(path), "--runtime", "litert"]) == 2
    assert "runtime 'litert' runs .tflite files" in capsys.readouterr().err


def test_exported_inputs_are_the_streaming_models_and_other_kinds_are_refused(stream_model):
    _, specs = portable.named_function(stream_model, STREAM_STATE)
    assert [s.name for s in specs] == ["frame", *(s.name for s in state_specs(stream_model))]
    with pytest.raises(ValueError, match="kind"):
        portable.named_function(stream_model, "stream")  # resource variables: ONNX has none
