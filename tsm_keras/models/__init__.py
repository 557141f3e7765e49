from tsm_keras.models.backbones import BACKBONES, Backbone, build_backbone, get_backbone
from tsm_keras.models.classifier import TEMPORAL_LABELS, TEMPORAL_MODULES, build_video_classifier
from tsm_keras.models.insertion import (
    ParameterOverhead,
    find_insertion_points,
    insert_layers,
    insert_temporal_aggregation,
    insert_temporal_modules,
    insert_temporal_shift,
    parameter_overhead,
    temporal_modules,
    walk_layers,
)
