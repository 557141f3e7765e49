import numpy as np
import pytest

from tests.data.conftest import clip_indices, write_video
from tsm_keras.data import SkipReport, make_eval_dataset, make_train_dataset, open_source


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_train_batches_shapes_dtypes_and_sampled_segments(video_folder):
    src = open_source(video_folder, "all")
    out = batches(make_train_dataset(src, num_segments=4, input_size=16, batch_size=4, seed=0))
    assert len(out) == 1  # 6 clips, batch 4: the partial batch is dropped
    x, y = out[0]
    assert x.shape == (4, 4, 16, 16, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    for clip in clip_indices(x):  # 16 frames, T = 4: one frame from each 4-frame segment
        assert [i // 4 for i in clip] == [0, 1, 2, 3]


def test_train_is_reproducible_and_each_epoch_differs(video_folder):
    src = open_source(video_folder, "all")

    def make(seed):
        return make_train_dataset(src, num_segments=4, input_size=16, batch_size=3, seed=seed)

    ds = make(0)
    first, second = batches(ds), batches(ds)
    again = batches(make(0))
    for (a, ya), (b, yb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya, yb)
    differs = lambda u, v: any(not np.array_equal(a, b) for (a, _), (b, _) in zip(u, v))  # noqa: E731
    assert differs(first, second)
    assert differs(first, batches(make(1)))


def test_eval_views_are_deterministic_and_keep_the_last_batch(video_folder):
    src = open_source(video_folder, "all")
    ds = make_eval_dataset(src, num_segments=4, input_size=16, batch_size=4, clips=2, crops=3)
    out = batches(ds)
    assert [x.shape for x, _ in out] == [(4, 6, 4, 16, 16, 3), (2, 6, 4, 16, 16, 3)]
    assert np.concatenate([y for _, y in out]).tolist() == src.labels
    for x, _ in out:
        for views in clip_indices(x):  # view v = clip v // 3, crop v % 3
            assert views == [[2, 6, 10, 14]] * 3 + [[0, 4, 8, 12]] * 3
    for (a, _), (b, _) in zip(out, batches(ds)):
        np.testing.assert_array_equal(a, b)


def test_dense_sampling_runs_on_short_videos(video_folder):
    src = open_source(video_folder, "all")
    x, _ = next(iter(make_eval_dataset(src, num_segments=2, input_size=16, sampling="dense")))
    assert clip_indices(x[:, 0]) == [[4, 12]] * 6  # 16 < 64 frames: the TSN positions


def gradient_videos(root):
    """R rises left to right (so a flip shows); G tells the class: 'left' 40, 'right' 200."""
    x = np.linspace(0, 240, 48).astype(np.uint8)
    for c, g in (("left", 40), ("right", 200), ("still", 120)):
        frame = np.zeros((32, 48, 3), np.uint8)
        frame[..., 0] = x
        frame[..., 1] = g
        for k in range(4):
            write_video(str(root / c / f"{k}.avi"), [frame] * 4)


@pytest.mark.parametrize("swap", [None, {"left": "right"}])
def test_flip_mirrors_clips_and_swaps_paired_labels(tmp_path, swap):
    gradient_videos(tmp_path)
    src = open_source(tmp_path, "all")
    ds = make_train_dataset(src, num_segments=2, input_size=16, batch_size=4, seed=3, flip=True, swap_map=swap)
    flipped_count = 0
    for x, y in batches(ds) + batches(ds):
        for clip, label in zip(x, y):
            flipped = clip[0, 8, 0, 0] > clip[0, 8, -1, 0]
            green = clip[..., 1].mean()
            original = 0 if green < 80 else (1 if green > 160 else 2)
            expected = {0: 1, 1: 0}.get(original, original) if (flipped and swap) else original
            assert label == expected
            assert np.all((clip[:, :, 0, 0] > clip[:, :, -1, 0]) == flipped)  # whole clip
            flipped_count += flipped
    assert 0 < flipped_count < 24
    no_flip = make_train_dataset(src, num_segments=2, input_size=16, batch_size=4)
    assert all((x[:, 0, 8, 0, 0] < x[:, 0, 8, -1, 0]).all() for x, _ in batches(no_flip))


def test_argument_errors(video_folder):
    src = open_source(video_folder, "all")
    with pytest.raises(ValueError, match="batch_size"):
        make_train_dataset(src, batch_size=0)
    with pytest.raises(ValueError, match="flip=True"):
        make_train_dataset(src, swap_map={0: 1})
    with pytest.raises(ValueError, match="crops"):
        make_eval_dataset(src, crops=5)
    with pytest.raises(ValueError, match="sampling"):
        make_eval_dataset(src, sampling="uniform")


def test_skip_report_after_fit(video_folder):
    import keras

    (video_folder / "run" / "broken.mp4").write_bytes(b"not a video at all")
    src = open_source(video_folder, "all")
    ds = make_train_dataset(src, num_segments=2, input_size=8, batch_size=2, seed=0)
    model = keras.Sequential(
        [
            keras.Input((2, 8, 8, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    printed = []
    model.fit(ds, epochs=2, verbose=0, callbacks=[SkipReport({"train": src}, printed.append)])
    assert len(printed) == 2  # once per epoch: the broken file is met in both
    assert all("1 samples skipped" in p and "broken.mp4: OpenCV cannot open it" in p for p in printed)
    assert src.skipped.count == 2
