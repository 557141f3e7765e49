"""tsm-keras: Temporal Shift Module video models for Keras 3 and TFLite."""

from tsm_keras._startup import import_tensorflow

import_tensorflow()  # before Keras: applies TF_CPP_MIN_LOG_LEVEL to TensorFlow's start-up lines

from tsm_keras.layers import TemporalAggregation, TemporalMaxPool, TemporalShift  # noqa: E402
from tsm_keras.models import build_video_classifier, insert_temporal_aggregation, insert_temporal_shift  # noqa: E402

__version__ = "0.1.0"
