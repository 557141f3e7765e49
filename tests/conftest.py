"""The test environment, and tiny models converted once per session for tests/export and
tests/web (conversion takes seconds each on the shared CPU). The fixtures import the
library inside: the environment must be set before Keras and TensorFlow load."""

import os
import tempfile

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# LiteRT's GPU accelerator (WebGPU over Vulkan) wants a runtime directory (tests/export/test_gpu.py).
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="tsm_keras_xdg_"))

# TensorFlow loads here, the way the commands load it (oneDNN's CPU kernels on, its log level
# 2 unless set: tsm_keras_start.py), before any test module can import it first.
from tsm_keras_start import prepare_process  # noqa: E402

prepare_process()


@pytest.fixture(scope="session")
def online_model():
    from tests.tiny import tiny_classifier

    return tiny_classifier("tsm-online", seed=0)


@pytest.fixture(scope="session")
def stream_model(online_model):
    from tsm_keras.streaming import build_streaming_model

    return build_streaming_model(online_model, batch_size=1)


@pytest.fixture(scope="session")
def float_models(online_model, stream_model):
    from tsm_keras.export.kinds import CLIP, FLOAT32, STREAM, STREAM_STATE
    from tsm_keras.export.tflite import convert
    from tsm_keras.export.variables import with_resource_variables

    state = convert(stream_model, STREAM_STATE, FLOAT32)
    return {CLIP: convert(online_model, CLIP, FLOAT32), STREAM_STATE: state, STREAM: with_resource_variables(state)}


@pytest.fixture(scope="session")
def calibration_clips():
    from tests.tiny import smooth_clips

    return list(smooth_clips(12, seed=50).astype("uint8"))


@pytest.fixture(scope="session")
def int8_models(online_model, stream_model, calibration_clips):
    from tsm_keras.export.calibration import representative
    from tsm_keras.export.kinds import CLIP, INT8, STREAM, STREAM_STATE
    from tsm_keras.export.tflite import convert
    from tsm_keras.export.variables import with_resource_variables

    clip = convert(online_model, CLIP, INT8, representative(CLIP, calibration_clips))
    samples = representative(STREAM_STATE, calibration_clips, stream=stream_model)
    state = convert(stream_model, STREAM_STATE, INT8, samples)
    return {CLIP: clip, STREAM_STATE: state, STREAM: with_resource_variables(state)}


@pytest.fixture(scope="session")
def test_clips():
    from tests.tiny import smooth_clips

    return smooth_clips(3, seed=7)


@pytest.fixture(scope="session")
def sweeping_bars_model():
    """A tiny TSM-online model trained on sweeping bars (about a minute), with its data:
    `{"model", "train", "val", "val_labels"}` (uint8 clips). Trained: its logits are not
    near-tied, so precision changes flip few predictions (a random network's would)."""
    import keras

    from tests.tiny import S, T, sweeping_bars
    from tsm_keras.models import build_video_classifier

    train, train_labels = sweeping_bars(400, seed=0)
    val, val_labels = sweeping_bars(200, seed=1)
    keras.utils.set_random_seed(0)
    model = build_video_classifier(
        4, num_segments=T, input_size=S, width=0.35, temporal="tsm-online", dropout=0.0, bn_momentum=0.9
    )
    epochs, batch = 12, 8
    schedule = keras.optimizers.schedules.CosineDecay(5e-3, epochs * len(train) // batch)
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train.astype("float32"), train_labels, batch_size=batch, epochs=epochs, verbose=0)
    return {"model": model, "train": train, "val": val, "val_labels": val_labels}
