"""One driver per sweep, enforced by the kernel: ``<registry dir>/locks/<sweep id>.lock``.

A sweep's driver holds an exclusive ``flock`` on its lock file for as long as it lives; the kernel
releases it when the process ends, however it ends (SIGKILL included). So "is a driver running this
sweep?" has a definite answer without trusting pids (which are reused) or heartbeats (which lag),
and a second driver for the same sweep cannot start.

The service takes the lock *before* starting a driver and hands the locked descriptor to the child
(:func:`acquire` + ``pass_fds``): the sweep is never unlocked between the decision to launch and
the driver running, so concurrent submissions of one spec start exactly one driver.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


def lock_path(registry_path: str | os.PathLike, sweep_id: str) -> Path:
    return Path(registry_path).parent / "locks" / f"{sweep_id}.lock"


def acquire(path: str | os.PathLike, wait_s: float = 0.0) -> int | None:
    """An fd holding the exclusive lock on ``path`` (created if missing), or None if another
    process holds it (after retrying for ``wait_s`` seconds: probes hold it for microseconds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)


def record_owner(fd: int, pid: int | None = None) -> None:
    """Write the holder's pid into the lock file (for messages; the lock itself is the truth)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(pid or os.getpid()).encode(), 0)


def owner(path: str | os.PathLike) -> int | None:
    try:
        return int(Path(path).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def held(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock now (a live driver). Probes take a *shared* lock for an
    instant, so concurrent probes never see each other as a driver (takers of the exclusive lock
    retry for a moment, see :func:`acquire`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


class exclusive:
    """``with exclusive(path):`` a blocking exclusive lock for a short critical section (e.g. the
    service's submissions, so the concurrency limit holds across threads and worker processes)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> "exclusive":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)
