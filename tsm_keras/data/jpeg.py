"""Decoding a clip's JPEG frames inside the tf.data graph without ever raising.

tf.io.decode_jpeg raises on corrupt data ("Bogus Huffman table", "Unsupported marker"),
and a header check cannot rule that out. A raising map function would end the whole
tf.data pipeline, and `Dataset.ignore_errors` after it would drop the clip without
saying which file it was. So each clip's frames are decoded in a small nested dataset:
`ignore_errors` there drops only the broken frames, and a clip whose decoded count or
sizes do not match is flagged, so the caller can name it, count it and filter it out.
"""

import tensorflow as tf


def decode_jpeg_frames(jpegs):
    """Decodes a non-empty 1-D string tensor of JPEGs to RGB uint8 frames.

    Returns:
        frames: uint8 (N, H, W, 3) when `ok`; otherwise a placeholder of unspecified size.
        ok: scalar bool, True when every frame decoded and all have the same size.
        bad: scalar int32, the index of the first frame that failed to decode or whose
            size differs from the first good frame's; -1 when `ok`.
        why: scalar string, what is wrong with frame `bad` ("" when `ok`).
    """
    n = tf.shape(jpegs)[0]
    frames = tf.data.Dataset.from_tensor_slices((tf.range(n), jpegs))
    frames = frames.map(lambda i, b: (i, tf.io.decode_jpeg(b, channels=3))).ignore_errors()
    frames = frames.map(lambda i, img: (i, img, tf.shape(img)[:2]))
    # A 1 x 1 sentinel keeps the batch non-empty when every frame fails; padding to
    # the largest frame lets frames of different sizes be batched and compared.
    sentinel = tf.data.Dataset.from_tensors(
        (tf.constant(-1, tf.int32), tf.zeros([1, 1, 3], tf.uint8), tf.ones([2], tf.int32)))
    idx, images, sizes = frames.concatenate(sentinel).padded_batch(tf.cast(n, tf.int64) + 1).get_single_element()
    idx, images, sizes = idx[:-1], images[:-1], sizes[:-1]
    count = tf.shape(idx)[0]
    # Frames are decoded in order, so the first missing index is where idx departs from 0..count-1.
    missing = tf.where(tf.not_equal(idx, tf.range(count)))
    first_missing = tf.cond(
        tf.size(missing) > 0, lambda: tf.cast(missing[0, 0], tf.int32), lambda: count)
    first_missing = tf.where(count < n, first_missing, n)
    other_size = tf.where(tf.reduce_any(tf.not_equal(sizes, sizes[:1]), axis=1))
    first_other = tf.cond(
        tf.size(other_size) > 0,
        lambda: tf.gather(idx, tf.cast(other_size[0, 0], tf.int32)),
        lambda: n)
    bad = tf.minimum(first_missing, first_other)
    ok = tf.equal(bad, n)
    images = tf.cond(
        ok,
        lambda: images[:, :sizes[0, 0], :sizes[0, 1], :],
        lambda: tf.zeros([n, 1, 1, 3], tf.uint8))
    why = tf.where(
        ok, "", tf.where(first_missing <= first_other, "cannot be decoded as JPEG",
                         "differs in size from the first frame"))
    return images, ok, tf.where(ok, -1, bad), why
