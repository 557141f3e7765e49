"""TFLite for TAM: the clip models of 'tam' and 'tam-online', and the two streaming models of
'tam-online', whose state per module is the whole block input of the previous frame."""

import numpy as np
import pytest

from tests.export.checks import assert_streams_agree_and_reset_exactly
from tests.tiny import S, smooth_clips, tiny_classifier
from tsm_keras.export.calibration import representative
from tsm_keras.export.kinds import CLIP, FLOAT32, INT8, STREAM, STREAM_STATE
from tsm_keras.export.runtime import ClipRunner, StreamRunner, open_model, operators
from tsm_keras.export.tflite import convert
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.export.verify import (
    check_builtin_operators,
    clip_vs_keras,
    concatenation_scales,
    predict_clips,
    state_quantization,
    streaming_vs_clip,
    variable_types,
)
from tsm_keras.layers import TemporalAggregation
from tsm_keras.models import temporal_modules
from tsm_keras.streaming import FRAME, build_streaming_model, initial_states, state_specs


def learned_tam(temporal, seed=0):
    """The tiny model with TAM weights that are no longer one-hot (a trained TAM blends
    frames; the "shift" start would only test the TSM special case)."""
    model = tiny_classifier(temporal, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in temporal_modules(model, TemporalAggregation):
        kernel = np.asarray(layer.kernel)
        layer.kernel.assign(0.7 * kernel + rng.uniform(0.0, 0.5, kernel.shape))
    return model


@pytest.fixture(scope="module")
def tam_models():
    return {temporal: learned_tam(temporal) for temporal in ("tam", "tam-online")}


@pytest.fixture(scope="module")
def tam_stream(tam_models):
    return build_streaming_model(tam_models["tam-online"], batch_size=1)


@pytest.fixture(scope="module")
def tam_float(tam_models, tam_stream):
    state = convert(tam_stream, STREAM_STATE, FLOAT32)
    return {
        "tam": convert(tam_models["tam"], CLIP, FLOAT32),
        CLIP: convert(tam_models["tam-online"], CLIP, FLOAT32),
        STREAM_STATE: state,
        STREAM: with_resource_variables(state),
    }


@pytest.fixture(scope="module")
def tam_calibration():
    return list(smooth_clips(12, seed=50).astype("uint8"))


@pytest.fixture(scope="module")
def tam_int8(tam_models, tam_stream, tam_calibration):
    state = convert(tam_stream, STREAM_STATE, INT8, representative(STREAM_STATE, tam_calibration, stream=tam_stream))
    return {
        "tam": convert(tam_models["tam"], CLIP, INT8, representative(CLIP, tam_calibration)),
        CLIP: convert(tam_models["tam-online"], CLIP, INT8, representative(CLIP, tam_calibration)),
        STREAM_STATE: state,
        STREAM: with_resource_variables(state),
    }


@pytest.fixture(scope="module")
def clips():
    return smooth_clips(3, seed=7)


@pytest.mark.parametrize("temporal,key", [("tam", "tam"), ("tam-online", CLIP)])
def test_float_tam_clip_models_match_keras_with_builtins(tam_models, tam_float, clips, temporal, key):
    runner = ClipRunner(tam_float[key])
    assert clip_vs_keras(runner, tam_models[temporal], clips) <= 1e-4
    ops = check_builtin_operators(runner)
    # The blend is a depthwise conv over time (RESHAPEs around it; PAD, or CONCATENATION
    # with a constant zero frame, for the causal window): nothing a delegate lacks.
    assert not {"TRANSPOSE", "GATHER", "FILL", "SELECT"} & set(ops), ops


def test_tam_state_is_the_whole_block_input_of_the_previous_frame(tam_models, tam_stream):
    layers = temporal_modules(tam_models["tam-online"], TemporalAggregation)
    specs = state_specs(tam_stream)
    assert [s.name for s in specs] == [f"state_{i:02d}_{layer.name}" for i, layer in enumerate(layers)]
    assert len(specs) == 10
    assert all(spec.shape[-1] == layer.kernel.shape[1] for spec, layer in zip(specs, layers))  # all C channels
    assert specs[0].shape == (S // 4, S // 4, layers[0].kernel.shape[1])


@pytest.mark.parametrize("kind", [STREAM, STREAM_STATE])
def test_float_tam_streaming_equals_clip_model_and_reset_resets(tam_float, clips, kind):
    clip_logits = predict_clips(ClipRunner(tam_float[CLIP]), clips)
    runner = StreamRunner(tam_float[kind])
    check_builtin_operators(runner)
    result = streaming_vs_clip(runner, clip_logits, clips)
    assert result["max_abs_difference"] <= 1e-4 and result["reset_max_abs_difference"] == 0.0


def test_explicit_tam_states_are_what_keras_caches(tam_float, tam_stream, clips):
    # The new state after frame t is the block input of frame t, in TFLite as in Keras.
    runner = open_model(tam_float[STREAM_STATE]).runner
    states = initial_states(tam_stream, 1)
    for frame in clips[0]:
        expected = tam_stream.predict_on_batch({FRAME: frame[None], **states})
        got = runner(**{FRAME: frame[None], **states})
        for name in states:
            np.testing.assert_allclose(got[name], np.asarray(expected[name]), atol=1e-4)
        states = {name: got[name] for name in states}


def test_int8_tam_models_are_full_integer_and_states_keep_their_quantization(tam_int8):
    for key, content in tam_int8.items():
        runner = open_model(content)
        check_builtin_operators(runner)
        assert not {"QUANTIZE", "DEQUANTIZE"} & set(operators(content)), key
        assert concatenation_scales(runner)["mismatched"] == [], key
    # The new state is the block input itself: its int8 parameters must be the state input's.
    found = state_quantization(StreamRunner(tam_int8[STREAM_STATE]))
    assert len(found) == 10
    assert all(v["dtype"] == "int8" and v["input"] == v["output"] and v["input"][0] > 0 for v in found.values())
    assert variable_types(StreamRunner(tam_int8[STREAM])) == ["INT8"]


def test_int8_tam_streaming_models_agree_and_reset_exactly(tam_int8, clips):
    assert_streams_agree_and_reset_exactly(tam_int8, clips)


def test_int8_tam_follows_float(tam_int8, tam_float, clips, tam_calibration):
    # Smooth random clips through a random network: int8 logits must follow float ones. A
    # random network's near-tied logits amplify int8 noise (measured here: correlation
    # 0.91-0.95, worst logit 0.19-0.28 of the float range); accuracy needs a trained model
    # (test_int8_accuracy.py).
    clips = np.concatenate([clips, np.asarray(tam_calibration[:5], "float32")])
    for key in ("tam", CLIP, STREAM_STATE, STREAM):
        reference = predict_clips(ClipRunner(tam_float["tam" if key == "tam" else CLIP]), clips)
        got = predict_clips(open_model(tam_int8[key]), clips)
        correlation = np.corrcoef(got.ravel(), reference.ravel())[0, 1]
        error = np.max(np.abs(got - reference)) / np.ptp(reference)
        assert correlation > 0.8 and error < 0.4, (key, correlation, error)
