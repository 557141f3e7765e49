"""The built-in demo over seeds, as a newcomer runs it: top-1, int8 against float, and whether a
repeat with --deterministic gives the same history.

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--runs runs/demo_seeds] [FIT.PY OPTIONS ...]

For each seed: `training/fit.py --seed S --deterministic` twice (run directories seedS-a and
seedS-b, logs beside them as seedS-a.log), the two history.csv compared byte for byte (with
`--repeats 1`, one run), then `tflite/convert.py seedS-a --int8`. A run directory that already
holds a finished run (summary.json, and tflite/report.json for the conversion) is read, not run
again, so an interrupted sweep resumes. Writes two ledger
entries: `demo-<temporal>` (top-1, training time, identical history) and `int8-demo-<temporal>`
(each int8 model's top-1, drop and agreement with float).
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ledger import RESULTS, command, write_entry

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("clip", "stream", "stream_state")


def span(values, sign=""):
    """'a-b' (one decimal), or 'a' when every value is the same; sign '+' shows it on both."""
    low, high = (f"{v:{sign}.1f}" for v in (min(values), max(values)))
    return low if low == high else (f"{low} to {high}" if sign else f"{low}-{high}")


def shown(path):
    """A path as the recorded commands give it: relative to the repository root where it lies in it."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def fit_argv(run_dir, seed, extra):
    return ["training/fit.py", "--seed", str(seed), "--deterministic", "--out", shown(run_dir), *extra]


def convert_argv(run_dir):
    return ["tflite/convert.py", shown(run_dir), "--int8"]


def fit(run_dir, seed, extra):
    """Seconds of training that fit.py reported in its log, RUN_DIR.log (None without a log).
    A finished run (its summary.json, written by the final evaluation) is read, not run again;
    an unfinished one is resumed by fit.py."""
    log = run_dir.with_name(run_dir.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "summary.json").exists():
        with open(log, "w") as out:
            command = [sys.executable, *fit_argv(run_dir, seed, extra)]
            subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True)
    found = re.search(r"training took (\d+) s", log.read_text(errors="replace")) if log.exists() else None
    return int(found[1]) if found else None


def convert(run_dir):
    report = run_dir / "tflite" / "report.json"
    if not report.exists():
        subprocess.run([sys.executable, *convert_argv(run_dir)], cwd=ROOT, check=True)
    return json.loads(report.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs/demo_seeds"))
    parser.add_argument("--repeats", type=int, choices=(1, 2), default=2, help="runs per seed (2: compare histories)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the ledger folder (default: results/)")
    parser.add_argument("--conditions", help="how the runs were made, for the ledger (e.g. 'fresh clone and venv')")
    args, extra = parser.parse_known_args()
    runs = args.runs if args.runs.is_absolute() else ROOT / args.runs
    temporal = extra[extra.index("--temporal") + 1] if "--temporal" in extra else "tsm-online"
    label = "tsn" if temporal == "none" else temporal
    demo_rows, int8_rows = [], []
    for seed in args.seeds:
        started = time.time()
        first, repeat = runs / f"seed{seed}-a", runs / f"seed{seed}-b"
        seconds = fit(first, seed, extra)
        same = None
        if args.repeats == 2:
            fit(repeat, seed, extra)
            same = "yes" if (first / "history.csv").read_bytes() == (repeat / "history.csv").read_bytes() else "no"
        accuracy = convert(first)["accuracy"]
        demo_rows.append([seed, round(accuracy["clip_float32"], 1), seconds, same])
        for kind in (kind for kind in KINDS if f"{kind}_int8" in accuracy):  # TSN and offline: clip only
            name = f"{kind}_int8"
            int8_rows.append(
                [
                    seed,
                    kind,
                    round(accuracy["clip_float32"], 1),
                    round(accuracy[name], 1),
                    round(accuracy[name] - accuracy["clip_float32"], 1),
                    round(accuracy[f"{name}_agreement_with_float"], 1),
                ]
            )
        print(f"seed {seed}: {demo_rows[-1]} ({time.time() - started:.0f} s)", flush=True)

    fits = [
        shlex.join(["python", *fit_argv(runs / f"seed{s}-{r}", s, extra)])
        for s in args.seeds
        for r in "ab"[: args.repeats]
    ]
    converts = [shlex.join(["python", *convert_argv(runs / f"seed{s}-a")]) for s in args.seeds]
    sweep = command()
    top1 = [row[1] for row in demo_rows]
    summary = {"top-1": f"{span(top1)}%", "seeds": str(len(top1))}
    if args.repeats == 2:
        summary["repeats identical"] = f"{sum(row[3] == 'yes' for row in demo_rows)} of {len(demo_rows)}"
    write_entry(
        f"demo-{label}",
        "demo",
        f"Built-in demo ({temporal}), validation top-1" + (", each seed run twice" if args.repeats == 2 else ""),
        [sweep, *fits, *converts],
        ["seed", "top-1 %", "training s", "repeat gives the same history"],
        demo_rows,
        summary=summary,
        notes="Top-1 of the float32 TFLite clip model on the 500 validation clips (1 clip per video, "
        "the run's view); training s as fit.py logs it (empty: no log beside the run).",
        conditions=args.conditions,
        results=args.results,
    )
    drops = [row[4] for row in int8_rows]
    agreement = [row[5] for row in int8_rows]
    write_entry(
        f"int8-demo-{label}",
        "int8",
        f"Built-in demo ({temporal}): int8 TFLite models against float32",
        [sweep, *converts],
        ["seed", "model", "float32 top-1 %", "int8 top-1 %", "change (points)", "agreement with float %"],
        int8_rows,
        summary={
            "change": f"{span(drops, '+')} points",
            "agreement": f"{span(agreement)}%",
        },
        notes="Clip model and both streaming models (buffers as resource variables, stream; as inputs "
        "and outputs, stream_state); a streaming model sees T frames from reset.",
        conditions=args.conditions,
        results=args.results,
    )


if __name__ == "__main__":
    main()
