"""TensorFlow loaded as the commands load it (tsm_keras_start.prepare_process): TF_CPP_MIN_LOG_LEVEL
applied to its start-up lines, oneDNN's CPU kernels on; and `import tsm_keras`, which changes
none of that."""

import json
import os
import platform
import subprocess
import sys

import pytest

from tests.backends import ROOT, needs_jax
from tsm_keras_start import _BANNER, _kept

CAPTURED = (
    f"{_BANNER}\n"
    "I0000 00:00:1795273032.659293   26561 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1795273032.717913   26561 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow\n"
    "W0000 00:00:1795273032.8 26561 gpu.cc:1] a warning\n"
    "E0000 00:00:1795273032.9 26561 cuda.cc:1] an error\n"
    "a line that is not a log line\n"
)


def kept(level):
    return "".join(_kept(CAPTURED, level))


def test_each_level_drops_what_tensorflow_documents():
    lines = CAPTURED.splitlines(keepends=True)
    assert kept(0) == CAPTURED
    # 1 drops INFO (and the continuation line of an INFO line), keeps the rest.
    assert kept(1) == lines[0] + "".join(lines[4:])
    # 2 drops WARNING too; the error and the line after it stay.
    assert kept(2) == "".join(lines[5:])
    # 3 drops ERROR too; a plain line that follows a dropped log line goes with it.
    assert kept(3) == ""


def test_a_command_prints_no_info_lines_at_level_2():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", "from tsm_keras_start import prepare_process; prepare_process(); print('imported')"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"
    assert "I0000" not in done.stderr and _BANNER not in done.stderr, done.stderr


def _onednn_in_a_fresh_process(value):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = value
    code = (
        "from tsm_keras_start import prepare_process; prepare_process(); "
        "from tsm_keras._startup import onednn_enabled; print(onednn_enabled())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN is TensorFlow's x86 option")
def test_a_command_turns_onednn_on_unless_the_user_turned_it_off():
    # TensorFlow's own default is off on x86 CPUs without AVX-512 VNNI/BF16 or AMX (such as
    # this project's): the commands turn oneDNN on, and TF_ENABLE_ONEDNN_OPTS=0 keeps it off.
    assert _onednn_in_a_fresh_process(None) == "True"
    assert _onednn_in_a_fresh_process("0") == "False"


# `first` runs before the import: the dependencies that set variables of their own as they load
# (TensorFlow, JAX, OpenCV: LD_LIBRARY_PATH, TF2_BEHAVIOR, ...) are loaded by `import keras`.
IMPORT = """
import json, os, sys
{first}
dup2, onto_stderr = os.dup2, []
os.dup2 = lambda fd, fd2, *args: (onto_stderr.append(fd2), dup2(fd, fd2, *args))[1]
environ, stderr = dict(os.environ), os.fstat(2)
import tsm_keras
print(json.dumps({{
    "changed": sorted(k for k in environ.keys() | os.environ.keys() if environ.get(k) != os.environ.get(k)),
    "same_stderr": os.path.samestat(stderr, os.fstat(2)),
    "redirected": 2 in onto_stderr,
    "tensorflow": "tensorflow" in sys.modules,
}}))
"""


def _import_in_a_fresh_process(backend, first):
    # The level that made the library catch TensorFlow's start-up lines through fd 2.
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    code = IMPORT.format(first=first)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=needs_jax)])
def test_import_tsm_keras_sets_no_variable_and_leaves_stderr_alone(backend):
    seen = _import_in_a_fresh_process(backend, first="import keras")
    assert seen["changed"] == [] and seen["same_stderr"] and not seen["redirected"], seen
    if backend != "tensorflow":
        assert not seen["tensorflow"], "import tsm_keras loaded TensorFlow on another Keras backend"


def test_import_tsm_keras_first_redirects_no_descriptor():
    seen = _import_in_a_fresh_process("tensorflow", first="")
    assert seen["same_stderr"] and not seen["redirected"], seen
