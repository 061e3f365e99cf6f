"""Repeated, interleaved timings and their medians."""

import statistics
import time


def summary(values):
    """Median, extremes and count of repeated measurements."""
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "n": len(values)}


def interleaved(variants, repeats, warmup=1, cpu_seconds=None):
    """Seconds per call of each variant, `repeats` times each, after `warmup` calls.

    The variants run in turn within every repeat, so slow phases of a shared machine hit
    them all alike; the order rotates each repeat, so none always follows the same one.

    Args:
        variants: name -> callable taking the call's index, 0 .. warmup + repeats - 1
            (e.g. to seed a new shuffle per call).
        repeats: timed calls per variant.
        warmup: untimed calls per variant first (tracing, caches, allocator).
        cpu_seconds: if a dict, it receives name -> the process CPU time (all threads)
            of each timed call, so that CPU / wall time is the cores a call kept busy.

    Returns:
        name -> list of `repeats` durations in seconds, in repeat order.
    """
    names = list(variants)
    for i in range(warmup):
        for name in names:
            variants[name](i)
    seconds = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for i in range(repeats):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            start, cpu_start = time.perf_counter(), time.process_time()
            variants[name](warmup + i)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
    if cpu_seconds is not None:
        cpu_seconds.update(cpu)
    return seconds


def rate(count, seconds):
    """`summary` of count / s for each duration (e.g. examples/s)."""
    return summary([count / s for s in seconds])


def paired_ratio(numerator, denominator):
    """Ratio of the medians, with the range of the per-repeat ratios as its spread.

    Both lists are rates from the same interleaved repeats, so repeat i of each ran
    back to back: their ratio is the fairest single comparison.
    """
    per_repeat = [a / b for a, b in zip(numerator, denominator)]
    return {"ratio": statistics.median(numerator) / statistics.median(denominator),
            "min": min(per_repeat), "max": max(per_repeat)}
