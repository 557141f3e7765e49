import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.tiny import smooth_clips, tiny_classifier, write_run
from tsm_keras.export.pipeline import Int8AccuracyError, convert_run
from tsm_keras.run_dir import NO_RUN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOAT_FILES = {"clip_float32.tflite", "stream_float32.tflite", "stream_state_float32.tflite"}


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def online_run(tmp_path_factory, online_model):
    return write_run(tmp_path_factory.mktemp("runs") / "online", online_model)


def labelled(model, count, seed):
    """Validation pairs labelled by the float model itself: float top-1 is 100%."""
    clips = smooth_clips(count, seed=seed).astype("uint8")
    labels = np.argmax(np.asarray(model.predict_on_batch(clips.astype("float32"))), axis=1)
    return list(zip(clips, labels))


def test_float_conversion_writes_verified_models_labels_and_report(online_run, online_model):
    report = convert_run(online_run, latency_repeats=3, log=quiet, validation=labelled(online_model, 4, 1))
    out = online_run / "tflite"
    assert FLOAT_FILES | {"labels.txt", "report.json"} == {p.name for p in out.iterdir()}
    assert (out / "labels.txt").read_text().split() == [f"class_{i}" for i in range(5)]
    saved = json.loads((out / "report.json").read_text())
    assert saved["files"].keys() == FLOAT_FILES
    assert saved["verification"]["clip_float32.tflite"]["max_abs_difference_vs_keras"] <= 1e-4
    for name in ("stream_float32.tflite", "stream_state_float32.tflite"):
        assert saved["verification"][name]["max_abs_difference"] <= 1e-4
        assert saved["latency"][name]["per_frame_ms"] > 0
    assert saved["latency"]["clip_float32.tflite"]["per_clip_ms"] > 0
    assert saved["accuracy"]["clip_float32"] == 100.0
    assert len(saved["streaming"]["states"]) == 10
    state_file = saved["files"]["stream_state_float32.tflite"]
    assert set(state_file["signatures"]["step"]["inputs"]) == {
        "frame",
        *(s["name"] for s in saved["streaming"]["states"]),
    }
    assert report["model"] == saved["model"]
    # The run (tests/tiny.py's, written without a view) is seen with the paper's view: the
    # report tells the apps so.
    assert saved["preprocessing"] == {"resize_short_side": 37, "center_crop": 32}


def test_int8_conversion_reports_accuracy_and_agreement(online_run, online_model):
    clips = list(smooth_clips(10, seed=30).astype("uint8"))
    report = convert_run(
        online_run,
        ["int8"],
        calibration_clips=clips,
        validation=labelled(online_model, 6, 31),
        latency_repeats=2,
        log=quiet,
        force=True,
    )
    out = online_run / "tflite"
    assert {"clip_int8.tflite", "stream_int8.tflite", "stream_state_int8.tflite"} <= {p.name for p in out.iterdir()}
    accuracy = report["accuracy"]
    assert accuracy["clip_float32"] == 100.0
    # Each of the three int8 models is scored on its own; the labels are the float model's
    # predictions, so its top-1 is its agreement with float.
    for name in ("clip_int8", "stream_state_int8", "stream_int8"):
        assert accuracy[name] == accuracy[f"{name}_agreement_with_float"]
        assert accuracy[f"{name}_drop_points"] == pytest.approx(100.0 - accuracy[name])
    # The two streaming files are one graph with the buffers held in two ways.
    assert accuracy["stream_int8"] == accuracy["stream_state_int8"]
    assert report["int8"]["written"] is True
    quant = report["verification"]["stream_state_int8.tflite"]["state_quantization"]
    assert all(v["input"] == v["output"] for v in quant.values())


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_refused_or_failed_conversion_leaves_the_earlier_files_byte_for_byte(tmp_path, online_model):
    run = write_run(tmp_path / "run", online_model)
    clips = list(smooth_clips(4, seed=40).astype("uint8"))
    validation = labelled(online_model, 4, 41)
    # The gate is the same for every kind: the clip model alone keeps the test short.
    int8 = dict(calibration_clips=clips, latency_repeats=1, log=quiet, streaming=False)
    convert_run(run, ["int8"], validation=validation, force=True, **int8)
    before = contents(run / "tflite")
    assert {"clip_float32.tflite", "clip_int8.tflite", "labels.txt", "report.json"} == before.keys()
    # A bound no model can meet (a drop below -1 point) stands for a bad int8 model.
    with pytest.raises(Int8AccuracyError, match=r"points below float.*pass `force=True`.*tflite is unchanged"):
        convert_run(run, ["int8"], validation=validation, max_int8_drop=-1.0, **int8)
    assert contents(run / "tflite") == before
    with pytest.raises(Int8AccuracyError, match="no validation data"):
        convert_run(run, ["int8"], **int8)
    assert contents(run / "tflite") == before

    def failing():  # calibration data that breaks halfway (an unreadable video, a full disk)
        yield clips[0]
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        convert_run(run, ["int8"], validation=validation, **{**int8, "calibration_clips": failing})
    assert contents(run / "tflite") == before
    assert [p.name for p in run.iterdir() if "staging" in p.name] == []  # nothing left behind


def test_a_first_refused_conversion_writes_nothing(tmp_path, online_model):
    run = write_run(tmp_path / "run", online_model)
    with pytest.raises(Int8AccuracyError, match="nothing was written"):
        convert_run(
            run,
            ["int8"],
            calibration_clips=list(smooth_clips(4, seed=40).astype("uint8")),
            validation=labelled(online_model, 4, 41),
            max_int8_drop=-1.0,
            latency_repeats=1,
            log=quiet,
            streaming=False,
        )
    assert not (run / "tflite").exists() and sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_bidirectional_run_writes_the_clip_model_and_says_how_to_stream(tmp_path):
    run = write_run(tmp_path / "bidirectional", tiny_classifier("tsm"), temporal="tsm")
    lines = []
    report = convert_run(run, latency_repeats=1, log=lines.append)
    assert {p.name for p in (run / "tflite").glob("*.tflite")} == {"clip_float32.tflite"}
    assert "train with `temporal='tsm-online'`" in report["streaming"]["refused"]
    assert json.loads((run / "tflite" / "report.json").read_text())["streaming"] == report["streaming"]
    assert any("train with `temporal='tsm-online'`" in line for line in lines)


def test_convert_script_without_any_run_says_how_to_make_one(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tflite", "convert.py"), "--runs", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path}: {NO_RUN}"


def write_video_folder(root, classes=("left", "right"), per_class=(3, 2), frames=10, seed=0):
    """root/{train,val}/<class>/*.mp4: tiny videos of a bright square moving left or right."""
    import cv2

    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), per_class):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                writer = cv2.VideoWriter(str(folder / f"{index}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (48, 40))
                background = rng.uniform(0, 120, 3)
                for t in range(frames):
                    frame = np.empty((40, 48, 3))
                    frame[:] = background
                    x = 4 + 3 * t if label == 0 else 40 - 3 * t
                    frame[14:26, x : x + 8] = 230
                    writer.write(np.clip(frame + rng.normal(0, 5, frame.shape), 0, 255).astype("uint8"))
                writer.release()
    return root


def test_convert_script_end_to_end_on_a_video_folder(tmp_path):
    data = write_video_folder(tmp_path / "videos")
    model = tiny_classifier("tsm-online", seed=9, num_classes=2)
    run = write_run(
        tmp_path / "runs" / "videos-mobilenet_v2-tsm-online",
        model,
        class_names=["left", "right"],
        extra={"data": {"train": str(data), "val": str(data)}},
    )
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tflite", "convert.py"),
            "--runs",
            str(tmp_path / "runs"),
            "--int8",
            "--force",
            "--calibration-clips",
            "4",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = run / "tflite"
    names = {p.name for p in out.iterdir()}
    assert FLOAT_FILES | {"clip_int8.tflite", "stream_int8.tflite", "stream_state_int8.tflite"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["validation_clips"] == 4
    assert {"clip_float32", "clip_int8", "stream_int8", "clip_int8_agreement_with_float"} <= set(report["accuracy"])
    assert report["int8"]["calibration_clips_limit"] == 4
    assert (out / "labels.txt").read_text() == "left\nright\n"


def convert_script(*args, cwd):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tflite", "convert.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=1200,
    )


def test_a_run_without_data_calibrates_on_data_given_with_the_data_option(tmp_path):
    # A ported checkpoint's run directory names no data: --int8 asks for --data, writes nothing.
    model = tiny_classifier("tsm-online", seed=9, num_classes=2)
    run = write_run(tmp_path / "ported", model, class_names=["left", "right"])
    refused = convert_script(run, "--int8", cwd=tmp_path)
    assert refused.returncode == 2
    assert "names no training data (run.json)" in refused.stderr and "--data PATH" in refused.stderr
    assert not (run / "tflite").exists()
    # With --data: calibrated on its train split, validated on its val split (the clip model
    # alone: where the data comes from does not depend on the kind).
    data = write_video_folder(tmp_path / "videos")
    done = convert_script(
        run, "--int8", "--data", data, "--force", "--calibration-clips", "3", "--clip-only", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run / "tflite" / "report.json").read_text())
    assert report["accuracy"]["validation_clips"] == 4 and report["int8"]["calibration_clips_limit"] == 3
    assert {"clip_float32.tflite", "clip_int8.tflite"} == set(report["files"])


def test_convert_script_on_a_bidirectional_run_exits_0_with_one_line_on_streaming(tmp_path):
    run = write_run(tmp_path / "bidirectional", tiny_classifier("tsm"), temporal="tsm")
    result = convert_script(run, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("no streaming models:"))
    assert "bidirectional" in line and "--temporal tsm-online" in line
    assert {p.name for p in (run / "tflite").glob("*.tflite")} == {"clip_float32.tflite"}
