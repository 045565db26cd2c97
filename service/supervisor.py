"""The service's watch over its sweeps (an asyncio task of the app; one pass per second).

Each pass, for every queued/running sweep:

* **driver gone** (its lock is free; the kernel released it when the process ended, however it
  ended): cancelled if a cancel was asked; started if it was never launched since it was
  submitted (a resubmission while the previous driver was still exiting; no relaunch counted); else
  relaunched if the spec allows
  (``resources.driver_restarts``, default 2; the note says which relaunch this is), else ``failed``
  with the tail of its log. Sweeps run by ``mutransfer run`` (owner ``cli``) are not relaunched
  here: they become ``failed`` with how to resume them.
* **driver frozen** (lock held, no sign of life for ``MUTRANSFER_HUNG_AFTER_S``): killed, so the
  next pass treats it as gone. A driver's sign of life is its own heartbeat, or its launch before
  its first beat: every path that starts a driver (submission, resubmission of a finished or
  cancelled sweep, recompute of quarantined parts, relaunch) records a fresh launch
  (``Registry.new_launch``), so a new driver is never judged by the previous one's last heartbeat.

And every ten passes, for sweeps no driver is working on: parts that fail verification (truncated,
corrupt, wrong row count) are quarantined and the sweep is queued again to recompute them, with a
note saying so (``sweeps/bookkeeping.py:check_parts``). With ``MUTRANSFER_DRIVERS=none`` nothing is
launched: a driver that stopped heartbeating is reported ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from service import launcher
from service.data import SweepData
from service.settings import Settings
from sweeps import locks
from sweeps.registry import ACTIVE, last_sign_of_life

log = logging.getLogger("service.supervisor")
VERIFY_EVERY = 10  # passes between part verifications of idle sweeps


def supervise_once(settings: Settings, data: SweepData, verify: bool = False,
                   now: float | None = None) -> list[str]:
    """One pass; returns what it did (one line per action, also logged). With several API worker
    processes, one of them supervises at a time. ``now`` (seconds, ``time.time()`` scale; default the
    clock) is the time the pass judges silence at: tests pass it instead of waiting."""
    fd = locks.acquire(locks.lock_path(settings.registry, "_supervisor"))
    if fd is None:
        return []
    try:
        return _pass(settings, data, verify, time.time() if now is None else now)
    finally:
        locks.release(fd)


def _pass(settings: Settings, data: SweepData, verify: bool, now: float) -> list[str]:
    reg = data.registry
    actions: list[str] = []
    for row in reg.sweeps():
        sid = row["sweep_id"]
        if row["status"] not in ACTIVE:
            if verify and row["status"] != "cancelled":
                actions += _verify(settings, data, row)
            continue
        if launcher.driver_alive(settings, sid):
            alive_at = last_sign_of_life(row)
            if (alive_at and now - alive_at > settings.hung_after_s and row.get("driver_pid")
                    and row.get("owner") != "cli"):
                _kill(row["driver_pid"])
                actions.append(f"{sid}: driver {row['driver_pid']} silent for {now - alive_at:.0f} s; killed")
            continue
        if row.get("cancel"):
            reg.set_sweep(sid, "cancelled")
            actions.append(f"{sid}: cancelled (its driver had stopped)")
        elif not settings.launch_drivers:
            beat = row.get("heartbeat_at")
            if row["status"] == "running" and beat and now - beat > 5 * settings.supervise_s + 5:
                reg.set_sweep(sid, "failed", error=f"its driver stopped (no heartbeat for {now - beat:.0f} s); "
                                                   "resubmit the spec to resume it")
                actions.append(f"{sid}: failed (external driver stopped)")
        elif row.get("owner") == "cli":
            reg.set_sweep(sid, "failed", error=(
                f"the `mutransfer run` process driving it (pid {row.get('driver_pid')}) stopped before the sweep "
                "finished; rerun the same command (or resubmit the spec) to resume it: finished cells are kept"))
            actions.append(f"{sid}: failed (its CLI run stopped)")
        elif row.get("launched_at") is None and not row.get("heartbeat_at"):
            # Submitted (or resubmitted) while a previous driver still held the sweep, e.g. one
            # still exiting after a cancel: its first launch, not a relaunch.
            launcher.launch(settings, sid, registry=reg)
            actions.append(f"{sid}: started (its previous driver had not exited when it was submitted)")
        else:
            actions.append(_relaunch_or_fail(settings, data, row))
        data.invalidate(sid)
    for a in actions:
        log.warning("%s", a)
    return actions


def _relaunch_or_fail(settings: Settings, data: SweepData, row: dict) -> str:
    sid, reg = row["sweep_id"], data.registry
    allowed = ((row.get("spec") or {}).get("resources") or {}).get("driver_restarts", 2)
    restarts = row.get("restarts") or 0
    started = row.get("heartbeat_at") is not None or row["status"] == "running"
    why = (row.get("note") or "its driver stopped") if started else "its driver was not running"
    if restarts < allowed:
        reg.relaunched(sid, f"{why}; relaunched ({restarts + 1} of at most {allowed})")
        launcher.launch(settings, sid, registry=reg)
        return f"{sid}: {why}; relaunched ({restarts + 1}/{allowed})"
    tail = launcher.log_tail(settings, sid)
    reg.set_sweep(sid, "failed", error=f"{why}, and it was relaunched {restarts} time(s) already "
                                       f"(resources.driver_restarts: {allowed}); driver log:\n{tail}")
    return f"{sid}: failed after {restarts} relaunch(es)"


def _verify(settings: Settings, data: SweepData, row: dict) -> list[str]:
    """Quarantine bad parts of an idle sweep and queue it to recompute them."""
    from sweeps.bookkeeping import check_parts

    sid = row["sweep_id"]
    trials = data.registry.trials(sid)
    if not trials or launcher.driver_alive(settings, sid):
        return []
    planned = [_Planned(t["part"], t["runs"]) for t in trials]
    _, notes = check_parts(data.store, sid, planned)
    if not notes:
        return []
    for part, note in notes.items():
        data.registry.set_trial(sid, part, "queued", progress=0.0, note=note)
    data.invalidate(sid)
    if settings.launch_drivers and row.get("owner") != "cli":
        data.registry.set_sweep(sid, "queued", note=f"{len(notes)} stored part(s) were bad; recomputing them")
        launcher.launch(settings, sid, registry=data.registry)
        return [f"{sid}: {len(notes)} bad part(s) quarantined; relaunched to recompute"]
    data.registry.set_sweep(sid, "failed", error=f"{len(notes)} stored part(s) were bad and were quarantined; "
                                                 "resubmit the spec to recompute them")
    return [f"{sid}: {len(notes)} bad part(s) quarantined"]


class _Planned:
    """What check_parts needs of a planned trial: its part name and its run count."""

    def __init__(self, part: str, runs: int):
        self.part, self.runs = part, range(runs)


def _kill(pid: int) -> None:
    try:  # the driver leads its own session (launcher), so its group is its own processes
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


async def run(settings: Settings, data: SweepData) -> None:
    """The supervisor loop (started by the app's lifespan; cancelled at shutdown)."""
    n = 0
    while True:
        try:
            await asyncio.to_thread(supervise_once, settings, data, n % VERIFY_EVERY == 0)
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one bad pass stop supervision
            log.exception("supervisor pass failed")
        n += 1
        await asyncio.sleep(settings.supervise_s)
