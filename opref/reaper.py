"""Nothing a runtime starts outlives the run: finding and ending a process's descendants (Linux).

A worker makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a process its
runtime starts stays its descendant even after a double fork and ``setsid``; it ends them all
when it stops. The parent does not rely on that: before it kills a worker it freezes it and ends
every descendant it finds under it in /proc, and a command-line run is a subreaper too, so what a
worker that died orphaned comes back to it and is ended (``adopt_orphans``/``end_orphans``).
Elsewhere (no /proc, no prctl) these do nothing and process groups are all there is.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_CHILD_SUBREAPER = 36
_adopting = False
_lock = threading.RLock()  # held while a worker is started, so none is taken for an orphan
_ours: set[int] = set()  # the pids of the live workers this process started


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_map() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found.setdefault(ppid, []).append(int(name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` now (children first)."""
    tree, out, todo = _children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def end_descendants(pid: int) -> set[int]:
    """Freeze every descendant of ``pid`` (looking again until no new one appears, so none forks
    away meanwhile), then kill them all; the pids it found."""
    seen: set[int] = set()
    for _ in range(50):
        new = [p for p in descendants(pid) if p not in seen]
        if not new:
            break
        for p in new:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGSTOP)
        seen.update(new)
    for p in seen:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    return seen


def reap_all(seconds: float = 2.0) -> None:
    """Collect every ended child of this process (bounded: a child stuck in the kernel is left)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def end_everything_under_me() -> None:
    """A worker stopping: end what its runtime started, and collect it."""
    if end_descendants(os.getpid()):
        reap_all()


def adopt_orphans() -> None:
    """Make this process (a command-line run) adopt what a dead worker's runtime left behind."""
    global _adopting
    _adopting = become_subreaper()


def launching() -> threading.RLock:
    """Hold while starting a worker and calling ``started`` with its pid."""
    return _lock


def started(pid: int) -> None:
    with _lock:
        _ours.add(pid)


def stopped(pid: int) -> None:
    with _lock:
        _ours.discard(pid)
    end_orphans()


def end_orphans() -> None:
    """End and collect the children this process adopted (they are no worker of ours)."""
    if not _adopting:
        return
    with _lock:
        orphans = [p for p in _children_map().get(os.getpid(), []) if p not in _ours]
        for p in orphans:
            end_descendants(p)
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        for p in orphans:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(p, 0)
