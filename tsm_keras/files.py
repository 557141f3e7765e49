"""Files written whole or not at all: a temporary name in the same folder, then a rename.

A reader never sees half a file, and a killed writer leaves the old file (or none) behind.
TFRecord shards are the one exception: prepare.py streams them to `*.tfrecord.tmp` names of
its own, which its resume logic reads (tsm_keras/data/tfrecord.py).
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write to (with any writer: `model.save`,
    `savefig`, ...); renamed onto `path`, after an fsync, only if the block succeeds.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('done', ['notes.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, content):
    """Writes `content` (str as UTF-8, or bytes) to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        if isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        else:
            tmp.write_bytes(content)
    return path


def write_json(path, data, default=None):
    """Writes `data` as indented JSON atomically (`default` converts what json cannot)."""
    return atomic_write(path, json.dumps(data, indent=2, default=default) + "\n")
