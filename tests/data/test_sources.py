import os

import cv2
import numpy as np
import pytest

from tests.data.conftest import (
    clip_indices,
    frame_value,
    indexed_frames,
    write_frame_folder,
    write_indexed_video,
    write_video,
)
from tsm_keras.data import DataError, Sampling, open_source, read_labels, video, write_labels


def decoded(src, sampling):
    return [(f.numpy(), int(y)) for f, y in src.clips(sampling)]


# Video folders: layouts and labels


def test_class_folders_sorted_and_holdout_split(video_folder):
    train = open_source(video_folder, "train")
    val = open_source(video_folder, "val", val_fraction=0.34)
    every = open_source(video_folder, "all")
    assert train.class_names == val.class_names == ["jump", "run"]
    assert every.num_clips == 6
    assert set(train.files).isdisjoint(val.files)
    assert sorted(train.files + val.files) == sorted(every.files)
    assert val.num_clips == 2  # one of three per class
    assert open_source(video_folder, "val", val_fraction=0.34).files == val.files  # fixed by hash
    assert all(os.path.basename(f).startswith(every.class_names[y]) for f, y in zip(every.files, every.labels))


def test_split_folders_share_the_union_of_classes(tmp_path):
    for split, classes in (("train", ("a", "b", "c")), ("val", ("a", "c"))):
        for c in classes:
            write_indexed_video(str(tmp_path / split / c / "v.avi"), 4)
    train = open_source(tmp_path, "train")
    val = open_source(tmp_path, "val")
    assert train.class_names == val.class_names == ["a", "b", "c"]
    assert sorted(val.labels) == [0, 2]
    with pytest.raises(DataError, match="no 'test' folder"):
        open_source(tmp_path, "test")


def test_split_files(video_folder):
    (video_folder / "train.txt").write_text("run/run0.avi\njump/jump1.avi 1\nnowhere.avi\n")
    (video_folder / "val.txt").write_text("run/run2.avi\n")
    train = open_source(video_folder, "train")
    assert train.names == ["run/run0.avi", "jump/jump1.avi"] and train.labels == [1, 0]
    assert train.skipped.count == 1  # nowhere.avi is not in a class folder
    assert open_source(video_folder, "val").names == ["run/run2.avi"]
    with pytest.raises(DataError, match="test.txt"):
        open_source(video_folder, "test")


def test_structural_problems_stop_with_the_path(tmp_path, video_folder):
    with pytest.raises(DataError, match="no such file"):
        open_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no classes"):
        open_source(tmp_path / "empty")
    (tmp_path / "nothing" / "cls").mkdir(parents=True)
    (tmp_path / "nothing" / "cls" / "note.txt").write_text("hi")
    with pytest.raises(DataError, match="no videos"):
        open_source(tmp_path / "nothing", "all")
    with pytest.raises(DataError, match=r"\['run'\] are not in the given class list"):
        open_source(video_folder, class_names=["jump", "walk"])


def test_labels_file_round_trip(tmp_path):
    write_labels(tmp_path / "labels.txt", ["b", "a c"])
    assert read_labels(tmp_path / "labels.txt") == ["b", "a c"]
    with pytest.raises(ValueError, match="unique"):
        write_labels(tmp_path / "x.txt", ["a", "a"])


# Video decoding


def test_tsn_frames_read_from_videos(video_folder):
    src = open_source(video_folder, "all")
    for frames, _ in decoded(src, Sampling("tsn", 4, clips=2)):
        assert frames.shape == (2, 4, 32, 48, 3) and frames.dtype == np.uint8
        assert clip_indices(frames) == [[2, 6, 10, 14], [0, 4, 8, 12]]
    assert src.skipped.count == 0


def test_frames_are_rgb(tmp_path):
    red = np.tile(np.array([200, 30, 30], np.uint8), (32, 48, 1))
    path = write_video(str(tmp_path / "red.avi"), [red] * 4)
    mean = video.read_clip(path, Sampling("tsn", 2)).mean(axis=(0, 1, 2))
    assert mean[0] > 180 and mean[2] < 50


def test_wrong_frame_count_in_header_is_corrected(tmp_path):
    path = write_indexed_video(str(tmp_path / "v.avi"), 16)
    counts = video.FrameCounts()
    counts.set(path, 40)  # as if the header claimed 40 frames
    clip = video.read_clip(path, Sampling("tsn", 4), counts=counts)
    assert clip_indices(clip) == [2, 6, 10, 14]
    assert counts.get(path) == 16
    # a truncated AVI: the header still says 16, only the first 4 frames decode
    data = open(path, "rb").read()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    assert int(cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT)) == 16
    assert clip_indices(video.read_clip(str(cut), Sampling("tsn", 4))) == [0, 1, 2, 3]


def test_short_grey_thin_and_large_videos(tmp_path):
    grey = write_video(str(tmp_path / "g.avi"), [np.full((32, 48), frame_value(i), np.uint8) for i in range(3)])
    clip = video.read_clip(grey, Sampling("tsn", 8))
    assert clip.shape == (8, 32, 48, 3)
    assert clip_indices(clip) == [0, 0, 0, 1, 1, 2, 2, 2]  # short: frames repeat in order
    thin = write_indexed_video(str(tmp_path / "thin.avi"), 4, height=8, width=64)
    assert video.read_clip(thin, Sampling("tsn", 2)).shape == (2, 8, 64, 3)
    big = write_indexed_video(str(tmp_path / "big.avi"), 4, height=96, width=128)
    assert video.read_clip(big, Sampling("tsn", 2), short_side=48).shape == (2, 48, 64, 3)


def test_other_containers(tmp_path):
    for fourcc, ext in (("mp4v", "mp4"), ("FFV1", "mkv"), ("VP80", "webm")):
        path = write_indexed_video(str(tmp_path / f"v.{ext}"), 8, fourcc=fourcc)
        assert clip_indices(video.read_clip(path, Sampling("tsn", 4))) == [1, 3, 5, 7], ext


# List files of JPEG frame folders


def make_list_dataset(root, template="img_{:05d}.jpg", start=1):
    lines = []
    for k in range(3):
        write_frame_folder(str(root / "frames" / f"v{k}"), indexed_frames(10), template, start)
        lines.append(f"frames/v{k} 10 {k % 2}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt"


def test_list_file_reads_the_sampled_frames(tmp_path):
    src = open_source(make_list_dataset(tmp_path))
    assert src.class_names == ["0", "1"] and src.num_clips == 3
    out = decoded(src, Sampling("tsn", 4))
    assert [y for _, y in out] == [0, 1, 0]
    assert all(clip_indices(f) == [[1, 3, 6, 8]] for f, _ in out)
    assert out[0][0].shape == (1, 4, 32, 48, 3)


def test_list_file_template_start_index_and_labels_file(tmp_path):
    path = make_list_dataset(tmp_path, template="{:06d}.jpg", start=0)
    write_labels(tmp_path / "labels.txt", ["left", "right", "up"])
    with open(path, "a") as f:
        f.write("frames/v2 10 up\n")
    src = open_source(path, frame_template="{:06d}.jpg", start_index=0)
    assert src.class_names == ["left", "right", "up"]
    assert src.labels == [0, 1, 0, 2]
    assert [clip_indices(f) for f, _ in decoded(src, Sampling("tsn", 2))] == [[[2, 7]]] * 4


def test_list_file_bad_lines_are_skipped_and_bad_labels_stop(tmp_path):
    path = make_list_dataset(tmp_path)
    with open(path, "a") as f:
        f.write("frames/v0 10\nframes/v0 ten 1\nframes/v0 0 1\nframes/v0 10 walk\n\n# note\n")
    src = open_source(path)
    assert src.num_clips == 3 and src.skipped.count == 4
    assert all(":" in f for f in src.skipped.reasons())  # list.txt:LINE
    with open(path, "a") as f:
        f.write("frames/v1 10 7\n")
    write_labels(tmp_path / "labels.txt", ["a", "b"])
    with pytest.raises(DataError, match="label 7 .* outside the class list"):
        open_source(path)


def test_list_file_missing_and_corrupt_frames_are_skipped_by_name(tmp_path):
    path = make_list_dataset(tmp_path)
    frames = tmp_path / "frames"
    os.remove(frames / "v0" / "img_00007.jpg")  # sampled (index 6) for T = 4
    good = (frames / "v1" / "img_00004.jpg").read_bytes()
    (frames / "v1" / "img_00004.jpg").write_bytes(good[:300] + os.urandom(400) + good[700:])
    (frames / "v2" / "img_00002.jpg").write_bytes(b"")
    with open(path, "a") as f:
        f.write("frames/absent 10 1\n")
    src = open_source(path)
    out = decoded(src, Sampling("tsn", 4))
    assert out == []
    reasons = src.skipped.reasons()
    assert reasons[str(frames / "v0")] == "missing frame img_00007.jpg"
    assert reasons[str(frames / "v1")] == "img_00004.jpg: cannot be decoded as JPEG"
    assert reasons[str(frames / "v2")] == "empty frame file img_00002.jpg"
    assert reasons[str(frames / "absent")] == "frame folder not found"
    assert src.skipped.count == 4


def test_list_file_grey_and_odd_sized_frames(tmp_path):
    grey = [np.full((17, 33), frame_value(i), np.uint8) for i in range(6)]
    os.makedirs(tmp_path / "g")
    for i, g in enumerate(grey):
        cv2.imwrite(str(tmp_path / "g" / f"img_{i + 1:05d}.jpg"), g)
    (tmp_path / "list.txt").write_text("g 6 0\n")
    ((frames, _),) = decoded(open_source(tmp_path / "list.txt"), Sampling("tsn", 3))
    assert frames.shape == (1, 3, 17, 33, 3) and clip_indices(frames) == [[1, 3, 5]]
