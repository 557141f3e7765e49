"""The run directory (tsm_keras/run_dir.py) and atomic files (tsm_keras/files.py): what
training writes and evaluation, export and the porter read."""

import json
import os
import time

import keras
import numpy as np
import pytest

from tests.tiny import smooth_clips, tiny_classifier, write_run
from tsm_keras.data.labels import read_labels
from tsm_keras.files import atomic_write
from tsm_keras.run_dir import NO_RUN, RunError, load_run, newest_run
from tsm_keras.run_dir import write_run as write_run_dir


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


def test_a_written_run_loads_with_its_names_and_without_an_optimizer(tmp_path, online_model):
    compiled = keras.models.clone_model(online_model)
    compiled.set_weights(online_model.get_weights())
    compiled.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    names = ["wave hello", "push", "pull", "a", "b"]
    path = write_run_dir(tmp_path / "run", compiled, {"model": {"num_classes": 5}, "data": {}}, names)
    assert read_labels(path / "labels.txt") == names
    assert json.loads((path / "config.json").read_text())["class_names"] == names
    run = load_run(path)
    assert run.class_names == names and run.model_config == {"num_classes": 5}
    assert getattr(keras.models.load_model(path / "model.keras"), "optimizer", None) is None  # compile=True
    clip = smooth_clips(1)
    np.testing.assert_array_equal(np.asarray(run.model(clip)), np.asarray(online_model(clip)))
    with pytest.raises(ValueError, match="3 class names for a model with 5 outputs"):
        write_run_dir(tmp_path / "other", online_model, {"model": {}}, names[:3])


def test_newest_run_and_missing_runs(tmp_path, online_model):
    with pytest.raises(RunError, match=NO_RUN):
        newest_run(tmp_path / "nothing")
    (tmp_path / "runs").mkdir()
    with pytest.raises(RunError, match=NO_RUN):
        newest_run(tmp_path / "runs")
    old = write_run(tmp_path / "runs" / "old", online_model)
    (tmp_path / "runs" / "incomplete").mkdir()
    new = write_run(tmp_path / "runs" / "new", online_model)
    os.utime(old / "model.keras", (time.time() - 100, time.time() - 100))
    assert newest_run(tmp_path / "runs") == new
    os.utime(new / "model.keras", (time.time() - 200, time.time() - 200))
    assert newest_run(tmp_path / "runs") == old


def test_bad_run_directories_name_the_file(tmp_path, online_model):
    with pytest.raises(RunError, match="no_such_run: no such run directory"):
        load_run(tmp_path / "no_such_run")
    run = write_run(tmp_path / "run", online_model)
    (run / "config.json").write_text("{not json")
    with pytest.raises(RunError, match="config.json: not valid JSON"):
        load_run(run)
    (run / "model.keras").unlink()
    with pytest.raises(RunError, match="model.keras: not found"):
        load_run(run)
