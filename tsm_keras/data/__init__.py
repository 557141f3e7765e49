"""Video data: sources, frame sampling, clip augmentation and the tf.data pipelines.

from tsm_keras.data import open_source, make_train_dataset, make_eval_dataset
src = open_source("videos/", split="train")
ds = make_train_dataset(src, num_segments=8, input_size=224, batch_size=8)
"""

from tsm_keras.data.base import DataError, Source
from tsm_keras.data.clips import calibration_clips, validation_pairs
from tsm_keras.data.labels import read_labels, write_labels
from tsm_keras.data.pipeline import make_eval_dataset, make_train_dataset
from tsm_keras.data.sampling import Sampling
from tsm_keras.data.skips import SkipLog, SkipReport
from tsm_keras.data.sources import FrameListSource, VideoFolderSource, open_source
from tsm_keras.data.tfrecord import TFRecordSource, write_tfrecords
