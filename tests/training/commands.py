"""Running the commands the scripts print, as a user copies them into a shell."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_command(command, *extra):
    """A `python ...` command line as a user types it (shell quoting included), from the
    checkout; it must exit 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    words = shlex.split(command)
    assert words[0] == "python", command
    result = subprocess.run(
        [sys.executable, *words[1:], *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def next_commands(printed):
    """The commands of the last `next:` line a script printed, in order."""
    line = [l for l in printed.splitlines() if l.startswith("next:")][-1]
    return [c.strip() for c in line[len("next:") :].split("   |   ")]


def run_next_commands(printed, run_dir):
    """Runs the evaluate and convert commands of fit.py's `next:` line, exactly as printed
    (convert with --force: a tiny run's near-tied logits make the 1-point int8 gate noise
    on a few validation clips; the gate is tested on trained models in
    tests/export/test_int8_accuracy.py)."""
    commands = next_commands(printed)
    run = shlex.quote(str(run_dir))
    assert commands == [f"python training/evaluate.py {run}", f"python tflite/convert.py {run} --int8"]
    return run_command(commands[0]), run_command(commands[1], "--force", "--calibration-clips", "4")
