"""Running one cell, wherever it runs, and recording a cell whose worker was lost.

Every backend runs the same module-level :func:`run_cell`, which catches a cell's error,
writes it to ``error.txt`` in the cell's folder and returns it, so one bad cell never stops
the others and no exception has to pickle across processes. A cell whose worker process
died under it (killed for memory, say) is recorded the same way by :func:`lost_cell`.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ikrl.errors import GridError
from ikrl.grid.plan import ConfigLike, TrainFn
from ikrl.grid.state import CELL_FILE, EVAL_FILE, write_error
from ikrl.util.files import atomic_write_json

__all__ = ["Finished", "Job", "died_message", "lost_cell", "run_cell"]

#: One cell's work: (train_fn, spec, seed, config, run_dir), the arguments of :func:`run_cell`.
Job = tuple[TrainFn, str, int, ConfigLike, str]
#: Called with a job's index and :func:`run_cell`'s record as each cell ends.
Finished = Callable[[int, dict[str, Any]], None]


def run_cell(
    train_fn: TrainFn, spec: str, seed: int, config: ConfigLike, run_dir: str, threads: int | None
) -> dict[str, Any]:
    """Train one cell in whatever process runs this; errors come back as data, not raised.

    Returning the error (and writing its traceback to error.txt) rather than raising keeps
    every backend's bookkeeping the same and needs no exception to pickle across processes.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    folder = Path(run_dir)
    start = time.perf_counter()
    try:
        result = train_fn(spec, config, folder, progress=False)
        if not (folder / EVAL_FILE).is_file():
            raise GridError(
                f"the trainer returned but wrote no {EVAL_FILE} into {folder}; "
                f"a finished run must write it last"
            )
        evaluation = getattr(result, "evaluation", None)
        if evaluation is None:
            evaluation = json.loads((folder / EVAL_FILE).read_text())
        seconds = getattr(result, "train_seconds", None)
        wall = time.perf_counter() - start
        record = {
            "spec": spec,
            "seed": seed,
            "train_seconds": float(seconds) if seconds is not None else wall,
            "wall_seconds": wall,
        }
        atomic_write_json(folder / CELL_FILE, record)
        return {"ok": True, "evaluation": dict(evaluation), "train_seconds": record["train_seconds"]}
    except Exception as error:  # noqa: BLE001 - a cell's failure of any kind is recorded, not fatal
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        write_error(folder, spec, seed, traceback.format_exc())
        return {"ok": False, "error": message}


def lost_cell(job: tuple, error: BaseException) -> dict[str, Any]:
    """A cell whose worker failed outside run_cell: record it as run_cell would have."""
    _, spec, seed, _, run_dir = job
    message = f"{type(error).__name__}: {' '.join(str(error).split()) or 'the worker process died'}"
    write_error(Path(run_dir), spec, seed, "".join(traceback.format_exception(error)))
    return {"ok": False, "error": message}


def died_message(exitcode: int | None) -> str:
    """Why a worker process ended under its cell, from its exit code, and what to do."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"was killed by {name}"
        if -exitcode == signal.SIGKILL:
            how += " (the out-of-memory killer sends it: with fewer --workers each cell has more memory)"
    elif exitcode is None:
        how = "ended (exit code unknown)"
    else:
        how = f"exited with code {exitcode} (its output above may say why)"
    return (
        f"the worker process running this cell {how}; rerun the grid into the same folder to retry the cell"
    )
