import numpy as np
import pytest

from tests.export.checks import assert_streams_agree_and_reset_exactly
from tsm_keras.export.kinds import CLIP, STREAM, STREAM_STATE
from tsm_keras.export.runtime import ClipRunner, StreamRunner, open_model, operators
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.export.verify import (
    VerificationError,
    check_builtin_operators,
    clip_vs_keras,
    concatenation_scales,
    predict_clips,
    state_quantization,
    streaming_vs_clip,
    variable_types,
)
from tsm_keras.streaming import state_specs


def test_float_clip_model_matches_keras(float_models, online_model, test_clips):
    runner = ClipRunner(float_models[CLIP])
    assert clip_vs_keras(runner, online_model, test_clips) <= 1e-4
    detail = runner.input
    assert list(detail["shape"]) == [4, 32, 32, 3] and detail["dtype"] == np.float32
    assert list(runner.output["shape"]) == [1, 5]


def test_shift_becomes_slices_and_concatenations_of_builtins(float_models):
    ops = operators(float_models[CLIP])
    # Per shift: STRIDED_SLICE x3 + CONCATENATION x2 (+ RESHAPE); nothing else was needed.
    assert {"STRIDED_SLICE", "CONCATENATION", "RESHAPE"} <= set(ops)
    assert not {"TRANSPOSE", "GATHER", "PAD", "FILL", "ZEROS_LIKE", "SELECT"} & set(ops), ops
    for content in float_models.values():
        check_builtin_operators(open_model(content))


@pytest.mark.parametrize("kind", [STREAM, STREAM_STATE])
def test_float_streaming_equals_clip_model_and_reset_resets(float_models, test_clips, kind):
    clip_logits = predict_clips(ClipRunner(float_models[CLIP]), test_clips)
    result = streaming_vs_clip(StreamRunner(float_models[kind]), clip_logits, test_clips)
    assert result["max_abs_difference"] <= 1e-4
    assert result["reset_max_abs_difference"] == 0.0


def test_streaming_check_catches_a_model_that_ignores_its_buffers(float_models, test_clips):
    runner = StreamRunner(float_models[STREAM_STATE])
    clip_logits = predict_clips(ClipRunner(float_models[CLIP]), test_clips)
    original = runner.step

    def forgetful(frame):  # zero buffers before every frame: a model without memory
        runner.reset()
        return original(frame)

    runner.step = forgetful
    with pytest.raises(VerificationError, match="differ from the clip model"):
        streaming_vs_clip(runner, clip_logits, test_clips)


def test_explicit_state_model_io_names_and_shapes(float_models, stream_model):
    runner = StreamRunner(float_models[STREAM_STATE])
    inputs = runner.runner.get_input_details()
    outputs = runner.runner.get_output_details()
    specs = state_specs(stream_model)
    assert set(inputs) == {"frame", *(s.name for s in specs)}
    assert set(outputs) == {"logits", *(s.name for s in specs)}
    for spec in specs:
        assert list(inputs[spec.name]["shape"]) == [1, *spec.shape] == list(outputs[spec.name]["shape"])


def test_resource_variable_model_has_step_and_reset(float_models):
    runner = StreamRunner(float_models[STREAM])
    assert runner.signatures == {
        "reset": {"inputs": [], "outputs": ["done"]},
        "step": {"inputs": ["frame"], "outputs": ["logits"]},
    }
    assert variable_types(runner) == ["FLOAT32"]
    assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} <= set(operators(runner.content))


def test_first_step_needs_no_reset(float_models, test_clips):
    fresh = StreamRunner(float_models[STREAM])  # variables initialised by CALL_ONCE
    first = fresh.step(test_clips[0][0])
    fresh.step(test_clips[0][1])
    fresh.reset()
    np.testing.assert_array_equal(fresh.step(test_clips[0][0]), first)


def test_with_resource_variables_refuses_other_models(float_models):
    with pytest.raises(ValueError, match="no signature 'step'"):
        with_resource_variables(float_models[CLIP])


def test_int8_models_are_full_integer_builtins(int8_models):
    for kind, content in int8_models.items():
        runner = open_model(content)
        check_builtin_operators(runner)
        assert not {"QUANTIZE", "DEQUANTIZE"} & set(operators(content)), kind
        assert runner.input["dtype"] == np.int8 and runner.output["dtype"] == np.int8
        # Raw pixels map exactly: int8 = pixel - 128.
        assert runner.input["quantization"] == (1.0, -128), runner.input["quantization"]


def test_int8_concatenations_keep_one_scale(int8_models):
    for kind, content in int8_models.items():
        found = concatenation_scales(open_model(content))
        # clip: 10 shifts x 2 concatenations; streaming: one per shift.
        assert found["concatenations"] == (20 if kind == CLIP else 10), (kind, found)
        assert found["mismatched"] == [], kind


def test_int8_explicit_states_come_back_with_their_input_quantization(int8_models):
    found = state_quantization(StreamRunner(int8_models[STREAM_STATE]))
    assert len(found) == 10
    assert all(v["dtype"] == "int8" and v["input"] == v["output"] and v["input"][0] > 0 for v in found.values())


def test_int8_variables_are_int8_and_reset_is_exact(int8_models, test_clips):
    assert variable_types(StreamRunner(int8_models[STREAM])) == ["INT8"]
    assert_streams_agree_and_reset_exactly(int8_models, test_clips)


def test_int8_follows_float(int8_models, float_models, test_clips, calibration_clips):
    # A random network is no accuracy test: its near-tied logits amplify int8 noise
    # (measured correlation 0.73 here, 0.999 and equal top-1 for the same network trained:
    # test_int8_accuracy_of_a_trained_model). Its int8 logits must still follow float.
    clips = np.concatenate([test_clips, np.asarray(calibration_clips[:5], "float32")])
    reference = predict_clips(ClipRunner(float_models[CLIP]), clips)
    for kind in (CLIP, STREAM_STATE):
        got = predict_clips(open_model(int8_models[kind]), clips)
        correlation = np.corrcoef(got.ravel(), reference.ravel())[0, 1]
        assert correlation > 0.6, (kind, correlation)


def test_float16_models_halve_the_size_and_still_stream_exactly(online_model, stream_model, float_models, test_clips):
    from tsm_keras.export.kinds import FLOAT16
    from tsm_keras.export.tflite import convert

    clip16 = ClipRunner(convert(online_model, CLIP, FLOAT16))
    state16 = convert(stream_model, STREAM_STATE, FLOAT16)
    assert clip16.size_bytes < 0.6 * len(float_models[CLIP])
    check_builtin_operators(clip16)
    reference = predict_clips(ClipRunner(float_models[CLIP]), test_clips)
    logits16 = predict_clips(clip16, test_clips)
    assert np.max(np.abs(logits16 - reference)) < 0.05 * np.ptp(reference)
    for runner in (StreamRunner(state16), StreamRunner(with_resource_variables(state16))):
        result = streaming_vs_clip(runner, logits16, test_clips)
        assert result["max_abs_difference"] <= 1e-4 and result["reset_max_abs_difference"] == 0.0


def test_normalisation_exports_as_scalar_operations(float_models, int8_models):
    # A MUL/ADD broadcasting a [3] constant over the frame costs a quarter of MobileNetV2
    # int8 latency in XNNPACK; MobileNetV2's normalisation is the same for every channel,
    # so it must export with scalar constants.
    from ai_edge_litert.tools import flatbuffer_utils

    for content in (float_models[CLIP], int8_models[CLIP], int8_models[STREAM_STATE]):
        tree = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
        graph = tree.subgraphs[0]
        for op in graph.operators:
            if flatbuffer_utils.opcode_to_name(tree, op.opcodeIndex) in ("MUL", "ADD", "SUB"):
                shapes = [list(graph.tensors[i].shape) for i in op.inputs]
                assert [3] not in shapes, shapes


def test_tam_online_models_export_and_stream_like_tsm(test_clips, calibration_clips):
    # The export is generic over causal temporal layers (the step/state_shape protocol).
    from tests.tiny import tiny_classifier
    from tsm_keras.export.calibration import representative
    from tsm_keras.export.kinds import FLOAT32, INT8
    from tsm_keras.export.tflite import convert
    from tsm_keras.streaming import build_streaming_model

    model = tiny_classifier("tam-online", seed=1)
    stream = build_streaming_model(model, batch_size=1)
    assert [s.name for s in state_specs(stream)][:2] == ["state_00_block_2_tam", "state_01_block_4_tam"]
    clip = ClipRunner(convert(model, CLIP, FLOAT32))
    assert clip_vs_keras(clip, model, test_clips) <= 1e-4
    state = convert(stream, STREAM_STATE, FLOAT32)
    for content in (state, with_resource_variables(state)):
        result = streaming_vs_clip(StreamRunner(content), predict_clips(clip, test_clips), test_clips)
        assert result["max_abs_difference"] <= 1e-4
    quantized = StreamRunner(
        convert(stream, STREAM_STATE, INT8, representative(STREAM_STATE, calibration_clips, stream=stream))
    )
    assert all(v["input"] == v["output"] for v in state_quantization(quantized).values())
    assert concatenation_scales(quantized)["mismatched"] == []
    assert variable_types(StreamRunner(with_resource_variables(quantized.content))) == ["INT8"]
