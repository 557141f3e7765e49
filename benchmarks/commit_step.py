"""The demo's training step at two commits of this repository, in alternating fit.py processes:
whether a change made training slower (or changed its numbers).

    python benchmarks/commit_step.py BEFORE [AFTER] [--rounds 2] [--epochs 3] [FIT.PY OPTIONS ...]

Each commit (AFTER: HEAD by default) is checked out into a temporary git worktree, and its own
`training/fit.py --epochs N` runs there (the built-in demo unless other options are given), the
two commits alternating, `--rounds` times. The time per step is Keras' figure for each epoch's
training steps, the first epoch left out (tracing), as in determinism_cost.py. Prints the median
of each commit, their ratio, and how many different history.csv the runs wrote (with
`--deterministic` among the fit.py options, 1 means the change kept training's numbers exactly).
Ends by writing its ledger entry, results/training-speed-commits.json (benchmarks/ledger.py).
"""

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from determinism_cost import ROOT, run
from ledger import command, write_entry


def checkout(rev, folder):
    """A detached worktree of `rev` in `folder`; returns its full commit hash."""
    subprocess.run(["git", "worktree", "add", "--detach", folder, rev], cwd=ROOT, check=True, capture_output=True)
    found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, check=True, capture_output=True, text=True)
    return found.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as temp:
        roots = {rev: Path(temp) / name for rev, name in ((args.before, "before"), (args.after, "after"))}
        try:
            commits = {rev: checkout(rev, root) for rev, root in roots.items()}
            times = {rev: [] for rev in roots}
            histories = set()
            for round_ in range(args.rounds):
                for rev, root in roots.items():
                    found, history = run(False, args.epochs, extra, root=root)
                    times[rev] += found
                    histories.add(history)
                    print(f"round {round_ + 1}, {rev}: ms/step {found}", flush=True)
        finally:
            for root in roots.values():
                subprocess.run(["git", "worktree", "remove", "--force", root], cwd=ROOT, capture_output=True)
    before, after = (statistics.median(times[rev]) for rev in roots)
    print(f"median ms/step: {args.before} {before:g}, {args.after} {after:g}; ratio {after / before:.3f}")
    print(f"{len(histories)} different history.csv in {2 * args.rounds} runs")
    write_entry(
        "training-speed-commits",
        "training-speed",
        "The demo's training step before and after a change",
        command(),
        ["commit", "median ms/step", "ms/step of each epoch"],
        [[commits[rev][:12], statistics.median(times[rev]), " ".join(map(str, times[rev]))] for rev in roots],
        summary={"after / before": f"{after / before:.3f}x", "different history.csv": str(len(histories))},
        notes=(
            f"{args.rounds} alternating fit.py processes per commit of {args.epochs} epochs, fit.py options "
            f"{' '.join(extra) or '(none: the built-in demo)'}; ms/step is Keras' figure for each epoch's "
            "training steps, the first epoch left out; different history.csv: how many distinct histories "
            "all runs wrote (1: both commits trained to the same numbers)."
        ),
    )


if __name__ == "__main__":
    main()
