"""A folder with eleven kinds of bad files among ten kinds of good ones: every good video is
read, every bad file is reported by name with a reason and counted, nothing crashes."""

import os

import cv2
import numpy as np

from tests.data.conftest import frame_value, write_indexed_video, write_video
from tsm_keras.data import make_eval_dataset, make_train_dataset, open_source, write_tfrecords


def build(root):
    good, bad = [], {}

    def add_good(path):
        good.append(str(path))

    # Good: containers and codecs, odd shapes, short, grey, nested, header frame count wrong.
    add_good(write_indexed_video(str(root / "a" / "mjpg.avi")))
    add_good(write_indexed_video(str(root / "a" / "mpeg4.mp4"), fourcc="mp4v"))
    add_good(write_indexed_video(str(root / "a" / "ffv1.mkv"), fourcc="FFV1"))
    add_good(write_indexed_video(str(root / "b" / "vp8.webm"), fourcc="VP80"))
    add_good(write_indexed_video(str(root / "b" / "UPPER.MP4"), fourcc="mp4v"))
    add_good(write_video(str(root / "b" / "grey.avi"), [np.full((32, 48), frame_value(i), np.uint8) for i in range(8)]))
    add_good(write_indexed_video(str(root / "c" / "two_frames.avi"), num_frames=2))
    add_good(write_indexed_video(str(root / "c" / "thin.avi"), 6, height=8, width=64))
    add_good(write_indexed_video(str(root / "c" / "deeper" / "nested.avi")))
    avi = open(write_indexed_video(str(root / "c" / "tmp.avi")), "rb").read()
    os.remove(root / "c" / "tmp.avi")
    (root / "c" / "cut_but_readable.avi").write_bytes(avi[: int(len(avi) * 0.7)])
    add_good(root / "c" / "cut_but_readable.avi")

    # Bad, one of each kind.
    mp4 = open(write_indexed_video(str(root / "tmp.mp4"), fourcc="mp4v"), "rb").read()
    os.remove(root / "tmp.mp4")
    files = {
        "a/zero.mp4": b"",
        "a/text.mp4": b"this is not a video\n" * 20,
        "a/random.avi": np.random.default_rng(0).bytes(5000),
        "b/truncated.mp4": mp4[: len(mp4) // 2],
        "b/header_only.avi": avi[:1024],
        "b/corrupt_header.mp4": b"\0" * 64 + mp4[64:],
        "c/notes.txt": b"camera 2, take 3\n",
        "c/page.webm": b"<html><body>404 Not Found</body></html>",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
        bad[str(root / rel)] = None
    cv2.imwrite(str(root / "a" / "still.jpg"), np.zeros((32, 48, 3), np.uint8))
    bad[str(root / "a" / "still.jpg")] = None
    empty = cv2.VideoWriter(str(root / "b" / "no_frames.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (48, 32))
    empty.release()
    bad[str(root / "b" / "no_frames.avi")] = None
    os.symlink(root / "gone.mkv", root / "c" / "dangling.mkv")
    bad[str(root / "c" / "dangling.mkv")] = None
    return good, set(bad)


def test_bad_files_are_reported_and_good_ones_all_read(tmp_path):
    root = tmp_path / "videos"
    good, bad = build(root)
    assert len(good) == 10 and len(bad) == 11

    src = open_source(root, "all")
    assert src.class_names == ["a", "b", "c"]
    assert src.skipped.count == 2  # notes.txt and still.jpg: not video files, found at listing

    # Evaluation: every good clip once, in order, with its label.
    out = [
        (x.numpy(), y.numpy()) for x, y in make_eval_dataset(src, num_segments=4, input_size=16, batch_size=4, clips=2)
    ]
    labels = np.concatenate([y for _, y in out]).tolist()
    expected = [src.class_names.index(os.path.relpath(f, root).split(os.sep)[0]) for f in sorted(good)]
    assert sorted(labels) == sorted(expected) and len(labels) == 10
    assert all(x.shape[1:] == (2, 4, 16, 16, 3) for x, _ in out)
    reasons = src.skipped.reasons()
    assert set(reasons) == bad
    assert all(reason for reason in reasons.values())
    assert reasons[str(root / "a" / "zero.mp4")] == "empty file (0 bytes)"
    assert reasons[str(root / "b" / "no_frames.avi")] == "no decodable frame"
    assert reasons[str(root / "c" / "notes.txt")].startswith("not a video file")
    assert reasons[str(root / "c" / "dangling.mkv")].startswith("cannot open file")
    assert src.skipped.count == 2 + 9

    # Training, two epochs: the same nine are met (and counted) once per epoch.
    train = make_train_dataset(src, num_segments=4, input_size=16, batch_size=2, seed=0)
    for _ in range(2):
        assert sum(int(x.shape[0]) for x, _ in train) == 10
    assert src.skipped.count == 2 + 9 * 3

    # Conversion: the manifest names all eleven, the shards hold the ten good videos.
    fresh = open_source(root, "all")
    manifest = write_tfrecords({"train": fresh}, tmp_path / "tf", progress=False)
    info = manifest["splits"]["train"]
    assert info["num_clips"] == 10
    assert {os.path.join(root, s["file"]) for s in info["skipped"]} == bad
    converted = open_source(tmp_path / "tf")
    assert sum(1 for _ in make_eval_dataset(converted, num_segments=4, input_size=16, batch_size=1)) == 10
    assert converted.skipped.count == 0
