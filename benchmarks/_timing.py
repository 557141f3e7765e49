"""Shared timing helpers for the benchmark scripts (medians over alternating repeats)."""

import statistics
import time

DEMO_LR, CLIP_NORM = 0.002, 20.0  # the demo's Adam step (0.008 per 64 clips at batch 16), fit.py's clipping


def compile_like_the_demo(model, optimizer="adam", fused_batch_norm=True, **compile_args):
    """Prepares `model` for training as fit.py trains the built-in demo's: graph mode with the fused
    BatchNormalization (`fused_batch_norm=False` keeps Keras' layers), Adam (or "sgd") at the
    demo's learning rate with gradient clipping, cross-entropy on logits."""
    import keras

    from tsm_keras.layers.batch_norm import use_fused_batch_norm
    from tsm_keras.models import walk_layers

    if fused_batch_norm:
        use_fused_batch_norm(walk_layers(model))
    make = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[optimizer]
    model.compile(
        make(DEMO_LR, clipnorm=CLIP_NORM),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_args,
    )
    return model


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
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
