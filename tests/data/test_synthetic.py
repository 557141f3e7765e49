"""Tests of the built-in `temporal_shapes` data set: rendering, pairing, files, caching."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tsm_keras.data import synthetic
from tsm_keras.data.synthetic import (
    CLASS_NAMES,
    SPLITS,
    clip_path,
    dataset_clip_seed,
    default_cache_dir,
    ensure_default_dataset,
    partner,
    render_clip,
)

REPO = Path(__file__).resolve().parents[2]
FRAMES, SIZE = 16, 48
TINY = dict(train_per_class=2, val_per_class=1, frames=FRAMES, size=SIZE, progress=False)
# Decoded MJPG against the rendered frames, measured here on 250 clips of 48 px: mean absolute
# error per clip 1.8 to 5.3 grey levels (median 3.0), 99th percentile of the pixel error 8 to 56
# (median 20). JPEG drops part of the noise and blurs colour edges (4:2:0 chroma); the largest
# errors are at the small marker discs of the rotating shapes and on fine two-colour stripes.
DECODE_MEAN_TOLERANCE = 8.0
DECODE_P99_TOLERANCE = 80


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])  # BGR -> RGB
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return np.stack(frames), count


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return ensure_default_dataset(tmp_path_factory.mktemp("cache") / "tiny", **TINY)


# -- rendering ----------------------------------------------------------------------------------


def test_class_names_are_sorted_pairs():
    assert len(CLASS_NAMES) == 10 and len(set(CLASS_NAMES)) == 10
    assert list(CLASS_NAMES) == sorted(CLASS_NAMES)  # folder-per-class sources sort folder names
    assert [partner(label) for label in range(10)] == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8]


def test_render_is_deterministic():
    for label in range(len(CLASS_NAMES)):
        clip = render_clip(label, 3, frames=FRAMES, size=SIZE)
        assert clip.shape == (FRAMES, SIZE, SIZE, 3) and clip.dtype == np.uint8
        np.testing.assert_array_equal(clip, render_clip(label, 3, frames=FRAMES, size=SIZE))
        other = render_clip(label, 4, frames=FRAMES, size=SIZE)
        assert np.abs(other.astype(int) - clip).mean() > 10


def test_partner_is_the_exact_time_reversal():
    for label in range(len(CLASS_NAMES)):
        for clip_seed in (0, (5, 1, 2, 3)):
            clip = render_clip(label, clip_seed, frames=FRAMES, size=SIZE)
            reversed_partner = render_clip(partner(label), clip_seed, frames=FRAMES, size=SIZE)[::-1]
            np.testing.assert_array_equal(clip, reversed_partner)


def test_clips_are_not_palindromes():
    for label in range(len(CLASS_NAMES)):
        for clip_seed in range(10):
            clip = render_clip(label, clip_seed, frames=FRAMES, size=SIZE).astype(int)
            # Frames really change, and not symmetrically in time (a palindrome would give 0).
            assert np.abs(clip - clip[::-1]).mean() > 1.5, (CLASS_NAMES[label], clip_seed)
            assert np.abs(clip[0] - clip[-1]).mean() > 1.5, (CLASS_NAMES[label], clip_seed)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="label=10"):
        render_clip(10, 0)
    with pytest.raises(ValueError, match="frames=1"):
        render_clip(0, 0, frames=1)
    with pytest.raises(ValueError, match="train_per_class=0"):
        ensure_default_dataset(Path("unused"), train_per_class=0)


# -- only the order of frames tells a pair apart --------------------------------------------------


def motion_features(clip):
    """Order-aware features of a clip: (speed right, speed down, growth, clockwise spin, brightening).

    Each is the median over frame steps of a least-squares rate from brightness constancy,
    I_t = -rate * (direction . grad I); the median ignores the rare wrap-around or ramp reset.
    """
    grey = np.stack([cv2.GaussianBlur(f, (5, 5), 1.0) for f in clip.astype(np.float32).mean(-1)])
    change = grey[1:] - grey[:-1]
    grad_y, grad_x = np.gradient((grey[1:] + grey[:-1]) / 2, axis=(1, 2))
    activity = np.abs(change).mean(0)
    weight = np.maximum(activity - np.median(activity), 0) + 1e-6
    yy, xx = np.mgrid[0 : clip.shape[1], 0 : clip.shape[2]].astype(np.float32)
    yy -= (weight * yy).sum() / weight.sum()
    xx -= (weight * xx).sum() / weight.sum()
    fields = (grad_x, grad_y, xx * grad_x + yy * grad_y, xx * grad_y - yy * grad_x)
    rates = [np.median(-(change * f).sum((1, 2)) / ((f * f).sum((1, 2)) + 1e-6)) for f in fields]
    return np.array(rates + [np.median(change.mean((1, 2)))])


def nearest_centroid_accuracy(train_x, train_y, test_x, test_y):
    scale = train_x.std(axis=0) + 1e-6
    centroids = np.stack([train_x[train_y == c].mean(0) for c in (0, 1)]) / scale
    distances = ((test_x / scale)[:, None] - centroids[None]) ** 2
    return (distances.sum(-1).argmin(1) == test_y).mean()


def test_order_blind_features_cannot_tell_a_pair_apart_but_frame_differences_can():
    per_class = 60  # independent draws for every clip: not twins, so equality is in distribution
    features = {"frame mean": [], "frame 0": [], "motion": []}
    labels = []
    for label in range(len(CLASS_NAMES)):
        for index in range(per_class):
            clip = render_clip(label, (99, label, index), frames=FRAMES, size=SIZE)
            features["frame mean"].append(clip.mean(axis=0).ravel())  # what TSN's average sees
            features["frame 0"].append(clip[0].ravel().astype(np.float32))
            features["motion"].append(np.sign(motion_features(clip)))  # which way each rate points
            labels.append(label)
    labels = np.array(labels)
    half = np.arange(len(labels)) % per_class < per_class // 2
    accuracy = {name: [] for name in features}
    for first in range(0, len(CLASS_NAMES), 2):
        in_pair = labels // 2 == first // 2
        y = labels - first
        for name, x in features.items():
            x = np.asarray(x)
            train, test = in_pair & half, in_pair & ~half
            accuracy[name].append(nearest_centroid_accuracy(x[train], y[train], x[test], y[test]))
    mean = {name: float(np.mean(values)) for name, values in accuracy.items()}
    # 5 pairs x 60 test clips: chance is 0.5 +- 0.03 (one standard deviation).
    assert 0.4 < mean["frame mean"] < 0.6 and max(accuracy["frame mean"]) < 0.7, accuracy
    assert 0.4 < mean["frame 0"] < 0.6 and max(accuracy["frame 0"]) < 0.7, accuracy
    assert min(accuracy["motion"]) > 0.9, accuracy


def test_forward_classes_move_the_way_they_are_named():
    feature_of = {"00_move_right": 0, "02_move_down": 1, "04_grow": 2, "06_rotate_clockwise": 3, "08_brighten": 4}
    for name, feature in feature_of.items():
        label = CLASS_NAMES.index(name)
        rates = [motion_features(render_clip(label, s, frames=FRAMES, size=SIZE))[feature] for s in range(20)]
        assert np.mean(np.array(rates) > 0) >= 0.9, (name, np.round(rates, 3))


# -- the files ------------------------------------------------------------------------------------


def test_layout_labels_and_marker(tiny_root):
    for split, count in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (tiny_root / split).iterdir()) == list(CLASS_NAMES)
        for name in CLASS_NAMES:
            files = sorted((tiny_root / split / name).iterdir())
            assert [f.name for f in files] == [f"{name}_{i:04d}.avi" for i in range(count)]
    assert (tiny_root / "labels.txt").read_text().splitlines() == sorted(CLASS_NAMES)
    done = json.loads((tiny_root / "DONE.json").read_text())
    assert done["seed"] == 0 and done["train_per_class"] == 2 and done["val_per_class"] == 1
    assert done["classes"] == list(CLASS_NAMES) and done["version"] == synthetic.VERSION
    assert sorted(p.name for p in tiny_root.parent.iterdir()) == ["tiny"]  # no temporary left


def test_files_decode_to_the_rendered_frames(tiny_root):
    errors = []
    for split in SPLITS:
        for label in range(len(CLASS_NAMES)):
            for index in range(2 if split == "train" else 1):
                decoded, count = read_video(clip_path(tiny_root, split, label, index))
                assert decoded.shape == (FRAMES, SIZE, SIZE, 3) and count == FRAMES
                seed = dataset_clip_seed(0, split, label, index)
                rendered = render_clip(label, seed, frames=FRAMES, size=SIZE)
                error = np.abs(decoded.astype(int) - rendered)
                assert error.mean() < DECODE_MEAN_TOLERANCE, (split, label, index, error.mean())
                assert np.percentile(error, 99) < DECODE_P99_TOLERANCE
                errors.append(error.mean())
    assert np.mean(errors) < 5.0


def test_pairs_survive_compression_exactly(tiny_root):
    # MJPG codes every frame on its own, so a twin's decoded frames are the reversed decoded frames.
    for split in SPLITS:
        for first in range(0, len(CLASS_NAMES), 2):
            forward, _ = read_video(clip_path(tiny_root, split, first, 0))
            backward, _ = read_video(clip_path(tiny_root, split, first + 1, 0))
            np.testing.assert_array_equal(forward, backward[::-1])


def test_same_seed_same_files_other_seed_other_files(tmp_path, tiny_root):
    again = ensure_default_dataset(tmp_path / "again", **TINY)
    other = ensure_default_dataset(tmp_path / "other", seed=1, **TINY)
    for label in (0, 5):
        first, _ = read_video(clip_path(tiny_root, "train", label, 1))
        np.testing.assert_array_equal(first, read_video(clip_path(again, "train", label, 1))[0])
        assert np.abs(first.astype(int) - read_video(clip_path(other, "train", label, 1))[0]).mean() > 10


# -- caching: idempotent, atomic, inside the cache folder -----------------------------------------


def test_default_root_is_under_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TSM_KERAS_CACHE", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "tsm_keras"
    monkeypatch.setenv("TSM_KERAS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    root = ensure_default_dataset(**TINY)
    assert root == tmp_path / "temporal_shapes-v2-seed0-train2-val1-t16-48px"
    assert [p.name for p in tmp_path.iterdir()] == [root.name]
    assert synthetic._default_folder_name(dict(seed=0, train_per_class=200, val_per_class=50, frames=16, size=80)) == (
        "temporal_shapes-v2"
    )


def test_second_call_returns_without_generating(tmp_path, monkeypatch):
    root = ensure_default_dataset(tmp_path / "set", **TINY)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def fail(*args):
        raise AssertionError("generated again")

    monkeypatch.setattr(synthetic, "_generate", fail)
    assert ensure_default_dataset(tmp_path / "set", **TINY) == root  # and `_generate` never ran
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps


def test_other_arguments_or_foreign_folders_are_refused(tmp_path):
    root = ensure_default_dataset(tmp_path / "set", **TINY)
    with pytest.raises(ValueError, match="seed"):
        ensure_default_dataset(root, **dict(TINY, seed=1))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not a complete"):
        ensure_default_dataset(foreign, **TINY)
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ensure_default_dataset(empty, **TINY) == empty and (empty / "DONE.json").is_file()


def test_a_failed_run_leaves_nothing(tmp_path, monkeypatch):
    written = []
    write = synthetic._write_video

    def write_then_fail(path, clip):
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(path)
        write(path, clip)

    monkeypatch.setattr(synthetic, "_write_video", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        ensure_default_dataset(tmp_path / "set", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_is_not_taken_as_complete(tmp_path):
    root = tmp_path / "set"
    script = (
        "import sys; from tsm_keras.data.synthetic import ensure_default_dataset; "
        "ensure_default_dataset(sys.argv[1], train_per_class=1000, size=32, progress=False)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-c", script, str(root)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / ".set.partial-{}-{}".format(synthetic._host(), process.pid)).rglob("*.avi")):
            assert process.poll() is None and time.monotonic() < deadline, "no files were written"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not root.exists()
    (partial,) = tmp_path.iterdir()
    (partial / "DONE.json").write_text("{}")  # even a marker inside a temporary is never trusted

    assert ensure_default_dataset(root, **TINY) == root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # the dead run's folder is gone
    assert json.loads((root / "DONE.json").read_text())["train_per_class"] == 2


def test_a_live_runs_temporary_folder_is_left_alone(tmp_path):
    live = tmp_path / ".set.partial-{}-{}".format(synthetic._host(), os.getppid())
    live.mkdir()
    ensure_default_dataset(tmp_path / "set", **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "set"]
