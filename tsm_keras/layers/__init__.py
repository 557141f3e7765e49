from tsm_keras.layers import batch_norm  # noqa: F401  registers its BatchNormalization for loading .keras files
from tsm_keras.layers.non_local import NonLocalBlock
from tsm_keras.layers.temporal_aggregation import TemporalAggregation
from tsm_keras.layers.temporal_pool import TemporalMaxPool
from tsm_keras.layers.temporal_shift import TemporalShift
from tsm_keras.layers.video import FoldTime, FrameNormalization, SegmentConsensus
