"""The results ledger: one JSON file per measurement, `results/<id>.json`, from which
`python benchmarks/report.py` writes docs/results.md.

Every standing benchmark ends with `write_entry`, which adds the provenance (the code measured,
the machine, the versions) to the table the benchmark printed; a re-run replaces the entry of
the same id. An entry's fields, in this order:

- id: the file's stem; lowercase words joined by "-", starting with the topic;
- topic: one of TOPICS; title: one line;
- command: the exact command (a string, or a list of strings when it took several);
- commit (full hash or null), dirty (uncommitted changes: true, false, or null if unknown),
  date (YYYY-MM-DD, UTC), machine ({cpu, cores, isa, gpu}), versions ({package: version});
- conditions: one line on the machine's state, or null;
- columns and rows: the table; each row as long as the columns, each cell a string, a number
  or null;
- summary: {figure: printed string} for the figures docs quote, or null; notes: a sentence or
  two, or null.

Plain Python only (json, subprocess, importlib.metadata): report.py reads the ledger without
TensorFlow.
"""

import datetime
import importlib.metadata
import json
import math
import numbers
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
PAGE = ROOT / "docs" / "results.md"

# Topics and their section titles, in the order docs/results.md shows them.
TOPICS = {
    "demo": "The built-in demo's top-1",
    "int8": "int8 against float",
    "latency": "LiteRT latency",
    "gpu": "LiteRT's GPU accelerator",
    "training-speed": "Training speed",
    "shift-cost": "What the temporal module costs",
    "blvnet": "bLVNet-TAM: cost and accuracy",
    "port": "Checkpoint parity",
    "data": "Input pipeline",
    "determinism": "The cost of --deterministic",
}
FIELDS = (
    "id",
    "topic",
    "title",
    "command",
    "commit",
    "dirty",
    "date",
    "machine",
    "versions",
    "conditions",
    "columns",
    "rows",
    "summary",
    "notes",
)
OPTIONAL = ("conditions", "summary", "notes")  # may be left out; null when written
# Instruction sets named in `machine.isa`, and the /proc/cpuinfo flag of each.
ISA = {"avx2": "avx2", "avx512f": "avx512f", "amx": "amx_tile"}
PACKAGES = (
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "onnxruntime",
    "openvino",
    "torch",
    "numpy",
    "opencv-python-headless",
)
ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
COMMIT = re.compile(r"[0-9a-f]{40}")


def provenance():
    """What an entry records about the code and the machine: {commit, dirty, date, machine,
    versions}. Reads git, /proc/cpuinfo (or `platform`), nvidia-smi and importlib.metadata;
    what cannot be read is None."""
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": _dirty(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "machine": machine(),
        "versions": versions(),
    }


def machine():
    """{cpu, cores, isa, gpu}: the CPU's model name, os.cpu_count(), which of ISA's
    instruction sets its flags name, and the GPUs nvidia-smi lists (None without one)."""
    cpu, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu is None:
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or None,
        "cores": os.cpu_count(),
        "isa": [name for name, flag in ISA.items() if flag in flags],
        "gpu": _gpu(),
    }


def versions():
    """Python's version and those of PACKAGES that are installed."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def command(argv=None):
    """The command that ran this script (`argv`: sys.argv), as a maintainer types it from the
    repository root: 'python benchmarks/x.py ARGS' (shell-quoted where an argument needs it)."""
    script, *args = sys.argv if argv is None else argv
    path = Path(script).resolve()
    if path.is_relative_to(ROOT):
        script = path.relative_to(ROOT).as_posix()
    return shlex.join(["python", script, *args])


def write_entry(id, topic, title, command, columns, rows, summary=None, notes=None, conditions=None, results=RESULTS):
    """Writes `results`/<id>.json: the table with this checkout's provenance, replacing any
    entry of the same id. Numbers of NumPy types are stored as Python's. Raises ValueError
    for an entry the ledger would not accept (see `check`). Returns the path."""
    entry = {
        "id": id,
        "topic": topic,
        "title": title,
        "command": command,
        **provenance(),
        "conditions": conditions,
        "columns": list(columns),
        "rows": [[_plain(cell) for cell in row] for row in rows],
        "summary": summary,
        "notes": notes,
    }
    check(entry)
    path = Path(results) / f"{id}.json"
    write_text(path, json.dumps({key: entry[key] for key in FIELDS}, indent=2, ensure_ascii=False) + "\n")
    return path


def check(entry):
    """Raises ValueError saying what is wrong with `entry` (a decoded results/*.json), if anything."""
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in FIELDS if key not in entry and key not in OPTIONAL]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    unknown = [key for key in entry if key not in FIELDS]
    if unknown:
        raise ValueError(f"unknown field {', '.join(unknown)} (fields: {', '.join(FIELDS)})")
    id, topic = entry["id"], entry["topic"]
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; topics: {', '.join(TOPICS)}")
    if not isinstance(id, str) or not ID.fullmatch(id) or not (id == topic or id.startswith(topic + "-")):
        raise ValueError(f"id {id!r} is not lowercase words joined by '-' starting with its topic {topic!r}")
    _expect(entry, "title", lambda v: isinstance(v, str) and v.strip() and "\n" not in v, "a one-line string")
    _expect(
        entry,
        "command",
        lambda v: _text(v) or (isinstance(v, list) and v and all(_text(c) for c in v)),
        "a string or a list of strings",
    )
    _expect(entry, "commit", lambda v: v is None or (isinstance(v, str) and COMMIT.fullmatch(v)), "a full hash or null")
    _expect(entry, "dirty", lambda v: v is None or isinstance(v, bool), "true, false or null")
    _expect(entry, "date", _is_date, "a date YYYY-MM-DD")
    _expect(
        entry,
        "machine",
        lambda v: (
            isinstance(v, dict)
            and set(v) == {"cpu", "cores", "isa", "gpu"}
            and (v["cpu"] is None or isinstance(v["cpu"], str))
            and (v["cores"] is None or (isinstance(v["cores"], int) and not isinstance(v["cores"], bool)))
            and isinstance(v["isa"], list)
            and all(name in ISA for name in v["isa"])
            and (v["gpu"] is None or isinstance(v["gpu"], str))
        ),
        f"{{cpu, cores, isa, gpu}}, isa a list of {', '.join(ISA)}",
    )
    _expect(
        entry, "versions", lambda v: isinstance(v, dict) and all(_text(x) for x in v.values()), "{package: version}"
    )
    _expect(entry, "conditions", lambda v: v is None or (_text(v) and "\n" not in v), "one line or null")
    _expect(entry, "columns", lambda v: isinstance(v, list) and v and all(_text(c) for c in v), "a list of names")
    _expect(entry, "rows", lambda v: isinstance(v, list) and all(isinstance(r, list) for r in v), "a list of lists")
    for number, row in enumerate(entry["rows"], 1):
        if len(row) != len(entry["columns"]):
            raise ValueError(f"row {number} has {len(row)} cells for {len(entry['columns'])} columns")
        for cell in row:
            if not _is_cell(cell):
                raise ValueError(f"row {number}: {cell!r} is not a string, a finite number or null")
    _expect(
        entry,
        "summary",
        lambda v: v is None or (isinstance(v, dict) and all(_text(x) for x in v.values())),
        "{figure: printed string} or null",
    )
    _expect(entry, "notes", lambda v: v is None or _text(v), "a string or null")


def write_text(path, text):
    """Writes `text` to `path` whole or not at all (a temporary file beside it, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _git(*args):
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _dirty():
    """Uncommitted changes to tracked files, the ledger and its page apart (writing them is what
    a run does); untracked files (run directories, a script being written) do not count."""
    excluded = (":(exclude)results", ":(exclude)docs/results.md")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded)
    return None if status is None else bool(status)


def _gpu():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(names) if done.returncode == 0 and names else None


def _plain(cell):
    """A NumPy number as Python's (json writes only those)."""
    if isinstance(cell, (str, bool)) or cell is None:
        return cell
    if isinstance(cell, numbers.Integral):
        return int(cell)
    if isinstance(cell, numbers.Real):
        return float(cell)
    return cell


def _is_cell(cell):
    if cell is None or isinstance(cell, str):
        return True
    if isinstance(cell, bool):
        return False
    return isinstance(cell, int) or (isinstance(cell, float) and math.isfinite(cell))


def _text(value):
    return isinstance(value, str) and bool(value.strip())


def _is_date(value):
    try:
        return isinstance(value, str) and datetime.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _expect(entry, key, test, what):
    value = entry.get(key)
    if not test(value):
        raise ValueError(f"{key} must be {what}, got {value!r}")
