"""Evaluate a trained run over test views: top-1, top-5, per-class accuracy, confusion matrix.

    python training/evaluate.py RUN_DIR [--data PATH] [--clips N] [--crops 1|3] [--dense]

Logits are averaged over clips x crops (the reference's multi-view testing); the report goes
to RUN_DIR/eval-<views>/ (summary.json, per_class.csv, confusion.png).
"""

import argparse
import sys
from pathlib import Path

from tsm_keras.cli import as_flags
from tsm_keras.training.evaluation import evaluate_run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run directory written by fit.py (or by tsm_keras.port)")
    p.add_argument("--data", help="evaluation data (default: the run's validation data)")
    p.add_argument("--clips", type=int, default=1, help="clips per video (default: 1)")
    p.add_argument(
        "--crops", type=int, default=1, choices=[1, 3], help="1: centre crop; 3: full-resolution three crops"
    )
    p.add_argument("--dense", action="store_true", help="dense sampling (stride 64 // T) instead of TSN segments")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", help="report directory (default: RUN_DIR/eval-<views>)")
    args = p.parse_args(argv)
    if args.clips < 1:
        p.error(f"--clips must be >= 1, got {args.clips}")
    try:
        summary, out = evaluate_run(
            Path(args.run_dir),
            data_path=args.data,
            clips=args.clips,
            crops=args.crops,
            dense=args.dense,
            batch_size=args.batch_size,
            out=args.out,
        )
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"evaluate.py: error: {as_flags(error, vars(args), renamed={'data_path': 'data'})}")
    print(f"report written to {out}/")


if __name__ == "__main__":
    main()
