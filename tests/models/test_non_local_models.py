"""The `non_local` option of build_video_classifier: where the blocks go, what they start as, what is refused."""

import pytest

from tsm_keras.layers import NonLocalBlock, TemporalShift
from tsm_keras.models import build_video_classifier, parameter_overhead, temporal_modules
from tsm_keras.streaming import NotStreamableError, build_streaming_model

T, S = 4, 32
BLOCKS = ["conv3_block1", "conv3_block3", "conv4_block1", "conv4_block3", "conv4_block5"]


def resnet(**kwargs):
    kwargs = {"backbone": "resnet50_tv", "num_segments": T, "input_size": S, "dropout": 0.0, **kwargs}
    return build_video_classifier(5, **kwargs)


def producer(model, layer):
    """Name of the layer whose output `layer` takes."""
    return layer.input._keras_history.operation.name


def test_blocks_follow_layer2_0_2_and_layer3_0_2_4():
    model = resnet(backbone="resnet50", non_local=True, bn_momentum=0.5, partial_bn=True)
    backbone_model = model.get_layer("backbone")
    blocks = temporal_modules(model, NonLocalBlock)
    assert [block.name for block in blocks] == [f"{name}_nl" for name in BLOCKS]
    for block, name in zip(blocks, BLOCKS):
        assert producer(backbone_model, block) == f"{name}_out"  # after the whole block
        assert block.num_segments == T
        # bn_momentum reaches the blocks' BN; partial BN leaves it training (the reference
        # freezes BatchNorm2d layers only, and this one is a BatchNorm3d there)
        assert block.batch_norm.momentum == 0.5 and block.batch_norm.trainable
    # ... and the next block reads the non-local output
    assert producer(backbone_model, backbone_model.get_layer("conv3_block2_shift")) == "conv3_block1_nl"
    overhead = parameter_overhead(model)
    # C = 512 (layer2), 1024 (layer3): theta, phi, g C -> C/2 with bias, W C/2 -> C with bias, BN 4 C
    per_block = {c: 3 * (c * c // 2 + c // 2) + c // 2 * c + c + 4 * c for c in (512, 1024)}
    assert [overhead.per_module[f"{name}_nl"] for name in BLOCKS] == [per_block[512]] * 2 + [per_block[1024]] * 3


def test_whole_block_shifts_come_after_the_non_local_block_and_the_model_does_not_stream():
    model = resnet(non_local=True, shift_place="block", temporal="tsm-online")
    backbone_model = model.get_layer("backbone")
    shift = backbone_model.get_layer("conv3_block2_shift")
    assert isinstance(shift, TemporalShift) and producer(backbone_model, shift) == "conv3_block1_nl"
    with pytest.raises(NotStreamableError, match="non-local blocks .* every frame of the clip, later frames included"):
        build_streaming_model(model)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(backbone="mobilenet_v2_tv"), "defined for ResNet-50 .* not for 'mobilenet_v2_tv'"),
        (dict(backbone="resnet101_tv"), "not for 'resnet101_tv'"),
        (dict(temporal_pool=True), "`non_local` and `temporal_pool` exclude each other"),
        (dict(non_local="yes"), "True or False"),
    ],
)
def test_refused(kwargs, message):
    kwargs = {"non_local": True, **kwargs}
    with pytest.raises(ValueError, match=message):
        resnet(**kwargs)
