"""Evaluating a run directory on its validation data (or other data) over several views."""

from pathlib import Path

from tsm_keras.run_dir import load_run
from tsm_keras.training import evaluation


def evaluate_run(run_dir, data_path=None, clips=1, crops=1, dense=False, batch_size=8, out=None, log=print):
    """Returns (summary, report directory)."""
    from tsm_keras import data

    run = load_run(run_dir)
    model, config = run.model, run.config
    kwargs = config["model"]
    class_names = config["class_names"]
    data_path = data_path or config.get("data", {}).get("val")
    if not data_path:
        raise ValueError(f"{run_dir}: config.json names no validation data: pass --data")
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
    )
    views = f"{clips}clip{'s' if clips > 1 else ''}x{crops}crop{'s' if crops > 1 else ''}{'-dense' if dense else ''}"
    log(f"evaluating {run_dir} on {data_path}: {source.num_clips} clips, {views}")
    summary = evaluation.summarize(*evaluation.predict_views(model, dataset), class_names)
    summary.update(views=views, clips_per_video=clips, crops=crops, dense=dense, data=str(data_path))
    out = Path(out) if out else Path(run_dir) / f"eval-{views}"
    out.mkdir(parents=True, exist_ok=True)
    evaluation.write_report(summary, class_names, out)
    log(evaluation.format_summary(summary, class_names))
    return summary, out
