"""Drive one registered sweep to the end, in a process of its own.

    python -m sweeps.driver SWEEP_ID --results ROOT [--registry FILE] [--address HOST:PORT] [--lock-fd N]

The service starts one of these per accepted sweep (in a new session, so restarting the web process
does not stop it) and another when one dies mid-sweep (up to ``resources.driver_restarts`` times);
finished cells are never recomputed. While it lives it:

* holds the sweep's lock (``sweeps/locks.py``; the service hands it over locked as ``--lock-fd``):
  a second driver for the sweep cannot start, and the service knows within a second when it is gone;
* writes a heartbeat to the registry every second (a frozen driver is killed and relaunched);
* watches its embedded Ray: if the GCS or raylet dies, it exits at once (the service relaunches it)
  instead of waiting on a dead cluster;
* runs a reaper (``sweeps/processes.py``) that kills the Ray processes it started if it is killed.

The registry's cancel flag (DELETE /sweeps/{id}), even if set before this process started, cancels
the sweep: running trials stop, finished cells stay.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Callable

from mutransfer.results import ResultsStore
from sweeps import locks, processes
from sweeps.recovery import open_registry
from sweeps.registry import Registry, default_path
from sweeps.spec import parse_spec

log = logging.getLogger("sweeps.driver")
HEARTBEAT_S = 1.0
RAY_DIED_EXIT = 75  # the embedded Ray stopped under us: the service may relaunch


class Heartbeat:
    """A daemon thread: the registry heartbeat every second, and the embedded Ray's GCS and raylet
    watched (``on_ray_death(message)`` is called, once, when one of them is gone)."""

    def __init__(self, registry: Registry | None, sweep_id: str, on_ray_death: Callable[[str], None],
                 generation: int | None = None):
        self.registry, self.sweep_id, self.on_ray_death = registry, sweep_id, on_ray_death
        self.generation = generation  # the launch this driver is (its beats count only for it)
        self.watched: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def watch_embedded_ray(self) -> None:
        """Watch the GCS server and raylet this process started (none when attached elsewhere)."""
        self.watched = {p: v for p, v in processes.descendants(os.getpid()).items()
                        if v[0] in ("gcs_server", "raylet")}

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if self.registry is not None:
                    self.registry.heartbeat(self.sweep_id, self.generation)
            except Exception as e:  # a busy or rebuilt registry: try again next second
                log.warning("heartbeat failed: %s", e)
            dead = [f"{name} (pid {pid})" for pid, (name, start) in self.watched.items()
                    if not processes.alive(pid, start)]
            if dead:
                self._stop.set()
                self.on_ray_death(f"the embedded Ray cluster stopped: {', '.join(dead)} exited")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sweeps.driver")
    ap.add_argument("sweep_id")
    ap.add_argument("--results", required=True)
    ap.add_argument("--registry", default=None)
    ap.add_argument("--address", default=None)
    ap.add_argument("--jax-cache", default=None)
    ap.add_argument("--max-failures", type=int, default=2)
    ap.add_argument("--lock-fd", type=int, default=None, help="the sweep's lock, already held (from the service)")
    ap.add_argument("--generation", type=int, default=None,
                    help="the launch generation the service recorded for this driver (its heartbeats carry it)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    store = ResultsStore(args.results)
    registry = open_registry(args.registry or default_path(args.results), store)
    sid = args.sweep_id
    row = registry.sweep(sid)
    if row is None or row.get("spec") is None:
        print(f"error: sweep {sid!r} is not in the registry (or its spec is unreadable)", file=sys.stderr)
        return 2
    path = locks.lock_path(registry.path, sid)
    lock = args.lock_fd if args.lock_fd is not None else locks.acquire(path, wait_s=2.0)
    if lock is None:
        print(f"error: sweep {sid!r} already has a driver (pid {locks.owner(path)}); not starting another",
              file=sys.stderr)
        return 3
    os.set_inheritable(lock, False)  # Ray's processes must not keep the sweep locked after we die
    locks.record_owner(lock)
    log.info("driver %d started for sweep %s", os.getpid(), sid)
    if row.get("cancel"):
        registry.set_sweep(sid, "cancelled")
        return 0
    registry.set_driver(sid, os.getpid())
    reaper = processes.start_reaper()

    def ray_died(message: str) -> None:
        log.error("%s; exiting so that the service can relaunch this sweep", message)
        try:
            registry.set_note(sid, message)
        finally:
            os._exit(RAY_DIED_EXIT)

    beat = Heartbeat(registry, sid, ray_died, args.generation).start()
    try:
        from sweeps import compile_cache
        from sweeps.ray_exec import connect, run_sweep_ray

        cache = compile_cache.enable(args.jax_cache)
        if connect(args.address):
            beat.watch_embedded_ray()
        spec = parse_spec(row["spec"])

        looping = spec.decide is not None or spec.refine is not None  # rounds may follow: finished when they stop

        def execute(record=None, decided=None):
            return run_sweep_ray(spec, args.results, sweep_id=sid, address=args.address,
                                 registry_path=registry.path, max_failures=args.max_failures, jax_cache=str(cache),
                                 owner="service", fresh=False, refine_record=record, decide_record=decided,
                                 ends_sweep=not looping)

        if spec.decide is not None:
            _decide(spec, store, sid, registry, execute)
            _finish(registry, sid)
            return 0
        out = execute(_refine_record(store, sid, spec))
        if spec.refine is not None and not out.cells_failed and not (registry.sweep(sid) or {}).get("cancel"):
            _refine(spec, store, sid, registry, execute)
        _finish(registry, sid)
        return 0
    except Exception as e:  # recorded for GET /sweeps/{id}; the process still exits non-zero
        log.exception("sweep %s failed", sid)
        if not (registry.sweep(sid) or {}).get("cancel"):
            registry.set_sweep(sid, "failed", error=f"{type(e).__name__}: {e}")
        else:
            registry.set_sweep(sid, "cancelled")
        return 1
    finally:
        beat.stop()
        try:
            _shutdown_ray()
        finally:
            registry.set_driver(sid, None)
            reaper.disarm()
            locks.release(lock)


def _finish(registry: Registry, sid: str) -> None:
    """A loop's sweep (refine, decide) ran its rounds with ``ends_sweep=False``: it is ``running``
    after a clean round and ends ``finished`` only here, once the loop stopped and its note is set
    (a failed or cancelled round already set its status)."""
    if (registry.sweep(sid) or {}).get("status") == "running":
        registry.set_sweep(sid, "finished")


def _refine_record(store: ResultsStore, sid: str, spec):
    """The rounds a refining sweep recorded before this driver started (None otherwise)."""
    if spec.refine is None:
        return None
    from sweeps.refine import load_record

    rec = load_record(store, sid)
    return rec if rec is not None and rec.spec_hash == spec.spec_hash() else None


def _refine(spec, store: ResultsStore, sid: str, registry: Registry, execute) -> None:
    """The spec's ``refine:`` (sweeps/refine.py) after its grid finished: the rounds run through
    the same Ray path, their parts join the sweep's cells in the registry; the outcome is its note."""
    from sweeps.refine import RefineError, run_refinement, summary

    def step(record) -> bool:
        out = execute(record)
        return not out.cells_failed and not (registry.sweep(sid) or {}).get("cancel")

    try:
        record = run_refinement(spec, store, sid, step, say=log.info)
    except RefineError as e:
        registry.set_note(sid, f"refinement refused: {e}")
        return
    registry.set_note(sid, " | ".join(summary(record)))


def _decide(spec, store: ResultsStore, sid: str, registry: Registry, execute) -> None:
    """The spec's ``decide:`` (sweeps/decide.py): its own runs, then round after round through the
    same Ray path (each round's parts join the sweep's cells in the registry); the rounds are the
    sweep's note while it runs, the outcome when it ends."""
    from sweeps.decide import DecideError, run_decide, summary

    def step(record) -> bool:
        if record.rounds:
            registry.set_note(sid, f"decide: round {len(record.rounds)} training (+{record.rounds[-1].runs} runs; "
                                   f"{record.runs_added} added in all)")
        out = execute(None, record)
        return not out.cells_failed and not (registry.sweep(sid) or {}).get("cancel")

    try:
        record = run_decide(spec, store, sid, step, say=log.info)
    except DecideError as e:
        registry.set_sweep(sid, "failed", error=f"decide refused: {e}")
        return
    registry.set_note(sid, " | ".join(summary(record)))


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
