"""Timing whole calls: the best of a few wall-clock runs, after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["best_time"]


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
