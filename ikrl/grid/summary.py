"""A grid's summary: mean ± std per spec over its finished cells, as markdown, CSV and a plot."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ikrl.grid.plan import Cell
from ikrl.grid.state import EVAL_FILE, grid_cells, read_finished
from ikrl.util.metrics import METRICS

__all__ = ["COLUMNS", "SpecStats", "Summary", "plot", "summarize"]

TRAIN_SECONDS = "train_seconds"

#: The columns of the markdown table, from :data:`ikrl.util.metrics.METRICS`.
COLUMNS: tuple[str, ...] = (
    "success_5mm_2deg", "success_1mm_1deg", "position_error_median", "rotation_error_median", TRAIN_SECONDS, "train_steps",
)  # fmt: skip


@dataclass(frozen=True)
class SpecStats:
    """Mean and standard deviation of each metric over one spec's finished seeds."""

    spec: str
    seeds: tuple[int, ...]
    mean: dict[str, float]
    std: dict[str, float]


@dataclass(frozen=True)
class Summary:
    """One row per spec with at least one finished cell, in the order the grid planned them.

    ``std`` is the sample standard deviation (ddof=1) over seeds, and 0 when a spec has one
    finished seed (there is no spread to estimate then, and 0 keeps the table numeric).
    ``unfinished`` lists the planned cells without eval.json (failed, or not run yet).
    """

    rows: tuple[SpecStats, ...]
    metrics: tuple[str, ...]
    unfinished: tuple[Cell, ...] = field(default=())

    def markdown(self) -> str:
        """A markdown table: spec, seeds, the headline metrics as mean ± std, train time."""
        header = ["spec", "seeds"] + [METRICS[name].heading for name in COLUMNS]
        lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(COLUMNS)]
        for row in self.rows:
            cells = [f"`{row.spec}`".replace("|", "\\|"), str(len(row.seeds))]
            for name in COLUMNS:
                metric = METRICS[name]
                if name in row.mean:
                    cells.append(f"{metric.value(row.mean[name]):{metric.fmt}} ± {metric.value(row.std[name]):{metric.fmt}}")
                else:
                    cells.append("–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Mean ± standard deviation over seeds (sample std, ddof=1; 0 with one seed).")
        if not self.rows:
            lines.append("No cell has finished yet.")
        if self.unfinished:
            listing = ", ".join(f"{c.spec} seed {c.seed}" for c in self.unfinished)
            lines.append(f"{len(self.unfinished)} cell(s) not finished: {listing}.")
        return "\n".join(lines) + "\n"

    def to_csv(self, path: Path | str) -> Path:
        """One row per spec: spec, seeds (count), seed_list, then <metric>_mean, <metric>_std."""
        path = Path(path)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(
                ["spec", "seeds", "seed_list"] + [f"{m}_{s}" for m in self.metrics for s in ("mean", "std")]
            )
            for row in self.rows:
                values = []
                for metric in self.metrics:
                    values += [row.mean.get(metric, ""), row.std.get(metric, "")]
                writer.writerow([row.spec, len(row.seeds), " ".join(map(str, row.seeds))] + values)
        return path

    def write(self, out_dir: Path | str) -> None:
        """summary.md, summary.csv and summary.png in out_dir."""
        out_dir = Path(out_dir)
        (out_dir / "summary.md").write_text(self.markdown())
        self.to_csv(out_dir / "summary.csv")
        plot(self, out_dir / "summary.png")


def summarize(out_dir: Path | str) -> Summary:
    """Mean ± std per spec over the finished cells (folders with eval.json) of a grid folder.

    Every numeric entry of eval.json is averaged, plus ``train_seconds`` (from the cell.json
    run_grid writes). A metric missing from some seeds is averaged over the seeds that have it.
    """
    cells, _ = grid_cells(Path(out_dir))
    values: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[int]] = {}
    metrics: dict[str, None] = {}  # ordered set
    unfinished = []
    for cell in cells:
        folder = Path(out_dir) / cell.folder
        if not (folder / EVAL_FILE).is_file():
            unfinished.append(cell)
            continue
        evaluation, seconds = read_finished(folder)
        numbers = {
            k: math.nan if v is None else float(v)  # eval.json writes NaN as null
            for k, v in evaluation.items()
            if (v is None or isinstance(v, (int, float))) and not isinstance(v, bool) and k not in _NOT_METRICS
        }
        if seconds is not None:
            numbers[TRAIN_SECONDS] = float(seconds)
        seeds.setdefault(cell.spec, []).append(cell.seed)
        for key, value in numbers.items():
            metrics.setdefault(key)
            values.setdefault(cell.spec, {}).setdefault(key, []).append(value)
    rows = []
    for spec, spec_seeds in seeds.items():
        by_metric = values.get(spec, {})
        rows.append(
            SpecStats(
                spec,
                tuple(spec_seeds),
                {k: _mean(v) for k, v in by_metric.items()},
                {k: _std(v) for k, v in by_metric.items()},
            )
        )
    return Summary(tuple(rows), tuple(metrics), tuple(unfinished))


#: Numbers in eval.json that describe the protocol, not the result.
_NOT_METRICS = frozenset({"seed", "targets", "swarm", "steps"})


def _finite(values: list[float]) -> list[float]:
    # A metric can be NaN in a cell (mean steps to success when nothing succeeded): it is
    # left out of that metric's mean and std rather than making them NaN or crashing.
    return [v for v in values if math.isfinite(v)]


def _mean(values: list[float]) -> float:
    finite = _finite(values)
    return statistics.fmean(finite) if finite else math.nan


def _std(values: list[float]) -> float:
    finite = _finite(values)
    return statistics.stdev(finite) if len(finite) > 1 else (0.0 if finite else math.nan)


def plot(summary: Summary, path: Path | str) -> Path:
    """A PNG: success (5 mm, 2°) and median position error per spec, bars with std error bars."""
    from matplotlib.figure import Figure

    path = Path(path)
    rows = summary.rows
    height = 1.5 + 0.4 * max(1, len(rows))
    fig = Figure(figsize=(11, height), dpi=100, layout="constrained")
    success_ax, error_ax = fig.subplots(1, 2, sharey=True)
    if not rows:
        success_ax.text(
            0.5, 0.5, "no finished cells", ha="center", va="center", transform=success_ax.transAxes
        )
    labels = [row.spec for row in rows]
    positions = list(range(len(rows)))
    panels: Iterable[tuple[Any, str, float, str, str]] = (
        (success_ax, "success_5mm_2deg", 100.0, "success within 5 mm and 2° (%)", "tab:green"),
        (error_ax, "position_error_median", 1000.0, "median position error (mm)", "tab:blue"),
    )
    for ax, metric, scale, title, colour in panels:
        means = [row.mean.get(metric, math.nan) * scale for row in rows]
        stds = [row.std.get(metric, 0.0) * scale for row in rows]
        ax.barh(positions, means, xerr=stds, color=colour, alpha=0.8, capsize=3)
        ax.set_xlabel(title)
        ax.grid(axis="x", alpha=0.3)
    success_ax.set_yticks(positions, labels, fontsize=8)
    success_ax.invert_yaxis()  # the first spec at the top, as in the table
    seeds = sorted({len(row.seeds) for row in rows})
    fig.suptitle(f"mean ± std over {'/'.join(map(str, seeds)) or 0} seed(s)", fontsize=10)
    fig.savefig(path)
    return path
