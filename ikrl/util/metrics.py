"""The metrics ikrl reports, in one table: name, label, unit, scale and format.

Evaluation, ablation summaries, training curves, progress bars and the CLI all read this
table, so a metric is labelled and scaled the same way everywhere. Values are stored in SI
units (metres, radians, fractions); ``scale`` turns them into the unit shown.

Examples:
    >>> METRICS["position_error_median"].show(0.0123)
    '12.30 mm'
    >>> METRICS["success_5mm_2deg"].show(0.955)
    '95.5 %'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["METRICS", "TOLERANCES", "Metric", "degrees", "percent", "success_key"]

#: The (metres, radians) success thresholds every evaluation reports, by name.
TOLERANCES: dict[str, tuple[float, float]] = {
    "5mm_2deg": (0.005, math.radians(2.0)),
    "1mm_1deg": (0.001, math.radians(1.0)),
}


def success_key(tolerance: str) -> str:
    """The metric name of the success rate within a :data:`TOLERANCES` entry."""
    return f"success_{tolerance}"


def percent(count: int, total: int) -> str:
    """``count`` of ``total`` as a percentage that never rounds to 100 % or 0 % unless it is.

    >>> percent(99_999, 100_000), percent(1, 100_000), percent(5, 5), percent(1, 3)
    ('99.999 %', '0.001 %', '100.0 %', '33.3 %')
    """
    if total <= 0:
        return "n/a"
    value = 100.0 * count / total
    digits = 1
    while digits < 12 and 0 < count < total and round(value, digits) in (0.0, 100.0):
        digits += 1
    return f"{value:.{digits}f} %"


def degrees(radians: float) -> float:
    """Radians to degrees (``math.degrees``; named here so no one writes 57.29578 again)."""
    return math.degrees(radians)


@dataclass(frozen=True)
class Metric:
    """How one metric is shown: ``label`` (in tables and plots), ``unit`` after the number,
    ``scale`` from the stored SI value to that unit, ``fmt`` for the scaled number."""

    name: str
    label: str
    unit: str
    scale: float
    fmt: str

    def value(self, raw: float) -> float:
        """The stored value in the shown unit."""
        return raw * self.scale

    def show(self, raw: float | None) -> str:
        """``raw`` scaled, formatted and with its unit; ``n/a`` for None or NaN."""
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return "n/a"
        text = f"{self.value(raw):{self.fmt}}"
        return f"{text} {self.unit}" if self.unit else text

    @property
    def heading(self) -> str:
        """``label (unit)``, for column headings."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


_DEG = 180.0 / math.pi
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("success_5mm_2deg", "success within 5 mm, 2°", "%", 100.0, ".1f"),
        Metric("success_1mm_1deg", "success within 1 mm, 1°", "%", 100.0, ".1f"),
        Metric("position_error_median", "median position error", "mm", 1000.0, ".2f"),
        Metric("position_error_p95", "95th-percentile position error", "mm", 1000.0, ".2f"),
        Metric("rotation_error_median", "median rotation error", "°", _DEG, ".2f"),
        Metric("rotation_error_p95", "95th-percentile rotation error", "°", _DEG, ".2f"),
        Metric("mean_steps_to_success", "mean steps to success", "", 1.0, ".1f"),
        Metric("solutions_per_second", "solutions per second", "", 1.0, ",.0f"),
        Metric("train_seconds", "train time", "s", 1.0, ".1f"),
        Metric("train_steps", "train steps", "", 1.0, ",.0f"),
    )
}
