import numpy as np
import pytest
import tensorflow as tf

from tsm_keras.data import augment
from tsm_keras.data.view import View


def coordinate_clip(t=4, h=60, w=80):
    """R = x, G = y, B = 10 * frame: a crop shows where it came from."""
    y, x = np.mgrid[0:h, 0:w]
    frames = [np.stack([x, y, np.full_like(x, 10 * i)], -1) for i in range(t)]
    return tf.constant(np.array(frames, np.uint8))


def test_multi_scale_boxes_use_reference_sizes_and_positions():
    h, w = 120, 160
    sizes = {int(120 * s) for s in augment.SCALES}
    seen_pairs, seen_pos = set(), set()
    for k in range(400):
        y, x, ch, cw = (int(v) for v in augment.multi_scale_crop_box(h, w, tf.constant([k, 3])))
        assert ch in sizes and cw in sizes
        hi = sorted(sizes, reverse=True).index(ch)
        wi = sorted(sizes, reverse=True).index(cw)
        assert abs(hi - wi) <= 1  # aspect distortion of at most one scale step
        qx, qy = (160 - cw) // 4, (120 - ch) // 4
        assert (x % qx == 0 if qx else x == 0) and (y % qy == 0 if qy else y == 0)
        seen_pairs.add((wi, hi))
        if qx and qy:
            seen_pos.add((x // qx, y // qy))
        assert 0 <= y and y + ch <= h and 0 <= x and x + cw <= w
    assert len(seen_pairs) == 10 and seen_pos == set(augment.CROP_POSITIONS)


def test_other_scales_give_other_crop_sides():
    for k in range(50):
        y, x, ch, cw = (int(v) for v in augment.multi_scale_crop_box(120, 160, tf.constant([k, 3]), (1.0, 0.5)))
        assert ch in (120, 60) and cw in (120, 60) and 0 <= x <= 160 - cw and 0 <= y <= 120 - ch
    # One scale of 1.0 keeps the whole of a square frame: a plain resize.
    clip = coordinate_clip(h=48, w=48)
    out = augment.multi_scale_crop(clip, 24, tf.constant([5, 0]), scales=(1.0,))
    np.testing.assert_array_equal(out.numpy(), augment.resize_clip(clip, 24, 24).numpy())


def test_same_crop_for_every_frame():
    clip = coordinate_clip()
    for k in range(20):
        out = augment.multi_scale_crop(clip, 24, tf.constant([k, 0])).numpy()
        assert out.shape == (4, 24, 24, 3)
        for i in range(4):
            np.testing.assert_array_equal(out[i, ..., :2], out[0, ..., :2])
            assert np.all(out[i, ..., 2] == 10 * i)


def test_center_crop_resizes_short_side_then_takes_the_middle():
    clip = coordinate_clip(h=60, w=80)
    out = augment.center_crop(clip, View.paper(28)).numpy()  # short side -> 32, size 32 x 43, crop 28
    assert out.shape == (4, 28, 28, 3)
    scale = 60 / 32
    x0 = (43 - 28) // 2
    expected_x = (x0 + np.arange(28) + 0.5) * scale - 0.5  # bilinear, half-pixel centres
    np.testing.assert_allclose(out[0, 14, :, 0], expected_x, atol=1.01)
    assert abs(out[0, :, :, 1].mean() - 29.5) < 1.5
    # The view of a run trained on whole frames keeps the whole short side: x spans the centre 60 px.
    whole = augment.center_crop(clip, View(28, 28)).numpy().astype(int)
    assert whole.shape == (4, 28, 28, 3)
    assert abs(whole[0, 14, 0, 0] - 10) < 2.5 and abs(whole[0, 14, -1, 0] - 69) < 2.5


def test_the_view_square_of_the_apps_is_the_pipeline_crop():
    # stream.py and the web page crop View.square in the frame's pixels, then resize; the
    # pipeline resizes, then crops. The same region of the frame, to a pixel.
    for view, (h, w) in ((View.paper(224), (120, 200)), (View.paper(64), (90, 160)), (View(64, 64), (80, 80))):
        top, left, side = view.square(h, w)
        clip = coordinate_clip(h=h, w=w)
        out = augment.center_crop(clip, view).numpy().astype(float)
        step = side / view.center_crop  # frame pixels per output pixel
        assert abs(out[0, 0, 0, 0] - (left + step / 2 - 0.5)) <= max(1.01, step)
        assert abs(out[0, -1, -1, 1] - (top + side - step / 2 - 0.5)) <= max(1.01, step)


def test_three_crops_cover_left_centre_right():
    clip = coordinate_clip(h=40, w=100)
    out = augment.three_crops(clip, 20).numpy()  # short side 20: 20 x 50, crops at x 0, 15, 30
    assert out.shape == (3, 4, 20, 20, 3)
    left, centre, right = (out[k, 0, :, :, 0].astype(float).mean() for k in range(3))
    assert left < 25 and abs(centre - 49.5) < 2 and right > 74
    tall = augment.three_crops(tf.transpose(clip, [0, 2, 1, 3]), 20).numpy()
    assert tall[0, 0, :, :, 0].mean() < tall[2, 0, :, :, 0].mean()  # top to bottom (R = y now)


def test_swap_table_is_symmetric_and_validated():
    table = augment.swap_table({1: 2, "d": "e"}, 6, ["a", "b", "c", "d", "e", "f"])
    assert table.tolist() == [0, 2, 1, 4, 3, 5]
    assert augment.swap_table(None, 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="two partners"):
        augment.swap_table({0: 1, 2: 1}, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        augment.swap_table({0: 5}, 3)


def test_random_flip_mirrors_the_clip_and_swaps_the_label():
    clip = coordinate_clip()
    table = augment.swap_table({0: 1}, 3)
    flips = 0
    for k in range(30):
        for label in (0, 2):
            out, new = augment.random_flip(clip, tf.constant(label), tf.constant([k, 1]), table)
            flipped = out.numpy()[0, 0, 0, 0] > 0
            np.testing.assert_array_equal(out.numpy(), clip.numpy()[:, :, ::-1] if flipped else clip.numpy())
            assert int(new) == ({0: 1}.get(label, label) if flipped else label)
            flips += flipped
    assert 15 < flips < 45
