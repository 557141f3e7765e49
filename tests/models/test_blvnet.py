"""bLVNet-TAM's Big-Little network: structure, the frame pairing, the temporal modules, errors."""

import re

import keras
import numpy as np
import pytest

from tsm_keras.layers import TemporalAggregation, TemporalShift
from tsm_keras.models import BACKBONES, build_video_classifier, temporal_modules
from tsm_keras.streaming import NotStreamableError, build_streaming_model

PAIRS, S = 2, 64  # 2T = 4 frames of 64 px
FRAMES = 2 * PAIRS


def clips(batch=2, seed=0):
    """Raw RGB clips in which every frame differs."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, FRAMES, S, S, 3)).astype("float32")


@pytest.fixture(scope="module")
def tam50():
    keras.utils.set_random_seed(0)
    return build_video_classifier(5, backbone="blresnet50", num_segments=FRAMES, input_size=S, temporal="tam")


@pytest.fixture(scope="module")
def plain50():
    keras.utils.set_random_seed(0)
    return build_video_classifier(5, backbone="blresnet50", num_segments=FRAMES, input_size=S, temporal="none")


def blocks(backbone, pattern):
    """Distinct block names matching `pattern` (a regex with one group) among the layer names."""
    return sorted({m[1] for layer in backbone.layers if (m := re.match(pattern, layer.name))})


@pytest.mark.parametrize(
    "name,big,little,stage4",
    [
        ("blresnet50", (2, 3, 5), (1, 1, 1), 3),
        pytest.param("blresnet101", (3, 7, 17), (1, 1, 3), 3, marks=pytest.mark.slow),
    ],
)
def test_branch_depths_follow_alpha_2_beta_4(name, big, little, stage4):
    net = build_video_classifier(5, backbone=name, num_segments=FRAMES, input_size=S, temporal="none")
    backbone = net.get_layer("backbone")
    for stage in (1, 2, 3):
        assert len(blocks(backbone, rf"^(stage{stage}_big_block\d+)_1_conv$")) == big[stage - 1]
        assert len(blocks(backbone, rf"^(stage{stage}_little_block\d+)_1_conv$")) == little[stage - 1]
        assert len(blocks(backbone, rf"^(stage{stage}_fusion_block\d+)_1_conv$")) == 1
    assert len(blocks(backbone, r"^(stage4_block\d+)_1_conv$")) == stage4
    # Little branches are half as wide (alpha 2): stage 1's little blocks end in 128 channels.
    assert backbone.get_layer("stage1_little_block1_3_conv").filters == 128
    assert backbone.get_layer("stage1_little_expand_conv").filters == 256


def test_spatial_sizes_and_frame_counts(tam50):
    backbone = tam50.get_layer("backbone")

    def shape(layer):
        return tuple(backbone.get_layer(layer).output.shape[1:3])

    # 64 px (224 px in the reference: 112, 56, 28/56/28, 14/28/14, 7/14/14, 7): stem 32, stage 0 16,
    # big / little / out 8/16/8 at stage 1, 4/8/4 at stage 2, 2/4/4 at stage 3, stage 4 2.
    assert shape("conv1_relu") == (32, 32) and shape("stage0_fusion_relu") == (16, 16)
    for stage, (big, little, out) in {1: (8, 16, 8), 2: (4, 8, 4), 3: (2, 4, 4)}.items():
        assert shape(f"stage{stage}_big_block1_out") == (big, big)
        assert shape(f"stage{stage}_little_expand_bn") == (little, little)
        assert shape(f"stage{stage}_fusion_block1_out") == (out, out)
    assert backbone.output_shape == (None, 2, 2, 2048)
    # Stage 4 and the consensus see the T pair positions; every module before sees 2T frames.
    segments = {m.name: m.num_segments for m in temporal_modules(tam50)}
    assert segments == {
        "stage0_tam": FRAMES,
        "stage1_tam": FRAMES,
        "stage2_tam": FRAMES,
        "stage3_tam": FRAMES,
        "stage4_block1_tam": PAIRS,
        "stage4_block2_tam": PAIRS,
        "stage4_block3_tam": PAIRS,
    }
    assert tam50.get_layer("consensus").num_segments == PAIRS
    # TAM: 3 weights per channel of its input (stem 64, stages 64, 256, 512; stage 4 1024, 2048, 2048).
    assert all(isinstance(m, TemporalAggregation) for m in temporal_modules(tam50))
    assert [m.kernel.shape for m in temporal_modules(tam50)] == [(3, c) for c in (64, 64, 256, 512, 1024, 2048, 2048)]


def intermediate(model, names):
    backbone = model.get_layer("backbone")
    inner = keras.Model(backbone.input, [backbone.get_layer(n).output for n in names])
    normalize = model.get_layer("normalize")

    def run(clip):
        frames = normalize(clip.reshape((-1, S, S, 3)))
        return [np.asarray(y) for y in inner(frames)]

    return run


def test_both_frames_of_a_pair_carry_the_fused_features(tam50):
    run = intermediate(tam50, ["stage0_repeat", "stage1_repeat", "stage2_repeat", "stage3_fusion_block1_out"])
    *repeated, fused = run(clips())
    for y in repeated:
        assert y.shape[0] == 2 * FRAMES  # two clips of 2T frames
        np.testing.assert_array_equal(y[0::2], y[1::2])  # frame 2k == frame 2k+1
        assert np.abs(y[0::2][:-1] - y[0::2][1:]).max() > 1e-3  # but pairs differ
    assert fused.shape[0] == 2 * PAIRS  # stage 3's fused map: one per pair, into stage 4


def test_odd_frames_feed_the_big_branch_and_even_frames_the_little_one(plain50):
    run = intermediate(plain50, ["stage0_big_bn", "stage0_little_3_bn", "stage0_fusion_relu"])
    clip = clips(batch=1)
    big, little, fused = run(clip)
    other_even, other_odd = clip.copy(), clip.copy()
    other_even[:, 0::2] = clips(batch=1, seed=1)[:, 0::2]
    other_odd[:, 1::2] = clips(batch=1, seed=2)[:, 1::2]
    big_even, little_even, fused_even = run(other_even)
    big_odd, little_odd, fused_odd = run(other_odd)
    np.testing.assert_array_equal(big_even, big)  # the big branch never reads frame 2k
    np.testing.assert_array_equal(little_odd, little)  # the little branch never reads frame 2k+1
    assert np.abs(little_even - little).max() > 1e-2 and np.abs(big_odd - big).max() > 1e-2
    assert np.abs(fused_even - fused).max() > 1e-2 and np.abs(fused_odd - fused).max() > 1e-2
    # Swapping the frames of each pair changes the fused features: the branches are not symmetric.
    swapped = clip.reshape(1, PAIRS, 2, S, S, 3)[:, :, ::-1].reshape(clip.shape)
    assert np.abs(run(np.ascontiguousarray(swapped))[2] - fused).max() > 1e-2


def test_keras_round_trip(tmp_path):
    # The CPU-sized preset: the same builder, the layer types and the pairing of blresnet50.
    model = build_video_classifier(5, backbone="blresnet_cpu", num_segments=FRAMES, input_size=S, temporal="tam")
    path = tmp_path / "blvnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    clip = clips()
    np.testing.assert_allclose(np.asarray(loaded(clip)), np.asarray(model(clip)), atol=1e-6)


def test_tsm_goes_in_the_same_places():
    model = build_video_classifier(5, backbone="blresnet_cpu", num_segments=FRAMES, input_size=S, temporal="tsm")
    shifts = temporal_modules(model)
    assert all(isinstance(m, TemporalShift) for m in shifts)
    assert [m.name for m in shifts] == [f"stage{s}_shift" for s in range(4)] + [
        "stage4_block1_shift",
        "stage4_block2_shift",
    ]


def test_the_presets_are_data():
    assert BACKBONES["blresnet50"].big_little.blocks == (3, 4, 6, 3)
    assert BACKBONES["blresnet101"].big_little.blocks == (4, 8, 18, 3)
    assert BACKBONES["blresnet50"].num_segments == 16  # "8x2": 8 pairs


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_segments": 5}, "must be an even integer"),
        ({"input_size": 48}, "multiple of 32"),
        ({"temporal": "tam-online"}, "must be one of"),
        ({"shift_place": "block"}, "must be 'blockres'"),
        ({"weights": "imagenet"}, "no Keras ImageNet weights"),
        ({"temporal_pool": True}, "Temporal pooling"),
    ],
)
def test_settings_it_cannot_take_fail_with_one_line(kwargs, message):
    arguments = {"num_segments": FRAMES, "input_size": S, "temporal": "tam", **kwargs}
    with pytest.raises(ValueError, match=message):
        build_video_classifier(5, backbone="blresnet50", **arguments)


def test_no_streaming_model_and_the_reason(tam50):
    with pytest.raises(NotStreamableError, match=r"pairs frames \(2k, 2k\+1\).*reads the next frame"):
        build_streaming_model(tam50)
