"""Start and supervise sweep drivers: one detached process per sweep (``python -m sweeps.driver``),
in a new session so restarting the web process neither stops nor duplicates it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.settings import Settings
from sweeps.registry import Registry

ACTIVE = ("queued", "running")


def pid_alive(pid: int | None) -> bool:
    """Whether a driver process still runs (a zombie — exited, not yet reaped — counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child, just reaped
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def launch(settings: Settings, sweep_id: str) -> int:
    """Start a driver for ``sweep_id``; returns its pid (also recorded by the driver itself)."""
    log_dir = Path(settings.registry).parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "sweeps.driver", sweep_id, "--results", settings.results,
           "--registry", settings.registry]
    if settings.ray_address:
        cmd += ["--address", settings.ray_address]
    if settings.jax_cache:
        cmd += ["--jax-cache", settings.jax_cache]
    with open(log_dir / f"{sweep_id}.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    Registry(settings.registry).set_driver(sweep_id, proc.pid)
    return proc.pid


def adopt_orphans(settings: Settings) -> list[str]:
    """At start-up: relaunch drivers for sweeps left queued/running by a driver that is gone."""
    reg = Registry(settings.registry)
    relaunched = []
    for row in reg.sweeps():
        if row["status"] in ACTIVE and not pid_alive(row.get("driver_pid")):
            if row.get("cancel"):
                reg.set_sweep(row["sweep_id"], "cancelled")
                continue
            launch(settings, row["sweep_id"])
            relaunched.append(row["sweep_id"])
    return relaunched


def cancel(settings: Settings, sweep_id: str) -> None:
    """Flag the sweep cancelled: the driver's Tune stopper sees the flag within a second, stops
    the running trials and records the sweep as cancelled (finished parts stay). No signal is
    sent: Ray's worker runtime turns SIGTERM into an abrupt exit of the driver."""
    reg = Registry(settings.registry)
    reg.request_cancel(sweep_id)
    row = reg.sweep(sweep_id)
    if row and row["status"] in ACTIVE and not pid_alive(row.get("driver_pid")):
        reg.set_sweep(sweep_id, "cancelled")
