"""Reading a sweep's state for the API: registry row + results store, with small caches keyed
on what changes them (the set of finished parts), so polling clients don't re-read Parquet or
recompute the report on every request."""

from __future__ import annotations

from dataclasses import replace

import logging
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import pandas as pd

from mutransfer.report import Report
from mutransfer.results import ResultsStore
from service.settings import Settings
from sweeps import progress as eta
from sweeps import state
from sweeps.recovery import open_registry
from sweeps.registry import ACTIVE, TERMINAL, effective_status

log = logging.getLogger("service")

# Server-generated ids look like <spec name>-<8 hex>; anything else is not a sweep (never a path).
# Always used with fullmatch: `$` would also match before a trailing newline ("...%0A").
SWEEP_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}-[0-9a-f]{8}")


class _LRU:
    """A small LRU whose values are computed once per key even under concurrent misses (when a
    trial finishes, every polling client misses at once; only one of them recomputes)."""

    def __init__(self, size: int = 32):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()
        self.pending: dict[Any, threading.Lock] = {}

    def get(self, key, make: Callable[[], Any]):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            key_lock = self.pending.setdefault(key, threading.Lock())
        with key_lock:
            with self.lock:
                if key in self.items:
                    return self.items[key]
            value = make()
            with self.lock:
                self.items[key] = value
                self.pending.pop(key, None)
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return value


class _Ttl:
    """Per-key values kept for ``ttl`` seconds (status polling hits SQLite at most that often)."""

    def __init__(self, ttl: float = 0.5):
        self.ttl, self.items = ttl, {}

    def get(self, key, make: Callable[[], Any]):
        now = time.monotonic()
        hit = self.items.get(key)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        value = make()
        self.items[key] = (now, value)
        return value


class RegistryUnavailable(Exception):
    """The registry cannot be read now (a full disk, a busy or unreadable file): a sweep's status
    cannot be told, and the API says so (503 with Retry-After, ``service/errors.py``) instead of
    guessing from the files on disk."""

    def __init__(self, cause: BaseException):
        self.cause = cause
        super().__init__(f"{type(cause).__name__}: {cause}")


class SweepData:
    """Shared read access; one per app. Reads of results (runs, curves, reports) need only the
    store; status needs the registry: while it cannot be read, status reads raise
    :class:`RegistryUnavailable` (never a status guessed from the store)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = ResultsStore(settings.results)
        self.registry = open_registry(settings.registry, self.store)
        self._runs, self._reports, self.pages = _LRU(), _LRU(), _LRU()
        self._parts, self._status, self._exists = _Ttl(), _Ttl(), _Ttl(2.0)
        self._specs: dict[str, dict] = {}  # sweep -> its spec's JSON, for the report's expected sizes

    # -- registry reads: RegistryUnavailable when it cannot be read ---------------------------
    def _read(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as e:
            log.warning("registry read failed (%s)", e)
            raise RegistryUnavailable(e) from e

    def row(self, sweep_id: str) -> dict:
        return self._read(lambda: self.registry.sweep(sweep_id) or {})

    def trials(self, sweep_id: str) -> list[dict]:
        return self._read(lambda: self.registry.trials(sweep_id))

    def sweep_rows(self, status: str | None = None) -> list[dict]:
        return self._read(lambda: self.registry.sweeps(status))

    def planned_parts(self, sweep_id: str) -> dict[str, int] | None:
        """part -> runs planned, from the spec saved beside the results (None without one)."""
        return state.planned_parts(self.store, sweep_id)

    def sweep_ids(self, status: str | None = None) -> list[str]:
        """Sweeps newest first: the registry's, then results with no registry row (finished when
        every run their saved spec plans is stored, else unknown)."""
        ids = [r["sweep_id"] for r in self.sweep_rows(status)]
        if status in (None, "finished", "unknown"):
            known = set(ids) | ({r["sweep_id"] for r in self.sweep_rows()} if status else set())
            extra = [s for s in self.store.sweeps() if s not in known and SWEEP_ID.fullmatch(s)]
            ids += [s for s in extra if status is None or self.status(s)["status"] == status]
        return ids

    # -- results ------------------------------------------------------------------------------
    def parts(self, sweep_id: str) -> frozenset:
        """Verified finished parts (readable, expected row count), re-listed at most every 0.5 s;
        each part file is read once per version (ResultsStore.verify_parts)."""
        def make():
            expected = {t["part"]: t["runs"] for t in self.trials(sweep_id)} or self.planned_parts(sweep_id)
            return self.store.verify_parts(sweep_id, expected).done
        return self._parts.get(sweep_id, make)

    def exists(self, sweep_id: str) -> bool:
        if not SWEEP_ID.fullmatch(sweep_id):
            return False
        return self._exists.get(sweep_id, lambda: bool(self.store.completed_parts(sweep_id))
                                or bool(self.row(sweep_id)))

    def runs(self, sweep_id: str) -> pd.DataFrame:
        key = (sweep_id, self.parts(sweep_id))
        return self._runs.get(key, lambda: self.store.load_runs(sweep_id))

    def curves(self, sweep_id: str, **filters) -> pd.DataFrame:
        return self.store.load_curves(sweep_id, **filters)

    def report(self, sweep_id: str, metric: str, diverged: str = "inf") -> dict:
        """The report's JSON (what ``GET /sweeps/{id}/report`` returns) of :meth:`typed_report`."""
        return self.typed_report(sweep_id, metric, diverged).to_json()

    def typed_report(self, sweep_id: str, metric: str, diverged: str = "inf") -> Report:
        """The typed optimum-shift report (:func:`sweeps.state.sweep_report`), provisional (k/n
        cells) while cells of the sweep's plan are unfinished; sizes of the spec not reached yet are
        named."""
        plan = self._plan(sweep_id)
        key = (sweep_id, self.parts(sweep_id), metric, diverged, repr(plan))

        def make() -> Report:
            from sweeps.refine import load_record

            record = load_record(self.store, sweep_id)  # a refined grid: its rounds and why it stopped
            return state.sweep_report(self.runs(sweep_id), sweep_id=sweep_id, plan=plan, metric=metric,
                                      diverged=diverged, refinement=None if record is None else record.to_json(),
                                      decide=self._decide_record(sweep_id))  # the decide loop: rounds, why it stopped
        return self._reports.get(key, make)

    def _plan(self, sweep_id: str) -> state.Plan:
        """The status' cells (the registry's trials) and the spec's sizes; no cells for results without
        a registry row (they are finished)."""
        spec = self._specs.get(sweep_id)
        if spec is None:  # a sweep's spec never changes: one registry read per sweep that has a row
            row = self.row(sweep_id)
            spec = row.get("spec") or {}
            if row:
                self._specs[sweep_id] = spec
        if not spec:  # no registry row (an in-process run): the spec saved beside its results, for its design
            saved = self.spec_of(sweep_id)
            plan = state.registry_plan(self.status(sweep_id)["cells"], spec)
            return plan if saved is None else replace(plan, design=state.spec_design(saved))
        return state.registry_plan(self.status(sweep_id)["cells"], spec)

    def _spec(self, sweep_id: str):
        from sweeps.spec import parse_spec

        row = self.row(sweep_id)
        try:
            return parse_spec(row["spec"]) if row and row.get("spec") else None
        except ValueError:
            return None

    def spec_of(self, sweep_id: str):
        """The sweep's spec: the registry's, else the one saved beside its results (None if neither)."""
        from sweeps.bookkeeping import load_saved_spec

        return self._spec(sweep_id) or load_saved_spec(self.store, sweep_id)

    def decide_offer(self, sweep_id: str) -> dict | None:
        """What the pages' decide button would spend (dashboards/decide_panel.py): the decide limits
        (the spec's, else the defaults), the runs the sweep has, and the time the most runs would
        take at this sweep's own measured pace (its runs' mean ``wall_s``)."""
        from sweeps.decide import limits

        spec = self.spec_of(sweep_id)
        if spec is None:
            return None
        lim = limits(spec)
        runs = self.runs(sweep_id)
        pace = float(runs["wall_s"].mean()) if "wall_s" in runs.columns and len(runs) else None
        return {"max_runs": lim.max_runs, "max_seeds": lim.max_seeds, "max_rounds": lim.max_rounds,
                "runs_now": len(runs), "seconds": None if pace is None or pace != pace else pace * lim.max_runs}

    def _decide_record(self, sweep_id: str) -> dict | None:
        from sweeps.decide import matching_record

        rec = matching_record(self.store, sweep_id, self.spec_of(sweep_id))
        return None if rec is None else rec.to_json()

    def status(self, sweep_id: str) -> dict:
        """Status, progress per cell and ETA; recomputed at most every 0.5 s per sweep."""
        return self._status.get(sweep_id, lambda: self._read_status(sweep_id))

    def invalidate(self, sweep_id: str) -> None:
        """Forget cached status after a write (submit, cancel) so the next read is fresh."""
        for ttl in (self._status, self._exists, self._parts):
            ttl.items.pop(sweep_id, None)

    def page(self, sweep_id: str, kind: str, render: Callable[[], str]) -> str:
        """A rendered dashboard page, cached until the sweep's finished parts or progress change
        (how many render at once: ``service/guard.py:PageGate``)."""
        st = self.status(sweep_id)
        key = (sweep_id, kind, self.parts(sweep_id), st["status"], round(st["progress"], 2))
        return self.pages.get(key, render)

    def _unregistered(self, sweep_id: str, done: frozenset) -> tuple[str, str | None]:
        """Status of results with no registry row (:func:`sweeps.state.unregistered_status`)."""
        return state.unregistered_status(self.planned_parts(sweep_id), done)

    def _read_status(self, sweep_id: str) -> dict:
        now = time.time()
        row = self.row(sweep_id)
        trials = self.trials(sweep_id) if row else []
        done = self.parts(sweep_id)
        status, error = (row.get("status"), row.get("error")) if row else self._unregistered(sweep_id, done)
        if row and not (self.settings.launch_drivers and row.get("owner") != "cli"):
            # No relaunch will come from us: a running sweep whose driver is gone is shown failed now.
            # (Sweeps we relaunch stay as they are for the < 1 s until the supervisor acts.)
            status, error = effective_status(row, self.settings.registry)
        note = row.get("note")
        planned = None if row else self.planned_parts(sweep_id)
        stored = len(self.runs(sweep_id)) if not row and not planned else 0  # no plan: what is stored is all
        p = state.progress(row, trials, done, status, error, planned=planned, stored_runs=stored)
        status, error, runs_done, runs_total, cells = p.status, p.error, p.runs_done, p.runs_total, list(p.cells)
        running = sum(eta.running_runs(c["runs"], c["progress"]) for c in cells if c["status"] == "running")
        finishes = [(t["finished_at"], t["runs"]) for t in trials if t.get("finished_at") and t["part"] in done]
        eta_s = eta.eta_seconds(now, row.get("started_at"), finishes, runs_done, runs_total) \
            if status == "running" else None
        spec = row.get("spec") or {}
        beat = row.get("heartbeat_at")
        return {
            "id": sweep_id, "name": row.get("name") or sweep_id.rsplit("-", 1)[0], "status": status,
            "description": spec.get("description", ""),
            "runs_done": runs_done, "runs_in_progress": round(running, 2), "runs_total": runs_total,
            "progress": eta.fraction(runs_done, running, runs_total, status == "finished"),
            "eta_s": None if eta_s is None else round(eta_s, 1),
            "error": error, "note": note, "created_at": row.get("created_at"), "updated_at": row.get("updated_at"),
            "started_at": row.get("started_at"),
            "heartbeat_age_s": round(now - beat, 1) if beat and status in ACTIVE else None,
            "restarts": row.get("restarts") or 0,
            "metric": spec.get("metric", state.DEFAULT_METRIC),
            "cells": cells,
        }
