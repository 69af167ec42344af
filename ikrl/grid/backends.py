"""Where a grid's cells run: one small interface, three backends.

A :class:`Backend` only schedules: every backend runs the same module-level
:func:`~ikrl.grid.cell.run_cell`, which records a cell's error in its folder and returns it,
so one bad cell never stops the others.

* ``serial``: this process, in order (debugging, tests);
* ``process``: spawn-started worker processes (fork after torch has started threads can
  deadlock), the CPU cores split between workers with ``torch.set_num_threads``; workers end
  with their parent, and one that dies fails only its cell (:mod:`ikrl.grid.pool`);
* ``ray``: a Ray cluster, or a local one (an optional dependency, imported on first use;
  :mod:`ikrl.grid.ray_cluster`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ikrl.errors import GridError, closest
from ikrl.grid.cell import Finished, Job, lost_cell, run_cell
from ikrl.grid.lock import held_fds
from ikrl.grid.pool import run_pool
from ikrl.grid.ray_cluster import run_ray

__all__ = [
    "BACKENDS", "Backend", "Job", "ProcessBackend", "RayBackend", "SerialBackend",
    "backend_named", "cpu_count", "lost_cell", "run_cell",
]  # fmt: skip


class Backend(Protocol):
    """Runs jobs and reports each one's record through ``finished``, in any order."""

    def run(self, jobs: Sequence[Job], finished: Finished) -> None: ...


@dataclass(frozen=True)
class SerialBackend:
    """Every cell in this process, one after another."""

    def run(self, jobs: Sequence[Job], finished: Finished) -> None:
        for index, job in enumerate(jobs):
            finished(index, run_cell(*job, threads=None))


@dataclass(frozen=True)
class ProcessBackend:
    """``workers`` spawned processes (default ``min(cells, CPU cores)``), each with
    ``cores // workers`` torch threads; they share the grid folder's lock (:mod:`ikrl.grid.lock`)."""

    workers: int | None = None

    def run(self, jobs: Sequence[Job], finished: Finished) -> None:
        jobs = list(jobs)
        if not jobs:
            return
        cores = cpu_count()
        workers = min(self.workers or cores, len(jobs))  # no idle processes; their cores go to the busy ones
        share = held_fds({Path(job[4]).parent for job in jobs})
        run_pool(jobs, workers, max(1, cores // workers), finished, share)


@dataclass(frozen=True)
class RayBackend:
    """``ray.init(address=address)``, or a local Ray if no address and none is running;
    ``workers`` caps the cells in flight. On a cluster the grid folder must be on a
    filesystem every node shares. Connecting to ``address`` that takes longer than
    ``connect_timeout`` seconds fails with a :class:`GridError` instead of hanging."""

    workers: int | None = None
    address: str | None = None
    connect_timeout: float = 30.0

    def run(self, jobs: Sequence[Job], finished: Finished) -> None:
        run_ray(list(jobs), self.workers, self.address, finished, self.connect_timeout)


_MAKERS: dict[str, Callable[[int | None, str | None], Backend]] = {
    "process": lambda workers, _: ProcessBackend(workers),
    "ray": lambda workers, address: RayBackend(workers, address),
    "serial": lambda _, __: SerialBackend(),
}
BACKENDS: tuple[str, ...] = tuple(_MAKERS)


def backend_named(name: str, *, workers: int | None = None, ray_address: str | None = None) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`), with its options checked."""
    if name not in BACKENDS:
        hint = closest(str(name), BACKENDS)
        raise GridError(
            f"unknown backend {name!r}.{f' Did you mean {hint!r}?' if hint else ''} Backends: {', '.join(BACKENDS)}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise GridError(f"workers must be a positive int (or None for the default); got {workers!r}")
    if ray_address is not None and name != "ray":
        raise GridError(f"ray_address={ray_address!r} only applies to backend='ray'; got backend={name!r}")
    return _MAKERS[name](workers, ray_address)


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where there is one, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
