import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tsm_keras.data.view import View
from tsm_keras.export.runtime import ModelKindError, StreamRunner
from tsm_keras.streaming.app import (
    Smoother,
    StreamingClassifier,
    frames_of,
    open_capture,
    prepare_frame,
    run_video,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = ["waving", "clapping", "nothing"]


def write_video(path, frames=16, height=48, width=64, seed=0):
    """A small mp4 of drifting colour blobs (every frame different)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    assert writer.isOpened()
    base = rng.uniform(0, 255, (6, 8, 3))
    for t in range(frames):
        coarse = np.clip(base + 12 * t * rng.uniform(-1, 1, base.shape), 0, 255)
        writer.write(cv2.resize(coarse.astype("uint8"), (width, height), interpolation=cv2.INTER_NEAREST))
    writer.release()
    return path


def read_frames(path):
    capture = open_capture(str(path))
    frames = list(frames_of(capture))
    capture.release()
    return frames


def test_smoother_averages_the_last_frames():
    smoother = Smoother(window=2)
    np.testing.assert_allclose(smoother.add([1.0, 0.0]), [1.0, 0.0])
    np.testing.assert_allclose(smoother.add([0.0, 1.0]), [0.5, 0.5])
    np.testing.assert_allclose(smoother.add([0.0, 3.0]), [0.0, 2.0])
    smoother.reset()
    np.testing.assert_allclose(smoother.add([4.0, 0.0]), [4.0, 0.0])
    with pytest.raises(ValueError, match="window"):
        Smoother(0)


def test_prepare_frame_crops_the_centre_square_and_gives_rgb():
    bgr = np.zeros((40, 80, 3), "uint8")
    bgr[:, 20:60] = (255, 0, 0)  # blue centre square in BGR
    rgb = prepare_frame(bgr, View(16, 16))
    assert rgb.shape == (16, 16, 3)
    assert (rgb[..., 2] == 255).all() and (rgb[..., :2] == 0).all()
    # The paper's view keeps the centre 7/8 of the short side: 35 of 40 px, inside the square.
    bgr[:, 22:58] = (0, 255, 0)
    assert View.paper(16).square(40, 80) == (2, 22, 35)
    assert (prepare_frame(bgr, View.paper(16))[..., 1] == 255).all()


@pytest.mark.parametrize("kind", ["stream", "stream_state"])
def test_video_frames_are_classified_and_each_video_starts_from_reset(demo_models, tmp_path, kind):
    frames = read_frames(write_video(tmp_path / "a.mp4"))
    assert len(frames) == 16
    classifier = StreamingClassifier(StreamRunner(str(demo_models[kind])), LABELS, window=4)
    writer_path = tmp_path / "annotated.mp4"
    writer = cv2.VideoWriter(str(writer_path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    first = run_video(classifier, frames, writer=writer)
    writer.release()
    assert [p.frame for p in first] == list(range(16))
    assert all(p.label in LABELS and 0 < p.score <= 1 for p in first)
    assert len(read_frames(writer_path)) == 16
    # A second video (here the same one) starts from zero buffers: the same numbers.
    again = run_video(classifier, frames)
    np.testing.assert_array_equal(np.stack([p.logits for p in again]), np.stack([p.logits for p in first]))
    # Without the reset the buffers hold the end of the last video: different numbers.
    continued = classifier.update(frames[0]).logits
    assert not np.array_equal(continued, first[0].logits)


def test_reset_on_request_and_every_n_frames(demo_models, tmp_path):
    frames = read_frames(write_video(tmp_path / "b.mp4", frames=8))
    classifier = StreamingClassifier(StreamRunner(str(demo_models["stream"])), LABELS, window=1)
    plain = run_video(classifier, frames)
    every = run_video(classifier, frames[:4] * 2, reset_every=4)
    np.testing.assert_array_equal(every[4].logits, plain[0].logits)
    requests = iter([False, False, True] + [False] * 5)
    asked = run_video(classifier, frames, should_reset=lambda: next(requests))
    from_frame_2 = run_video(classifier, frames[2:])
    np.testing.assert_array_equal(asked[2].logits, from_frame_2[0].logits)
    np.testing.assert_array_equal(asked[1].logits, plain[1].logits)
    assert asked[2].frame == 0 and asked[1].frame == 1


def test_a_clip_model_is_refused_with_a_clear_message(demo_models):
    with pytest.raises(ModelKindError, match=r"clip_float32.tflite: a clip model \(input 'clip'.*stream"):
        StreamRunner(str(demo_models["clip"]))


def test_stream_script_on_a_generated_video(demo_models, tmp_path):
    video = write_video(tmp_path / "c.mp4", frames=10)
    out = tmp_path / "annotated.mp4"
    script = os.path.join(ROOT, "tflite", "stream.py")
    result = subprocess.run(
        [
            sys.executable,
            script,
            str(demo_models["stream_state"]),
            "--video",
            str(video),
            "--out",
            str(out),
            "--window",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if not l.startswith("#")]
    assert len(lines) == 10 and all(l.split()[1] in LABELS for l in lines)
    assert len(read_frames(out)) == 10
    wrong = subprocess.run(
        [sys.executable, script, str(demo_models["clip"]), "--video", str(video)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1].startswith(f"error: {demo_models['clip']}: a clip model")


def test_stride_runs_the_model_on_every_nth_frame(demo_models, tmp_path):
    frames = read_frames(write_video(tmp_path / "d.mp4", frames=8))
    classifier = StreamingClassifier(StreamRunner(str(demo_models["stream_state"])), LABELS, window=1)
    strided = run_video(classifier, frames, stride=2)
    every_other = run_video(classifier, frames[::2])
    assert len(strided) == 8
    for index, prediction in enumerate(strided):
        np.testing.assert_array_equal(prediction.logits, every_other[index // 2].logits)
    with pytest.raises(ValueError, match="stride"):
        run_video(classifier, frames, stride=0)
