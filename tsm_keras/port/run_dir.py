"""Writing a ported model as a run directory, all or nothing.

A run directory is what training/evaluate.py and tflite/convert.py read:

    model.keras    the Keras model
    config.json    {"model": kwargs of build_video_classifier, "class_names": [...], ...}
    labels.txt     one class name per line

Everything is written and checked in a temporary directory next to the destination and
moved into place only at the end, so a failure never leaves a half-written model.
"""

import os
import shutil
import tempfile

import keras
import numpy as np

from tsm_keras import run_dir
from tsm_keras.data import labels as labels_file
from tsm_keras.port.checkpoint import PortError


def read_labels(path, num_classes):
    """Class names from a text file, one per line; their number must be `num_classes`."""
    try:
        names = labels_file.read_labels(path)
    except OSError as error:
        raise PortError(f"cannot read the labels file {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise PortError(str(error)) from error
    if len(names) != num_classes:
        raise PortError(f"{path} has {len(names)} class names; the checkpoint has {num_classes} classes")
    return names


def write_run_dir(out, model, config, class_names, force=False, verify=True):
    """Write model, config and labels to `out` atomically; returns the model file's path.

    Args:
        out: a directory, or a path ending in '.keras' (config.json and labels.txt are
            then written next to it).
        force: replace existing files of the same names.
        verify: reload the written model and check it gives the same outputs as `model`.
    """
    out = os.path.abspath(os.fspath(out))
    as_file = out.endswith(".keras")
    folder = os.path.dirname(out) if as_file else out
    model_name = os.path.basename(out) if as_file else run_dir.MODEL
    names = (model_name, run_dir.CONFIG, run_dir.LABELS)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise PortError(f"{folder} exists and is not a directory")
    existing = [os.path.join(folder, name) for name in names if os.path.exists(os.path.join(folder, name))]
    if existing and not force:
        raise PortError(f"{existing[0]} already exists (pass `force=True` to replace it)")
    parent = folder if as_file else os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tsm_keras_port-", dir=parent)
    try:
        run_dir.write_run(staging, model, config, class_names)
        if verify:
            _verify(model, os.path.join(staging, run_dir.MODEL))
        os.replace(os.path.join(staging, run_dir.MODEL), os.path.join(staging, model_name))
        if not as_file and not os.path.exists(folder):
            os.rename(staging, folder)  # the whole directory appears at once
        else:
            os.makedirs(folder, exist_ok=True)
            for name in (run_dir.CONFIG, run_dir.LABELS, model_name):
                os.replace(os.path.join(staging, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(folder, model_name)


def _verify(model, path):
    """The saved file gives exactly the outputs of the model in memory, on a random clip."""
    loaded = keras.models.load_model(path)
    clip = np.random.default_rng(0).uniform(0, 255, (1,) + tuple(model.input_shape[1:])).astype("float32")
    expected, actual = np.asarray(model(clip)), np.asarray(loaded(clip))
    if not np.array_equal(expected, actual):
        raise PortError(
            f"the saved model does not reproduce the ported one (max difference "
            f"{np.abs(expected - actual).max():.3g}); nothing was written"
        )
