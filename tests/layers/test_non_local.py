import doctest

import keras
import numpy as np
import pytest

from tests.reference import frames_that_differ, non_local
from tsm_keras.layers import NonLocalBlock
from tsm_keras.layers import non_local as non_local_module


def with_random_weights(layer, shape, seed=0):
    """Build `layer` for `shape` and give every weight random values (a BN far from identity).

    Returns the weights as the NumPy reference takes them."""
    if not layer.built:
        layer.build(shape)
    rng = np.random.default_rng(seed)
    c = shape[-1]
    inter = max(c // 2, 1)

    def conv(cin, cout):
        return rng.normal(0, cin**-0.5, (1, 1, cin, cout)).astype("float32"), rng.normal(0, 0.1, cout).astype("float32")

    theta, phi, g, out = conv(c, inter), conv(c, inter), conv(c, inter), conv(inter, c)
    bn = (
        rng.uniform(0.5, 1.5, c).astype("float32"),
        rng.normal(0, 0.2, c).astype("float32"),
        rng.normal(0, 0.2, c).astype("float32"),
        rng.uniform(0.5, 2.0, c).astype("float32"),
    )
    for sub, (kernel, bias) in zip((layer.theta, layer.phi, layer.g, layer.W), (theta, phi, g, out)):
        sub.set_weights([kernel, bias])
    layer.batch_norm.set_weights(list(bn))
    flat = [(kernel[0, 0], bias) for kernel, bias in (theta, phi, g, out)]
    return (*flat, bn)


@pytest.mark.parametrize(
    "batch,num_segments,height,width,channels",
    [(2, 4, 4, 4, 8), (1, 3, 5, 3, 6), (2, 1, 4, 4, 4), (1, 2, 2, 2, 5), (1, 2, 4, 6, 3)],
)
def test_matches_numpy_reference(batch, num_segments, height, width, channels):
    x = frames_that_differ(batch, num_segments, height, width, channels)
    layer = NonLocalBlock(num_segments)
    weights = with_random_weights(layer, x.shape)
    expected = non_local(x, num_segments, *weights)
    actual = np.asarray(layer(x))
    assert np.abs(actual - x).max() > 0.1  # the block does something
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_every_frame_reads_every_other_frame_of_its_clip_only():
    x = frames_that_differ(2, 4, 4, 4, 8)
    layer = NonLocalBlock(4)
    with_random_weights(layer, x.shape)
    changed = x.copy()
    changed[3] += 1.0  # the last frame of the first clip
    difference = np.abs(np.asarray(layer(changed)) - np.asarray(layer(x))).reshape(2, 4, -1).max(axis=-1)
    assert (difference[0] > 1e-3).all()  # frame 0 reads frame 3: not causal
    np.testing.assert_array_equal(difference[1], 0)  # the other clip does not


def test_a_new_block_is_the_identity_and_has_the_reference_parameters():
    x = frames_that_differ(1, 4, 4, 4, 16)
    layer = NonLocalBlock(4)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    # theta, phi, g: 16 * 8 + 8 each; W: 8 * 16 + 16; BN: 4 * 16 (2 * 16 trainable)
    assert layer.count_params() == 3 * (16 * 8 + 8) + 8 * 16 + 16 + 4 * 16
    assert layer.batch_norm.epsilon == 1e-5


def test_keras_file_round_trip(tmp_path):
    x = frames_that_differ(2, 4, 4, 4, 8)
    inputs = keras.Input(batch_shape=(None, 4, 4, 8))
    layer = NonLocalBlock(4, name="conv3_block1_nl")
    model = keras.Model(inputs, layer(inputs))
    with_random_weights(layer, x.shape)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("conv3_block1_nl").get_config() == layer.get_config()
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_training_updates_the_output_batch_norm_statistics():
    x = frames_that_differ(2, 4, 4, 4, 8)
    layer = NonLocalBlock(4)
    layer(x)
    before = np.asarray(layer.batch_norm.moving_mean).copy()
    layer(x, training=True)
    assert np.abs(np.asarray(layer.batch_norm.moving_mean) - before).max() > 0


def test_cannot_stream_and_says_why():
    layer = NonLocalBlock(4, name="conv3_block1_nl")
    assert not layer.is_causal
    with pytest.raises(ValueError, match="conv3_block1_nl: a non-local block attends to every frame"):
        layer.state_shape((4, 4, 8))


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2x2"):
        NonLocalBlock(4)(np.zeros((4, 1, 1, 8), "float32"))
    with pytest.raises(ValueError, match="multiple of num_segments=4"):
        NonLocalBlock(4)(np.zeros((6, 2, 2, 8), "float32"))
    with pytest.raises(ValueError, match="num_segments"):
        NonLocalBlock(0)


def test_docstring_example():
    assert doctest.testmod(non_local_module).failed == 0
