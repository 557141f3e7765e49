"""Small videos and frame folders made on the fly, whose pixels say which frame they are."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def frame_value(i):
    """Grey level of frame i (i < 16): far enough apart to survive lossy codecs."""
    return 8 + 15 * i


def frame_index(value):
    """Inverse of frame_value, from a decoded (lossy) mean value."""
    return int(round((float(value) - 8) / 15))


def indexed_frames(num_frames, height=32, width=48):
    """RGB frames of uniform grey frame_value(i)."""
    return [np.full((height, width, 3), frame_value(i), np.uint8) for i in range(num_frames)]


def write_video(path, frames, fourcc="MJPG", fps=25):
    """Writes RGB (or grey 2-D) frames with OpenCV; returns the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h, w = frames[0].shape[:2]
    color = frames[0].ndim == 3
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), color)
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if color else frame)
    writer.release()
    return path


def write_indexed_video(path, num_frames=16, height=32, width=48, fourcc="MJPG"):
    return write_video(path, indexed_frames(num_frames, height, width), fourcc)


def write_frame_folder(folder, frames, template="img_{:05d}.jpg", start=1):
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, template.format(i + start)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def clip_indices(clip):
    """Frame indices encoded in a decoded clip (..., T, H, W, 3) -> nested lists."""
    means = np.asarray(clip, np.float64).mean(axis=(-3, -2, -1))
    return np.vectorize(frame_index)(means).tolist()


@pytest.fixture
def video_folder(tmp_path):
    """Two classes ("jump", "run"), three 16-frame indexed videos each, plain layout."""
    root = tmp_path / "videos"
    for c in ("run", "jump"):
        for k in range(3):
            write_indexed_video(str(root / c / f"{c}{k}.avi"))
    return root
