import keras
import numpy as np
import pytest
import tensorflow as tf

from tsm_keras.layers import TemporalMaxPool
from tsm_keras.models import build_video_classifier, temporal_modules

T, S = 4, 32


def clips(batch=2, frames=T, size=S, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(batch, frames, size, size, 3)).astype("float32")


def small(temporal="tsm", **kwargs):
    kwargs.setdefault("width", 0.35)
    return build_video_classifier(5, num_segments=T, input_size=S, temporal=temporal, dropout=0.0, **kwargs)


def test_output_is_the_average_of_per_frame_logits():
    model = small()
    # Non-trivial head so that logits are not ~0.
    model.get_layer("logits").kernel.assign(
        np.random.default_rng(1).normal(size=model.get_layer("logits").kernel.shape)
    )
    x = clips()
    per_frame_model = keras.Model(model.input, model.get_layer("logits").output)
    per_frame = np.asarray(per_frame_model(x)).reshape(2, T, 5)
    np.testing.assert_allclose(np.asarray(model(x)), per_frame.mean(axis=1), rtol=1e-5, atol=1e-5)


def test_tsm_and_tsn_twins_have_equal_parameters():
    for backbone, kwargs in [("mobilenet_v2", {}), ("resnet50", {"width": 1.0})]:
        tsm, tsn = small(backbone=backbone, **kwargs), small("none", backbone=backbone, **kwargs)
        assert tsm.count_params() == tsn.count_params()
        assert len(temporal_modules(tsn)) == 0
        assert len(temporal_modules(tsm)) == (10 if backbone == "mobilenet_v2" else 16)


def test_raw_frames_are_normalised_inside_and_uint8_works():
    model = small()
    x = clips()
    np.testing.assert_allclose(np.asarray(model(x.round().astype("uint8"))), np.asarray(model(x.round())), atol=1e-6)
    norm = model.get_layer("normalize")
    np.testing.assert_allclose(np.asarray(norm(np.full((1, 1, 1, 3), 255.0))), 1.0)
    np.testing.assert_allclose(np.asarray(norm(np.zeros((1, 1, 1, 3)))), -1.0)
    resnet_norm = small(backbone="resnet50", width=1.0).get_layer("normalize")
    rgb = np.array([[[[200.0, 100.0, 50.0]]]])
    np.testing.assert_allclose(
        np.asarray(resnet_norm(rgb))[0, 0, 0], [50 - 103.939, 100 - 116.779, 200 - 123.68], rtol=1e-5
    )


def test_keras_file_round_trip(tmp_path):
    for model in [small("tsm-online"), small(backbone="resnet50", width=1.0, temporal_pool=True, shift_place="block")]:
        x = clips()
        model.save(tmp_path / "m.keras")
        loaded = keras.models.load_model(tmp_path / "m.keras")
        np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
        assert [l.name for l in temporal_modules(loaded)] == [l.name for l in temporal_modules(model)]


def test_runs_under_xla():
    model = small()
    x = clips()
    xla = tf.function(lambda v: model(v, training=False), jit_compile=True)
    np.testing.assert_allclose(xla(x).numpy(), np.asarray(model(x)), rtol=1e-4, atol=1e-5)


def test_online_model_per_frame_output_is_causal():
    x = clips(batch=1, frames=T)
    later = x.copy()
    later[:, 2:] = 255 - later[:, 2:]  # change frames 2 and 3
    for temporal, early_frames_change in [("tsm-online", False), ("tsm", True)]:
        model = small(temporal)
        per_frame = keras.Model(model.input, model.get_layer("logits").output)
        model.get_layer("logits").kernel.assign(np.ones(model.get_layer("logits").kernel.shape))
        a, b = np.asarray(per_frame(x)), np.asarray(per_frame(later))
        assert np.array_equal(a[:2], b[:2]) != early_frames_change, temporal


def test_temporal_pool_halves_frames_after_stage_2():
    model = small(backbone="resnet50", width=1.0, temporal_pool=True)
    modules = temporal_modules(model)
    pool = [m for m in modules if isinstance(m, TemporalMaxPool)]
    assert len(pool) == 1 and pool[0].num_segments == T
    segments = {m.name: m.num_segments for m in modules}
    assert segments["conv2_block3_shift"] == T and segments["conv3_block1_shift"] == T // 2
    assert segments["conv5_block3_shift"] == T // 2
    assert model.get_layer("consensus").num_segments == T // 2
    assert model(clips()).shape == (2, 5)


def test_temporal_max_pool_windows_match_pytorch_padding():
    # out_i = max(x[2i-1], x[2i], x[2i+1]) with padding 1 (PyTorch max_pool3d kernel 3 stride 2 pad 1)
    x = np.array([3, 9, 1, 0, 4, 2, 8, 5], "float32")
    y = np.asarray(TemporalMaxPool(8)(x.reshape(8, 1, 1, 1))).ravel()
    expected = [max(x[max(2 * i - 1, 0) : 2 * i + 2]) for i in range(4)]
    np.testing.assert_array_equal(y, expected)  # [9, 9, 4, 8]


def test_partial_bn_and_bn_momentum():
    model = small(partial_bn=True, bn_momentum=0.9)
    norms = [l for l in model.get_layer("backbone").layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms[0].trainable and not any(l.trainable for l in norms[1:])
    assert all(l.momentum == 0.9 for l in norms)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(backbone="vgg16"), "Unknown backbone"),
        (dict(num_segments=0), "num_segments"),
        (dict(input_size=16), "input_size` must be an integer >= 32"),
        (dict(temporal="tsm3d"), "temporal"),
        (dict(shift_place="everywhere"), "shift_place"),
        (dict(temporal_pool=True), "ResNets"),
        (dict(backbone="resnet50", width=0.5), "width multiplier"),
        (dict(weights="/no/such/file.h5"), "not found: '/no/such/file.h5'"),
    ],
)
def test_bad_arguments_fail_with_a_reason(kwargs, message):
    kwargs = {"num_segments": T, "input_size": S, **kwargs}
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build_video_classifier(5, **kwargs)


def test_imagenet_weights_unreachable_gives_a_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid: no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="Could not fetch the ImageNet weights of 'mobilenet_v2'.*weights=None"):
        build_video_classifier(5, num_segments=T, input_size=96, width=0.35, weights="imagenet")
