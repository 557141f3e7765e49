"""The video classifier: raw clips in, clip logits out (TSN skeleton + a temporal module)."""

import os

import keras

from tsm_keras.layers.non_local import NonLocalBlock
from tsm_keras.layers.temporal import check_num_segments
from tsm_keras.layers.temporal_aggregation import OFFLINE_OFFSETS, ONLINE_OFFSETS, TemporalAggregation
from tsm_keras.layers.temporal_pool import TemporalMaxPool
from tsm_keras.layers.temporal_shift import BIDIRECTIONAL, UNIDIRECTIONAL, TemporalShift
from tsm_keras.layers.video import FoldTime, FrameNormalization, SegmentConsensus
from tsm_keras.models.backbones import build_backbone, get_backbone
from tsm_keras.models.blvnet import big_little_resnet, check_big_little
from tsm_keras.models.insertion import (
    PLACEMENTS,
    insert_layers,
    insert_temporal_modules,
    module_name,
    producer_of,
)


def _shift(mode):
    def make(target, num_segments, shift_div, signed_inputs=False):
        # The shift moves values and is blind to their sign: `signed_inputs` is unused.
        return TemporalShift(num_segments, shift_div, mode, name=module_name(target, "shift"))

    return make


def _aggregation(offsets):
    def make(target, num_segments, shift_div, signed_inputs=False):
        # The reference's ReLU after the sum, except where block inputs are signed
        # (MobileNetV2's linear bottlenecks), which it would clip; docs/tam.md measures it.
        # The "shift" start makes the untrained model exactly the TSM one (same shift_div).
        return TemporalAggregation(
            num_segments,
            offsets,
            activation=None if signed_inputs else "relu",
            initializer="shift",
            shift_div=shift_div,
            name=module_name(target, "tam"),
        )

    return make


# Temporal modules by name: `f(target layer, num_segments, shift_div, signed_inputs=False)
# -> layer`, or None for the TSN baseline. `signed_inputs` says whether the inputs of the
# residual branches can be negative (the backbone preset's `signed_block_inputs`).
# '-online' variants are causal and can be streamed frame by frame.
TEMPORAL_MODULES = {
    "none": None,
    "tsm": _shift(BIDIRECTIONAL),
    "tsm-online": _shift(UNIDIRECTIONAL),
    "tam": _aggregation(OFFLINE_OFFSETS),
    "tam-online": _aggregation(ONLINE_OFFSETS),
}
# What each of them is, in the words fit.py prints and its --help shows.
TEMPORAL_LABELS = {
    "none": "TSN (no temporal module: the baseline blind to frame order)",
    "tsm": "TSM (bidirectional shift: offline clips, the paper's models)",
    "tsm-online": "online TSM (unidirectional shift: causal, streams frame by frame on a phone)",
    "tam": "TAM (learned aggregation of frames t-1, t, t+1)",
    "tam-online": "online TAM (learned aggregation of frames t-1, t: causal, streams)",
}


def build_video_classifier(
    num_classes,
    backbone="mobilenet_v2",
    num_segments=None,
    input_size=None,
    temporal="tsm",
    shift_div=8,
    shift_place="blockres",
    temporal_pool=False,
    non_local=False,
    dropout=0.5,
    width=1.0,
    weights=None,
    partial_bn=False,
    bn_momentum=None,
    sync_batch_norm=False,
    name="video_classifier",
):
    """A TSM (or TSN, TAM, bLVNet-TAM) video classifier.

    Input `clip`: `(B, T, S, S, 3)` raw RGB in [0, 255] (any dtype; normalised inside).
    Output: clip logits `(B, num_classes)`, the average over frames of the per-frame logits.

    bLVNet (backbone 'blresnet50' / 'blresnet101'): `num_segments` is the number of frames
    the clip carries, 2T (even): T pairs (2k, 2k+1), 16 for the reference's "8x2". Stage 4,
    the classifier and the consensus see T positions (tsm_keras.models.blvnet).

    Example:

    >>> model = build_video_classifier(5, num_segments=4, input_size=32, width=0.35)
    >>> model.output_shape
    (None, 5)

    Args:
        num_classes: K.
        backbone: a key of `tsm_keras.models.BACKBONES` ('mobilenet_v2', 'resnet50', ...,
            'blresnet50').
        num_segments: frames per clip T (default: the backbone preset's); for bLVNet the
            2T frames of its T pairs.
        input_size: frame side S (default: the preset's).
        temporal: a key of `TEMPORAL_MODULES`: 'tsm' (bidirectional), 'tsm-online'
            (unidirectional, streamable), 'tam' (learned aggregation of frames t-1, t,
            t+1), 'tam-online' (of frames t-1 and t, streamable) or 'none' (the TSN
            baseline); or a function with the signature of its entries (experiments).
            bLVNet takes 'tam' (its reference), 'tsm' or 'none'.
        shift_div: 1 / shift_div of the channels shift each way.
        shift_place: 'blockres' (residual branch) or 'block' (whole block input).
        temporal_pool: TSM+TP, max-pool over time before stage 2 (ResNets only).
        non_local: a `NonLocalBlock` after ResNet-50 blocks layer2[0, 2] and layer3[0, 2, 4]
            (conv3_block1, conv3_block3, conv4_block1, 3 and 5), as the official `_nl`
            models (ResNet-50 presets only; not with temporal_pool, which the official
            code cannot combine with it). The model no longer streams.
        dropout: dropout rate before the classifier.
        width: width multiplier (MobileNetV2 only).
        weights: backbone weights: None, 'imagenet' (needs internet; not for bLVNet or the
            torchvision twins) or the path of a weights file saved from the backbone.
        partial_bn: freeze every BatchNormalization but the first (statistics and affine),
            as the reference does when fine-tuning on small data sets.
        bn_momentum: override the backbone's BatchNormalization momentum (Keras
            MobileNetV2 uses 0.999, too slow to train from scratch in few steps).
        sync_batch_norm: under a tf.distribute strategy, normalise with the statistics of
            the global batch (all replicas) instead of each replica's own.
    """
    preset = get_backbone(backbone)
    num_segments = preset.num_segments if num_segments is None else num_segments
    input_size = preset.input_size if input_size is None else input_size
    _check_arguments(
        num_classes, backbone, preset, num_segments, input_size, temporal, shift_place, temporal_pool, dropout
    )
    _check_non_local(non_local, backbone, preset, temporal_pool)

    if preset.big_little is not None:
        check_big_little(num_segments, input_size, temporal, shift_place, width)
        _check_big_little_weights(backbone, weights)
        network = big_little_resnet(preset.big_little, num_segments, input_size, temporal, shift_div)
        if weights is not None:
            network.load_weights(weights)
        _set_batch_norm(network, partial_bn, bn_momentum, sync_batch_norm)
        out_segments = num_segments // 2  # stage 4 runs on the T pair positions
    else:
        base = build_backbone(backbone, input_size, weights=weights, width=width)
        _set_batch_norm(base, partial_bn, bn_momentum, sync_batch_norm)
        network, out_segments, non_local_blocks = _insert_temporal(
            base, preset, num_segments, temporal, shift_div, shift_place, temporal_pool, non_local
        )
        for block in non_local_blocks:  # built by now, inside `network`
            _set_batch_norm_of(block.batch_norm, bn_momentum, sync_batch_norm)

    clip = keras.Input((num_segments, input_size, input_size, 3), name="clip")
    frames = FoldTime(name="fold_time")(clip)
    x = FrameNormalization(preset.mean, preset.std, preset.reverse_channels, name="normalize")(frames)
    x = network(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    # The reference initialises the new classifier with N(0, 0.001) and zero bias. Logits
    # are computed (and averaged) in float32 under mixed precision.
    x = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
        bias_initializer="zeros",
        dtype="float32",
        name="logits",
    )(x)
    logits = SegmentConsensus(out_segments, dtype="float32", name="consensus")(x)
    return keras.Model(clip, logits, name=name)


def _insert_temporal(base, preset, num_segments, temporal, shift_div, shift_place, temporal_pool, non_local):
    """A 2D backbone with its temporal modules, TSM+TP's pooling and non-local blocks:
    (network, frames at its output, the non-local blocks)."""
    # TSM+TP: pool over time before stage 2; later blocks (and the consensus) see T / 2.
    pool_after, pooled_blocks = {}, set()
    if temporal_pool:
        pool_after[producer_of(base, preset.pool_before)] = TemporalMaxPool(num_segments, name="temporal_pool")
        names = [layer.name for layer in base.layers]  # in topological order
        pooled_blocks = set(names[names.index(preset.pool_before) :])
    out_segments = num_segments // 2 if temporal_pool else num_segments
    # Non-local blocks on the outputs of whole blocks; in `after`, so that a 'block' shift of
    # the next block comes after them.
    non_local_blocks = {
        name: NonLocalBlock(num_segments, name=f"{name.removesuffix('_out')}_nl")
        for name in (preset.non_local_after if non_local else ())
    }
    after = {**pool_after, **non_local_blocks}

    make = TEMPORAL_MODULES[temporal] if isinstance(temporal, str) else temporal
    if make is None:
        network = insert_layers(base, after=after, name="backbone") if after else base
    else:
        network = insert_temporal_modules(
            base,
            lambda target: make(
                target,
                out_segments if target in pooled_blocks else num_segments,
                shift_div,
                signed_inputs=preset.signed_block_inputs,
            ),
            place=shift_place,
            after=after,
            name="backbone",
        )
    return network, out_segments, list(non_local_blocks.values())


def _check_big_little_weights(backbone, weights):
    """bLVNet's weights: None (random) or a weights file saved from its backbone network."""
    if weights is None:
        return
    if weights == "imagenet":
        raise ValueError(
            f"{backbone!r} has no Keras ImageNet weights to download (the reference's ImageNet bLResNet is a "
            "PyTorch file): train from scratch (`weights=None`), port a published bLVNet-TAM "
            "checkpoint with `python -m tsm_keras.port`, or pass a weights file saved from this backbone"
        )
    if not os.path.exists(weights):
        raise FileNotFoundError(f"Backbone weights file not found: {weights!r}")


def _check_arguments(
    num_classes, backbone, preset, num_segments, input_size, temporal, shift_place, temporal_pool, dropout
):
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an integer >= 1. Received: {num_classes!r}")
    check_num_segments(num_segments)
    if not isinstance(input_size, int) or input_size < preset.min_input_size:
        raise ValueError(
            f"`input_size` must be an integer >= {preset.min_input_size} for {backbone!r}. Received: {input_size!r}"
        )
    if not callable(temporal) and temporal not in TEMPORAL_MODULES:
        raise ValueError(f"`temporal` must be one of {sorted(TEMPORAL_MODULES)}. Received: {temporal!r}")
    if shift_place not in PLACEMENTS:
        raise ValueError(f"`shift_place` must be one of {PLACEMENTS}. Received: {shift_place!r}")
    if temporal_pool and preset.pool_before is None:
        raise ValueError(f"Temporal pooling (TSM+TP) is defined for ResNets, not for {backbone!r}")
    if temporal_pool and num_segments % 2:
        raise ValueError(f"Temporal pooling needs an even number of segments. Received: {num_segments}")
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: {dropout!r}")


def _check_non_local(non_local, backbone, preset, temporal_pool):
    if not isinstance(non_local, bool):
        raise ValueError(f"`non_local` must be True or False. Received: {non_local!r}")
    if non_local and not preset.non_local_after:
        raise ValueError(
            "Non-local blocks are defined for ResNet-50 (the official _nl models: after blocks "
            f"layer2[0, 2] and layer3[0, 2, 4]), not for {backbone!r}. Use 'resnet50' or 'resnet50_tv'"
        )
    if non_local and temporal_pool:
        raise ValueError(
            "`non_local` and `temporal_pool` exclude each other: the official code cannot build "
            "that model, so no checkpoint or reference has it"
        )


def _set_batch_norm_of(layer, momentum, synchronized):
    if momentum is not None:
        layer.momentum = momentum
    layer.synchronized = synchronized


def _set_batch_norm(model, partial_bn, momentum, synchronized):
    """BN settings of the 2D network. (The non-local blocks' BN is set apart: partial BN
    leaves it training, as the reference's freezes only BatchNorm2d, not BatchNorm3d.)"""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        _set_batch_norm_of(layer, momentum, synchronized)
    if partial_bn:
        # A frozen Keras BatchNormalization also runs in inference mode (moving statistics),
        # which is what PyTorch's partial BN does with .eval() and requires_grad=False.
        for layer in norms[1:]:
            layer.trainable = False
