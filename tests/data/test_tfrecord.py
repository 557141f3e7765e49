import glob
import json
import os

import cv2
import numpy as np
import pytest

from tests.data.conftest import clip_indices, frame_value, write_video
from tsm_keras.data import DataError, Sampling, open_source, read_labels, video, write_tfrecords


def textured_videos(root, per_class=3, num_frames=12):
    """R = x gradient, G = y gradient, B = frame index: detail for JPEG to lose, and an index."""
    y, x = np.mgrid[0:32, 0:48]
    for c in ("a", "b", "c"):
        for k in range(per_class):
            frames = [
                np.stack([x * 5, y * 7 + 10 * k, np.full_like(x, frame_value(i))], -1).astype(np.uint8)
                for i in range(num_frames)
            ]
            write_video(str(root / c / f"{c}{k}.avi"), frames)
    return root


def convert(src_dir, out, **options):
    sources = {s: open_source(src_dir, s, val_fraction=0.34) for s in ("train", "val")}
    options.setdefault("progress", False)
    options.setdefault("workers", 2)
    return write_tfrecords(sources, out, **options)


def test_round_trip_within_jpeg_tolerance(tmp_path):
    src_dir = textured_videos(tmp_path / "videos")
    manifest = convert(src_dir, tmp_path / "tf", short_side=24, shard_mb=0.004)
    assert read_labels(tmp_path / "tf" / "labels.txt") == ["a", "b", "c"]
    train = manifest["splits"]["train"]
    assert train["num_clips"] == 6 and manifest["splits"]["val"]["num_clips"] == 3
    assert train["per_class"] == {"a": 2, "b": 2, "c": 2}
    assert len(train["shards"]) > 1  # the size bound splits them
    for shard in train["shards"]:
        assert shard["num_clips"] == 1 or shard["bytes"] <= 0.004 * 2**20

    src = open_source(tmp_path / "tf", "train")
    assert src.num_clips == 6 and src.class_names == ["a", "b", "c"]
    reference = {}
    for path, label in zip(
        *[
            open_source(src_dir, "train", val_fraction=0.34).files,
            open_source(src_dir, "train", val_fraction=0.34).labels,
        ]
    ):
        frames = video.read_all_frames(path, short_side=24)  # the same resize, no JPEG
        reference.setdefault(label, []).append(frames)
    seen = []
    for frames, label in src.clips(Sampling("tsn", 4)):
        frames = frames.numpy()[0]
        assert frames.shape == (4, 24, 36, 3)
        assert [int(round((f[..., 2].mean() - 8) / 15)) for f in frames] == [1, 4, 7, 10]
        errors = [np.abs(frames.astype(int) - ref[[1, 4, 7, 10]]).mean() for ref in reference[int(label)]]
        assert min(errors) < 2.0  # JPEG at quality 90
        seen.append(int(label))
    assert sorted(seen) == [0, 0, 1, 1, 2, 2]


def test_manifest_records_skipped_files(tmp_path):
    src_dir = textured_videos(tmp_path / "videos", per_class=1)
    (src_dir / "a" / "zero.mp4").write_bytes(b"")
    manifest = write_tfrecords({"train": open_source(src_dir, "all")}, tmp_path / "tf", progress=False)
    info = manifest["splits"]["train"]
    assert info["num_clips"] == 3
    assert info["skipped"] == [{"file": os.path.join("a", "zero.mp4"), "reason": "empty file (0 bytes)"}]
    on_disk = json.loads((tmp_path / "tf" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))


class Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_run_resumes_and_never_exposes_partial_shards(tmp_path):
    src_dir = textured_videos(tmp_path / "videos", per_class=4)
    clean = convert(src_dir, tmp_path / "clean", shard_mb=0.005)
    out = tmp_path / "tf"

    # 1. Ctrl-C in the middle of the run.
    sources = {s: open_source(src_dir, s, val_fraction=0.34) for s in ("train", "val")}
    original = sources["train"].read_all_frames
    calls = []

    def flaky(index, short_side):
        calls.append(index)
        if len(calls) == 6:
            raise Interrupt()
        return original(index, short_side)

    sources["train"].read_all_frames = flaky
    with pytest.raises(KeyboardInterrupt):
        write_tfrecords(sources, out, shard_mb=0.005, progress=False, workers=1)
    assert not (out / "manifest.json").exists()
    assert not glob.glob(str(out / "*.tmp"))
    done = sorted(glob.glob(str(out / "train-*.tfrecord")))
    assert 1 <= len(done) < len(clean["splits"]["train"]["shards"])
    with pytest.raises(DataError, match="has not finished"):
        open_source(out)

    # 2. What a hard kill leaves: a temporary shard, a shard renamed but not described.
    (out / "train-00007.tfrecord.tmp").write_bytes(b"half a shard")
    last = len(done)
    with open(out / f"train-{last:05d}.tfrecord", "wb") as f:
        f.write(b"\0" * 100)
    kept = {p: os.stat(p).st_mtime_ns for p in done}

    # 3. The same command again: finished shards are kept, the rest is redone.
    manifest = convert(src_dir, out, shard_mb=0.005)
    assert {p: os.stat(p).st_mtime_ns for p in done} == kept
    assert not glob.glob(str(out / "*.tmp"))
    assert manifest == clean
    for name in ("train", "val"):
        files = sorted(os.path.basename(p) for p in glob.glob(str(out / f"{name}-*.tfrecord")))
        assert files == [s["file"] for s in clean["splits"][name]["shards"]]
        for p in files:
            assert (out / p).read_bytes() == (tmp_path / "clean" / p).read_bytes()
    src = open_source(out, "train")
    assert sum(1 for _ in src.clips(Sampling("tsn", 2))) == src.num_clips == 9

    # 4. A finished folder: rerunning is a no-op; other settings are refused untouched.
    assert convert(src_dir, out, shard_mb=0.005) == clean
    with pytest.raises(DataError, match="other settings"):
        convert(src_dir, out, shard_mb=0.005, short_side=128)
    assert open_source(out, "val").num_clips == 3


def test_tfrecord_eval_indices_and_split_errors(tmp_path):
    src_dir = textured_videos(tmp_path / "videos", per_class=1, num_frames=16)
    write_tfrecords({"train": open_source(src_dir, "all")}, tmp_path / "tf", progress=False)
    src = open_source(tmp_path / "tf", "train")
    for frames, _ in src.clips(Sampling("tsn", 4, clips=2)):
        assert clip_indices(frames.numpy()[..., 2:]) == [[2, 6, 10, 14], [0, 4, 8, 12]]
    with pytest.raises(DataError, match="no 'val' split"):
        open_source(tmp_path / "tf", "val")
    with pytest.raises(DataError, match="classes differ"):
        open_source(tmp_path / "tf", class_names=["x"])


def test_list_file_source_converts(tmp_path):
    y, x = np.mgrid[0:20, 0:30]
    lines = []
    for k in range(3):
        folder = tmp_path / "frames" / f"v{k}"
        os.makedirs(folder)
        for i in range(6):
            image = np.stack([x * 8, y * 12, np.full_like(x, frame_value(i))], -1).astype(np.uint8)
            cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), image[..., ::-1])
        lines.append(f"frames/v{k} 6 {k}")
    lines.append("frames/v9 6 0")  # missing folder
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    manifest = write_tfrecords(
        {"val": open_source(tmp_path / "list.txt")}, tmp_path / "tf", short_side=None, progress=False
    )
    assert manifest["splits"]["val"]["num_clips"] == 3
    assert manifest["splits"]["val"]["skipped"] == [
        {"file": str(tmp_path / "frames" / "v9"), "reason": "frame folder not found"}
    ]
    src = open_source(tmp_path / "tf", "val")
    clips = [(f.numpy(), int(label)) for f, label in src.clips(Sampling("tsn", 3))]
    assert sorted(label for _, label in clips) == [0, 1, 2]
    for frames, _ in clips:
        assert frames.shape == (1, 3, 20, 30, 3)
        assert clip_indices(frames[..., 2:]) == [[1, 3, 5]]
