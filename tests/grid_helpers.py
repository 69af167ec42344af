"""Fake trainers and process helpers for tests/test_grid_safety.py.

A module of its own (not the test file) so that spawned workers and ``python -c`` children
import only this and ikrl: spawn needs the trainers importable by module path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

#: The numbers every fake cell reports.
EVALUATION = {"success_5mm_2deg": 0.5, "position_error_median": 0.001}


@dataclass(frozen=True)
class Config:
    """What run_grid needs of a config: replace() and to_dict()."""

    steps: int = 10
    seed: int = 0

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def holds_lock(run_dir: Path) -> bool:
    """Whether this process has the grid folder's .lock open (Linux: /proc/self/fd)."""
    lock = (run_dir.parent / ".lock").resolve()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if Path(os.readlink(f"/proc/self/fd/{fd}")) == lock:
                return True
        except OSError:
            pass
    return False


def quick_train(spec: str, config: Config, run_dir: Path, *, progress: bool = True) -> None:
    """Finishes at once: notes its pid and whether it shares the lock, then eval.json last."""
    run_dir.mkdir(parents=True)
    (run_dir / "worker.json").write_text(json.dumps({"pid": os.getpid(), "holds_lock": holds_lock(run_dir)}))
    (run_dir / "eval.json").write_text(json.dumps(EVALUATION))


def blocking_train(spec: str, config: Config, run_dir: Path, *, progress: bool = True) -> None:
    """Cells whose spec has 'block' write ``started`` and then never finish; the others are quick."""
    if "block" not in spec:
        return quick_train(spec, config, run_dir, progress=progress)
    run_dir.mkdir(parents=True)
    (run_dir / "started").write_text(str(os.getpid()))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.05)
    (run_dir / "late.txt").write_text("written after the test gave up")  # must never happen


def oom_train(spec: str, config: Config, run_dir: Path, *, progress: bool = True) -> None:
    """Cells whose spec has 'oom' are killed as the out-of-memory killer kills: SIGKILL."""
    if "oom" not in spec:
        return quick_train(spec, config, run_dir, progress=progress)
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_text("partial")
    os.kill(os.getpid(), signal.SIGKILL)


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid``, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after "(command name)": state, ppid, ...
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition, timeout: float = 60.0, what: str = "a condition") -> None:
    """Poll ``condition()`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def main(out_dir: str, pattern: str, backend: str, workers: int) -> None:
    """A grid of blocking_train cells, for a child process to run (and be killed in)."""
    from ikrl.grid import run_grid

    run_grid(
        pattern,
        seeds=1,
        config=Config(),
        out_dir=out_dir,
        backend=backend,
        workers=workers,
        train_fn=blocking_train,
        progress=False,
    )
