"""The process backend's pool: spawn-started workers that end with their parent, and whose
death costs only the cell each was running.

``concurrent.futures.ProcessPoolExecutor`` breaks as a whole when one worker dies: it kills
the others and fails every cell not yet finished with ``BrokenProcessPool``. Here each worker
has its own pipe and runs one cell at a time, so a worker that dies (the out-of-memory
killer's SIGKILL) fails only its cell, and a new worker takes the cells not yet run.

Workers end with their parent, however it ends (``kill -9`` included). On Linux each asks the
kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``; chosen over a watchdog
thread because it acts at once, even while the worker is deep in torch code), then checks
that the parent did not die before the prctl took effect. The "parent" of PR_SET_PDEATHSIG is
the *thread* that started the worker: :func:`run_pool` starts them from the calling thread,
which lives until every worker has been stopped. Where prctl is missing (macOS) a watchdog
thread polls ``os.getppid()`` every second instead. Workers also share the grid's lock
(:mod:`ikrl.grid.lock`), so a rerun cannot start while any of them still lives.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ikrl.errors import GridError
from ikrl.grid.cell import Finished, Job, died_message, lost_cell, run_cell
from ikrl.util.processes import end_with_parent

__all__ = ["run_pool"]

@dataclass(eq=False)
class _Worker:
    process: Any  # a spawn-context Process
    conn: Connection
    index: int | None = None  # the job it runs, None when idle


def run_pool(
    jobs: list[Job], workers: int, threads: int, finished: Finished, share: Sequence[int] = ()
) -> None:
    """Run ``jobs`` on at most ``workers`` spawned processes of ``threads`` torch threads each.

    ``share``: file descriptors each worker keeps open for its life (the grid's lock). On any
    exception here (Ctrl-C included) the workers are killed before it propagates: no cell
    goes on writing after :func:`run_pool` has returned or raised.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # fork after torch started threads can hang
    queue = deque(enumerate(jobs))
    pool: list[_Worker] = []
    stopped_cleanly = False
    try:
        while queue or any(w.index is not None for w in pool):
            while queue:
                worker = next((w for w in pool if w.index is None), None)
                if worker is None and len(pool) >= workers:
                    break
                index, job = queue.popleft()
                message = _message(index, job, finished)
                if message is None:
                    continue
                if worker is None:
                    pool.append(worker := _start(context, threads, share))
                worker.index = index
                try:
                    worker.conn.send(message)
                except OSError:
                    pass  # the worker died already: its sentinel says so next, and the cell is recorded then
            busy = [w for w in pool if w.index is not None]
            if busy:
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        _collect(worker, jobs, pool, finished)
        stopped_cleanly = True
    finally:
        _stop(pool, stopped_cleanly)


def _start(context: Any, threads: int, share: Sequence[int]) -> _Worker:
    parent_end, child_end = context.Pipe()
    process = context.Process(
        target=_work, args=(child_end, threads, os.getpid(), _Inherited(share)), name="ikrl-grid-worker"
    )
    process.start()
    child_end.close()  # else the parent would never see EOF when the worker dies
    return _Worker(process, parent_end)


def _message(index: int, job: Job, finished: Finished) -> tuple | None:
    """What a worker is sent for a job; None (and the cell recorded as failed) if it does not pickle."""
    train_fn, spec, seed, config, run_dir = job
    try:
        return index, spec, seed, run_dir, pickle.dumps((train_fn, config))
    except Exception as error:  # noqa: BLE001 - any pickling failure is this cell's, not the grid's
        finished(index, lost_cell(job, GridError(
            f"this cell's trainer or config does not pickle for a worker process ({type(error).__name__}: "
            f"{error}); train_fn must be a module-level function and the config plain data, or use backend='serial'"
        )))  # fmt: skip
        return None


def _collect(worker: _Worker, jobs: list[Job], pool: list[_Worker], finished: Finished) -> None:
    """Take a worker's result, or record that it died under its cell and drop it."""
    index = worker.index
    assert index is not None
    if worker.conn.poll():
        try:
            _, record = worker.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            worker.index = None
            finished(index, record)
            return
    worker.process.join(timeout=5)
    pool.remove(worker)
    worker.conn.close()
    finished(index, lost_cell(jobs[index], GridError(died_message(worker.process.exitcode))))


def _stop(pool: list[_Worker], cleanly: bool) -> None:
    """Idle workers are told to exit; after an error every worker is killed at once."""
    for worker in pool:
        if cleanly:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        else:
            worker.process.kill()
    for worker in pool:
        worker.process.join(timeout=10 if cleanly else 5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=5)
        worker.conn.close()


class _Inherited:
    """File descriptors a worker keeps open for its whole life (the grid's lock).

    Pickled while the worker is spawned, each becomes a descriptor passed to the new process,
    the way multiprocessing passes a Connection; the worker then holds the same open file, and
    so the same ``flock``, as its parent.
    """

    def __init__(self, fds: Sequence[int]) -> None:
        self.fds = list(fds)

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing.reduction import DupFd

        return (_inherit, ([DupFd(fd) for fd in self.fds],))


def _inherit(duplicates: list[Any]) -> _Inherited:
    return _Inherited([duplicate.detach() for duplicate in duplicates])


def _work(conn: Connection, threads: int, parent: int, inherited: _Inherited) -> None:
    """A worker's life: run the cells its pipe brings until told to stop (None) or orphaned."""
    end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on Ctrl-C the parent decides, and kills its workers
    del inherited  # its descriptors stay open: nothing closes them before this process ends
    import torch

    torch.set_num_threads(threads)
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent closed the pipe, or died
            return
        if message is None:
            return
        index, spec, seed, run_dir, payload = message
        try:
            train_fn, config = pickle.loads(payload)
        except Exception as error:  # noqa: BLE001 - recorded as the cell's failure
            record = lost_cell((None, spec, seed, None, run_dir), GridError(
                f"the worker process could not load this cell's trainer or config ({type(error).__name__}: "
                f"{error}); train_fn must be defined at the top of an importable module (not in the __main__ "
                f"of 'python -c' or a notebook), or use backend='serial'"
            ))  # fmt: skip
        else:
            record = run_cell(train_fn, spec, seed, config, run_dir, threads=None)
        conn.send((index, record))
