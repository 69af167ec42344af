"""Running a grid: train every cell of a pattern × seeds into its folder, then summarise.

Design:

* **The folder is the state** (:mod:`ikrl.grid.state`): a folder holding eval.json is
  finished and is skipped on a rerun; one without it is half-finished (a crash, a kill, a
  failure) and is deleted and rerun from scratch. A rerun with another config is refused
  (mixing budgets would make the means meaningless); another pattern or more seeds with the
  *same* config add cells.
* **One run per folder** (:mod:`ikrl.grid.lock`): a second run into a folder in use fails at
  once, naming the run that holds it; a killed run's lock goes with its processes.
* **Backends only schedule** (:mod:`ikrl.grid.backends`); a dead worker fails only its cell.
* **Duck-typed config.** :func:`run_grid` needs only ``replace(**changes)`` (a copy with the
  cell's seed) and ``to_dict()`` (what grid.json records and compares) of its ``config``;
  :class:`ikrl.rl.training.run.TrainConfig` has both, tests pass a small stand-in.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ikrl.errors import GridError
from ikrl.grid.backends import Backend, backend_named, cpu_count
from ikrl.grid.lock import grid_lock
from ikrl.grid.plan import Cell, ConfigLike, TrainFn, seed_list
from ikrl.grid.state import EVAL_FILE, check_grid_folder, read_finished, record_grid
from ikrl.grid.summary import Summary, summarize
from ikrl.spec.braces import expand_braces
from ikrl.util.progress import ProgressBar

__all__ = ["CellOutcome", "GridResult", "run_grid"]


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell in a :func:`run_grid` call."""

    cell: Cell
    status: Literal["done", "skipped", "failed"]
    evaluation: dict[str, Any] | None = None
    train_seconds: float | None = None
    error: str | None = None  # one line; the traceback is in the folder's error.txt


@dataclass(frozen=True)
class GridResult:
    """The cells of a grid (planned by this call) and the summary of the whole folder."""

    out_dir: Path
    outcomes: tuple[CellOutcome, ...]
    summary: Summary

    @property
    def ran(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "done"]

    @property
    def skipped(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    @property
    def failures(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when every cell finished; the CLI exits non-zero otherwise."""
        return not self.failures


def run_grid(
    pattern: str,
    *,
    seeds: int | Sequence[int] = 3,
    config: ConfigLike,
    out_dir: Path | str,
    backend: str | Backend = "process",
    workers: int | None = None,
    ray_address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
) -> GridResult:
    """Train every cell of ``pattern`` × ``seeds`` into ``out_dir`` and summarise the folder.

    Each cell runs ``train_fn(cell.spec, config.replace(seed=cell.seed), out_dir / cell.folder,
    progress=False)`` (``train_fn`` defaults to :func:`ikrl.rl.training.run.train`; one given
    for the process or ray backend must be a module-level function, so that it pickles).
    Finished cells (their folder holds eval.json) are skipped; half-finished ones are deleted
    and rerun. ``out_dir/grid.json`` records the config: rerunning into the same folder needs
    the same config (the error lists what differs); a new pattern or new seeds add cells.

    ``backend``: a :class:`~ikrl.grid.backends.Backend`, or the name of one: ``"process"`` (a spawn process pool of ``workers`` processes, default
    ``min(cells, CPU cores // config.processes)``, each with ``cores // workers`` torch threads), ``"ray"``
    (``ray.init(address=ray_address)``, or a local Ray if no address and none is running;
    ``workers`` caps the cells in flight; on a cluster ``out_dir`` must be on a filesystem
    every node shares) or ``"serial"`` (this process, in order).

    A cell that raises, or whose worker process dies, is recorded (error.txt in its folder,
    and in the result) and the others go on; a rerun retries it. While this runs, ``out_dir``
    is locked: another run into it raises :class:`~ikrl.errors.GridError` at once. At the end summary.md, summary.csv and summary.png are written to out_dir.
    """
    if workers is None and backend == "process":
        # A run that keeps two processes busy (the goal algorithm's worker) gets two cores:
        # oversubscribed cores make the same CPU budget buy less work, unevenly.
        workers = max(1, cpu_count() // max(1, int(getattr(config, "processes", 1))))
    runner = backend_named(backend, workers=workers, ray_address=ray_address) if isinstance(backend, str) else backend
    if not (callable(getattr(config, "replace", None)) and callable(getattr(config, "to_dict", None))):
        raise GridError(
            f"config must have replace(**changes) and to_dict(), as ikrl.rl.training.run.TrainConfig "
            f"has; got {type(config).__name__}"
        )
    seeds_used = seed_list(seeds)
    cells = [Cell(spec, seed) for spec in expand_braces(pattern) for seed in seeds_used]
    if train_fn is None:
        from ikrl.rl.training.run import train as train_fn  # imported here: training pulls in torchrl
    out_dir = Path(out_dir)
    check_grid_folder(out_dir)  # before the lock, which would leave a .lock in someone else's folder
    with grid_lock(out_dir):
        outcomes = _run_cells(out_dir, pattern, seeds_used, config, cells, train_fn, runner, progress)
        summary = summarize(out_dir)
        summary.write(out_dir)
    return GridResult(out_dir, tuple(outcomes[cell] for cell in cells), summary)


def _run_cells(
    out_dir: Path,
    pattern: str,
    seeds_used: list[int],
    config: ConfigLike,
    cells: list[Cell],
    train_fn: TrainFn,
    runner: Backend,
    progress: bool,
) -> dict[Cell, CellOutcome]:
    """With the folder locked: record the grid, clear unfinished cells, train the rest."""
    record_grid(out_dir, pattern, seeds_used, config, cells)

    outcomes: dict[Cell, CellOutcome] = {}
    todo: list[Cell] = []
    for cell in cells:
        folder = out_dir / cell.folder
        if (folder / EVAL_FILE).is_file():
            outcomes[cell] = _finished_outcome(folder, cell)
            continue
        if folder.exists():  # half-finished or failed before: start again from nothing
            shutil.rmtree(folder)
        todo.append(cell)

    jobs = [
        (train_fn, cell.spec, cell.seed, config.replace(seed=cell.seed), str(out_dir / cell.folder))
        for cell in todo
    ]
    done = len(cells) - len(todo)
    with ProgressBar(progress, total=len(cells), completed=done, label="cells", count=True) as bar:
        if done:
            bar.update(description=f"{done} already finished")

        def finished(index: int, record: dict[str, Any]) -> None:
            cell = todo[index]
            outcome = outcomes[cell] = _outcome(cell, record)
            if outcome.status == "failed":
                from rich.markup import escape  # specs and messages may hold '[', which rich reads as markup

                bar.print(f"[bold red]failed[/] {escape(cell.spec)} seed {cell.seed}: {escape(outcome.error or '')}")
            bar.update(advance=1, description=f"last: {cell.spec} seed {cell.seed}")

        if jobs:
            runner.run(jobs, finished)

    return outcomes


def _outcome(cell: Cell, record: dict[str, Any]) -> CellOutcome:
    if record["ok"]:
        return CellOutcome(cell, "done", record["evaluation"], record["train_seconds"])
    return CellOutcome(cell, "failed", error=record["error"])


def _finished_outcome(folder: Path, cell: Cell) -> CellOutcome:
    evaluation, seconds = read_finished(folder)
    return CellOutcome(cell, "skipped", evaluation, seconds)


