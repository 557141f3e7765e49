"""Callbacks of a training run: resumable checkpoints, history, curves and the best model."""

import csv
import io
import re
from pathlib import Path

import keras
import numpy as np

from tsm_keras.files import atomic_path, atomic_write
from tsm_keras.run_dir import save_weights
from tsm_keras.training import plots

CHECKPOINT = re.compile(r"^epoch-(\d+)\.weights\.h5$")


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, saves weights and optimizer state as `epoch-NNNN.weights.h5`.

    keras.callbacks.BackupAndRestore writes its weights and its epoch counter as two files,
    neither atomically, so a kill between the two resumes from an inconsistent state. Here
    the epoch is part of the file name and the file appears by one atomic rename: a file
    that exists is complete, and the newest one is the state after that epoch. Older
    checkpoints are removed once a newer one is in place.

    Args:
        directory: where the checkpoints go.
        write: False on the non-chief workers of a multi-worker run (they only read).
    """

    def __init__(self, directory, write=True):
        super().__init__()
        self.directory = Path(directory)
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if not self.write:
            return
        path = self.directory / f"epoch-{epoch + 1:04d}.weights.h5"
        with atomic_path(path) as tmp:
            self.model.save_weights(tmp)
        for old, _ in checkpoints(self.directory):
            if old != path:
                old.unlink(missing_ok=True)


def checkpoints(directory):
    """[(path, epochs done)] of the complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    found = [(p, int(m[1])) for p in directory.glob("epoch-*.weights.h5") if (m := CHECKPOINT.match(p.name))]
    return sorted(found, key=lambda item: item[1])


def restore_latest(model, directory):
    """Loads the newest checkpoint into a compiled model; returns the epochs it had done (0 if none)."""
    found = checkpoints(directory)
    if not found:
        return 0
    path, epochs = found[-1]
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)
    return epochs


class RunLogger(keras.callbacks.Callback):
    """Keeps history.csv and curves.png up to date and saves the best weights as the run's
    model.weights.h5 (with metadata.json: tsm_keras.run_dir).

    On a resumed run it keeps the rows of the epochs already done (and their best score),
    so the history of a killed and restarted run reads like an uninterrupted one.
    """

    def __init__(self, run_dir, initial_epoch=0, monitor="val_top1", write=True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.initial_epoch = initial_epoch
        self.monitor = monitor
        self.write = write
        self.rows = []
        self.best = -np.inf

    def on_train_begin(self, logs=None):
        self.rows = [r for r in read_history(self.run_dir / "history.csv") if int(r["epoch"]) <= self.initial_epoch]
        scores = [float(r[self.monitor]) for r in self.rows if r.get(self.monitor) not in (None, "")]
        self.best = max(scores, default=-np.inf)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "learning_rate": _current_learning_rate(self.model.optimizer)}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        self.rows.append(row)
        if not self.write:
            return
        score = logs.get(self.monitor)
        if score is not None and score > self.best:
            self.best = float(score)
            save_weights(self.model, self.run_dir)
        write_history(self.run_dir / "history.csv", self.rows)
        with atomic_path(self.run_dir / "curves.png") as tmp:
            plots.curves(self.rows, tmp)


def _current_learning_rate(optimizer):
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


def read_history(path):
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_history(path, rows):
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())
