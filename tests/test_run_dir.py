"""The run directory (tsm_keras/run_dir.py), which is a preset in KerasHub's layout
(tsm_keras.VideoClassifier), and atomic files (tsm_keras/files.py): what training and the
porter write and evaluation, export and `from_preset` read."""

import json
import os
import time

import keras
import numpy as np
import pytest

from tests.tiny import S, T, smooth_clips, tiny_classifier, write_run
from tsm_keras import VideoClassifier
from tsm_keras.data.labels import write_labels
from tsm_keras.files import atomic_write
from tsm_keras.run_dir import NO_RUN, RunError, load_run, newest_run, read_config
from tsm_keras.run_dir import write_run as write_run_dir

PRESET = ["config.json", "metadata.json", "model.weights.h5", "preprocessor.json", "run.json"]
ARGUMENTS = dict(num_classes=5, num_segments=T, input_size=S, width=0.35, dropout=0.0, temporal="tsm-online")


@pytest.fixture(scope="module")
def online_model():
    return tiny_classifier("tsm-online")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "m.tflite"
    atomic_write(target, b"abc")
    assert target.read_bytes() == b"abc" and [p.name for p in target.parent.iterdir()] == ["m.tflite"]
    with pytest.raises(TypeError):
        atomic_write(tmp_path / "out" / "bad.tflite", object())
    assert [p.name for p in target.parent.iterdir()] == ["m.tflite"]


def test_a_written_run_is_a_preset_that_loads_with_its_names_and_without_an_optimizer(tmp_path, online_model):
    compiled = keras.models.clone_model(online_model)
    compiled.set_weights(online_model.get_weights())
    compiled.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    compiled.optimizer.build(compiled.trainable_variables)  # its state exists, and is not saved
    names = ["wave hello", "push", "pull", "a", "b"]
    path = write_run_dir(tmp_path / "run", compiled, {"model": ARGUMENTS, "data": {"train": "x"}}, names)
    assert sorted(os.listdir(path)) == PRESET
    assert json.loads((path / "preprocessor.json").read_text())["class_names"] == names
    assert json.loads((path / "run.json").read_text()) == {"data": {"train": "x"}}
    run = load_run(path)
    assert run.class_names == names and run.model_config == ARGUMENTS and run.config["data"] == {"train": "x"}
    clip = smooth_clips(2)
    np.testing.assert_array_equal(np.asarray(run.model(clip)), np.asarray(online_model(clip)))
    with pytest.raises(ValueError, match="3 class names for a model with 5 outputs"):
        write_run_dir(tmp_path / "other", online_model, {"model": {}}, names[:3])


def test_preset_round_trip_gives_the_same_logits_and_keras_hub_files(tmp_path, online_model):
    model = VideoClassifier(**ARGUMENTS)
    model.set_weights(online_model.get_weights())
    model.class_names = ["a", "b", "c", "d", "e"]
    model.save_to_preset(tmp_path / "preset")
    loaded = VideoClassifier.from_preset(tmp_path / "preset")
    assert type(loaded) is VideoClassifier and loaded.class_names == model.class_names
    clip = smooth_clips(3, seed=5)
    logits = np.asarray(model(clip))
    assert np.abs(logits).max() > 0.1 and np.ptp(logits, axis=-1).min() > 0.01  # real numbers, per class
    np.testing.assert_array_equal(np.asarray(loaded(clip)), logits)
    np.testing.assert_array_equal(np.asarray(load_run(tmp_path / "preset").model(clip)), logits)
    # config.json is what Keras serialises for the class (KerasHub's config.json, without
    # build and compile configs), and Keras' public API rebuilds the class from it.
    config = json.loads((tmp_path / "preset" / "config.json").read_text())
    expected = keras.saving.serialize_keras_object(model)
    assert config == {k: v for k, v in expected.items() if k not in ("build_config", "compile_config")}
    assert type(keras.saving.deserialize_keras_object(config)) is VideoClassifier
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["keras_version"] == keras.version() and metadata["parameter_count"] == model.count_params()
    assert metadata["tasks"] == ["VideoClassifier"] and len(metadata["weights_sha256"]) == 64
    view = json.loads((tmp_path / "preset" / "preprocessor.json").read_text())
    assert (view["resize_short_side"], view["center_crop"], view["num_segments"]) == (37, 32, T)


def test_a_run_written_before_presets_still_loads(tmp_path, online_model):
    # The layout of the earlier run directories: model.keras, config.json with the settings, labels.txt.
    old = tmp_path / "old"
    old.mkdir()
    keras.Model(online_model.input, online_model.output).save(old / "model.keras")
    names = [f"c{i}" for i in range(5)]
    (old / "config.json").write_text(json.dumps({"model": ARGUMENTS, "class_names": names, "data": {"val": "v"}}))
    write_labels(old / "labels.txt", names)
    clip = smooth_clips(2, seed=9)
    expected = np.asarray(online_model(clip))
    run = load_run(old)
    assert run.class_names == names and read_config(old)["data"] == {"val": "v"}
    np.testing.assert_array_equal(np.asarray(run.model(clip)), expected)
    loaded = VideoClassifier.from_preset(old)
    assert type(loaded) is VideoClassifier and loaded.class_names == names
    np.testing.assert_array_equal(np.asarray(loaded(clip)), expected)
    loaded.save_to_preset(tmp_path / "new")  # and an old run becomes a preset
    np.testing.assert_array_equal(np.asarray(load_run(tmp_path / "new").model(clip)), expected)


def test_newest_run_and_missing_runs(tmp_path, online_model):
    with pytest.raises(RunError, match=NO_RUN):
        newest_run(tmp_path / "nothing")
    (tmp_path / "runs").mkdir()
    with pytest.raises(RunError, match=NO_RUN):
        newest_run(tmp_path / "runs")
    old = write_run(tmp_path / "runs" / "old", online_model)
    (tmp_path / "runs" / "incomplete").mkdir()
    new = write_run(tmp_path / "runs" / "new", online_model)
    os.utime(old / "model.weights.h5", (time.time() - 100, time.time() - 100))
    assert newest_run(tmp_path / "runs") == new
    os.utime(new / "model.weights.h5", (time.time() - 200, time.time() - 200))
    assert newest_run(tmp_path / "runs") == old


def test_bad_run_directories_name_the_file(tmp_path, online_model):
    with pytest.raises(RunError, match="no_such_run: no such run directory"):
        load_run(tmp_path / "no_such_run")
    run = write_run(tmp_path / "run", online_model)
    weights = (run / "model.weights.h5").read_bytes()
    (run / "model.weights.h5").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(RunError, match="model.weights.h5: its sha256 differs from the one in metadata.json"):
        load_run(run)
    (run / "preprocessor.json").write_text("{not json")
    with pytest.raises(RunError, match="preprocessor.json: not valid JSON"):
        load_run(run)
    (run / "config.json").write_text(json.dumps({"class_name": "Functional", "config": {}}))
    with pytest.raises(RunError, match="config.json: expected a tsm_keras>VideoClassifier config"):
        load_run(run)
    (run / "model.weights.h5").unlink()
    with pytest.raises(RunError, match="model.weights.h5: not found"):
        load_run(run)
