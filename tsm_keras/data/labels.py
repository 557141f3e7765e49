"""Class-name files: one class name per line, line i is label i."""

from tsm_keras.files import atomic_write


def write_labels(path, class_names):
    """Writes `class_names` to `path`, one per line (atomically: a reader never sees half a file).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "labels.txt")
    >>> write_labels(p, ["jump", "run"]); read_labels(p)
    ['jump', 'run']
    """
    names = [str(name) for name in class_names]
    for name in names:
        if not name.strip() or "\n" in name or "\r" in name or name != name.strip():
            raise ValueError(
                f"Class names must be non-empty single-line strings without surrounding spaces. Received: {name!r}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"Class names must be unique. Received: {names}")
    atomic_write(path, "".join(name + "\n" for name in names))


def read_labels(path):
    """Reads a class-name file written by `write_labels` (blank lines are ignored)."""
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"{path}: the labels file lists no class names")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: the labels file repeats class names")
    return names
