"""The Ray backend's runner: connect (within a time limit), then keep ``workers`` cells in flight.

``ray.init(address=...)`` with a wrong address can wait a minute or more, or for ever, before
it fails, so the connection is bounded: a ``host:port`` address is first probed with a plain
TCP connection (nothing listening fails at once), then ``ray.init`` runs in a daemon thread
that is given up on after ``timeout`` seconds (it cannot be cancelled; the daemon thread ends
with the process). Ray is an optional dependency, imported on first use.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ikrl.errors import GridError, MissingDependencyError
from ikrl.grid.cell import lost_cell, run_cell

__all__ = ["connect", "import_ray", "run_ray"]


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            'backend="ray" needs Ray, which is not installed; install it with '
            'pip install "ikrl[ray]" (or use backend="process")'
        ) from None
    return ray


def connect(ray: Any, address: str, timeout: float) -> None:
    """``ray.init(address=address)``, or a :class:`GridError` naming the address within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    fix = (
        "check the address (the head node's 'ray status' shows it; a cluster started by 'ray start --head' "
        "listens on port 6379) and that the cluster is up, or leave --ray-address out to start a local Ray"
    )
    _probe(address, timeout, fix)
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:
        try:
            ray.init(address=address)
            outcome["error"] = None
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error

    thread = threading.Thread(target=init, daemon=True, name="ikrl-ray-connect")
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if "error" not in outcome:
        raise GridError(f"could not connect to the Ray cluster at {address!r} within {timeout:g} s; {fix}")
    error = outcome["error"]
    if error is not None:
        raise GridError(
            f"could not connect to the Ray cluster at {address!r} ({type(error).__name__}: "
            f"{' '.join(str(error).split())}); {fix}"
        ) from error


def _probe(address: str, timeout: float, fix: str) -> None:
    """Fail fast when nothing listens at a ``[ray://]host:port`` address ("auto" and the like pass)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise GridError(f"cannot reach the Ray cluster at {address!r} ({error}); {fix}") from None


def run_ray(
    jobs: list[tuple],
    workers: int | None,
    address: str | None,
    finished: Callable[[int, dict], None],
    timeout: float,
) -> None:
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            connect(ray, address, timeout)
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
