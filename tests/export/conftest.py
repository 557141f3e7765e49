"""Models converted once per session: conversion takes seconds each on the shared CPU."""

import pytest

from tests.tiny import smooth_clips, tiny_classifier
from tsm_keras.export.calibration import representative
from tsm_keras.export.kinds import CLIP, FLOAT32, INT8, STREAM, STREAM_STATE
from tsm_keras.export.tflite import convert
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.streaming import build_streaming_model


@pytest.fixture(scope="session")
def online_model():
    return tiny_classifier("tsm-online", seed=0)


@pytest.fixture(scope="session")
def stream_model(online_model):
    return build_streaming_model(online_model, batch_size=1)


@pytest.fixture(scope="session")
def float_models(online_model, stream_model):
    state = convert(stream_model, STREAM_STATE, FLOAT32)
    return {CLIP: convert(online_model, CLIP, FLOAT32), STREAM_STATE: state, STREAM: with_resource_variables(state)}


@pytest.fixture(scope="session")
def calibration_clips():
    return list(smooth_clips(12, seed=50).astype("uint8"))


@pytest.fixture(scope="session")
def int8_models(online_model, stream_model, calibration_clips):
    clip = convert(online_model, CLIP, INT8, representative(CLIP, calibration_clips))
    samples = representative(STREAM_STATE, calibration_clips, stream=stream_model)
    state = convert(stream_model, STREAM_STATE, INT8, samples)
    return {CLIP: clip, STREAM_STATE: state, STREAM: with_resource_variables(state)}


@pytest.fixture(scope="session")
def test_clips():
    return smooth_clips(3, seed=7)
