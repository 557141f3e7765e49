"""Where every tsm-keras command starts: `prepare_process()`, then the command's `main()`.

    tsm-fit  ->  fit()  ->  prepare_process(); tsm_keras.commands.fit.main()

setup.cfg installs the commands (tsm-fit, tsm-evaluate, tsm-prepare, tsm-convert,
tsm-benchmark, tsm-stream, tsm-serve, tsm-port) as the functions below, and the scripts in
training/ and tflite/ call the same functions. This module stands beside the tsm_keras package,
not in it: importing anything from tsm_keras imports Keras, and with Keras' TensorFlow backend
TensorFlow, which reads the settings below once, when it loads. A library import leaves them
alone: `import tsm_keras` sets no variable and redirects no descriptor.

oneDNN: TensorFlow's Linux x86 builds carry two sets of CPU kernels, Eigen's and oneDNN's, and
turn oneDNN on by default only on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or AMX (its
`DefaultOneDnnPolicy`). The project's benchmarks measured training faster with oneDNN's kernels
on an AVX2 CPU, where TensorFlow would run Eigen's, so the commands set TF_ENABLE_ONEDNN_OPTS=1
unless it is set; `TF_ENABLE_ONEDNN_OPTS=0` keeps Eigen's (`tsm_keras._startup.onednn_enabled()`
says which kernels run).

Log lines: the commands set TF_CPP_MIN_LOG_LEVEL=2 unless it is set. TensorFlow 2.21 writes a
few INFO lines while it loads (oneDNN notes, "Could not find cuda drivers", CPU instruction
notes), before its logging is set up, so the variable does not filter them. Here they are
caught during the import and passed on unless the level filters them, as it does for every
later message: 1 drops INFO, 2 also WARNING, 3 also ERROR.
"""

import importlib
import os
import re
import sys
import tempfile

# absl log lines: a severity letter, then MMDD (I0000 before logging starts), then the time.
_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")
_FILTERED_FROM = {"I": 1, "W": 2, "E": 3}  # the lowest level that drops each severity
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def prepare_process():
    """Chooses oneDNN's CPU kernels and the log level (unless the environment names them), then
    loads TensorFlow with its start-up lines filtered by that level. A program that loaded
    TensorFlow already keeps what it loaded."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    level = _min_log_level()
    if "tensorflow" in sys.modules or level < 1:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write("".join(_kept(captured.read().decode(errors="replace"), level)))


def fit():
    """tsm-fit: train a video classifier (tsm_keras/commands/fit.py)."""
    return _run("fit")


def evaluate():
    """tsm-evaluate: a trained run over test views (tsm_keras/commands/evaluate.py)."""
    return _run("evaluate")


def prepare():
    """tsm-prepare: videos to TFRecord shards (tsm_keras/commands/prepare.py)."""
    return _run("prepare")


def convert():
    """tsm-convert: a run to TFLite models (tsm_keras/commands/convert.py)."""
    return _run("convert")


def benchmark():
    """tsm-benchmark: LiteRT latency of a .tflite (tsm_keras/commands/benchmark.py)."""
    return _run("benchmark")


def stream():
    """tsm-stream: a video or camera through a streaming .tflite (tsm_keras/commands/stream.py)."""
    return _run("stream")


def serve():
    """tsm-serve: the web demo with a run's streaming models (tsm_keras/commands/serve.py)."""
    return _run("serve")


def port():
    """tsm-port: an official PyTorch checkpoint to a run directory (tsm_keras/commands/port.py)."""
    return _run("port")


def _run(command):
    prepare_process()
    return importlib.import_module(f"tsm_keras.commands.{command}").main()


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _kept(text, level):
    dropping = False  # a dropped log line's continuation lines are dropped with it
    for line in text.splitlines(keepends=True):
        if line.startswith(_BANNER):  # absl's one-line warning about the lines around it
            dropping = False
            if level < 2:
                yield line
            continue
        match = _LOG_LINE.match(line)
        if match:
            dropping = level >= _FILTERED_FROM.get(match.group(1), 99)
        if not dropping:
            yield line
