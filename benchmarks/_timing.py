"""Shared timing helpers for the benchmark scripts (medians over alternating repeats)."""

import statistics
import time


def alternate(functions, repeats, warmup=2, clock=time.perf_counter):
    """Times each callable `repeats` times, interleaved (A B A B ...), after `warmup` calls.

    Interleaving makes slow drifts of the machine (other processes, thermal) hit every
    candidate alike, so their ratio is meaningful. `clock=time.process_time` measures the
    CPU time of all this process's threads instead of wall time: much less sensitive to
    other jobs on a shared machine. Returns {name: [seconds, ...]}.
    """
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def median_ms(samples):
    return 1000 * statistics.median(samples)


def spread_ms(samples):
    """Interquartile range in ms."""
    q = statistics.quantiles(samples, n=4)
    return 1000 * (q[2] - q[0])


def print_table(header, rows):
    """Prints a Markdown table; None prints as an empty cell."""
    rows = [["" if c is None else c for c in row] for row in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
