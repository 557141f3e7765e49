import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.backends import needs_jax, run_on_jax
from tests.reference import frames_that_differ, temporal_shift
from tsm_keras.layers import TemporalShift

MODES = ["bidirectional", "unidirectional"]


def test_hand_check_from_reference_t4():
    # docs/reference.md, "The shift": channel 0 [1,2,3,4] -> [2,3,4,0]; channel fold [10,20,30,40] -> [0,10,20,30].
    c, shift_div = 8, 4  # fold = 2: channels 0-1 from the future, 2-3 from the past
    x = np.zeros((4, 1, 1, c), "float32")
    x[:, 0, 0, 0] = [1, 2, 3, 4]
    x[:, 0, 0, 2] = [10, 20, 30, 40]
    x[:, 0, 0, 4] = [5, 6, 7, 8]
    y = np.asarray(TemporalShift(4, shift_div)(x))
    np.testing.assert_array_equal(y[:, 0, 0, 0], [2, 3, 4, 0])
    np.testing.assert_array_equal(y[:, 0, 0, 2], [0, 10, 20, 30])
    np.testing.assert_array_equal(y[:, 0, 0, 4], [5, 6, 7, 8])  # unshifted channel
    online = np.asarray(TemporalShift(4, shift_div, "unidirectional")(x))
    np.testing.assert_array_equal(online[:, 0, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(online[:, 0, 0, 2], [10, 20, 30, 40])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "batch,num_segments,channels,shift_div",
    [(2, 4, 16, 8), (1, 8, 24, 4), (3, 3, 10, 3), (2, 1, 8, 8), (1, 5, 7, 2)],
)
def test_matches_numpy_reference(mode, batch, num_segments, channels, shift_div):
    x = frames_that_differ(batch, num_segments, 3, 2, channels)
    y = TemporalShift(num_segments, shift_div, mode)(x)
    np.testing.assert_array_equal(np.asarray(y), temporal_shift(x, num_segments, shift_div, mode))


@pytest.mark.parametrize("mode", MODES)
def test_gradient_is_the_opposite_shift(mode):
    x = tf.constant(frames_that_differ(2, 4, 3, 3, 16, seed=1))
    upstream = frames_that_differ(2, 4, 3, 3, 16, seed=2)
    layer = TemporalShift(4, 8, mode)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * upstream)
    grad = tape.gradient(loss, x).numpy()
    np.testing.assert_array_equal(grad, temporal_shift(upstream, 4, 8, mode, transpose=True))
    # Not the forward shift itself (the adjoint moves the other way).
    assert not np.array_equal(grad, temporal_shift(upstream, 4, 8, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch,num_segments,channels,shift_div", [(2, 4, 16, 8), (3, 3, 10, 3), (1, 5, 7, 2)])
def test_training_shift_equals_the_exported_one(mode, batch, num_segments, channels, shift_div):
    """In training TensorFlow runs the XLA-fused selection (select_shift); inference and export the
    slices and concatenations. Forward and gradient are the same numbers, under a traced step
    whose batch is unknown, as in fit."""
    x = tf.constant(frames_that_differ(batch, num_segments, 3, 2, channels, seed=3))
    upstream = frames_that_differ(batch, num_segments, 3, 2, channels, seed=4)
    layer = TemporalShift(num_segments, shift_div, mode)

    @tf.function(input_signature=[tf.TensorSpec((None, 3, 2, channels))])
    def step(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = layer(v, training=True)
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, v)

    y, grad = step(x)
    np.testing.assert_array_equal(y.numpy(), temporal_shift(x.numpy(), num_segments, shift_div, mode))
    np.testing.assert_array_equal(grad.numpy(), temporal_shift(upstream, num_segments, shift_div, mode, transpose=True))
    assert _fused_in(step)


def _fused_in(step):
    """Whether the traced step calls a function compiled by XLA (the fused shift)."""
    graph = step.get_concrete_function().graph.as_graph_def()
    return any(f.attr["_XlaMustCompile"].b for f in graph.library.function)


def test_unidirectional_is_causal_and_bidirectional_is_not():
    x = frames_that_differ(1, 6, 2, 2, 8)
    later = x.copy()
    later[4:] += 1.0  # change frames 4 and 5
    for mode, changes_early_frames in [("unidirectional", False), ("bidirectional", True)]:
        layer = TemporalShift(6, 4, mode)
        a, b = np.asarray(layer(x)), np.asarray(layer(later))
        assert np.array_equal(a[:3], b[:3])  # frames 0-2 never see frames 4-5
        assert np.array_equal(a[3], b[3]) != changes_early_frames  # frame 3 sees frame 4 offline


def test_step_matches_offline_unidirectional():
    x = frames_that_differ(1, 5, 2, 3, 16)
    layer = TemporalShift(5, 4, "unidirectional")
    state = np.zeros((1,) + layer.state_shape((2, 3, 16)), "float32")
    outputs = []
    for t in range(5):
        out, state = layer.step(x[t : t + 1], state)
        outputs.append(np.asarray(out))
    np.testing.assert_array_equal(np.concatenate(outputs), np.asarray(layer(x)))
    with pytest.raises(ValueError, match="cannot stream"):
        TemporalShift(5, 4).state_shape((2, 3, 16))


def test_no_tf_roll_wraparound_at_the_ends():
    x = np.ones((4, 1, 1, 8), "float32")
    y = np.asarray(TemporalShift(4, 4)(x))
    assert y[3, 0, 0, :2].tolist() == [0, 0]  # last frame: nothing from the future
    assert y[0, 0, 0, 2:4].tolist() == [0, 0]  # first frame: nothing from the past


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_segments=0), "num_segments"),
        (dict(num_segments=4, shift_div=1), "shift_div` must be an integer >= 2. Received: shift_div=1"),
        (dict(num_segments=4, mode="forward"), "mode"),
        (dict(num_segments=2.5), "num_segments"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemporalShift(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="multiple of num_segments=4"):
        TemporalShift(4)(keras.Input(batch_shape=(6, 2, 2, 16)))
    with pytest.raises(ValueError, match="4 channels has fewer channels than shift_div=8"):
        TemporalShift(4)(np.zeros((4, 2, 2, 4), "float32"))
    with pytest.raises(ValueError, match=r"\(B\*T, H, W, C\)"):
        TemporalShift(4)(np.zeros((4, 16), "float32"))


def test_config_round_trip_and_keras_file(tmp_path):
    layer = TemporalShift(4, 4, "unidirectional", name="s")
    clone = TemporalShift.from_config(layer.get_config())
    assert (clone.num_segments, clone.shift_div, clone.mode, clone.name) == (4, 4, "unidirectional", "s")
    model = keras.Sequential([keras.Input((2, 2, 8)), TemporalShift(4, 4)])
    x = frames_that_differ(2, 4, 2, 2, 8)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_dynamic_spatial_size_under_tf_function():
    layer = TemporalShift(4, 4)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 8), tf.float32)])
    x = frames_that_differ(2, 4, 3, 5, 8)
    np.testing.assert_array_equal(fn(x).numpy(), temporal_shift(x, 4, 4))


@needs_jax
def test_runs_on_the_jax_backend():
    # The Keras backend is chosen per process: run the check in a fresh one. The gradient is
    # the layer's own (the opposite shift), so it is checked on JAX too.
    code = (
        "import jax, numpy as np, keras; from tsm_keras.layers import TemporalShift;"
        "from tests.reference import temporal_shift, frames_that_differ;"
        "assert keras.backend.backend() == 'jax';"
        "x = frames_that_differ(2, 4, 3, 3, 16); w = frames_that_differ(2, 4, 3, 3, 16, seed=1);"
        "[np.testing.assert_array_equal(np.asarray(TemporalShift(4, 8, m)(x)), temporal_shift(x, 4, 8, m))"
        " for m in ('bidirectional', 'unidirectional')];"
        "[np.testing.assert_array_equal(np.asarray(jax.grad(lambda v: (TemporalShift(4, 8, m)(v) * w).sum())(x)),"
        " temporal_shift(w, 4, 8, m, transpose=True)) for m in ('bidirectional', 'unidirectional')];"
        "print('jax ok')"
    )
    run_on_jax(code)
