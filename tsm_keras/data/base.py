"""What every data source shares: the error for structural problems, the Source base class."""

import numpy as np
import tensorflow as tf

from tsm_keras.data.skips import SkipLog


class DataError(ValueError):
    """A structural problem with a data set (it stops at start): the message names the path."""


class Source:
    """A labelled set of videos that yields decoded clips.

    Attributes:
        path: where the data is.
        split: which split of it ("train", "val", "test" or "all").
        class_names: list of class names; label i is class_names[i].
        num_clips: number of listed samples (unreadable ones included; they are skipped when met).
        skipped: a `SkipLog` of the samples that could not be read.
    """

    def __init__(self, path, split, class_names):
        self.path = str(path)
        self.split = split
        self.class_names = list(class_names)
        self.skipped = SkipLog()

    @property
    def num_clips(self):
        raise NotImplementedError

    def clips(self, sampling, seed=None):
        """A tf.data.Dataset of (uint8 (V, T, H, W, 3) RGB frames, int32 label), V = sampling.clips.

        `seed` None: file order, fixed indices (evaluation). An int: shuffled each
        iteration, random indices, reproducible for a given seed. Unreadable samples are
        dropped and recorded in `skipped`. H and W vary from video to video.
        """
        raise NotImplementedError

    def __repr__(self):
        return (
            f"{type(self).__name__}(path={self.path!r}, split={self.split!r}, "
            f"num_clips={self.num_clips}, num_classes={len(self.class_names)})"
        )


def add_noise(ds, sampling, seed):
    """Appends to each element the `sampling.noise_size` uniform numbers its indices use.

    Drawn statelessly from a tf.data random stream, so a seed gives the same numbers per
    position in each epoch's order, and each epoch different ones.
    """
    if seed is None:
        zeros = tf.zeros([sampling.noise_size], tf.float32)
        return ds.map(lambda *rec: (*rec, zeros))
    stream = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def noise(rec, r):
        rec = rec if isinstance(rec, tuple) else (rec,)
        u = tf.random.stateless_uniform([sampling.noise_size], tf.stack([r, tf.constant(7, tf.int64)]))
        return (*rec, u)

    return tf.data.Dataset.zip(ds, stream).map(noise)


def report_if_bad(skipped, ok, name, reason):
    """Graph helper: records (name, reason) in `skipped` when `ok` is False; returns `ok`."""

    def report(name, reason):
        skipped.add(name.decode("utf-8", "replace"), reason.decode("utf-8", "replace"))
        return np.bool_(False)

    return tf.cond(
        ok, lambda: tf.constant(True), lambda: tf.ensure_shape(tf.numpy_function(report, [name, reason], tf.bool), [])
    )


def drop_bad(ds):
    """(frames, label, ok) elements -> (frames, label) of the ok ones."""

    def is_ok(frames, label, ok):
        return ok

    def without_flag(frames, label, ok):
        return frames, label

    return ds.filter(is_ok).map(without_flag)
