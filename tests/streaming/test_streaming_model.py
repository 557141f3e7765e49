import keras
import numpy as np
import pytest
from keras import ops

from tests.tiny import K, S, T, smooth_clips, tiny_classifier
from tsm_keras.layers import FoldTime, FrameNormalization, SegmentConsensus
from tsm_keras.models import insert_temporal_modules, temporal_modules
from tsm_keras.streaming import (
    NotStreamableError,
    StateSpec,
    build_streaming_model,
    check_state_io,
    initial_states,
    run_frames,
    state_specs,
)


@pytest.fixture(scope="module")
def online():
    return tiny_classifier("tsm-online")


def per_frame_logits(model, clips):
    per_frame = keras.Model(model.input, model.get_layer("logits").output)
    return np.asarray(per_frame.predict_on_batch(clips)).reshape(len(clips), T, -1)


def test_streaming_gives_the_per_frame_logits_of_the_clip_model(online):
    clips = smooth_clips(2, seed=1)
    stream = build_streaming_model(online)
    expected = per_frame_logits(online, clips)
    assert np.ptp(expected, axis=1).min() > 1e-2  # frames really give different logits
    for clip, frames_expected, clip_expected in zip(clips, expected, np.asarray(online(clips))):
        logits, _ = run_frames(stream, clip)
        np.testing.assert_allclose(logits, frames_expected, atol=1e-4)
        np.testing.assert_allclose(logits.mean(axis=0), clip_expected, atol=1e-4)


def test_carried_state_matters_and_zero_state_is_the_first_frame(online):
    clips = smooth_clips(1, seed=2)
    stream = build_streaming_model(online)
    logits, states = run_frames(stream, clips[0])
    # Frame 2 with the state left by frame 1 vs with zero state: different outputs.
    _, after_one = run_frames(stream, clips[0][:1])
    with_state = np.asarray(stream({"frame": clips[0][1:2], **after_one})["logits"])
    from_zero = np.asarray(stream({"frame": clips[0][1:2], **initial_states(stream)})["logits"])
    np.testing.assert_allclose(with_state[0], logits[1], atol=1e-4)
    assert np.max(np.abs(from_zero - with_state)) > 1e-3
    # The state after the clip is the first `fold` channels of the last frame's block inputs.
    assert all(np.any(v != 0) for v in states.values())


def test_states_are_named_4d_buffers_of_the_shifted_channels(online):
    stream = build_streaming_model(online, batch_size=1)
    specs = state_specs(stream)
    shifts = temporal_modules(online)
    # Named in network order, so that the names sort in network order (block_11 after block_9).
    assert [s.name for s in specs] == [f"state_{i:02d}_{layer.name}" for i, layer in enumerate(shifts)]
    assert sorted(s.name for s in specs) == [s.name for s in specs]
    backbone = online.get_layer("backbone")
    for spec, layer in zip(specs, shifts):
        block = layer.name.replace("_shift", "_expand")
        channels = backbone.get_layer(block).input.shape[-1]
        height = backbone.get_layer(block).input.shape[1]
        assert spec.shape == (height, height, channels // 8), spec
    assert specs[0].shape == (S // 4, S // 4, 1)
    zeros = initial_states(stream, batch_size=1)
    assert set(zeros) == {s.name for s in specs}
    assert all(v.shape == (1,) + s.shape and not v.any() for v, s in zip(zeros.values(), specs))
    assert set(stream.output) == {"logits", *zeros}
    assert stream.output["logits"].shape == (1, K)


def test_weights_are_shared_with_the_clip_model(online):
    stream = build_streaming_model(online)
    assert {id(v) for v in stream.weights} <= {id(v) for v in online.weights}


@pytest.mark.parametrize(
    "temporal,kwargs,message",
    [
        ("tsm", {}, "bidirectional.*train with `temporal='tsm-online'`"),
        ("none", {}, "without a shift"),
    ],
)
def test_models_that_cannot_stream_are_refused_with_the_fix(temporal, kwargs, message):
    model = tiny_classifier(temporal, **kwargs)
    with pytest.raises(NotStreamableError, match=message):
        build_streaming_model(model)


def test_temporal_pooling_is_refused():
    from tsm_keras.models import build_video_classifier

    model = build_video_classifier(
        3, backbone="resnet50", num_segments=4, input_size=32, temporal="tsm-online", temporal_pool=True
    )
    with pytest.raises(NotStreamableError, match="temporal_pool"):
        build_streaming_model(model)


@keras.saving.register_keras_serializable(package="tsm_keras_tests")
class CausalBlend(keras.layers.Layer):
    """A causal temporal module that is not a shift: y_t = x_t + 0.5 * x_{t-1}, all channels,
    with a state of the whole previous frame (stands for TAM-like modules)."""

    def __init__(self, num_segments, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = num_segments
        self.is_causal = True

    def call(self, x):
        _, h, w, c = x.shape
        clips = ops.reshape(x, (-1, self.num_segments, h, w, c))
        previous = ops.concatenate([ops.zeros_like(clips[:, :1]), clips[:, :-1]], axis=1)
        return ops.reshape(clips + 0.5 * previous, ops.shape(x))

    def state_shape(self, frame_shape):
        return tuple(frame_shape)

    def step(self, frame, state):
        return frame + 0.5 * state, frame


def test_any_layer_with_the_streaming_protocol_streams():
    keras.utils.set_random_seed(3)
    base = keras.applications.MobileNetV2((S, S, 3), alpha=0.35, include_top=False, weights=None)
    network = insert_temporal_modules(base, lambda target: CausalBlend(T, name=target + "_blend"), name="backbone")
    clip = keras.Input((T, S, S, 3), name="clip")
    x = FrameNormalization((127.5,) * 3, (127.5,) * 3)(FoldTime()(clip))
    x = keras.layers.GlobalAveragePooling2D()(network(x))
    x = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(clip, SegmentConsensus(T)(x))
    clips = smooth_clips(1, seed=4)
    stream = build_streaming_model(model)
    specs = state_specs(stream)
    assert len(specs) == 10 and specs[0] == StateSpec("state_00_block_2_expand_blend", (8, 8, 8))
    logits, _ = run_frames(stream, clips[0])
    np.testing.assert_allclose(logits.mean(axis=0), np.asarray(model(clips))[0], rtol=1e-4, atol=1e-5)


def test_state_io_check_names_the_mismatch():
    frame = keras.Input((4, 4, 3), name="frame")
    state = keras.Input((4, 4, 1), name="block_2_shift")
    bad = keras.Model(
        {"frame": frame, "block_2_shift": state},
        {"logits": frame, "block_2_shift": keras.layers.Concatenate()([state, state])},
    )
    with pytest.raises(ValueError, match="state 'block_2_shift'.*come back"):
        check_state_io(bad)


def test_frame_model_of_a_tsn_classifier_gives_its_per_frame_logits():
    from tsm_keras.streaming import build_frame_model

    tsn = tiny_classifier("none", seed=6)
    frame_model = build_frame_model(tsn)
    clips = smooth_clips(1, seed=8)
    got = np.asarray(frame_model.predict_on_batch({"frame": clips[0]})["logits"])
    np.testing.assert_allclose(got, per_frame_logits(tsn, clips)[0], atol=1e-4)
    with pytest.raises(ValueError, match="use build_streaming_model"):
        build_frame_model(tiny_classifier("tsm-online"))
