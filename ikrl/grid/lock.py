"""One run at a time per grid folder: an ``flock`` on ``out_dir/.lock``.

Two runs writing one folder would delete each other's cells (a run deletes every cell folder
without eval.json before training it again) and interleave grid.json. The kernel drops an
``flock`` when the last process holding the open file ends, however it ends, so a killed run
never leaves a stale lock. The file itself is never deleted: deleting it would let a third
run lock a new file while a second still holds the old one. It holds a JSON record of the
holder (pid, host, start, command), read only to say who holds the lock.

The process backend hands the same open file to its workers (:func:`held_fds`), so a folder
stays locked until the last worker of a killed run has ended: no late write of an orphaned
worker can land in a rerun's folders. (Windows has no ``flock``; there grids run unlocked.)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ikrl.errors import GridError
from ikrl.grid.state import LOCK_FILE

__all__ = ["grid_lock", "held_fds"]

#: The lock files this process holds: resolved grid folder -> open file descriptor.
_HELD: dict[Path, int] = {}


@contextmanager
def grid_lock(out_dir: Path, *, grace: float = 10.0) -> Iterator[None]:
    """Hold ``out_dir``'s lock for the block, or raise :class:`GridError` naming its holder.

    A holder that is alive fails this at once. One on this host that has ended (killed) while
    the lock is still held is a run whose workers are still being killed: that is waited for,
    ``grace`` seconds at most.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        deadline = time.monotonic() + grace
        while not _try_lock(fd, path):
            holder = _holder(path)
            if _alive(holder) or time.monotonic() > deadline:
                raise GridError(_held_message(out_dir, path, holder, grace))
            time.sleep(0.1)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
    except BaseException:
        os.close(fd)
        raise
    key = out_dir.resolve()
    if sys.platform != "win32":  # only a held flock is worth handing to workers
        _HELD[key] = fd
    try:
        yield
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # releases the lock, unless a worker still holds the same open file


def held_fds(folders: Iterable[Path]) -> list[int]:
    """The descriptors of the locks this process holds on ``folders``, for its workers to share."""
    wanted = {Path(folder).resolve() for folder in folders}
    return [fd for folder, fd in _HELD.items() if folder in wanted]


def _try_lock(fd: int, path: Path) -> bool:
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        raise GridError(
            f"cannot lock {path} ({error}): its filesystem does not support file locks; "
            f"choose an out_dir on a local disk (or, for a Ray cluster, an NFS mount with locking)"
        ) from None
    return True


def _holder(path: Path) -> dict[str, Any] | None:
    """The holder's record; None when unreadable (written a moment after the lock is taken)."""
    for _ in range(5):
        try:
            record = json.loads(path.read_text())
            if isinstance(record, dict) and isinstance(record.get("pid"), int):
                return record
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def _alive(holder: dict[str, Any] | None) -> bool:
    """False only for a holder on this host whose process has ended."""
    if holder is None or holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, alive
        return True
    return True


def _held_message(out_dir: Path, path: Path, holder: dict[str, Any] | None, grace: float) -> str:
    if holder is None:
        return (
            f"{out_dir} is in use: another process holds its lock {path} (and has not written who it is). "
            f"Wait for it to end, or give another --out (out_dir) for a separate grid"
        )
    who = f"pid {holder['pid']} on {holder.get('host', '?')}, running since {holder.get('since', '?')}"
    if _alive(holder):
        return (
            f"{out_dir} is in use by another ablation run ({who}: {holder.get('command', '?')}); two runs "
            f"in one folder would delete each other's unfinished cells. Wait for that run to end (a rerun "
            f"then resumes the grid), or give another --out (out_dir) for a separate grid"
        )
    return (
        f"{out_dir} is still locked {grace:g} s after the run that held it ended ({who}): processes it "
        f"started (its workers) still hold {path}. Wait until they have ended, or give another --out (out_dir)"
    )
