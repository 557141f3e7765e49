import pytest

from tsm_keras.data.synthetic import ensure_default_dataset

# A tiny run: every test in this folder trains at most a few steps of this size.
TINY = [
    "--backbone",
    "mobilenet_v2",
    "--width",
    "0.35",
    "--input-size",
    "32",
    "--segments",
    "4",
    "--batch-size",
    "4",
    "--weights",
    "none",
    "--lr",
    "0.05",
    "--warmup-epochs",
    "0",
]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The built-in data set, 10 classes x (3 train + 1 val) clips of 8 frames at 40 px."""
    root = tmp_path_factory.mktemp("data") / "tiny_shapes"
    return ensure_default_dataset(root, train_per_class=3, val_per_class=1, frames=8, size=40, progress=False)


# What a user's folder looks like: phone and camera clips in several containers, codecs and
# aspect ratios (landscape 4:3 and 16:9, portrait), a class name with a space, and a space in
# the folder's own name. No split folders: fit.py holds out a share of each class.
USER_FORMATS = [
    ("mp4v", ".mp4", (64, 48)),
    ("MJPG", ".avi", (96, 54)),
    ("FFV1", ".mkv", (48, 64)),
    ("XVID", ".avi", (80, 45)),
    ("mp4v", ".mp4", (54, 96)),
]
USER_CLASSES = ["pull", "push", "wave hello"]


@pytest.fixture(scope="session")
def own_videos(tmp_path_factory):
    """tmp/my videos/<class>/<name>.<ext>: 3 classes x 5 videos of 12 frames, a bright square
    moving left (pull), right (push) or back and forth (wave hello) over a grey background."""
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("user") / "my videos"
    for label, name in enumerate(USER_CLASSES):
        for k, (fourcc, ext, (width, height)) in enumerate(USER_FORMATS):
            path = root / name / f"{name.replace(' ', '_')}_{k}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (width, height))
            assert writer.isOpened(), f"OpenCV cannot write {path} with {fourcc}"
            side = min(width, height) // 4
            for t in range(12):
                frame = np.full((height, width, 3), 70, np.uint8)
                x = [width - side - 3 * t, 3 * t, 4 * (t % 2)][label] % (width - side)
                frame[height // 3 : height // 3 + side, x : x + side] = (40, 200, 240)
                writer.write(frame)
            writer.release()
    return root
