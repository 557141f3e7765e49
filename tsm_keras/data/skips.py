"""Counting the samples that could not be read, and reporting them at the end of each epoch."""

import logging
import threading

import keras

logger = logging.getLogger("tsm_keras.data")


class SkipLog:
    """A thread-safe record of skipped samples: which file, why, and how many times.

    tf.data workers add to it while they decode; every skip is one event, so a bad
    file met in three epochs counts three times. The first event of a file is logged
    as a warning; later ones are counted silently.

    >>> log = SkipLog()
    >>> log.add("a.mp4", "empty file (0 bytes)")
    >>> log.count, log.reasons()
    (1, {'a.mp4': 'empty file (0 bytes)'})
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._events = []
        self._reasons = {}

    def add(self, file, reason):
        file, reason = str(file), str(reason)
        with self._lock:
            first = file not in self._reasons
            self._events.append((file, reason))
            self._reasons[file] = reason
        if first:
            logger.warning("skipped %s: %s", file, reason)

    @property
    def count(self):
        """Number of skip events so far."""
        with self._lock:
            return len(self._events)

    def __len__(self):
        return self.count

    def events(self, start=0):
        """The (file, reason) events from event number `start` on."""
        with self._lock:
            return list(self._events[start:])

    def reasons(self):
        """{file: reason} for every file skipped at least once."""
        with self._lock:
            return dict(self._reasons)

    def reason_for(self, file):
        """Why `file` was skipped before, or None."""
        with self._lock:
            return self._reasons.get(str(file))

    def summary(self, start=0, limit=10):
        """One line per skipped file since event `start` (at most `limit`), with a header line."""
        events = self.events(start)
        if not events:
            return "no samples skipped"
        reasons = {}
        for file, reason in events:
            reasons[file] = reason
        lines = [f"{len(events)} samples skipped ({len(reasons)} files)"]
        for file, reason in list(reasons.items())[:limit]:
            lines.append(f"  {file}: {reason}")
        if len(reasons) > limit:
            lines.append(f"  ... and {len(reasons) - limit} more files")
        return "\n".join(lines)


class SkipReport(keras.callbacks.Callback):
    """Prints, at the end of every epoch, the samples each source skipped during it.

    Args:
        sources: a dict {name: source or SkipLog}, or a single source or SkipLog.
        print_fn: where the report goes (default `print`).

    Example: `model.fit(train, validation_data=val,
    callbacks=[SkipReport({"train": train_src, "val": val_src})])`.
    """

    def __init__(self, sources, print_fn=print):
        super().__init__()
        if not isinstance(sources, dict):
            sources = {"data": sources}
        self._logs = {name: getattr(s, "skipped", s) for name, s in sources.items()}
        for name, log in self._logs.items():
            if not isinstance(log, SkipLog):
                raise TypeError(f"`sources` must hold data sources or SkipLog objects. Received: {name}={log!r}")
        self._print = print_fn
        self._marks = {name: 0 for name in self._logs}

    def on_epoch_end(self, epoch, logs=None):
        for name, log in self._logs.items():
            start, self._marks[name] = self._marks[name], log.count
            if log.count > start:
                self._print(f"epoch {epoch + 1}, {name}: {log.summary(start)}")
