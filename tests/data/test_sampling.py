import numpy as np
import pytest

from tsm_keras.data.sampling import Sampling


def reference_tsn_val(n, t):
    tick = n / t
    return [int(tick / 2.0 + tick * i) for i in range(t)]


@pytest.mark.parametrize("n,t", [(16, 4), (30, 8), (300, 8), (7, 8), (1, 8), (9, 3)])
def test_tsn_val_matches_reference_formula(n, t):
    assert Sampling("tsn", t).indices(n).tolist() == [reference_tsn_val(n, t)]


def test_tsn_train_takes_one_frame_per_segment():
    rng = np.random.default_rng(0)
    s = Sampling("tsn", 8, training=True)
    n = 43  # avg = 5: segment i is frames [5i, 5i + 5)
    seen = set()
    for _ in range(200):
        idx = s.indices(n, rng.random(s.noise_size))[0]
        assert all(5 * i <= x < 5 * i + 5 for i, x in enumerate(idx))
        seen.update(idx.tolist())
    assert seen == set(range(40))  # every frame of every segment comes up


def test_short_videos_repeat_frames_in_order():
    rng = np.random.default_rng(1)
    for kind in ("tsn", "dense"):
        for training in (False, True):
            s = Sampling(kind, 8, training=training)
            for n in (1, 2, 5, 7):
                noise = rng.random(s.noise_size) if training else None
                idx = s.indices(n, noise)[0]
                assert len(idx) == 8 and idx.min() >= 0 and idx.max() < n
                assert np.all(np.diff(idx) >= 0), (kind, training, n, idx)


def test_dense_uses_stride_64_over_t():
    s = Sampling("dense", 8, training=True)
    idx = s.indices(200, np.full(9, 0.5))[0]
    assert np.all(np.diff(idx) == 8)
    assert idx[0] == np.floor(0.5 * (200 - 64 + 1))
    assert Sampling("dense", 16).stride == 4


def test_dense_test_windows_are_evenly_spaced_and_inside():
    idx = Sampling("dense", 8, clips=10).indices(300)
    starts = idx[:, 0]
    assert np.all(np.diff(idx, axis=1) == 8)
    assert starts.min() >= 0 and idx.max() < 300
    assert len(set(np.diff(starts).tolist()) - {23, 24}) == 0  # (300 - 64) / 10 apart
    assert Sampling("dense", 8).indices(164)[0, 0] == 50  # one clip: the centre window


def test_multi_clip_tsn_clip_zero_is_validation_and_two_clips_is_twice_sample():
    n, t = 40, 4
    idx = Sampling("tsn", t, clips=2).indices(n)
    assert idx[0].tolist() == reference_tsn_val(n, t)
    assert idx[1].tolist() == [int(n / t * i) for i in range(t)]
    three = Sampling("tsn", t, clips=3).indices(n)
    assert len({tuple(r) for r in three.tolist()}) == 3


def test_numpy_and_tensorflow_agree_exactly():
    rng = np.random.default_rng(2)
    for kind in ("tsn", "dense"):
        for t in (1, 3, 8):
            for clips in (1, 3):
                s = Sampling(kind, t, clips=clips)
                ns = np.arange(1, 160)
                tf_idx = [s.indices_tf(n).numpy() for n in ns]
                assert all(np.array_equal(a, s.indices(n)) for a, n in zip(tf_idx, ns))
            s = Sampling(kind, t, training=True)
            for n in rng.integers(1, 400, 40):
                u = rng.random(s.noise_size).astype(np.float32)
                assert np.array_equal(s.indices_tf(n, u).numpy(), s.indices(n, u)), (kind, t, n)


def test_validation_of_arguments():
    with pytest.raises(ValueError, match="sampling"):
        Sampling("uniform")
    with pytest.raises(ValueError, match="num_segments"):
        Sampling("tsn", 0)
    with pytest.raises(ValueError, match="clips"):
        Sampling("tsn", 8, clips=2, training=True)
