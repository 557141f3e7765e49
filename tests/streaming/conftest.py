import pytest

from tests.tiny import tiny_classifier
from tsm_keras.export.kinds import CLIP, FLOAT32, STREAM_STATE
from tsm_keras.export.tflite import convert
from tsm_keras.export.variables import with_resource_variables
from tsm_keras.streaming import build_streaming_model


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory):
    """Float clip, stream and stream_state files of a tiny online model, with labels.txt."""
    model = tiny_classifier("tsm-online", seed=5, num_classes=3)
    folder = tmp_path_factory.mktemp("tflite")
    state = convert(build_streaming_model(model, batch_size=1), STREAM_STATE, FLOAT32)
    files = {"clip": convert(model, CLIP, FLOAT32), "stream_state": state, "stream": with_resource_variables(state)}
    paths = {}
    for kind, content in files.items():
        paths[kind] = folder / f"{kind}_float32.tflite"
        paths[kind].write_bytes(content)
    (folder / "labels.txt").write_text("waving\nclapping\nnothing\n")
    return paths
