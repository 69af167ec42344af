"""Ablation grids under concurrency and kills: results you can trust.

* one run per folder (the lock), and a killed run's lock does not block a rerun;
* killing the run kills its workers, and leaves its finished cells byte for byte;
* a worker killed under its cell (the out-of-memory killer) fails only that cell;
* a Ray address that never answers fails in bounded time, naming the address.

The kill tests run the grid in a child process (``tests.grid_helpers.main``) and kill it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from ikrl.errors import GridError
from ikrl.grid import RayBackend, plan, run_grid
from ikrl.grid.lock import grid_lock
from tests.grid_helpers import Config, children, oom_train, quick_train, running, wait_for

ROOT = Path(__file__).resolve().parent.parent


def grid(pattern: str, out: Path, **options):
    options = {"backend": "serial", "train_fn": quick_train, "progress": False, **options}
    return run_grid(pattern, seeds=1, config=Config(), out_dir=out, **options)


def folders(pattern: str, out: Path) -> dict[str, Path]:
    return {cell.spec: out / cell.folder for cell in plan(pattern, 1)}


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def child_grid(tmp_path):
    """Starts ``tests.grid_helpers.main`` in a child process; kills whatever is left at the end."""
    started: list[tuple[subprocess.Popen, set[int]]] = []

    def start(out: Path, pattern: str, backend: str, workers: int) -> tuple[subprocess.Popen, set[int]]:
        code = f"from tests.grid_helpers import main; main({str(out)!r}, {pattern!r}, {backend!r}, {workers})"
        log = (tmp_path / f"child-{len(started)}.log").open("w")
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        entry = (process, set())  # the set collects the pids of its children, for the cleanup
        started.append(entry)
        return entry

    yield start
    for process, kids in started:
        process.kill()
        process.wait()
        for pid in kids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------ the lock


def test_a_second_run_into_a_folder_in_use_fails_at_once_and_a_killed_run_does_not_block(tmp_path, child_grid):
    out = tmp_path / "grid"
    pattern = "panda+{geodesic,block}"
    cells = folders(pattern, out)
    holder, _ = child_grid(out, pattern, "serial", 1)
    wait_for(lambda: (cells["panda+block"] / "started").is_file(), what="the first run to reach its blocking cell")
    finished = contents(cells["panda+geodesic"])

    start = time.monotonic()
    with pytest.raises(GridError) as info:
        grid(pattern, out)
    message = " ".join(str(info.value).split())
    assert time.monotonic() - start < 5  # at once, not after waiting
    assert f"in use by another ablation run (pid {holder.pid} on {socket.gethostname()}, running since " in message
    assert re.search(r"running since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", message)
    assert "Wait for that run to end" in message and "give another --out (out_dir)" in message
    # The refused run touched nothing: the other run's cells, finished or running, are as they were.
    assert (cells["panda+block"] / "started").is_file()
    assert contents(cells["panda+geodesic"]) == finished

    holder.kill()  # kill -9: the kernel drops its flock, so its lock is stale at once
    holder.wait()
    again = grid(pattern, out)
    assert [o.cell.spec for o in again.ran] == ["panda+block"]
    assert [o.cell.spec for o in again.skipped] == ["panda+geodesic"]
    assert contents(cells["panda+geodesic"]) == finished
    record = json.loads((out / ".lock").read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()


def test_a_lock_file_left_by_a_dead_run_does_not_block(tmp_path):
    out = tmp_path / "grid"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "2020-01-01"}))
    assert grid("panda+geodesic", out).ok  # a folder holding only .lock counts as empty, too


def test_a_lock_still_held_after_its_run_died_is_waited_for_then_named(tmp_path):
    """A killed run whose workers are still dying: wait ``grace`` seconds, then say so."""
    out = tmp_path / "grid"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = {"pid": dead.pid, "host": socket.gethostname(), "since": "2020-01-01T00:00:00+00:00", "command": "x"}
    (out / ".lock").write_text(json.dumps(record))
    fd = os.open(out / ".lock", os.O_RDWR)  # stands in for a worker that still holds the lock
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        start = time.monotonic()
        with pytest.raises(GridError) as info, grid_lock(out, grace=0.5):
            pass
        assert time.monotonic() - start >= 0.5
        message = " ".join(str(info.value).split())
        assert f"still locked 0.5 s after the run that held it ended (pid {dead.pid} on " in message
        assert "its workers" in message and "Wait until they have ended" in message
    finally:
        os.close(fd)
    with grid_lock(out, grace=0.5):  # released: taken at once
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


def test_a_folder_that_is_not_a_grid_gets_no_lock_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GridError, match="not empty and has no grid.json"):
        grid("panda+geodesic", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_dry_run_needs_no_lock(tmp_path):
    from typer.testing import CliRunner

    from ikrl.cli.app import app

    out = tmp_path / "grid"
    with grid_lock(out):
        result = CliRunner().invoke(app, ["ablate", "panda+{geodesic,position}", "--seeds", "1", "--dry-run", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 2


# ------------------------------------------------------------------------------ kills


@pytest.mark.slow  # a child process and its two spawned workers each import torch: about 10 s on two cores
def test_killing_the_run_kills_its_workers_and_leaves_finished_cells_intact(tmp_path, child_grid):
    out = tmp_path / "grid"
    pattern = "panda+{geodesic,position,block}"
    cells = folders(pattern, out)
    quick = [cells["panda+geodesic"], cells["panda+position"]]
    parent, kids = child_grid(out, pattern, "process", 2)
    wait_for(
        lambda: all((c / "cell.json").is_file() for c in quick) and (cells["panda+block"] / "started").is_file(),
        timeout=120,
        what="two finished cells and one running",
    )
    kids |= children(parent.pid)  # both workers (one idle, one in the blocking cell), and multiprocessing's helpers
    workers = {json.loads((c / "worker.json").read_text())["pid"] for c in quick}
    workers.add(int((cells["panda+block"] / "started").read_text()))
    assert workers <= kids and parent.pid not in workers
    assert all(json.loads((c / "worker.json").read_text())["holds_lock"] for c in quick)  # workers share the lock
    finished = {c: contents(c) for c in quick}

    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    wait_for(lambda: not any(running(pid) for pid in kids), timeout=30, what="the killed run's processes to end")

    assert {c: contents(c) for c in quick} == finished
    assert not (cells["panda+block"] / "late.txt").exists()
    again = grid(pattern, out)  # the lock went with the processes: a rerun resumes at once
    assert [o.cell.spec for o in again.ran] == ["panda+block"] and len(again.skipped) == 2
    assert {c: contents(c) for c in quick} == finished
    assert not (cells["panda+block"] / "started").exists()  # the half-finished cell began again from nothing


def test_a_killed_worker_fails_only_its_cell_and_a_rerun_retries_it(tmp_path):
    out = tmp_path / "grid"
    pattern = "panda+{oom,geodesic,position}"  # one worker: the oom cell first, then a new worker for the rest
    cells = folders(pattern, out)
    result = grid(pattern, out, backend="process", workers=1, train_fn=oom_train)
    assert [o.cell.spec for o in result.failures] == ["panda+oom"]
    assert [o.cell.spec for o in result.ran] == ["panda+geodesic", "panda+position"]
    error = result.failures[0].error or ""
    assert error.startswith("GridError: the worker process running this cell was killed by SIGKILL (the out-of-memory")
    assert error.endswith("rerun the grid into the same folder to retry the cell")
    text = (cells["panda+oom"] / "error.txt").read_text()
    assert text.startswith("spec: panda+oom\nseed: 0\n") and "killed by SIGKILL" in text
    pids = {json.loads((cells[s] / "worker.json").read_text())["pid"] for s in ("panda+geodesic", "panda+position")}
    assert len(pids) == 1 and os.getpid() not in pids  # one new worker ran both

    again = grid(pattern, out)
    assert [o.cell.spec for o in again.ran] == ["panda+oom"] and len(again.skipped) == 2


def test_a_trainer_that_does_not_pickle_fails_its_cells_with_a_hint(tmp_path):
    result = grid("panda+{geodesic,position}", tmp_path / "grid", backend="process", train_fn=lambda *a, **k: None)
    assert len(result.failures) == 2
    error = result.failures[0].error or ""
    assert "does not pickle for a worker process" in error and "module-level function" in error


# ------------------------------------------------------------------------------ ray


@pytest.fixture
def fake_ray(monkeypatch):
    """A ``ray`` whose init blocks until the test ends (as a wrong address can), or raises ``error``."""
    release = threading.Event()
    ray = types.ModuleType("ray")
    ray.error = None  # type: ignore[attr-defined]

    def init(**options):
        if ray.error is not None:  # type: ignore[attr-defined]
            raise ray.error  # type: ignore[attr-defined]
        release.wait()

    ray.init = init  # type: ignore[attr-defined]
    ray.is_initialized = lambda: False  # type: ignore[attr-defined]
    ray.shutdown = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", ray)
    yield ray
    release.set()


def test_a_ray_address_that_never_answers_times_out_naming_it(tmp_path, fake_ray):
    with socket.socket() as listener:  # something listens, as a wrong service on the port would
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(GridError) as info:
            grid("panda+geodesic", tmp_path / "grid", backend=RayBackend(address=address, connect_timeout=2))
    assert 2 <= time.monotonic() - start < 15
    message = " ".join(str(info.value).split())
    assert f"could not connect to the Ray cluster at {address!r} within 2 s" in message
    assert "leave --ray-address out to start a local Ray" in message


def test_a_ray_address_where_nothing_listens_fails_at_once(tmp_path, fake_ray):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    start = time.monotonic()
    with pytest.raises(GridError, match=rf"cannot reach the Ray cluster at '127\.0\.0\.1:{port}' \("):
        grid("panda+geodesic", tmp_path / "grid", backend="ray", ray_address=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10


def test_a_ray_init_that_fails_names_the_address_and_the_cause(tmp_path, fake_ray):
    fake_ray.error = ConnectionError("Could not find any running Ray instance")
    with pytest.raises(
        GridError, match=r"could not connect to the Ray cluster at 'auto' \(ConnectionError: Could not find any"
    ):
        grid("panda+geodesic", tmp_path / "grid", backend="ray", ray_address="auto")


@pytest.mark.slow  # imports Ray in a child process (the give-up thread goes on trying there, not here)
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_real_ray_given_an_address_that_never_answers_times_out(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        code = (
            "from ikrl.grid import RayBackend, run_grid\n"
            "from tests.grid_helpers import Config, quick_train\n"
            "try:\n"
            f"    run_grid('panda+geodesic', seeds=1, config=Config(), out_dir={str(tmp_path / 'grid')!r}, "
            f"backend=RayBackend(address={address!r}, connect_timeout=2), train_fn=quick_train, progress=False)\n"
            "except Exception as error:\n"
            "    print('ERROR', type(error).__name__, error)\n"
        )
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert f"ERROR GridError could not connect to the Ray cluster at {address!r} within 2 s" in done.stdout, (
        done.stdout + done.stderr
    )
    assert time.monotonic() - start < 60  # Ray alone would keep trying for minutes
