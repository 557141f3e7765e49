import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tsm_keras.layers import batch_norm
from tsm_keras.layers.batch_norm import with_fused_batch_norm
from tsm_keras.models import build_video_classifier
from tsm_keras.models.insertion import walk_layers

ROOT = Path(__file__).resolve().parents[2]
FRESH_ENV = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")


def _pair(shape, **kwargs):
    """A Keras BN and a fused BN with the same non-trivial weights and statistics."""
    rng = np.random.default_rng(1)
    channels = shape[-1]
    plain, fused = keras.layers.BatchNormalization(**kwargs), batch_norm.BatchNormalization(**kwargs)
    for layer in (plain, fused):
        layer.build(shape)
        weights = [rng.normal(1, 0.3, channels), rng.normal(0, 0.3, channels)]
        weights = weights[: int(layer.scale) + int(layer.center)]
        stats = [np.full(channels, 0.5), np.full(channels, 2.0)]
        layer.set_weights([w.astype("float32") for w in weights + stats])
        rng = np.random.default_rng(1)
    return plain, fused


def _train_call(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    return y, grads


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(momentum=0.9, epsilon=1e-5), dict(center=False), dict(scale=False), dict(axis=3)],
)
def test_training_step_equals_keras(kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (16, 5, 7, 12)).astype("float32")  # n = 560 per channel
    upstream = tf.constant(rng.normal(size=x.shape).astype("float32"))
    plain, fused = _pair(x.shape, **kwargs)
    y_plain, g_plain = _train_call(plain, x, upstream)
    y_fused, g_fused = _train_call(fused, x, upstream)
    np.testing.assert_allclose(y_fused, y_plain, atol=2e-6)
    # Moving statistics use the biased variance, as Keras does (the kernel's is unbiased:
    # without the correction they would differ by 1/559 of the batch variance's share).
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-6)
    assert not np.allclose(plain.moving_variance, 2.0)  # the step did update them
    for a, b in zip(g_fused, g_plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()))


def test_inference_is_keras_and_config_round_trips(tmp_path):
    x = np.random.default_rng(3).normal(size=(4, 3, 3, 6)).astype("float32")
    plain, fused = _pair(x.shape)
    np.testing.assert_array_equal(fused(x, training=False), plain(x, training=False))
    assert fused.get_config() == plain.get_config() | {"name": fused.name}
    inputs = keras.Input((3, 3, 6))
    model = keras.Model(inputs, fused(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[-1], batch_norm.BatchNormalization)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_falls_back_to_keras_where_the_kernel_does_not_apply():
    x = np.random.default_rng(4).normal(size=(2, 3, 4, 5, 6)).astype("float32")  # 5-D
    plain, fused = _pair(x.shape)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-6)
    channels_first = batch_norm.BatchNormalization(axis=1)
    assert not channels_first._fusable(np.zeros((2, 6, 3, 3), "float32"), None)
    assert not batch_norm.BatchNormalization(synchronized=True)._fusable(np.zeros((2, 3, 3, 6)), None)


def test_mixed_precision_keeps_float32_statistics():
    x = np.random.default_rng(5).normal(1.0, 2.0, (8, 4, 4, 3)).astype("float32")
    plain, fused = (
        keras.layers.BatchNormalization(dtype="mixed_bfloat16"),
        batch_norm.BatchNormalization(dtype="mixed_bfloat16"),
    )
    y_plain, y_fused = plain(tf.cast(x, "bfloat16"), training=True), fused(tf.cast(x, "bfloat16"), training=True)
    assert y_fused.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y_fused, "float32"), tf.cast(y_plain, "float32"), atol=2e-2)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-6)


def test_a_classifier_with_the_fused_layers_trains_as_before():
    def build(**kwargs):
        keras.utils.set_random_seed(0)
        return build_video_classifier(4, num_segments=2, input_size=32, width=0.35, temporal="tsm-online", **kwargs)

    original, reference = build(), build()
    model = with_fused_batch_norm(original)
    norms = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 52 and all(type(layer) is batch_norm.BatchNormalization for layer in norms)
    assert with_fused_batch_norm(model) is model  # already fused
    # The same layer names, weight paths, settings and weights; every other layer is shared.
    assert [w.path for w in model.weights] == [w.path for w in original.weights]
    assert [layer.get_config() for layer in norms] == [
        layer.get_config() for layer in walk_layers(original) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    partial = with_fused_batch_norm(build(partial_bn=True, bn_momentum=0.8))
    partial_norms = [layer for layer in walk_layers(partial) if isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.trainable for layer in partial_norms].count(True) == 1  # partial BN kept
    assert {layer.momentum for layer in partial_norms} == {0.8}
    assert model.get_layer("logits") is original.get_layer("logits")
    for a, b in zip(model.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(6).integers(0, 255, (2, 2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x, training=True), reference(x, training=True), rtol=1e-4, atol=1e-4)
    for a, b in zip(model.get_weights(), reference.get_weights()):  # moving statistics alike
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoints_load_across_the_two_layers(tmp_path):
    # Keras keys weight files by class name: the fused layer keeps Keras' name, so a run trained in
    # graph mode (fused) resumes under XLA (Keras' layer), and an older run resumes fused.
    def build(fused):
        keras.utils.set_random_seed(0)
        model = build_video_classifier(4, num_segments=2, input_size=32, width=0.35, temporal="tsm-online")
        return with_fused_batch_norm(model) if fused else model

    x = np.random.default_rng(7).integers(0, 255, (2, 2, 32, 32, 3)).astype("float32")
    for source_fused in (True, False):
        source = build(source_fused)
        source(x, training=True)  # moving statistics move away from their initial values
        source.save_weights(tmp_path / "w.weights.h5")
        target = build(not source_fused)
        target.load_weights(tmp_path / "w.weights.h5")
        np.testing.assert_array_equal(target(x), source(x))


def test_a_fused_model_file_loads_in_a_fresh_process_after_import_tsm_keras(tmp_path):
    inputs = keras.Input((3, 3, 6))
    keras.Model(inputs, batch_norm.BatchNormalization()(inputs)).save(tmp_path / "m.keras")
    code = f"import keras, tsm_keras; keras.models.load_model({str(tmp_path / 'm.keras')!r}); print('loaded')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=FRESH_ENV)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]
