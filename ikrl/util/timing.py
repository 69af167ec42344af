"""Timing whole calls: the best of a few wall-clock runs after a warm-up, and alternating
timings of several functions (for benchmarks that compare peers in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["alternating_times", "best_time"]


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best of ``repeats`` wall-clock timings of ``fn()`` (after one warm-up call), in seconds.

    Examples:
        >>> best_time(lambda: sum(range(10))) >= 0
        True
    """
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def alternating_times(
    fns: list[Callable[[], object]], *, calls: int = 1, rounds: int = 1, warmup: int = 0, min_total: float = 0.0
) -> list[list[float]]:
    """Wall-clock seconds of every call of each function, in rounds that alternate between
    them: each round calls each function ``warmup`` times untimed, then ``calls`` times timed;
    rounds repeat until there are ``rounds`` of them and ``min_total`` seconds were timed.
    Alternating spreads a shared machine's bursts of noise over every function alike; take
    the minimum or the median of each list.

    Examples:
        >>> times = alternating_times([lambda: None, lambda: sum(range(100))], calls=2, rounds=3)
        >>> [len(t) for t in times]
        [6, 6]
    """
    times: list[list[float]] = [[] for _ in fns]
    done = 0
    while done < rounds or sum(map(sum, times)) < min_total:
        for fn, record in zip(fns, times, strict=True):
            for _ in range(warmup):
                fn()
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                record.append(time.perf_counter() - start)
        done += 1
    return times
