"""Video data: sources, frame sampling, clip augmentation and the tf.data pipelines."""

from tsm_keras.data.base import DataError, Source
from tsm_keras.data.labels import read_labels, write_labels
from tsm_keras.data.sampling import Sampling
from tsm_keras.data.skips import SkipLog, SkipReport
from tsm_keras.data.sources import FrameListSource, VideoFolderSource, open_source
from tsm_keras.data.tfrecord import TFRecordSource, write_tfrecords
