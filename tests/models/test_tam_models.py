"""TAM inserted into ResNet and MobileNetV2, through the same mechanism as TSM."""

import keras
import numpy as np
import pytest

from tests.reference import frames_that_differ
from tsm_keras.layers import TemporalAggregation
from tsm_keras.models import (
    TEMPORAL_LABELS,
    TEMPORAL_MODULES,
    build_video_classifier,
    insert_temporal_aggregation,
    insert_temporal_shift,
    parameter_overhead,
    temporal_modules,
)
from tsm_keras.models.insertion import producer_of

T, S = 4, 32


def mobilenet():
    return keras.applications.MobileNetV2((S, S, 3), alpha=0.35, include_top=False, weights=None)


def resnet50():
    return keras.applications.ResNet50(input_shape=(S, S, 3), include_top=False, weights=None)


def block_input_channels(model):
    """C of every TAM in `model`, read from the layer it sits before (its block input)."""
    return [layer.kernel.shape[1] for layer in temporal_modules(model)]


def test_tam_goes_where_the_shift_goes_and_shares_the_2d_weights():
    for base, count in [(mobilenet(), 10), (resnet50(), 16)]:
        tsm, tam = insert_temporal_shift(base, T), insert_temporal_aggregation(base, T)
        shifts, aggregations = temporal_modules(tsm), temporal_modules(tam)
        assert len(aggregations) == count
        assert all(isinstance(m, TemporalAggregation) for m in aggregations)
        assert [m.name.replace("_shift", "") for m in shifts] == [m.name.replace("_tam", "") for m in aggregations]
        own = {id(w) for w in tam.weights} - {id(w) for w in base.weights}  # the 2D weights are shared
        assert own == {id(m.kernel) for m in aggregations} and len(tam.weights) == len(base.weights) + count
    assert producer_of(tam, "conv2_block1_1_conv") == "conv2_block1_tam"
    assert producer_of(tam, "conv2_block1_0_conv") == "pool1_pool"  # shortcut untouched
    block = insert_temporal_aggregation(base, T, place="block")
    assert producer_of(block, "conv2_block1_0_conv") == "conv2_block1_tam"


def test_parameter_overhead_is_r_times_c_per_module():
    # ResNet-50, r = 3: 3 * (64 + 2*256 + 256 + 3*512 + 512 + 5*1024 + 1024 + 2*2048) = 39,360.
    base = resnet50()
    for offsets, total in [((-1, 0, 1), 39_360), ((-1, 0), 26_240)]:
        tam = insert_temporal_aggregation(base, T, offsets)
        overhead = parameter_overhead(tam)
        assert overhead.total == total
        assert overhead.base == base.count_params()
        channels = block_input_channels(tam)
        assert channels[:4] == [64, 256, 256, 256] and channels[-1] == 2048
        assert list(overhead.per_module.values()) == [len(offsets) * c for c in channels]
        assert tam.count_params() == base.count_params() + total
    assert f"+39,360 parameters on the {base.count_params():,}" in str(
        parameter_overhead(insert_temporal_aggregation(base, T))
    )
    # MobileNetV2 0.35: block inputs 8, 16, 16, 24 x3, 32 x2, 56 x2.
    small = insert_temporal_aggregation(mobilenet(), T, activation=None)
    assert block_input_channels(small) == [8, 16, 16, 24, 24, 24, 32, 32, 56, 56]
    assert parameter_overhead(small).total == 3 * 288
    assert parameter_overhead(insert_temporal_shift(mobilenet(), T)).total == 0


def test_shift_start_is_exactly_tsm_and_identity_start_is_exactly_2d():
    x = frames_that_differ(2, T, S, S, 3)
    # ResNet block inputs are post-ReLU (>= 0), so the reference's ReLU changes nothing at the start.
    # MobileNetV2's are signed linear bottlenecks: the ReLU would clip them, so it goes linear.
    for base, activation in [(mobilenet(), None), (resnet50(), "relu")]:
        tsm = np.asarray(insert_temporal_shift(base, T)(x))
        tam = insert_temporal_aggregation(base, T, activation=activation, initializer="shift")
        np.testing.assert_array_equal(np.asarray(tam(x)), tsm)
        plain = insert_temporal_aggregation(base, T, activation=activation, initializer="identity")
        np.testing.assert_array_equal(np.asarray(plain(x)), np.asarray(base(x)))
        online = insert_temporal_aggregation(base, T, (-1, 0), activation)
        np.testing.assert_array_equal(
            np.asarray(online(x)), np.asarray(insert_temporal_shift(base, T, mode="unidirectional")(x))
        )
    # With a ReLU on MobileNetV2's signed block inputs even the identity start is not the 2D network.
    relu_on_signed = insert_temporal_aggregation(mobilenet(), T, activation="relu", initializer="identity")
    clipped, plain = np.asarray(relu_on_signed(x)), np.asarray(without_aggregation(relu_on_signed)(x))
    # (The linear identity start above equals the 2D network exactly; this is no rounding.)
    assert np.abs(clipped - plain).max() > 1e-3 * np.abs(plain).max()  # relative: untrained activations are tiny


def without_aggregation(model):
    """The same graph with every TemporalAggregation removed (the 2D network, shared weights)."""
    return keras.models.clone_model(
        model,
        clone_function=lambda layer: layer,
        call_function=lambda layer, *a, **k: a[0] if isinstance(layer, TemporalAggregation) else layer(*a, **k),
    )


def small(temporal, backbone="mobilenet_v2", **kwargs):
    width = 0.35 if backbone == "mobilenet_v2" else 1.0
    return build_video_classifier(
        5, backbone, num_segments=T, input_size=S, temporal=temporal, width=width, dropout=0.0, **kwargs
    )


def clips(batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(batch, T, S, S, 3)).astype("float32")


@pytest.mark.parametrize("backbone,activation,count", [("mobilenet_v2", None, 10), ("resnet50", "relu", 16)])
def test_classifier_tam_variants_per_backbone(backbone, activation, count):
    tsn = small("none", backbone)
    for temporal, offsets in [("tam", (-1, 0, 1)), ("tam-online", (-1, 0))]:
        model = small(temporal, backbone)
        modules = temporal_modules(model)
        assert len(modules) == count
        assert {(m.offsets, m.activation, m.initializer, m.shift_div, m.num_segments) for m in modules} == {
            (offsets, activation, "shift", 8, T)
        }
        assert model.count_params() - tsn.count_params() == parameter_overhead(model).total
        assert parameter_overhead(model).base == tsn.count_params()
        assert all(m.is_causal == (temporal == "tam-online") for m in modules)


def test_classifier_tam_starts_as_tsm():
    # Same seed, same 2D and head weights: the untrained TAM classifier is the TSM one.
    x = clips()
    for temporal, twin in [("tam", "tsm"), ("tam-online", "tsm-online")]:
        keras.utils.set_random_seed(1)
        tam = small(temporal)
        keras.utils.set_random_seed(1)
        tsm = small(twin)
        tsm.get_layer("logits").kernel.assign(
            np.random.default_rng(2).normal(size=(tsm.get_layer("logits").kernel.shape))
        )
        tam.get_layer("logits").kernel.assign(tsm.get_layer("logits").kernel)
        np.testing.assert_array_equal(np.asarray(tam(x)), np.asarray(tsm(x)))


def test_classifier_tam_online_is_causal_and_round_trips(tmp_path):
    x = clips(batch=1)
    later = x.copy()
    later[:, 2:] = 255 - later[:, 2:]  # change frames 2 and 3
    for temporal, early_frames_change in [("tam-online", False), ("tam", True)]:
        model = small(temporal)
        for module in temporal_modules(model):  # trained-looking weights, not one-hot
            module.kernel.assign(np.random.default_rng(0).normal(size=module.kernel.shape))
        model.get_layer("logits").kernel.assign(np.ones(model.get_layer("logits").kernel.shape))
        per_frame = keras.Model(model.input, model.get_layer("logits").output)
        a, b = np.asarray(per_frame(x)), np.asarray(per_frame(later))
        assert np.array_equal(a[:2], b[:2]) != early_frames_change, temporal
        model.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras")
        np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
        assert [m.name for m in temporal_modules(loaded)] == [m.name for m in temporal_modules(model)]


def test_tam_with_temporal_pool_sees_half_the_frames():
    model = small("tam", "resnet50", temporal_pool=True)
    segments = {m.name: m.num_segments for m in temporal_modules(model)}
    assert segments["conv2_block3_tam"] == T and segments["conv3_block1_tam"] == T // 2
    assert model(clips()).shape == (2, 5)


def test_classifier_accepts_a_module_function():
    def tam_kaiming(target, num_segments, shift_div, signed_inputs=False):
        return TemporalAggregation(
            num_segments, initializer="kaiming", activation=None if signed_inputs else "relu", name=target + "_tam"
        )

    model = small(tam_kaiming)
    modules = temporal_modules(model)
    assert len(modules) == 10 and {m.initializer for m in modules} == {"kaiming"}
    assert {m.activation for m in modules} == {None}
    assert set(TEMPORAL_MODULES) >= {"none", "tsm", "tsm-online", "tam", "tam-online"}
    assert list(TEMPORAL_LABELS) == list(TEMPORAL_MODULES)  # every module says what it is, in order
    with pytest.raises(ValueError, match="temporal"):
        small("tam3d")


class Cached(keras.layers.Layer):
    """Runs a causal layer's `step` on one frame, keeping its state in a variable."""

    def __init__(self, module, frame_shape):
        super().__init__(name=f"{module.name}_cached")
        self.module = module
        self.state = self.add_weight(
            shape=(1,) + module.state_shape(frame_shape), initializer="zeros", trainable=False, name="state"
        )

    def call(self, frame):
        output, new_state = self.module.step(frame, self.state)
        self.state.assign(new_state)
        return output


def test_tam_online_backbone_streams_frame_by_frame_like_the_clip():
    # The streaming protocol over a whole network: each TemporalAggregation runs `step` with a
    # cached state; frames in order from zero states give the per-frame outputs of the clip model.
    model = small("tam-online")
    for module in temporal_modules(model):  # trained-looking weights, not one-hot
        module.kernel.assign(np.random.default_rng(0).normal(0.5, 0.5, size=module.kernel.shape))
    backbone = model.get_layer("backbone")
    cached = []

    def call(layer, *args, **kwargs):
        if not isinstance(layer, TemporalAggregation):
            return layer(*args, **kwargs)
        cached.append(Cached(layer, tuple(args[0].shape[1:])))
        return cached[-1](args[0])

    per_frame = keras.models.clone_model(
        backbone, input_tensors=keras.Input((S, S, 3), batch_size=1), clone_function=lambda l: l, call_function=call
    )
    assert len(cached) == 10 and cached[0].state.shape == (1, S // 4, S // 4, 8)  # block_2 input, 8 channels
    x = frames_that_differ(1, T, S, S, 3)
    offline = np.asarray(backbone(x))
    streamed = np.concatenate([np.asarray(per_frame(x[t : t + 1])) for t in range(T)])
    np.testing.assert_allclose(streamed, offline, rtol=1e-4, atol=1e-4 * np.abs(offline).max())
    # Frames after the first differ from the 2D network: the cache did carry the previous frame.
    assert np.abs(streamed[1:] - np.asarray(without_aggregation(backbone)(x))[1:]).max() > 1e-2 * np.abs(offline).max()
