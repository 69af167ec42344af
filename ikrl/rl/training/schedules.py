"""Schedules the training algorithms share."""

from __future__ import annotations

import math

__all__ = ["cosine_lr"]


def cosine_lr(progress: float, lr: float, final: float = 0.01, warmup: float = 0.02) -> float:
    """A learning rate: linear warm-up over ``warmup`` of the budget, then cosine decay to
    ``lr * final``.

    >>> cosine_lr(0.0, 1.0), cosine_lr(0.02, 1.0), round(cosine_lr(1.0, 1.0), 6)
    (0.05, 1.0, 0.01)
    """
    if progress < warmup:
        return lr * max(progress / warmup, 0.05)
    x = min((progress - warmup) / (1 - warmup), 1.0)
    low = lr * final
    return low + (lr - low) * 0.5 * (1 + math.cos(math.pi * x))
