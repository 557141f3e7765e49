"""Writing a ported model as a preset (a run directory: tsm_keras.run_dir), all or nothing.

    config.json, preprocessor.json, metadata.json, model.weights.h5, run.json ("source")

Everything is written and checked in a temporary directory next to the destination and
moved into place only at the end, so a failure never leaves a half-written model.
"""

import os
import shutil
import tempfile

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
    """Writes the preset of `model` to the directory `out` atomically; returns `out`.

    Args:
        force: replace existing preset files of the same names.
        verify: reload the written preset and check it gives the same outputs as `model`.
    """
    folder = os.path.abspath(os.fspath(out))
    if folder.endswith(".keras"):
        raise PortError(
            f"{out}: the porter writes a preset directory (config.json, model.weights.h5, ...): name a folder; "
            "tsm_keras.VideoClassifier.from_preset(folder).save('model.keras') makes a .keras file of it"
        )
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise PortError(f"{folder} exists and is not a directory")
    names = run_dir.PRESET_FILES
    existing = [os.path.join(folder, name) for name in names if os.path.exists(os.path.join(folder, name))]
    if existing and not force:
        raise PortError(f"{existing[0]} already exists (pass `force=True` to replace it)")
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tsm_keras_port-", dir=parent)
    try:
        run_dir.write_run(staging, model, config, class_names)
        if verify:
            _verify(model, staging)
        if not os.path.exists(folder):
            os.rename(staging, folder)  # the whole directory appears at once
        else:
            for name in names:  # the weights before the metadata that names their sha256
                os.replace(os.path.join(staging, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _verify(model, path):
    """The saved preset gives exactly the outputs of the model in memory, on a random clip."""
    loaded = run_dir.load_run(path).model
    clip = np.random.default_rng(0).uniform(0, 255, (1,) + tuple(model.input_shape[1:])).astype("float32")
    expected, actual = np.asarray(model(clip)), np.asarray(loaded(clip))
    if not np.array_equal(expected, actual):
        raise PortError(
            f"the saved model does not reproduce the ported one (max difference "
            f"{np.abs(expected - actual).max():.3g}); nothing was written"
        )
