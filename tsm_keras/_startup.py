"""Import TensorFlow with oneDNN's kernels on, and with TF_CPP_MIN_LOG_LEVEL applied to its start-up
messages.

oneDNN: TensorFlow's Linux x86 builds carry two sets of CPU kernels, Eigen's and oneDNN's, and
turn oneDNN on by default only on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or AMX (its
`DefaultOneDnnPolicy`). On other x86 CPUs, such as this project's AVX2 machine, it runs the Eigen
kernels, and with them the models here train 1.4-1.9x slower (benchmarks/vs_pytorch.py,
4 clips of 8 x 112 px: TSM-MobileNetV2 660 against 344 ms a step, TSM-ResNet-50 3.7 against
2.6 s; docs/benchmarks.md, "Training speed against PyTorch, and why"). So tsm-keras sets
TF_ENABLE_ONEDNN_OPTS=1 unless it is set already; `TF_ENABLE_ONEDNN_OPTS=0` keeps TensorFlow's
Eigen kernels. TensorFlow reads the variable once, when it loads: a program that imported
TensorFlow before tsm_keras keeps what it had (`onednn_enabled()` says which).

Log lines:

TensorFlow 2.21 writes a few INFO lines while it loads (oneDNN notes, "Could not find cuda
drivers", CPU instruction notes), before its logging is set up, so TF_CPP_MIN_LOG_LEVEL does not
filter them. Here they are caught during the import and passed on unless the level filters them,
as it does for every later message: 1 drops INFO, 2 also WARNING, 3 also ERROR. The level is
unset (0) unless the user or a script sets it, so a plain `import tsm_keras` shows everything.
"""

import os
import re
import sys
import tempfile

# absl log lines: a severity letter, then MMDD (I0000 before logging starts), then the time.
_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")
_FILTERED_FROM = {"I": 1, "W": 2, "E": 3}  # the lowest level that drops each severity
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def import_tensorflow():
    """`import tensorflow` with oneDNN on (unless TF_ENABLE_ONEDNN_OPTS says otherwise), its
    start-up messages filtered by TF_CPP_MIN_LOG_LEVEL."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
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


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (None: unknown)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own test of it

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


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
