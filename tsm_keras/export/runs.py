"""Run directories written by training/fit.py: RUN_DIR/{model.keras, config.json, labels.txt}.

The layout and the "newest run" rule are tsm_keras.training.run_dir's; this module adds the
one-line errors that name the missing or broken file.
"""

import dataclasses
import json
import os
from pathlib import Path

from tsm_keras.training import run_dir as _layout

MODEL_FILE, CONFIG_FILE, LABELS_FILE = _layout.MODEL, _layout.CONFIG, _layout.LABELS
DEFAULT_RUNS = "runs"
NO_RUN = "no trained run found: train one with python training/fit.py"


class RunError(ValueError):
    """A run directory is missing or incomplete (one-line message naming the file)."""


@dataclasses.dataclass
class Run:
    path: Path
    model: object  # the Keras clip model
    config: dict
    class_names: list

    @property
    def model_config(self):
        return self.config.get("model", {})


def is_run(path):
    path = Path(path)
    return (path / MODEL_FILE).is_file() and (path / CONFIG_FILE).is_file()


def find_newest_run(root=DEFAULT_RUNS):
    """The run directory under `root` whose model.keras was written last (training's rule)."""
    try:
        return Path(_layout.newest_run(root))
    except FileNotFoundError:
        raise RunError(f"{root}: {NO_RUN}" if Path(root).is_dir() else NO_RUN) from None


def read_config(path):
    path = Path(path)
    try:
        with open(path) as file:
            config = json.load(file)
    except FileNotFoundError:
        raise RunError(f"{path}: not found (training/fit.py writes it next to model.keras)") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise RunError(f"{path}: expected an object with a 'model' entry (the build_video_classifier arguments)")
    return config


def read_labels(path):
    with open(path) as file:
        return [line.rstrip("\n") for line in file if line.strip()]


def load_run(path):
    """Load the model, config and class names of a run directory."""
    import keras

    import tsm_keras  # noqa: F401  (registers the tsm_keras layers for load_model)

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise RunError(f"{model_path}: not found (a run directory holds model.keras and config.json from training/fit.py)")
    config = read_config(path / CONFIG_FILE)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises several types for unreadable files
        raise RunError(f"{model_path}: cannot be loaded ({type(error).__name__}: {error})") from None
    names = config.get("class_names")
    if not names and (path / LABELS_FILE).is_file():
        names = read_labels(path / LABELS_FILE)
    classes = int(model.output_shape[-1])
    if not names:
        names = [str(i) for i in range(classes)]
    if len(names) != classes:
        raise RunError(f"{path / CONFIG_FILE}: {len(names)} class names for a model with {classes} outputs")
    return Run(path=path, model=_in_float32(model, config), config=config, class_names=list(names))


def _in_float32(model, config):
    """The model computing in float32. A run trained with --mixed-precision saves layers that
    compute in float16 or bfloat16, which TFLite's converter cannot lower; its weights are
    float32, so the same architecture is rebuilt from config.json in float32 and given them.
    (Quantizing to int8 or float16 is the converter's job, after this.)"""
    import keras

    from tsm_keras.models import build_video_classifier

    def layers(layer):
        yield layer
        for inner in getattr(layer, "layers", []):
            yield from layers(inner)

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in layers(model)):
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = build_video_classifier(**config["model"])
    finally:
        keras.config.set_dtype_policy(previous)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def write_labels(names, path):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as file:
        file.write("".join(f"{name}\n" for name in names))
    os.replace(tmp, path)
    return path
