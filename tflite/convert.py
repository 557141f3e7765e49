"""Convert a trained run to TFLite: clip model, streaming models, labels.txt, report.json.

    python tflite/convert.py [RUN_DIR] [--int8 | --float16] [--force] [--threads N]

RUN_DIR defaults to the newest run under runs/. Files go to RUN_DIR/tflite/. With --int8
the models are calibrated on the run's training data and validated on its validation data
(see docs/tflite.md).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tsm_keras.export.kinds import FLOAT16, FLOAT32, INT8  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="run directory (default: newest under runs/)")
    parser.add_argument("--runs", default="runs", help="where to look for the newest run (default: runs)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--int8", action="store_true", help="also write full-integer int8 models")
    group.add_argument("--float16", action="store_true", help="also write float16-weight models")
    parser.add_argument("--force", action="store_true",
                        help="write int8 models even if their top-1 is more than 2 points below float")
    parser.add_argument("--clip-only", action="store_true", help="write only the clip model (no streaming models)")
    parser.add_argument("--calibration-clips", type=int, default=100, help="training clips for int8 calibration")
    parser.add_argument("--validation-clips", type=int, default=None, help="at most this many validation clips")
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads for the latency numbers")
    return parser.parse_args(argv)


def clips_and_labels(path, split, num_segments, input_size, class_names=None):
    """(clip, label) pairs of a data set through the evaluation pipeline: one clip, centre
    crop, every video once in file order."""
    from tsm_keras.data import make_eval_dataset, open_source

    source = open_source(path, split=split, class_names=class_names)
    dataset = make_eval_dataset(source, num_segments=num_segments, input_size=input_size,
                                batch_size=8, clips=1, crops=1)
    for clips, labels in dataset:
        for views, label in zip(clips.numpy() if hasattr(clips, "numpy") else clips,
                                labels.numpy() if hasattr(labels, "numpy") else labels):
            yield views[0], int(label)


def calibration_clips(path, num_segments, input_size, class_names, count, seed=0):
    """`count` training clips spread over the classes: the training videos in a shuffled
    order (the file order is by class), each sampled and cropped as for evaluation (frames
    at the segment centres, centre crop), kept in memory so that every model is calibrated
    on the same clips."""
    from tsm_keras.data import Sampling, open_source
    from tsm_keras.data.augment import center_crop

    source = open_source(path, split="train", class_names=class_names)
    clips = source.clips(Sampling("tsn", num_segments), seed=seed)
    return [center_crop(views[0], input_size).numpy() for views, _ in clips.take(count)]


def main(argv=None):
    args = parse_args(argv)
    from tsm_keras.data import DataError
    from tsm_keras.export.pipeline import Int8AccuracyError, convert_run
    from tsm_keras.export.runs import RunError, find_newest_run, read_config
    from tsm_keras.export.verify import VerificationError
    from tsm_keras.streaming import NotStreamableError

    try:
        run_dir = Path(args.run_dir) if args.run_dir else find_newest_run(args.runs)
        if not run_dir.is_dir():
            raise RunError(f"{run_dir}: no such run directory")
        config = read_config(run_dir / "config.json")
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    model = config["model"]
    precisions = [FLOAT32] + ([INT8] if args.int8 else []) + ([FLOAT16] if args.float16 else [])
    data = config.get("data", {})
    size, segments = model.get("input_size"), model.get("num_segments")
    names = config.get("class_names")
    calibration = validation = None
    if args.int8:
        if not data.get("train"):
            print(f"error: {run_dir / 'config.json'}: no data.train path to calibrate int8 on", file=sys.stderr)
            return 2
        calibration = calibration_clips(data["train"], segments, size, names, args.calibration_clips)
    if data.get("val"):
        validation = clips_and_labels(data["val"], "val", segments, size, names)
    try:
        convert_run(run_dir, precisions, calibration_clips=calibration, validation=validation,
                    force=args.force, streaming=not args.clip_only, threads=args.threads,
                    calibration_limit=args.calibration_clips, validation_limit=args.validation_clips)
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotStreamableError as error:
        print(f"error: {run_dir / 'model.keras'}: streaming models not written: {error}", file=sys.stderr)
        return 3
    except (Int8AccuracyError, VerificationError) as error:
        print(f"error: {run_dir}: {error}", file=sys.stderr)
        return 4
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
