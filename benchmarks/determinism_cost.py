"""What `fit.py --deterministic` costs: the demo's training step with and without TensorFlow's
op determinism, in alternating processes (determinism is process-wide).

    python benchmarks/determinism_cost.py [--rounds 2] [--epochs 3] [FIT.PY OPTIONS ...]

Each process runs `training/fit.py --epochs N` (the built-in demo unless other options are
given) into a temporary folder; the time per step is Keras' own figure at the end of each
epoch's training steps (before the validation pass), for every epoch but the first (which
includes tracing). Prints the median of each mode over rounds and
epochs, their ratio, and whether each mode's runs wrote the same history.csv; then writes its
ledger entry, results/determinism-cost.json (benchmarks/ledger.py).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ledger import command, write_entry

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Keras' last progress line of an epoch: "125/125 ━━━━ 48s 380ms/step - loss: ..."
EPOCH_END = re.compile(r"(\d+)/\1 \S+ \d+s (\d+)(ms|s)/step")


def run(deterministic, epochs, extra, root=ROOT):
    """(ms per step of every epoch but the first, history.csv) of one fit.py process of the
    checkout `root`."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, str(Path(root) / "training" / "fit.py"), "--epochs", str(epochs), "--out", out]
        command += extra + (["--deterministic"] if deterministic else [])
        env = {**os.environ, "PYTHONPATH": str(root)}  # that checkout's package, not the installed one
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True, env=env)
        history = (Path(out) / "history.csv").read_text()
    text = ANSI.sub("", result.stdout).replace("\r", "\n")
    times = []
    for epoch in re.split(r"^Epoch \d+/\d+$", text, flags=re.M)[1:]:
        end = EPOCH_END.search(epoch)  # the first: the line after it adds the validation pass
        times.append(int(end[2]) * (1 if end[3] == "ms" else 1000))
    return times[1:], history


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args, extra = parser.parse_known_args()
    times, histories = {False: [], True: []}, {False: set(), True: set()}
    for round_ in range(args.rounds):
        for deterministic in (False, True):
            found, history = run(deterministic, args.epochs, extra)
            times[deterministic] += found
            histories[deterministic].add(history)
            print(f"round {round_ + 1}, deterministic={deterministic}: ms/step {found}", flush=True)
    plain, exact = statistics.median(times[False]), statistics.median(times[True])
    print(f"median ms/step: default {plain:g}, --deterministic {exact:g}; ratio {exact / plain:.3f}")
    for deterministic, name in ((False, "default"), (True, "--deterministic")):
        print(f"{name}: {len(histories[deterministic])} different history.csv in {args.rounds} runs")
    write_entry(
        "determinism-cost",
        "determinism",
        "The demo's training step with and without --deterministic",
        command(),
        ["mode", "median ms/step", "different history.csv"],
        [
            ["default", plain, len(histories[False])],
            ["--deterministic", exact, len(histories[True])],
        ],
        summary={"--deterministic / default": f"{exact / plain:.2f}x"},
        notes=(
            f"{args.rounds} alternating fit.py processes per mode of {args.epochs} epochs; ms/step is Keras' "
            "figure for each epoch's training steps, the first epoch left out; different history.csv: how "
            f"many distinct histories the {args.rounds} runs of that mode wrote (1: they repeated)."
        ),
    )


if __name__ == "__main__":
    main()
