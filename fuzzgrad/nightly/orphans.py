"""What a target starts and leaves behind in a session of its own (``setsid()`` and a double
fork escape the worker's process group): on Linux the run's process is a child subreaper, so
such orphans become its children instead of init's, and are killed when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

#: prctl options (linux/prctl.h).
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _prctl():
    """libc's ``prctl``, or None where there is none (not Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


def children(pid: int | None = None) -> set[int]:
    """The live children of ``pid`` (default: this process), read from ``/proc``."""
    pid = os.getpid() if pid is None else pid
    found = set()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


@contextlib.contextmanager
def adopting(keep: frozenset[int] = frozenset()) -> Iterator[None]:
    """Make this process a child subreaper for the block, then kill and reap the orphans it
    adopted: children that were not there when the block began (nor in ``keep``, nor a
    `multiprocessing` child). Nothing happens where Linux's prctl is not available."""
    prctl = _prctl()
    if prctl is None or prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        yield
        return
    before = children()
    try:
        yield
    finally:
        try:
            kill_orphans(before | set(keep))
        finally:
            prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def kill_orphans(keep: set[int], rounds: int = 20) -> list[int]:
    """SIGKILL and reap this process's children that are not in ``keep`` (nor the fork server
    or another `multiprocessing` child); an orphan's own children become orphans in turn, so
    this goes on until no new one appears. Returns the pids killed."""
    import multiprocessing

    killed: list[int] = []
    for _ in range(rounds):
        ours = {p.pid for p in multiprocessing.active_children()} | _fork_server()
        orphans = children() - keep - ours
        if not orphans:
            break
        for pid in orphans:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
            killed.append(pid)
    return killed


def _fork_server() -> set[int]:
    """The pids of multiprocessing's fork server and resource tracker, where they run (they
    serve later runs too: killing the tracker makes the next run warn and relaunch it)."""
    import sys

    forkserver = sys.modules.get("multiprocessing.forkserver")
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    pids = {
        getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None),
        getattr(getattr(tracker, "_resource_tracker", None), "_pid", None),
    }
    return {pid for pid in pids if isinstance(pid, int)}
