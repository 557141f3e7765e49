"""Spatial transforms of whole clips: one crop box and one flip decision per clip.

A clip is a uint8 tensor (T, H, W, 3); every function applies the same geometry to
all T frames at once (one slice, one batched resize), so frames stay aligned and
nothing loops over frames in Python.
"""

import numpy as np
import tensorflow as tf

# Multi-scale crop of the reference: side = short side * scale; width and height
# scales may differ by at most one step; 13 fixed positions on a 4 x 4 grid.
SCALES = (1.0, 0.875, 0.75, 0.66)
MAX_DISTORT = 1


def scale_pairs(scales=SCALES):
    """The (width, height) index pairs into `scales` a multi-scale crop may take."""
    n = len(scales)
    return tuple((wi, hi) for hi in range(n) for wi in range(n) if abs(wi - hi) <= MAX_DISTORT)


SCALE_PAIRS = scale_pairs()
# (x, y) in quarters of the free space: corners, centre, then edge centres and inner corners.
CROP_POSITIONS = (
    (0, 0),
    (4, 0),
    (0, 4),
    (4, 4),
    (2, 2),
    (0, 2),
    (4, 2),
    (2, 4),
    (2, 0),
    (1, 1),
    (3, 1),
    (1, 3),
    (3, 3),
)


def resize_clip(clip, height, width):
    """Bilinear resize of every frame of a uint8 clip (T, H, W, 3) to (height, width)."""
    # float32 in: measured 30% faster than resizing the uint8 tensor. Bilinear weights are
    # convex, so the result stays in [0, 255] and + 0.5 then truncation rounds it.
    out = tf.image.resize(tf.cast(clip, tf.float32), tf.stack([height, width]), method="bilinear")
    return tf.cast(out + 0.5, tf.uint8)


def multi_scale_crop_box(height, width, seed, scales=SCALES):
    """A random reference multi-scale crop box (y, x, h, w) for a frame of the given size.

    `seed` is a stateless seed (two int64 values); the box is a pure function of it.
    `scales`: crop sides as fractions of the short side (the reference's by default);
    `(1.0,)` keeps the whole of a square frame.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    base = tf.cast(tf.minimum(height, width), tf.float64)
    sizes = tf.maximum(tf.cast(base * tf.constant(scales, tf.float64), tf.int32), 1)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    pairs = scale_pairs(scales)
    pair = tf.gather(
        tf.constant(pairs, tf.int32), tf.random.stateless_uniform([], seeds[0], 0, len(pairs), dtype=tf.int32)
    )
    crop_w = tf.minimum(sizes[pair[0]], width)
    crop_h = tf.minimum(sizes[pair[1]], height)
    pos = tf.gather(
        tf.constant(CROP_POSITIONS, tf.int32),
        tf.random.stateless_uniform([], seeds[1], 0, len(CROP_POSITIONS), dtype=tf.int32),
    )
    x = pos[0] * ((width - crop_w) // 4)
    y = pos[1] * ((height - crop_h) // 4)
    return y, x, crop_h, crop_w


def multi_scale_crop(clip, size, seed, scales=SCALES):
    """Training crop: one random multi-scale box for the whole clip, resized to size x size."""
    shape = tf.shape(clip)
    y, x, h, w = multi_scale_crop_box(shape[1], shape[2], seed, scales)
    return resize_clip(clip[:, y : y + h, x : x + w, :], size, size)


def _resize_short_side(clip, short):
    shape = tf.shape(clip)
    h = tf.cast(shape[1], tf.float64)
    w = tf.cast(shape[2], tf.float64)
    scale = tf.cast(short, tf.float64) / tf.minimum(h, w)
    new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), short)
    new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), short)
    return resize_clip(clip, new_h, new_w)


def center_crop(clip, view):
    """Test crop of a `tsm_keras.data.view.View`: resize the short side to
    `view.resize_short_side`, take the centre `view.center_crop` square."""
    size = view.center_crop
    resized = _resize_short_side(clip, view.resize_short_side)
    shape = tf.shape(resized)
    y = (shape[1] - size) // 2
    x = (shape[2] - size) // 2
    return resized[:, y : y + size, x : x + size, :]


def three_crops(clip, size):
    """Test crops: resize the short side to `size`, take three size x size squares along the
    long side (left, centre, right; or top, centre, bottom). Returns (3, T, size, size, 3)."""
    resized = _resize_short_side(clip, size)
    shape = tf.shape(resized)
    free_y = shape[1] - size
    free_x = shape[2] - size
    crops = []
    for part in (0, 1, 2):  # start, centre, end of the long side
        y = free_y * part // 2
        x = free_x * part // 2
        crops.append(resized[:, y : y + size, x : x + size, :])
    return tf.stack(crops)


def swap_table(swap_map, num_classes, class_names=None):
    """Label lookup for horizontal flips: table[label] is the label of the mirrored clip.

    `swap_map` pairs left/right classes, e.g. {86: 87, 93: 94} (ints or class names);
    a pair given once applies both ways.
    """
    table = np.arange(num_classes, dtype=np.int32)
    if not swap_map:
        return table

    def index(c):
        if isinstance(c, str):
            if class_names is None or c not in class_names:
                raise ValueError(f"`swap_map` names an unknown class. Received: {c!r}")
            return class_names.index(c)
        if not isinstance(c, (int, np.integer)) or not 0 <= c < num_classes:
            raise ValueError(f"`swap_map` labels must be in [0, {num_classes}). Received: {c!r}")
        return int(c)

    partner = {}
    for a, b in dict(swap_map).items():
        a, b = index(a), index(b)
        for x, y in ((a, b), (b, a)):
            if partner.get(x, y) != y:
                raise ValueError(f"`swap_map` gives class {x} two partners: {partner[x]} and {y}")
            partner[x] = y
    for x, y in partner.items():
        table[x] = y
    return table


def random_flip(clip, label, seed, table=None):
    """Mirrors the whole clip left-right with probability 1/2; the label follows `table`."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    clip = tf.cond(flip, lambda: tf.reverse(clip, axis=[2]), lambda: clip)
    if table is not None:
        label = tf.where(flip, tf.gather(tf.constant(table), label), label)
    return clip, label
