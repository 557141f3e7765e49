"""The run directory: the one format that training writes and evaluation, export and the
checkpoint porter read. Like a KerasHub preset, the directory is the model.

RUN/
  config.json    {"model": the arguments of build_video_classifier, "class_names": [...],
                  and what wrote it: "data" and "training" (fit.py), "source" (the porter)}
  labels.txt     class names, one per line, line i is label i
  model.keras    architecture and weights, no optimizer
  fit.py adds:   checkpoints/ (weights and optimizer state, to resume), history.csv,
                 curves.png, logs/ (TensorBoard), confusion.png, per_class.csv, summary.json
  convert.py:    tflite/ (docs/tflite.md)

Every file is written atomically (tsm_keras.files). `model.keras` carries no optimizer:
nothing that reads it needs one, and a saved optimizer (a schedule, the video optimizers)
would have to be importable wherever the file is opened. `checkpoints/` resumes training.
"""

import dataclasses
import json
from pathlib import Path

from tsm_keras.data.labels import read_labels, write_labels
from tsm_keras.files import atomic_path, write_json

CONFIG, LABELS, MODEL = "config.json", "labels.txt", "model.keras"
NO_RUN = "no trained run found: train one with python training/fit.py"


class RunError(ValueError):
    """A run directory is missing or incomplete (a one-line message naming the file)."""


@dataclasses.dataclass
class Run:
    path: Path
    model: object  # the Keras clip model
    config: dict
    class_names: list

    @property
    def model_config(self):
        """The arguments of build_video_classifier that rebuild `model`."""
        return self.config["model"]


def save_model(model, path):
    """Saves `model` as architecture and weights only, atomically.

    An uncompiled Functional model over the same layers carries no optimizer or compile
    settings, whatever `model` was compiled with.
    """
    import keras

    bare = keras.Model(model.input, model.output, name=model.name)
    with atomic_path(path) as tmp:
        bare.save(tmp)


def write_run(path, model, config, class_names):
    """Writes model.keras, config.json (with `class_names`) and labels.txt into `path`."""
    path = Path(path)
    if int(model.output_shape[-1]) != len(class_names):
        raise ValueError(f"{len(class_names)} class names for a model with {model.output_shape[-1]} outputs")
    save_model(model, path / MODEL)
    write_json(path / CONFIG, {**config, "class_names": list(class_names)})
    write_labels(path / LABELS, class_names)
    return path


def is_run(path):
    path = Path(path)
    return (path / MODEL).is_file() and (path / CONFIG).is_file()


def newest_run(root="runs"):
    """The run directory under `root` whose model.keras was written last."""
    root = Path(root)
    runs = [p for p in root.iterdir() if is_run(p)] if root.is_dir() else []
    if not runs:
        raise RunError(f"{root}: {NO_RUN}" if root.is_dir() else NO_RUN)
    return max(runs, key=lambda p: (p / MODEL).stat().st_mtime)


def read_config(path):
    """RUN/config.json (or the file `path`), checked to hold the model's arguments."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG
    try:
        with open(path) as file:
            config = json.load(file)
    except FileNotFoundError:
        raise RunError(
            f"{path}: not found: not a run directory (training/fit.py writes it next to model.keras)"
        ) from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise RunError(f"{path}: expected an object with a 'model' entry (the build_video_classifier arguments)")
    return config


def load_run(path, float32=False):
    """The model, config and class names of a run directory.

    Args:
        float32: a run trained with --mixed-precision saves layers that compute in float16
            or bfloat16 (with float32 weights); rebuild it from config.json to compute in
            float32, as TFLite conversion needs.
    """
    import keras

    import tsm_keras  # noqa: F401  (registers the tsm_keras layers for load_model)

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    model_path = path / MODEL
    if not model_path.is_file():
        raise RunError(
            f"{model_path}: not found (the run has not finished an epoch, or the folder is not a run "
            "directory from training/fit.py or the porter)"
        )
    config = read_config(path)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises several types for unreadable files
        raise RunError(f"{model_path}: cannot be loaded ({type(error).__name__}: {error})") from None
    names = config.get("class_names") or (read_labels(path / LABELS) if (path / LABELS).is_file() else None)
    classes = int(model.output_shape[-1])
    names = names or [str(i) for i in range(classes)]
    if len(names) != classes:
        raise RunError(f"{path / CONFIG}: {len(names)} class names for a model with {classes} outputs")
    if float32:
        model = _in_float32(model, config)
    return Run(path=path, model=model, config=config, class_names=list(names))


def _in_float32(model, config):
    """The same weights in the architecture rebuilt to compute in float32 (if it does not)."""
    import keras

    from tsm_keras.models import build_video_classifier, walk_layers

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in walk_layers(model)):
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = build_video_classifier(**config["model"])
    finally:
        keras.config.set_dtype_policy(previous)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
