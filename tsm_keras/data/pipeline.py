"""The tf.data pipelines the training and evaluation scripts use.

Frames stay raw uint8 RGB all the way: the model normalises them itself.
"""

import tensorflow as tf

from tsm_keras.data import augment
from tsm_keras.data.sampling import Sampling
from tsm_keras.data.view import View

AUTOTUNE = tf.data.AUTOTUNE


def _check_sizes(**sizes):
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")


def make_train_dataset(
    src,
    num_segments=8,
    input_size=224,
    batch_size=8,
    seed=0,
    sampling="tsn",
    flip=False,
    swap_map=None,
    scales=augment.SCALES,
):
    """Shuffled training batches, one epoch per iteration.

    Each clip: `num_segments` frames picked by TSN (a random frame per segment) or dense
    sampling (a random window), one multi-scale crop box for all its frames, resized to
    input_size, and, if `flip`, mirrored with probability 1/2. Reproducible for a seed.

    Args:
        src: a source from `open_source`.
        num_segments: frames per clip, T.
        input_size: output side S.
        batch_size: clips per batch; the last partial batch is dropped.
        seed: shuffling, sampling and augmentation seed.
        sampling: "tsn" or "dense".
        flip: random horizontal flips. Off by default: mirroring changes the meaning of
            direction-sensitive classes ("swiping left").
        swap_map: with `flip`, left/right class pairs whose labels swap when a clip is
            mirrored, e.g. {86: 87, 93: 94} (ints or class names, one direction suffices).
        scales: crop sides as fractions of the short side (default: the reference's
            multi-scale crop); `(1.0,)` only resizes square frames.

    Returns:
        tf.data.Dataset of (uint8 (B, T, S, S, 3) RGB, int32 (B,)).
    """
    _check_sizes(num_segments=num_segments, input_size=input_size, batch_size=batch_size)
    if swap_map and not flip:
        raise ValueError("`swap_map` is only used with `flip=True`. Received: flip=False")
    spec = Sampling(sampling, num_segments, training=True)
    table = augment.swap_table(swap_map, len(src.class_names), src.class_names)
    clips = src.clips(spec, seed=seed)
    stream = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)

    def transform(example, r):
        frames, label = example
        seeds = tf.random.experimental.stateless_split(tf.stack([r, tf.constant(0, tf.int64)]), 2)
        clip = augment.multi_scale_crop(frames[0], input_size, seeds[0], scales)
        if flip:
            clip, label = augment.random_flip(clip, label, seeds[1], table)
        return tf.ensure_shape(clip, [num_segments, input_size, input_size, 3]), label

    ds = tf.data.Dataset.zip(clips, stream).map(transform, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def make_eval_dataset(src, num_segments=8, input_size=224, batch_size=8, clips=1, crops=1, sampling="tsn", view=None):
    """Deterministic evaluation batches: every readable clip once, in source order.

    Views: `clips` temporal views (TSN: evenly spaced offsets within each segment, clip
    0 at the segment centres; dense: evenly spaced windows) times `crops` spatial views
    (1: the run's `view`, `tsm_keras.data.view.View`; by default the paper's: resize the
    short side to S * 256 / 224 and take the centre S x S; 3: resize the short side to S
    and take three S x S squares along the long side). Views are ordered clip-major:
    view v = clip (v // crops), crop (v % crops).

    Returns:
        tf.data.Dataset of (uint8 (B, V, T, S, S, 3) RGB, int32 (B,)), V = clips * crops;
        the last batch may be smaller.
    """
    _check_sizes(num_segments=num_segments, input_size=input_size, batch_size=batch_size, clips=clips)
    if crops not in (1, 3):
        raise ValueError(f"`crops` must be 1 or 3. Received: crops={crops!r}")
    view = View.paper(input_size) if view is None else view
    if view.center_crop != input_size:
        raise ValueError(f"the view's centre crop ({view.center_crop}) is not `input_size` ({input_size})")
    spec = Sampling(sampling, num_segments, clips=clips)
    views = clips * crops

    def transform(frames, label):
        shape = tf.shape(frames)
        flat = tf.reshape(frames, [clips * num_segments, shape[2], shape[3], 3])
        if crops == 1:
            out = augment.center_crop(flat, view)[None]
        else:
            out = augment.three_crops(flat, input_size)
        # (crops, clips * T, S, S, 3) -> (clips, crops, T, S, S, 3) -> (V, T, S, S, 3). With one
        # clip or one crop the order is already clip-major, and skipping the uint8 transpose also
        # skips oneDNN's "supports DT_UINT8 only on platforms with AVX-512" error line on AVX2 CPUs.
        out = tf.reshape(out, [crops, clips, num_segments, input_size, input_size, 3])
        if clips > 1 and crops > 1:
            out = tf.transpose(out, [1, 0, 2, 3, 4, 5])
        out = tf.reshape(out, [views, num_segments, input_size, input_size, 3])
        return out, label

    ds = src.clips(spec, seed=None).map(transform, num_parallel_calls=AUTOTUNE)
    # Without tf.data's autotuning thread (parallelism then defaults to the cores): Keras'
    # fit() drops the validation iterator after every pass, and deleting an iterator waits
    # for that thread, which held the demo's epochs up by 20-30 s on 2 busy cores
    # (docs/benchmarks.md, "The validation pass").
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.batch(batch_size, drop_remainder=False).prefetch(AUTOTUNE).with_options(options)
