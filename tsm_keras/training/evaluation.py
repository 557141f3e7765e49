"""Evaluating a model over test views: logits averaged over clips x crops, then top-k and confusion.

`evaluate_run` is what `training/evaluate.py` runs on a run directory."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tsm_keras.data.view import View
from tsm_keras.files import atomic_path, atomic_write, write_json
from tsm_keras.run_dir import load_run
from tsm_keras.training import plots


def predict_views(model, dataset):
    """Clip logits averaged over views, and labels, for a dataset of (B, V, T, S, S, 3) clips.

    The reference averages logits (not probabilities) over views; softmax comes after.
    """
    all_logits, all_labels = [], []
    for clips, labels in dataset:
        clips = np.asarray(clips)
        batch, views = clips.shape[:2]
        logits = np.asarray(model.predict_on_batch(clips.reshape((batch * views,) + clips.shape[2:])))
        all_logits.append(logits.reshape(batch, views, -1).mean(axis=1))
        all_labels.append(np.asarray(labels))
    if not all_logits:
        raise ValueError("the evaluation data set yielded no readable clip")
    return np.concatenate(all_logits), np.concatenate(all_labels).astype(int)


def summarize(logits, labels, class_names):
    """Top-1, top-5, per-class accuracy and the confusion matrix (rows: true class)."""
    num_classes = len(class_names)
    predicted = np.argmax(logits, axis=1)
    confusion = tf.math.confusion_matrix(labels, predicted, num_classes=num_classes).numpy()
    in_top5 = keras.ops.convert_to_numpy(keras.ops.in_top_k(labels, logits, k=min(5, num_classes)))
    per_class = {
        name: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, name in enumerate(class_names)
    }
    return {
        "clips": int(len(labels)),
        "top1": float(np.mean(predicted == labels)),
        "top5": float(np.mean(in_top5)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def write_report(summary, class_names, out_dir, prefix=""):
    """summary.json, per_class.csv and confusion.png in `out_dir`."""
    write_json(out_dir / f"{prefix}summary.json", summary)
    lines = ["class,accuracy,clips"] + [
        f"{name},{'' if acc is None else f'{acc:.4f}'},{sum(row)}"
        for (name, acc), row in zip(summary["per_class"].items(), summary["confusion"])
    ]
    atomic_write(out_dir / f"{prefix}per_class.csv", "\n".join(lines) + "\n")
    with atomic_path(out_dir / f"{prefix}confusion.png") as tmp:
        plots.confusion(summary["confusion"], class_names, tmp)


def format_summary(summary, class_names, width=60):
    lines = [f"top-1 {100 * summary['top1']:.1f}%   top-5 {100 * summary['top5']:.1f}%   ({summary['clips']} clips)"]
    for name, acc in summary["per_class"].items():
        bar = "#" * int(round(20 * (acc or 0)))
        lines.append(f"  {name[:28]:28s} {'-' if acc is None else f'{100 * acc:5.1f}%'} {bar}")
    return "\n".join(lines)


def evaluate_run(run_dir, data_path=None, clips=1, crops=1, dense=False, batch_size=8, out=None, log=print):
    """Returns (summary, report directory)."""
    from tsm_keras import data

    run = load_run(run_dir)
    model, config = run.model, run.config
    kwargs = config["model"]
    class_names = config["class_names"]
    data_path = data_path or config.get("data", {}).get("val")
    if not data_path:
        raise ValueError(f"{run_dir}: the run names no validation data (run.json): pass `data_path`")
    source = data.open_source(str(data_path), split="val")
    if list(source.class_names) != list(class_names):
        raise ValueError(f"{data_path}: its classes {source.class_names} differ from the run's {class_names}")
    dataset = data.make_eval_dataset(
        source,
        num_segments=kwargs["num_segments"],
        input_size=kwargs["input_size"],
        batch_size=batch_size,
        clips=clips,
        crops=crops,
        sampling="dense" if dense else "tsn",
        view=View.of_run(config),  # one crop: what the model is deployed with
    )
    views = f"{clips}clip{'s' if clips > 1 else ''}x{crops}crop{'s' if crops > 1 else ''}{'-dense' if dense else ''}"
    log(f"evaluating {run_dir} on {data_path}: {source.num_clips} clips, {views}")
    summary = summarize(*predict_views(model, dataset), class_names)
    summary.update(views=views, clips_per_video=clips, crops=crops, dense=dense, data=str(data_path))
    out = Path(out) if out else Path(run_dir) / f"eval-{views}"
    out.mkdir(parents=True, exist_ok=True)
    write_report(summary, class_names, out)
    log(format_summary(summary, class_names))
    return summary, out
