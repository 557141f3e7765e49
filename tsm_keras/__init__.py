"""tsm-keras: Temporal Shift Module video models for Keras 3 and TFLite."""

from tsm_keras.layers import TemporalAggregation, TemporalMaxPool, TemporalShift
from tsm_keras.models import build_video_classifier, insert_temporal_aggregation, insert_temporal_shift
from tsm_keras.video_classifier import VideoClassifier

__version__ = "0.1.0"
