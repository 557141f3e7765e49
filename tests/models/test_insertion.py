import keras
import numpy as np
import pytest

from tests.reference import frames_that_differ, temporal_shift
from tsm_keras.layers import TemporalShift
from tsm_keras.models import find_insertion_points, insert_temporal_shift, temporal_modules
from tsm_keras.models.insertion import producer_of

T = 4


def keras_backbones():
    # Built once per test that needs them; 32 px keeps ResNet-101 cheap.
    return {
        "mobilenet_v2": keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None),
        "resnet50": keras.applications.ResNet50(input_shape=(32, 32, 3), include_top=False, weights=None),
        "resnet101": keras.applications.ResNet101(input_shape=(32, 32, 3), include_top=False, weights=None),
    }


def bypass_shifts(model):
    """The same graph with every TemporalShift replaced by the identity."""
    return keras.models.clone_model(
        model,
        clone_function=lambda layer: layer,
        call_function=lambda layer, *a, **k: a[0] if isinstance(layer, TemporalShift) else layer(*a, **k),
    )


def toy_residual_model(channels=8):
    """x -> conv 1x1 ('branch', identity kernel) -> add(x, branch): one residual block."""
    inputs = keras.Input((2, 2, channels))
    stem = keras.layers.Identity(name="stem")(inputs)
    identity = keras.initializers.Constant(np.eye(channels).reshape(1, 1, channels, channels))
    branch = keras.layers.Conv2D(channels, 1, use_bias=False, kernel_initializer=identity, name="branch")(stem)
    outputs = keras.layers.Add(name="add")([stem, branch])
    return keras.Model(inputs, outputs, name="toy")


def test_shift_counts_parameters_and_weight_sharing():
    expected = {"mobilenet_v2": 10, "resnet50": 16, "resnet101": 18}
    for name, base in keras_backbones().items():
        tsm = insert_temporal_shift(base, T)
        shifts = temporal_modules(tsm)
        assert len(shifts) == expected[name], name
        assert tsm.count_params() == base.count_params(), name
        assert len(tsm.weights) == len(base.weights)
        assert all(a is b for a, b in zip(tsm.weights, base.weights)), name  # same objects
        base_layers = {id(layer) for layer in base.layers[1:]}  # all but the input layer
        assert base_layers <= {id(layer) for layer in tsm.layers}, name  # same layer objects


def test_insertion_points_follow_the_reference():
    bases = keras_backbones()
    assert find_insertion_points(bases["mobilenet_v2"]) == [
        f"block_{i}_expand" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)
    ]
    r50 = find_insertion_points(bases["resnet50"])
    assert r50[:4] == ["conv2_block1_1_conv", "conv2_block2_1_conv", "conv2_block3_1_conv", "conv3_block1_1_conv"]
    r101 = find_insertion_points(bases["resnet101"])  # every other block: 2 + 2 + 12 + 2
    assert [n.split("_")[0] for n in r101].count("conv4") == 12
    assert "conv4_block1_1_conv" in r101 and "conv4_block2_1_conv" not in r101
    assert "conv4_block23_1_conv" in r101 and "conv3_block3_1_conv" in r101


def test_residual_placement_in_keras_resnet():
    base = keras.applications.ResNet50(input_shape=(32, 32, 3), include_top=False, weights=None)
    blockres = insert_temporal_shift(base, T)
    assert producer_of(blockres, "conv2_block1_1_conv") == "conv2_block1_shift"
    assert producer_of(blockres, "conv2_block1_0_conv") == "pool1_pool"  # shortcut unshifted
    assert producer_of(blockres, "conv3_block2_1_conv") == "conv3_block2_shift"
    block = insert_temporal_shift(base, T, place="block")
    assert producer_of(block, "conv2_block1_1_conv") == "conv2_block1_shift"
    assert producer_of(block, "conv2_block1_0_conv") == "conv2_block1_shift"  # shortcut shifted too
    assert producer_of(block, "conv2_block1_shift") == "pool1_pool"


@pytest.mark.parametrize("place", ["blockres", "block"])
def test_placement_numbers_on_a_toy_block(place):
    # identity branch: blockres y = x + shift(x); block y = shift(x) + shift(x)
    toy = toy_residual_model()
    model = insert_temporal_shift(toy, T, shift_div=4, place=place, layer_names=["branch"])
    x = frames_that_differ(2, T, 2, 2, 8)
    shifted = temporal_shift(x, T, 4)
    expected = x + shifted if place == "blockres" else 2 * shifted
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-6, atol=1e-6)


def test_bypassed_shift_gives_the_2d_model_exactly():
    for name, base in keras_backbones().items():
        if name == "resnet101":
            continue
        tsm = insert_temporal_shift(base, T)
        x = frames_that_differ(2, T, 32, 32, 3)
        plain = np.asarray(base(x))
        np.testing.assert_array_equal(np.asarray(bypass_shifts(tsm)(x)), plain)
        # The shift does something (relative: untrained activations are tiny).
        assert np.abs(np.asarray(tsm(x)) - plain).max() > 1e-3 * np.abs(plain).max(), name


def test_unknown_architecture_explains_how_to_name_insertion_points():
    with pytest.raises(ValueError, match="layer_names"):
        insert_temporal_shift(toy_residual_model(), T)
    with pytest.raises(ValueError, match="no layers named"):
        insert_temporal_shift(toy_residual_model(), T, layer_names=["nope"])
