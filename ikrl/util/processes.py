"""Child processes that end with their parent, however it ends (``kill -9`` included).

Used by the grid's workers and the goal network's training worker: a worker left running
after its parent died would go on using a core and writing files nobody reads, or worse,
files a rerun reads.

On Linux the child asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``; it acts at once, even while the child is deep in torch code),
then checks that the parent did not die before the prctl took effect. The "parent" the
kernel watches is the *thread* that started the child, so start workers from a thread that
lives as long as they should. Elsewhere (macOS) a watchdog thread polls ``os.getppid()``
every second instead.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["end_with_parent"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def end_with_parent(parent: int) -> None:
    """Make this process end when the process ``parent`` (its parent's pid) does."""
    if _parent_death_signal():
        if os.getppid() != parent:  # the parent died before the prctl: nobody would kill us now
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="ikrl-parent-watchdog").start()


def _parent_death_signal() -> bool:
    """Linux: ask for SIGKILL when the parent dies (prctl through libc); False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ulong = ctypes.c_ulong
        return libc.prctl(_PR_SET_PDEATHSIG, ulong(int(signal.SIGKILL)), ulong(0), ulong(0), ulong(0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
