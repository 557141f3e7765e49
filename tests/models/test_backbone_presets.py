"""One shared check over every backbone preset in BACKBONES (Keras and torchvision twins)."""

import numpy as np
import pytest

from tests.models.test_insertion import bypass_shifts
from tests.reference import frames_that_differ
from tsm_keras.models import BACKBONES, build_backbone, build_video_classifier, insert_temporal_shift, temporal_modules

T, S = 4, 32

# Shifted blocks per preset: ResNet-50 3+4+6+3; ResNet-101 every other block (2+2+12+2);
# MobileNetV2 the 10 residual blocks with an expansion conv. A new preset must be listed.
EXPECTED_SHIFTS = {
    "mobilenet_v2": 10,
    "resnet50": 16,
    "resnet101": 18,
    "mobilenet_v2_tv": 10,
    "resnet50_tv": 16,
    "resnet101_tv": 18,
}


# The Big-Little networks are video networks over frame pairs: tests/models/test_blvnet.py.
FRAME_BACKBONES = sorted(name for name, preset in BACKBONES.items() if preset.big_little is None)


def test_every_preset_has_an_expectation():
    assert sorted(EXPECTED_SHIFTS) == FRAME_BACKBONES


@pytest.mark.parametrize("name", FRAME_BACKBONES)
def test_shift_count_equal_parameters_and_bypass(name):
    width = {"width": 0.35} if BACKBONES[name].has_width else {}
    base = build_backbone(name, S, **width)
    tsm = insert_temporal_shift(base, T)
    assert len(temporal_modules(tsm)) == EXPECTED_SHIFTS[name]
    assert tsm.count_params() == base.count_params()
    assert all(a is b for a, b in zip(tsm.weights, base.weights))
    x = frames_that_differ(1, T, S, S, 3)
    plain = np.asarray(base(x))
    np.testing.assert_array_equal(np.asarray(bypass_shifts(tsm)(x)), plain)  # shift off -> the 2D model
    assert np.abs(np.asarray(tsm(x)) - plain).max() > 1e-3 * np.abs(plain).max()  # shift on matters


@pytest.mark.parametrize("name", ["mobilenet_v2_tv", "resnet50_tv"])
def test_tsm_and_tsn_classifiers_have_equal_parameters(name):
    kwargs = dict(num_segments=T, input_size=S, backbone=name)
    tsm, tsn = build_video_classifier(5, **kwargs), build_video_classifier(5, temporal="none", **kwargs)
    assert tsm.count_params() == tsn.count_params()


def test_block_placement_shifts_every_block_of_deep_resnets():
    # The reference's 'block' placement has no every-other rule (that is 'blockres' only).
    model = build_video_classifier(5, backbone="resnet101_tv", num_segments=T, input_size=S, shift_place="block")
    assert len(temporal_modules(model)) == 3 + 4 + 23 + 3
