import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.training.commands import run_command
from tests.training.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import sys, numpy as np
from tsm_keras.training.trainer import train
from tsm_keras.commands.fit import parse_args
out, index = sys.argv[1], sys.argv[2]
summary, run_dir, model = train(parse_args(sys.argv[3:]), log=print)
np.savez(f"{out}/weights-{index}.npz", *model.get_weights())
print("worker done", index)
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_local_workers_train_in_lockstep(tiny_data, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG: two CPU workers on localhost ports."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    # --sync-bn: BatchNormalization statistics over the global batch, so that the moving
    # statistics agree too (without it each worker keeps its own, as PyTorch DDP does).
    args = ["--data", str(tiny_data), "--out", str(tmp_path / "run"), *TINY, "--epochs", "1", "--sync-bn"]
    workers = []
    for index in range(2):
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            TF_CPP_MIN_LOG_LEVEL="3",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(tmp_path), str(index), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index}:\n{output[-3000:]}"
    assert "2 replica(s)" in outputs[0]
    chief, other = (np.load(tmp_path / f"weights-{i}.npz") for i in range(2))
    assert len(chief.files) == len(other.files) > 100
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], other[key])
    # Only the chief (worker 0) wrote the run directory, with one trained epoch.
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and history[1].startswith("1,")
    assert (tmp_path / "run" / "model.weights.h5").is_file()
    assert "validation top-1" not in outputs[1]
    # The chief's run (synchronised BatchNormalization, two replicas) evaluates and converts
    # like any other: the commands fit.py prints at the end of a run.
    run = tmp_path / "run"
    assert "top-1" in run_command(f"python training/evaluate.py {run}").stdout
    run_command(f"python tflite/convert.py {run} --int8", "--force", "--calibration-clips", "4")
    assert (run / "tflite" / "clip_int8.tflite").is_file()
