"""The run directory: everything a run writes, each file written atomically.

RUN_DIR/
  config.json       what rebuilds the model and its preprocessing (read by evaluate/convert)
  labels.txt        class names, one per line, in label order
  model.keras       the best model by validation top-1 (architecture and weights, no optimizer)
  checkpoints/      the last epoch's weights and optimizer state (resume after a kill)
  history.csv       one row per epoch; curves.png plots it
  logs/             TensorBoard
  confusion.png, per_class.csv, summary.json   at the end, on the validation set
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

CONFIG = "config.json"
LABELS = "labels.txt"
MODEL = "model.keras"


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; renamed onto `path` only if the block succeeds.

    A reader never sees a half-written file, even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_model(model, path):
    """Saves the model without its optimizer or compile settings.

    model.keras is what evaluate.py, convert.py and users load; the optimizer state for
    resuming lives in checkpoints/. A compiled model would also store its optimizer, whose
    classes (the learning-rate schedule, the video optimizers) must then be importable
    wherever the file is loaded. An uncompiled Functional model over the same layers carries
    exactly the architecture and the weights.
    """
    import keras

    bare = keras.Model(model.input, model.output, name=model.name)
    with atomic_path(path) as tmp:
        bare.save(tmp)


def read_config(run_dir):
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a tsm-keras run directory (train one with python training/fit.py)")
    with open(path) as f:
        return json.load(f)


def load_run(run_dir):
    """(model, config) of a run directory."""
    import keras

    import tsm_keras  # noqa: F401  (registers the custom layers)

    config = read_config(run_dir)
    path = Path(run_dir) / MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run has not finished an epoch yet")
    return keras.models.load_model(path), config


def newest_run(root="runs"):
    """The most recently written run directory under `root` (holding model.keras and config.json)."""
    root = Path(root)
    runs = [p for p in root.glob("*") if (p / MODEL).is_file() and (p / CONFIG).is_file()] if root.is_dir() else []
    if not runs:
        raise FileNotFoundError("no trained run found: train one with python training/fit.py")
    return max(runs, key=lambda p: (p / MODEL).stat().st_mtime)
