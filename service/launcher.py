"""Start sweep drivers: one detached process per sweep (``python -m sweeps.driver``), in a new
session so restarting the web process neither stops nor duplicates it.

Launching is atomic per sweep: the sweep's lock (``sweeps/locks.py``) is taken here, before the
driver starts, and handed to it already held; if it is held, a driver is running and none is
started. So concurrent submissions (threads or processes) start exactly one driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.settings import Settings
from sweeps import locks
from sweeps.registry import ACTIVE, Registry  # noqa: F401  (ACTIVE re-exported)


def lock_path(settings: Settings, sweep_id: str) -> Path:
    return locks.lock_path(settings.registry, sweep_id)


def driver_alive(settings: Settings, sweep_id: str) -> bool:
    """Whether a driver holds the sweep (the kernel's answer: its lock)."""
    return locks.held(lock_path(settings, sweep_id))


def log_path(settings: Settings, sweep_id: str) -> Path:
    return Path(settings.registry).parent / "logs" / f"{sweep_id}.log"


def log_tail(settings: Settings, sweep_id: str, lines: int = 15, chars: int = 2000) -> str:
    """The end of a driver's log (what a failed sweep's error shows)."""
    try:
        with open(log_path(settings, sweep_id), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no driver log)"
    return "\n".join(text.splitlines()[-lines:])[-chars:]


def launch(settings: Settings, sweep_id: str, registry: Registry | None = None) -> int | None:
    """Start a driver for ``sweep_id`` unless one runs; returns its pid, or None if one was running."""
    fd = locks.acquire(lock_path(settings, sweep_id), wait_s=0.5)  # a status probe may hold it for an instant
    if fd is None:
        return None
    registry = registry or Registry(settings.registry)
    try:
        # A fresh liveness record before the process exists: its silence is measured from now, not
        # from the last heartbeat of whichever driver ran this sweep before (sweeps/registry.py).
        generation = registry.new_launch(sweep_id)
        log = log_path(settings, sweep_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "sweeps.driver", sweep_id, "--results", settings.results,
               "--registry", settings.registry, "--lock-fd", str(fd),
               "--generation", str(generation)]
        if settings.ray_address:
            cmd += ["--address", settings.ray_address]
        if settings.jax_cache:
            cmd += ["--jax-cache", settings.jax_cache]
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True, pass_fds=(fd,))
        locks.record_owner(fd, proc.pid)
    finally:
        os.close(fd)  # the driver holds the lock now (same open file description)
    registry.set_driver(sweep_id, proc.pid)
    return proc.pid


def cancel(settings: Settings, sweep_id: str, registry: Registry | None = None) -> None:
    """Flag the sweep cancelled: its driver's Tune stopper sees the flag within a second, stops the
    running trials and records the sweep as cancelled (finished cells stay); a driver not started yet
    sees it first thing. No signal is sent: Ray's worker runtime turns SIGTERM into an abrupt exit."""
    from mutransfer.results import ResultsStore
    from sweeps.recovery import mark_cancelled

    reg = registry or Registry(settings.registry)
    reg.request_cancel(sweep_id)
    mark_cancelled(ResultsStore(settings.results), sweep_id)  # a rebuilt registry keeps it cancelled
    row = reg.sweep(sweep_id)
    if row and row["status"] in ACTIVE and not driver_alive(settings, sweep_id):
        reg.set_sweep(sweep_id, "cancelled")
