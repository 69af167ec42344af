"""Where a grid's cells run: one small interface, three backends.

A :class:`Backend` only schedules: every backend runs the same module-level :func:`run_cell`,
which catches a cell's error, writes it to ``error.txt`` in the cell's folder and returns it,
so one bad cell never stops the others, and no exception has to pickle across processes.

* ``serial``: this process, in order (debugging, tests);
* ``process``: a spawn-started process pool (fork after torch has started threads can
  deadlock), the CPU cores split between workers with ``torch.set_num_threads``;
* ``ray``: a Ray cluster, or a local one (an optional dependency, imported on first use).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ikrl.errors import GridError, MissingDependencyError, closest
from ikrl.grid.plan import ConfigLike, TrainFn
from ikrl.grid.state import CELL_FILE, EVAL_FILE, write_error
from ikrl.util.files import atomic_write_json

__all__ = ["BACKENDS", "Backend", "Job", "ProcessBackend", "RayBackend", "SerialBackend", "backend_named", "cpu_count", "run_cell"]

#: One cell's work: (train_fn, spec, seed, config, run_dir), the arguments of :func:`run_cell`.
Job = tuple[TrainFn, str, int, ConfigLike, str]
#: Called with a job's index and :func:`run_cell`'s record as each cell ends.
Finished = Callable[[int, dict[str, Any]], None]


class Backend(Protocol):
    """Runs jobs and reports each one's record through ``finished``, in any order."""

    def run(self, jobs: Sequence[Job], finished: Finished) -> None: ...


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




@dataclass(frozen=True)
class SerialBackend:
    """Every cell in this process, one after another."""

    def run(self, jobs: Sequence[Job], finished: Finished) -> None:
        for index, job in enumerate(jobs):
            finished(index, run_cell(*job, threads=None))


@dataclass(frozen=True)
class ProcessBackend:
    """A spawn process pool of ``workers`` processes (default ``min(cells, CPU cores)``), each
    with ``cores // workers`` torch threads."""

    workers: int | None = None

    def run(self, jobs: Sequence[Job], finished: Finished) -> None:
        _run_processes(list(jobs), self.workers, finished)


@dataclass(frozen=True)
class RayBackend:
    """``ray.init(address=address)``, or a local Ray if no address and none is running;
    ``workers`` caps the cells in flight. On a cluster the grid folder must be on a
    filesystem every node shares."""

    workers: int | None = None
    address: str | None = None

    def run(self, jobs: Sequence[Job], finished: Finished) -> None:
        _run_ray(list(jobs), self.workers, self.address, finished)


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


def _set_threads(threads: int) -> None:
    """Process-pool initializer: split the cores between workers instead of oversubscribing."""
    import torch

    torch.set_num_threads(threads)


def _run_processes(jobs: list[tuple], workers: int | None, finished: Callable[[int, dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cores = cpu_count()
    workers = min(workers or cores, len(jobs))  # no idle processes, and their cores go to the busy ones
    threads = max(1, cores // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),  # fork after torch started threads can hang
        initializer=_set_threads,
        initargs=(threads,),
    )
    try:
        futures = {executor.submit(run_cell, *job, threads=None): index for index, job in enumerate(jobs)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                record = future.result()
            except Exception as error:  # noqa: BLE001 - the worker died (killed for memory?) or did not pickle
                record = lost_cell(jobs[index], error)
            finished(index, record)
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()


def lost_cell(job: tuple, error: BaseException) -> dict[str, Any]:
    """A cell whose worker failed outside run_cell: record it as run_cell would have."""
    _, spec, seed, _, run_dir = job
    message = f"{type(error).__name__}: {' '.join(str(error).split()) or 'the worker process died'}"
    write_error(Path(run_dir), spec, seed, "".join(traceback.format_exception(error)))
    return {"ok": False, "error": message}




def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            'backend="ray" needs Ray, which is not installed; install it with '
            'pip install "ikrl[ray]" (or use backend="process")'
        ) from None
    return ray


def _run_ray(
    jobs: list[tuple], workers: int | None, address: str | None, finished: Callable[[int, dict], None]
) -> None:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(include_dashboard=False)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        node_cpus = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
        # With workers given, each cell asks for its share of the cores (at most one node's);
        # without, one core each, and Ray runs as many at once as the cluster has cores.
        threads = max(1, min(node_cpus, cpus // workers)) if workers else 1
        in_flight = workers or len(jobs)
        remote = ray.remote(num_cpus=threads, max_retries=0)(run_cell)
        queue = list(enumerate(jobs))
        pending: dict[Any, int] = {}
        while queue or pending:
            while queue and len(pending) < in_flight:
                index, job = queue.pop(0)
                pending[remote.remote(*job, threads=threads)] = index
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - the worker or node died
                    record = lost_cell(jobs[index], error)
                finished(index, record)
    finally:
        if started:
            ray.shutdown()
