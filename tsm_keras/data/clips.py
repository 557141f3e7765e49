"""Clips for int8 calibration and validation, read from any data the pipeline opens.

A run trained by fit.py names its data in run.json (`data.train`, `data.val`); a ported
checkpoint has none, and `tflite/convert.py --data PATH` supplies it (a video folder, a list
file or a TFRecord folder). Both go through these two functions, so a clip is sampled and
cropped the same way whatever its source: TSN segment centres, the run's view, raw RGB.
"""

import numpy as np

from tsm_keras.data.augment import center_crop
from tsm_keras.data.pipeline import make_eval_dataset
from tsm_keras.data.sampling import Sampling
from tsm_keras.data.sources import open_source


def validation_pairs(path, num_segments, view, class_names=None, split="val"):
    """`(clip, label)` pairs of a data set through the evaluation pipeline: one clip, the
    run's `view` (`tsm_keras.data.view.View`), every video once in file order. Clips are
    `(T, H, W, 3)` raw RGB."""
    source = open_source(path, split=split, class_names=class_names)
    dataset = make_eval_dataset(
        source, num_segments=num_segments, input_size=view.center_crop, batch_size=8, clips=1, crops=1, view=view
    )
    for clips, labels in dataset:
        for views, label in zip(np.asarray(clips), np.asarray(labels)):
            yield views[0], int(label)


def calibration_clips(path, num_segments, view, class_names, count, seed=0):
    """`count` training clips spread over the classes: the training videos in a shuffled
    order (the file order is by class), each sampled and cropped as for evaluation (frames
    at the segment centres, the run's `view`), kept in memory so that every model is
    calibrated on the same clips."""
    source = open_source(path, split="train", class_names=class_names)
    clips = source.clips(Sampling("tsn", num_segments), seed=seed)
    return [center_crop(views[0], view).numpy() for views, _ in clips.take(count)]
