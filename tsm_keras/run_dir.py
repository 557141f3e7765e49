"""The run directory: the one format that training and the porter write and evaluation,
export and `VideoClassifier.from_preset` read. It is a preset in KerasHub's layout, plus what
training leaves beside it.

RUN/
  config.json        the model, as keras.saving.serialize_keras_object writes a
                     `tsm_keras.VideoClassifier`: {"module", "class_name", "config": the
                     arguments of build_video_classifier, "registered_name"}
  preprocessor.json  the view (tsm_keras.data.view: frames per clip, sampling, resize and
                     centre crop, colour, mean and std) and "class_names", label i first
  metadata.json      tsm_keras, Keras and TensorFlow versions, parameter count, date saved,
                     and the sha256 of model.weights.h5 (checked when the run loads)
  model.weights.h5   the weights, no optimizer state
  run.json           how the weights were made: "data" and "training" (fit), "source" (the porter)
  fit adds:          checkpoints/ (weights and optimizer state, to resume), history.csv,
                     curves.png, logs/ (TensorBoard), confusion.png, per_class.csv, summary.json
  convert adds:      tflite/ (docs/tflite.md)

In memory a run's settings are one dict (`read_config`): {"model", "class_names",
"preprocessing", and "data", "training" or "source"}. Runs written before presets
(model.keras, config.json holding that dict, labels.txt) load as they are.

Every file is written atomically (tsm_keras.files). The weights carry no optimizer: nothing
that reads them needs one. `checkpoints/` resumes training.
"""

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path

from tsm_keras.data.labels import read_labels
from tsm_keras.files import atomic_path, write_json

CONFIG, PREPROCESSOR, METADATA, WEIGHTS, RUN = (
    "config.json",
    "preprocessor.json",
    "metadata.json",
    "model.weights.h5",
    "run.json",
)
PRESET_FILES = (CONFIG, PREPROCESSOR, RUN, WEIGHTS, METADATA)  # metadata.json last: it names the weights
MODEL, LABELS = "model.keras", "labels.txt"  # runs written before presets
NO_RUN = "no trained run found: train one with python training/fit.py"
TASK = "VideoClassifier"


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


def _bare(model):
    """An uncompiled Functional model over the same layers: no optimizer, whatever `model`
    was compiled with, and the weight-file layout of any Functional model of this graph."""
    import keras

    return keras.Model(model.input, model.output, name=model.name)


def model_entry(arguments):
    """config.json: what keras.saving.serialize_keras_object writes for a VideoClassifier
    built with `arguments` (the arguments of build_video_classifier)."""
    return {
        "module": "tsm_keras.video_classifier",
        "class_name": TASK,
        "config": dict(arguments),
        "registered_name": f"tsm_keras>{TASK}",
    }


def write_config(path, config, class_names):
    """Writes config.json, preprocessor.json and run.json of the settings `config`."""
    path = Path(path)
    model = config["model"]
    preprocessing = dict(config.get("preprocessing") or {})
    preprocessing.setdefault("num_segments", model.get("num_segments"))
    preprocessing.setdefault("sampling", "segments")
    write_json(path / CONFIG, model_entry(model))
    write_json(path / PREPROCESSOR, {**preprocessing, "class_names": [str(name) for name in class_names]})
    made = {key: value for key, value in config.items() if key not in ("model", "class_names", "preprocessing")}
    write_json(path / RUN, made)


def save_weights(model, path):
    """Writes model.weights.h5, then metadata.json with its sha256, into the run `path`."""
    path = Path(path)
    with atomic_path(path / WEIGHTS) as tmp:
        _bare(model).save_weights(tmp)
    write_json(path / METADATA, _metadata(model, _sha256(path / WEIGHTS)))
    return path / WEIGHTS


def _metadata(model, digest):
    import keras

    import tsm_keras

    backend = keras.config.backend()
    versions = {"tsm_keras_version": tsm_keras.__version__, "keras_version": keras.version()}
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow_version"] = tf.__version__
    return {
        **versions,
        "backend": backend,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": [TASK],
        "weights_sha256": digest,
    }


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_run(path, model, config, class_names):
    """Writes the preset of `model` with the settings `config` and `class_names` into `path`."""
    path = Path(path)
    if int(model.output_shape[-1]) != len(class_names):
        raise ValueError(f"{len(class_names)} class names for a model with {model.output_shape[-1]} outputs")
    path.mkdir(parents=True, exist_ok=True)
    write_config(path, config, class_names)
    save_weights(model, path)
    return path


def _model_file(path):
    """The run's weights: model.weights.h5, or model.keras in a run written before presets."""
    for name in (WEIGHTS, MODEL):
        if (Path(path) / name).is_file():
            return Path(path) / name
    return None


def is_run(path):
    return _model_file(path) is not None and (Path(path) / CONFIG).is_file()


def newest_run(root="runs"):
    """The run directory under `root` whose weights were written last."""
    root = Path(root)
    runs = [p for p in root.iterdir() if is_run(p)] if root.is_dir() else []
    if not runs:
        raise RunError(f"{root}: {NO_RUN}" if root.is_dir() else NO_RUN)
    return max(runs, key=lambda p: _model_file(p).stat().st_mtime)


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise RunError(f"{path}: not found: not a run directory or preset ({what})") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object ({what})")
    return data


def read_config(path):
    """A run's settings as one dict: {"model": the arguments of build_video_classifier,
    "class_names", "preprocessing", and what made it}, from a preset or an older run.
    `path` is the run directory (or its config.json)."""
    path = Path(path)
    if not path.is_dir():
        path = path.parent
    entry = _read_json(path / CONFIG, "training/fit.py and the porter write it")
    if isinstance(entry.get("model"), dict):  # a run written before presets
        return entry
    if entry.get("registered_name") != f"tsm_keras>{TASK}" or not isinstance(entry.get("config"), dict):
        raise RunError(
            f"{path / CONFIG}: expected a tsm_keras>{TASK} config (registered_name and config) or an older "
            "run's 'model' entry"
        )
    view = _read_json(path / PREPROCESSOR, "the view and class names")
    made = _read_json(path / RUN, "how the weights were made") if (path / RUN).is_file() else {}
    class_names = view.pop("class_names", None)
    return {"model": entry["config"], "class_names": class_names, "preprocessing": view, **made}


def read_metadata(path):
    """RUN/metadata.json ({} for a run written before presets)."""
    path = Path(path) / METADATA
    return _read_json(path, "the versions and the weights' sha256") if path.is_file() else {}


def load_run(path, float32=False, build=None):
    """The model, settings and class names of a run directory or preset.

    Args:
        float32: a run trained with --mixed-precision computes in float16 or bfloat16 where
            the global dtype policy says so; build it to compute in float32, as TFLite
            conversion needs.
        build: what builds the model from the arguments in config.json (default:
            build_video_classifier; `VideoClassifier.from_preset` passes its class).
    """
    import keras

    import tsm_keras  # noqa: F401  (registers the tsm_keras layers for load_model)
    from tsm_keras.models import build_video_classifier

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    model_path = _model_file(path)
    if model_path is None:
        raise RunError(
            f"{path / WEIGHTS}: not found (the run has not finished an epoch, or the folder is not a run "
            "directory from training/fit.py or the porter)"
        )
    config = read_config(path)
    build = build or build_video_classifier
    try:
        if model_path.name == WEIGHTS:
            _check_sha256(path)
            model = _build(build, config, float32)
            _load_weights(model, model_path)
        else:
            model = keras.models.load_model(model_path, compile=False)
            if float32 or build is not build_video_classifier:
                model = _rebuilt(model, build, config, float32)
    except RunError:
        raise
    except Exception as error:  # Keras raises several types for unreadable files
        raise RunError(f"{model_path}: cannot be loaded ({type(error).__name__}: {error})") from None
    names = config.get("class_names") or (read_labels(path / LABELS) if (path / LABELS).is_file() else None)
    classes = int(model.output_shape[-1])
    names = names or [str(i) for i in range(classes)]
    if len(names) != classes:
        where = CONFIG if model_path.name == MODEL else PREPROCESSOR
        raise RunError(f"{path / where}: {len(names)} class names for a model with {classes} outputs")
    return Run(path=path, model=model, config=config, class_names=list(names))


def _load_weights(model, path):
    """Loads model.weights.h5 into `model`, refusing a file that holds more weights than the
    model (Keras skips those silently: weights of another architecture than config.json's)."""
    import h5py

    with h5py.File(path, "r") as file:
        stored = []
        file["layers"].visititems(lambda name, item: stored.append(name) if isinstance(item, h5py.Dataset) else None)
    if len(stored) != len(model.weights):
        raise RunError(
            f"{path}: holds {len(stored)} weights, the model that {CONFIG} describes has {len(model.weights)}: "
            f"the two files are not of the same model"
        )
    _bare(model).load_weights(path)


def _check_sha256(path):
    expected = read_metadata(path).get("weights_sha256")
    if expected and _sha256(path / WEIGHTS) != expected:
        raise RunError(
            f"{path / WEIGHTS}: its sha256 differs from the one in {METADATA} (the file changed or was "
            "copied in part after it was saved)"
        )


def _build(build, config, float32):
    import keras

    if not float32:
        return build(**config["model"])
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return build(**config["model"])
    finally:
        keras.config.set_dtype_policy(previous)


def _rebuilt(model, build, config, float32):
    """An older run's model.keras, its weights in the model `build` makes (in float32 if asked)."""
    from tsm_keras.models import build_video_classifier, walk_layers

    in_float32 = all(layer.dtype_policy.compute_dtype == "float32" for layer in walk_layers(model))
    if build is build_video_classifier and in_float32:
        return model
    rebuilt = _build(build, config, float32)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
