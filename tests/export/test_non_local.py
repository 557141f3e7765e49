"""TFLite for non-local blocks: a clip model converts to builtin operators, float32 within
1e-4 of Keras, int8 full-integer and following float. A tiny model around one
`NonLocalBlock` here; the ported ResNet-50 `_nl` model through `convert_run` behind `slow`
(tests/port/test_torch_tflite.py)."""

import keras
import numpy as np
import pytest

from tests.tiny import smooth_clips
from tsm_keras.export.calibration import representative
from tsm_keras.export.kinds import CLIP, FLOAT32, INT8
from tsm_keras.export.runtime import ClipRunner, operators
from tsm_keras.export.tflite import convert
from tsm_keras.export.verify import (
    VerificationError,
    check_builtin_operators,
    clip_vs_keras,
    concatenation_scales,
    predict_clips,
)
from tsm_keras.layers import FoldTime, FrameNormalization, NonLocalBlock, SegmentConsensus

T, S, K = 4, 32, 5


@pytest.fixture(scope="module")
def model():
    """Frames -> a strided conv to 8 x 8 x 16 -> NonLocalBlock -> classifier, with a block
    that is far from the identity (its BN scaled up from zero) and logits of order 1."""
    keras.utils.set_random_seed(0)
    clip = keras.Input((T, S, S, 3), name="clip")
    x = FrameNormalization((127.5,) * 3, (127.5,) * 3)(FoldTime()(clip))
    x = keras.layers.Conv2D(16, 3, strides=4, padding="same", activation="relu")(x)
    block = NonLocalBlock(T, name="nl")
    x = keras.layers.GlobalAveragePooling2D()(block(x))
    x = keras.layers.Dense(K, name="logits")(x)
    model = keras.Model(clip, SegmentConsensus(T)(x))
    rng = np.random.default_rng(0)
    norm = block.batch_norm
    norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape))
    norm.beta.assign(rng.normal(0, 0.2, norm.beta.shape))
    dense = model.get_layer("logits")
    dense.kernel.assign(rng.normal(0, 3.0 / np.sqrt(16), dense.kernel.shape))
    return model


@pytest.fixture(scope="module")
def clips():
    return smooth_clips(6, seed=7)


def test_float_clip_model_is_builtins_and_matches_keras(model, clips):
    content = convert(model, CLIP, FLOAT32)
    runner = ClipRunner(content, name="clip_float32.tflite")
    found = set(check_builtin_operators(runner))
    assert {"BATCH_MATMUL", "SOFTMAX", "MAX_POOL_2D"} <= found, found
    assert np.ptp(np.asarray(model.predict_on_batch(clips))) > 1.0  # logits that can differ
    difference = clip_vs_keras(runner, model, clips)  # raises above 1e-4
    print(f"non-local clip_float32: max |tflite - keras| = {difference:.2e}")


def test_int8_clip_model_is_full_integer_and_follows_float(model, clips):
    calibration = list(smooth_clips(12, seed=50).astype("uint8"))
    content = convert(model, CLIP, INT8, representative(CLIP, calibration))
    runner = ClipRunner(content, name="clip_int8.tflite")
    check_builtin_operators(runner)
    assert {"BATCH_MATMUL", "SOFTMAX", "MAX_POOL_2D"} <= set(operators(content))
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(operators(content))
    assert runner.input["dtype"] == np.int8 and runner.output["dtype"] == np.int8
    assert concatenation_scales(runner)["mismatched"] == []
    expected = np.asarray(model.predict_on_batch(clips))
    got = predict_clips(runner, clips)
    correlation = np.corrcoef(got.ravel(), expected.ravel())[0, 1]
    error = np.abs(got - expected).max() / np.ptp(expected)
    print(f"non-local clip_int8: correlation with Keras {correlation:.4f}, max error {error:.3f} of the logit range")
    assert correlation > 0.99 and error < 0.05
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_float_check_is_relative_to_the_largest_logit(model, clips):
    expected = np.asarray(model.predict_on_batch(clips))
    largest = np.abs(expected).max()
    assert largest > 1.2  # above 1: the bound is wider than 1e-4
    offset = 1e-4 * (1 + largest) / 2

    class Off:
        """A 'TFLite model' off Keras by more than 1e-4, less than 1e-4 of the largest logit."""

        name = "off.tflite"

        def __call__(self, clip):
            return np.asarray(model.predict_on_batch(clip[None]))[0] + offset

    assert clip_vs_keras(Off(), model, clips) == pytest.approx(offset, rel=1e-2)  # within float32 ulps
    with pytest.raises(VerificationError, match=r"off.tflite: clip logits differ .* \(5e-05 of the largest logit"):
        clip_vs_keras(Off(), model, clips, tolerance=1e-4 / 2)
