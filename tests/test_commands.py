"""The installed commands (setup.cfg's console_scripts): each names a function that exists, and an
install puts them on the PATH."""

import configparser
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("fit", "evaluate", "prepare", "convert", "benchmark", "stream", "serve", "port")


def entry_points():
    """{command: 'module:function'} of setup.cfg's console_scripts."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def test_every_entry_point_names_a_function_that_runs_a_command():
    found = entry_points()
    assert sorted(found) == sorted(f"tsm-{name}" for name in COMMANDS)
    for command, target in found.items():
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name)), target
        # ... and the command's module has the main() that the function runs.
        assert callable(importlib.import_module(f"tsm_keras.commands.{command[len('tsm-') :]}").main)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The bin/ folder of a throwaway venv (the installed packages visible) with tsm-keras
    installed editable from this checkout, without downloading anything."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run([*pip, "-e", str(ROOT)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"pip install -e . failed here: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return bin_dir


@pytest.mark.parametrize("command", ["tsm-fit", "tsm-convert"])
def test_an_installed_command_shows_its_help(installed, command):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's install, not the test's path
    done = subprocess.run(
        [str(installed / command), "--help"], capture_output=True, text=True, env=env, cwd=installed, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {command} "), done.stdout[:500]
    assert {"tsm-fit": "--temporal", "tsm-convert": "--int8"}[command] in done.stdout
