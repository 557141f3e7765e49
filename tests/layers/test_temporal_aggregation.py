import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.backends import needs_jax, run_on_jax
from tests.reference import frames_that_differ, temporal_aggregation
from tsm_keras.layers import TemporalAggregation, TemporalShift
from tsm_keras.layers import temporal_aggregation as temporal_aggregation_module

OFFLINE, ONLINE, ONLINE3 = (-1, 0, 1), (-1, 0), (-2, -1, 0)
ACTIVATIONS = ["relu", None]


def with_random_kernel(layer, channels, seed=0):
    """Build `layer` and give it random weights of both signs (no offset weighs 0 or 1)."""
    if not layer.built:
        layer.build((None, 1, 1, channels))
    kernel = np.random.default_rng(seed).normal(size=(len(layer.offsets), channels)).astype("float32")
    layer.set_weights([kernel])
    return kernel


def test_hand_check_t4():
    # Channel 0 blends t and t+1, channel 1 blends t-1 and t; zeros outside the clip.
    x = np.array([[1, 10], [2, 20], [3, 30], [4, 40]], "float32").reshape(4, 1, 1, 2)
    layer = TemporalAggregation(4, activation=None)
    layer.build(x.shape)
    layer.set_weights([np.array([[0, 1], [1, 1], [1, 0]], "float32")])
    y = np.asarray(layer(x)).reshape(4, 2)
    np.testing.assert_array_equal(y[:, 0], [3, 5, 7, 4])
    np.testing.assert_array_equal(y[:, 1], [10, 30, 50, 70])
    # ReLU after the sum: a negative weight gives negative sums, which become 0.
    layer.set_weights([np.array([[0, 0], [1, 1], [-2, 0]], "float32")])
    relu = TemporalAggregation(4)
    relu.build(x.shape)
    relu.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(relu(x)).reshape(4, 2)[:, 0], [0, 0, 0, 4])


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("offsets", [OFFLINE, ONLINE, ONLINE3, (0, 1), (-2, -1, 0, 1, 2)])
@pytest.mark.parametrize("batch,num_segments,channels", [(2, 4, 16), (1, 8, 5), (3, 3, 8), (2, 1, 4), (1, 2, 6)])
def test_matches_numpy_reference(activation, offsets, batch, num_segments, channels):
    x = frames_that_differ(batch, num_segments, 3, 2, channels)
    layer = TemporalAggregation(num_segments, offsets, activation, initializer="identity")
    kernel = with_random_kernel(layer, channels)
    expected = temporal_aggregation(x, num_segments, kernel, offsets, activation)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "offsets,mode", [(OFFLINE, "bidirectional"), (ONLINE, "unidirectional"), (ONLINE3, "unidirectional")]
)
@pytest.mark.parametrize("shift_div", [8, 4, 3])
def test_one_hot_weights_equal_the_shift(offsets, mode, shift_div):
    # The "shift" initialisation is the one-hot kernel of TSM's channel split.
    x = frames_that_differ(2, 4, 3, 3, 24)
    linear = TemporalAggregation(4, offsets, None, "shift", shift_div)
    shifted = np.asarray(TemporalShift(4, shift_div, mode)(x))
    np.testing.assert_array_equal(np.asarray(linear(x)), shifted)
    np.testing.assert_array_equal(
        np.asarray(TemporalAggregation(4, offsets, "relu", "shift", shift_div)(x)), np.maximum(shifted, 0)
    )
    # The same one-hot kernel written by hand, through set_weights.
    fold = 24 // shift_div
    kernel = np.zeros((len(offsets), 24), "float32")
    kernel[offsets.index(0)] = 1
    kernel[:, :fold] = 0
    kernel[offsets.index(1 if mode == "bidirectional" else -1), :fold] = 1
    if mode == "bidirectional":
        kernel[:, fold : 2 * fold] = 0
        kernel[offsets.index(-1), fold : 2 * fold] = 1
    by_hand = TemporalAggregation(4, offsets, None, "identity")
    by_hand.build(x.shape)
    by_hand.set_weights([kernel])
    np.testing.assert_array_equal(np.asarray(by_hand(x)), shifted)
    np.testing.assert_array_equal(linear.get_weights()[0], kernel)


def test_identity_initialisation_is_the_2d_network():
    x = frames_that_differ(2, 4, 3, 3, 8)
    np.testing.assert_array_equal(np.asarray(TemporalAggregation(4, activation=None, initializer="identity")(x)), x)
    np.testing.assert_array_equal(np.asarray(TemporalAggregation(4, initializer="identity")(x)), np.maximum(x, 0))


def test_kaiming_initialisation_statistics():
    # PyTorch kaiming_normal_(mode='fan_out') of a depthwise 1x1 conv per offset: std sqrt(2 / C).
    keras.utils.set_random_seed(3)
    layer = TemporalAggregation(2, initializer="kaiming")
    layer.build((2, 1, 1, 4096))
    kernel = layer.get_weights()[0]
    assert kernel.shape == (3, 4096)
    assert abs(kernel.mean()) < 0.003
    assert kernel.std() == pytest.approx(np.sqrt(2 / 4096), rel=0.03)
    assert np.abs(kernel).max() > 2.5 * np.sqrt(2 / 4096)  # untruncated, as PyTorch's


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_kernel_gradient_matches_numpy(activation):
    # d/dw_j sum(g * y) = sum_t g_t * x_{t+j} (times the ReLU mask): the training signal.
    x = frames_that_differ(2, 4, 2, 3, 6, seed=1)
    upstream = frames_that_differ(2, 4, 2, 3, 6, seed=2)
    layer = TemporalAggregation(4, OFFLINE, activation)
    kernel = with_random_kernel(layer, 6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * upstream)
    grad = tape.gradient(loss, layer.kernel.value).numpy()
    y = temporal_aggregation(x, 4, kernel, OFFLINE, None)
    masked = upstream * (y > 0) if activation == "relu" else upstream
    clips, g = x.reshape(2, 4, 2, 3, 6), masked.reshape(2, 4, 2, 3, 6)
    expected = np.zeros_like(kernel)
    for j, offset in enumerate(OFFLINE):
        for t in range(4):
            if 0 <= t + offset < 4:
                expected[j] += (g[:, t] * clips[:, t + offset]).sum(axis=(0, 1, 2))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-4)


def test_causal_windows_read_no_later_frame():
    x = frames_that_differ(1, 6, 2, 2, 8)
    later = x.copy()
    later[4:] += 1.0  # change frames 4 and 5
    for offsets, changes_frame_3 in [(ONLINE, False), (ONLINE3, False), (OFFLINE, True)]:
        layer = TemporalAggregation(6, offsets, None)
        with_random_kernel(layer, 8)
        a, b = np.asarray(layer(x)), np.asarray(layer(later))
        assert layer.is_causal != changes_frame_3
        assert np.array_equal(a[:3], b[:3])
        assert np.array_equal(a[3], b[3]) != changes_frame_3, offsets


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("offsets", [ONLINE, ONLINE3])
def test_step_matches_offline(offsets, activation):
    # Streaming from zero state equals the whole clip, frame for frame, for two clips at once.
    num_segments, frame = 6, (2, 3, 8)
    x = frames_that_differ(2, num_segments, *frame)
    layer = TemporalAggregation(num_segments, offsets, activation)
    with_random_kernel(layer, 8)
    assert layer.state_shape(frame) == (2, 3, 8 * -offsets[0])
    clips = x.reshape(2, num_segments, *frame)
    state = np.zeros((2,) + layer.state_shape(frame), "float32")
    outputs = []
    for t in range(num_segments):
        out, state = layer.step(clips[:, t], state)
        outputs.append(np.asarray(out))
    streamed = np.stack(outputs, axis=1).reshape(x.shape)
    np.testing.assert_array_equal(streamed, np.asarray(layer(x)))
    # The state is the block input of the last frames, oldest first.
    np.testing.assert_array_equal(
        np.asarray(state), np.concatenate(list(clips[:, offsets[0] :].transpose(1, 0, 2, 3, 4)), axis=-1)
    )


def test_offline_window_cannot_stream():
    with pytest.raises(ValueError, match="cannot stream"):
        TemporalAggregation(4).state_shape((2, 3, 16))
    with pytest.raises(ValueError, match="cannot stream"):
        TemporalAggregation(4, (0, 1), initializer="identity").step(np.zeros((1, 2, 3, 16), "float32"), None)


def test_parameters_are_r_times_c():
    for offsets in (OFFLINE, ONLINE, ONLINE3):
        layer = TemporalAggregation(4, offsets)
        layer.build((8, 7, 7, 40))
        assert layer.count_params() == len(offsets) * 40
        assert [w.name for w in layer.weights] == ["kernel"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_segments=0), "num_segments"),
        (
            dict(num_segments=4, offsets=(1, 0, -1)),
            r"consecutive increasing integers .* Received: offsets=\(1, 0, -1\)",
        ),
        (dict(num_segments=4, offsets=(-2, 0)), "consecutive"),
        (dict(num_segments=4, offsets=(1, 2)), "include 0"),
        (dict(num_segments=4, offsets=(0,)), "at least two"),
        (dict(num_segments=4, offsets=(-1.0, 0.0)), "integers"),
        (dict(num_segments=4, activation="sigmoid"), "activation.*Received: activation='sigmoid'"),
        (dict(num_segments=4, initializer="zeros"), "initializer.*Received: initializer='zeros'"),
        (dict(num_segments=4, shift_div=1), "shift_div` must be an integer >= 2. Received: shift_div=1"),
        (dict(num_segments=4, offsets=(0, 1)), "must contain offset -1. Received: offsets=\\(0, 1\\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemporalAggregation(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="multiple of num_segments=4"):
        TemporalAggregation(4)(keras.Input(batch_shape=(6, 2, 2, 16)))
    with pytest.raises(ValueError, match=r"\(B\*T, H, W, C\)"):
        TemporalAggregation(4)(np.zeros((4, 16), "float32"))


def test_config_round_trip_and_keras_file(tmp_path):
    layer = TemporalAggregation(4, [-2, -1, 0], None, "kaiming", 4, name="tam")
    config = layer.get_config()
    clone = TemporalAggregation.from_config(config)
    assert (clone.num_segments, clone.offsets, clone.activation, clone.initializer, clone.shift_div, clone.name) == (
        4,
        (-2, -1, 0),
        None,
        "kaiming",
        4,
        "tam",
    )
    assert clone.get_config() == config
    model = keras.Sequential([keras.Input((2, 2, 8)), TemporalAggregation(4)])
    with_random_kernel(model.layers[0], 8)  # trained weights, not the initial ones, must survive
    x = frames_that_differ(2, 4, 2, 2, 8)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_dynamic_spatial_size_under_tf_function():
    layer = TemporalAggregation(4, activation=None)
    kernel = with_random_kernel(layer, 8)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 8), tf.float32)])
    x = frames_that_differ(2, 4, 3, 5, 8)
    np.testing.assert_allclose(fn(x).numpy(), temporal_aggregation(x, 4, kernel, OFFLINE, None), rtol=1e-5, atol=1e-5)


def test_mixed_precision_computes_in_float16():
    layer = TemporalAggregation(4, dtype="mixed_float16")
    y = layer(frames_that_differ(1, 4, 2, 2, 8))
    assert y.dtype == "float16" and layer.kernel.dtype == "float32"


def test_docstring_example_runs():
    result = doctest.testmod(temporal_aggregation_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


@needs_jax
def test_aggregation_runs_on_the_jax_backend():
    # The Keras backend is chosen per process: run the check in a fresh one.
    code = (
        "import numpy as np, keras; from tsm_keras.layers import TemporalAggregation;"
        "from tests.reference import temporal_aggregation, frames_that_differ;"
        "assert keras.backend.backend() == 'jax';"
        "x = frames_that_differ(2, 4, 3, 3, 16); k = np.random.default_rng(0).normal(size=(3, 16)).astype('float32');"
        "layer = TemporalAggregation(4); layer.build(x.shape); layer.set_weights([k]);"
        "np.testing.assert_allclose(np.asarray(layer(x)), temporal_aggregation(x, 4, k, (-1, 0, 1)), atol=1e-5);"
        "s = TemporalAggregation(4, (-1, 0)); s.build(x.shape);"
        "out, st = s.step(x[:1], np.zeros((1, 3, 3, 16), 'float32'));"
        "np.testing.assert_allclose(np.asarray(out), np.asarray(s(x))[:1], atol=1e-5);"
        "np.testing.assert_array_equal(np.asarray(st), x[:1]);"
        "print('jax ok')"
    )
    run_on_jax(code)
