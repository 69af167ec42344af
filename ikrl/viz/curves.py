"""Training curves: validation success and errors, and the training reward, against steps."""

from __future__ import annotations

import math
from pathlib import Path

from ikrl.util.metrics import METRICS

__all__ = ["plot_curves"]


def plot_curves(history: list[dict[str, float]], path: Path, *, title: str = "") -> Path:
    """Validation success and errors, and the training reward, against environment steps."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), dpi=100)
    axes = fig.subplots(1, 3)
    steps = [r["steps"] for r in history]
    panels = [
        ("validation success (%)", ["success_5mm_2deg", "success_1mm_1deg"]),
        ("median error", ["position_error_median", "rotation_error_median"]),
    ]
    for ax, (label, names) in zip(axes, panels, strict=False):
        for name in names:
            metric = METRICS[name]
            values = [metric.value(r.get(f"val/{name}", math.nan)) for r in history]
            ax.plot(steps, values, "-o", markersize=3, label=metric.heading)
        ax.set_title(label)
    axes[2].plot(steps, [r.get("train/reward", math.nan) for r in history], "-o", markersize=3, label="reward")
    axes[2].set_title("training")
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[1].set_yscale("log")
    fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path
