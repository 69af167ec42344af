"""Ablation grids: planning cells, running them on a backend, and summarising the results.

``plan`` (:mod:`ikrl.grid.plan`) crosses a brace pattern's specs with seeds into cells;
``run_grid`` (:mod:`ikrl.grid.run`) trains each cell into its own folder on a backend
(:mod:`ikrl.grid.backends`; the process backend's pool is :mod:`ikrl.grid.pool`, Ray's
:mod:`ikrl.grid.ray_cluster`, and one cell's run :mod:`ikrl.grid.cell`); ``summarize``
(:mod:`ikrl.grid.summary`) reduces the folders to mean ± std per spec. The folder is the
state (:mod:`ikrl.grid.state`), and one run at a time holds it (:mod:`ikrl.grid.lock`).
"""

from __future__ import annotations

from ikrl.grid.backends import BACKENDS, Backend, ProcessBackend, RayBackend, SerialBackend
from ikrl.grid.plan import Cell, plan, spec_slug
from ikrl.grid.run import CellOutcome, GridResult, run_grid
from ikrl.grid.summary import Summary, summarize

__all__ = [
    "BACKENDS", "Backend", "Cell", "CellOutcome", "GridResult", "ProcessBackend", "RayBackend",
    "SerialBackend", "Summary", "plan", "run_grid", "spec_slug", "summarize",
]  # fmt: skip
