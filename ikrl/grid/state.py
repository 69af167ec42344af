"""A grid's state on disk: the folder is the state.

``out_dir/grid.json`` records the config and every cell planned there; each cell trains into
``out_dir/<cell.folder>``, and the trainer writes ``eval.json`` last, so a folder holding it is
finished. ``cell.json`` (written after the trainer returns) holds the training seconds,
``error.txt`` the traceback of a failed cell. ``.lock`` is the lock of the run that is
writing the folder (:mod:`ikrl.grid.lock`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ikrl.errors import GridError
from ikrl.grid.plan import Cell, ConfigLike
from ikrl.util.files import atomic_write_json, atomic_write_text

__all__ = [
    "CELL_FILE", "ERROR_FILE", "EVAL_FILE", "GRID_FILE", "LOCK_FILE",
    "check_grid_folder", "config_dict", "grid_cells", "read_finished", "record_grid", "write_error",
]  # fmt: skip

GRID_FILE = "grid.json"
EVAL_FILE = "eval.json"  # written last by the trainer: the marker of a finished cell
CELL_FILE = "cell.json"  # written by run_grid after the trainer returns: seed, seconds
ERROR_FILE = "error.txt"  # the traceback of a failed cell
LOCK_FILE = ".lock"  # held by the run writing the folder; never deleted (see ikrl.grid.lock)
_GRID_FORMAT = 1


def config_dict(config: ConfigLike) -> dict[str, Any]:
    """The config as JSON would give it back, without the seed (each cell sets its own)."""
    data = json.loads(json.dumps(config.to_dict(), default=str))
    data.pop("seed", None)
    return data


def record_grid(
    out_dir: Path, pattern: str, seeds: list[int], config: ConfigLike, cells: list[Cell]
) -> None:
    """Create or extend grid.json; refuse a folder trained with another config."""
    path = out_dir / GRID_FILE
    config_data = config_dict(config)
    if path.is_file():
        try:
            grid = json.loads(path.read_text())
            old_config, old_cells, runs = grid["config"], grid["cells"], grid["runs"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GridError(
                f"{path} is not a grid file this version can read ({error}); use another out_dir or delete it"
            ) from None
        if old_config != config_data:
            raise GridError(
                f"{out_dir} holds a grid trained with another config: {_differences(old_config, config_data)}. "
                f"Rerun with the same config to resume or extend that grid, or choose another out_dir"
            )
    else:
        check_grid_folder(out_dir)
        old_cells, runs = [], []
    known = {(c["spec"], c["seed"]) for c in old_cells}
    new_cells = [
        {"spec": c.spec, "seed": c.seed, "folder": c.folder} for c in cells if (c.spec, c.seed) not in known
    ]
    run = {"pattern": pattern, "seeds": seeds}
    grid = {
        "format": _GRID_FORMAT,
        "config": config_data,
        "runs": runs + ([run] if run not in runs else []),
        "cells": old_cells + new_cells,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, grid)


def check_grid_folder(out_dir: Path) -> None:
    """Refuse a folder that holds files but no grid.json: it is someone else's, not a grid.

    Called before the lock is taken too, so that no ``.lock`` is left in such a folder.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise GridError(f"{out_dir} is a file, not a folder; choose a new or empty out_dir")
    if not out_dir.exists() or (out_dir / GRID_FILE).is_file():
        return
    if any(entry.name != LOCK_FILE for entry in out_dir.iterdir()):
        raise GridError(
            f"{out_dir} is not empty and has no {GRID_FILE}, so it is not an ablation folder; "
            f"choose a new or empty out_dir"
        )


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            changes.append(f"{key}={old[key]!r} there, missing here")
        elif key not in old:
            changes.append(f"{key}={new[key]!r} here, missing there")
        elif old[key] != new[key]:
            changes.append(f"{key}={old[key]!r} there, {new[key]!r} here")
    return "; ".join(changes)


def grid_cells(out_dir: Path) -> tuple[list[Cell], dict[str, Any]]:
    path = Path(out_dir) / GRID_FILE
    try:
        grid = json.loads(path.read_text())
        return [Cell(c["spec"], int(c["seed"])) for c in grid["cells"]], grid
    except FileNotFoundError:
        raise GridError(f"{out_dir} has no {GRID_FILE}: it is not a folder that run_grid wrote") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise GridError(f"{path} is not a grid file this version can read ({error})") from None


def read_finished(folder: Path) -> tuple[dict[str, Any], float | None]:
    """A finished cell's evaluation and training seconds (None if cell.json is missing)."""
    try:
        evaluation = json.loads((folder / EVAL_FILE).read_text())
    except (OSError, ValueError) as error:
        raise GridError(
            f"{folder / EVAL_FILE} is not readable JSON ({error}); delete the folder "
            f"{folder} to rerun that cell"
        ) from None
    seconds = None
    try:
        seconds = json.loads((folder / CELL_FILE).read_text()).get("train_seconds")
    except (OSError, ValueError):
        seconds = evaluation.get("train_seconds")
    return evaluation, seconds


def write_error(folder: Path, spec: str, seed: int, text: str) -> None:
    """Record a failed cell's traceback in its folder."""
    atomic_write_text(folder / ERROR_FILE, f"spec: {spec}\nseed: {seed}\n\n{text}")
