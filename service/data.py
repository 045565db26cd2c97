"""Reading a sweep's state for the API: registry row + results store, with small caches keyed
on what changes them (the set of finished parts), so polling clients don't re-read Parquet or
recompute the report on every request."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import pandas as pd

from mutransfer.report import optimum_shift_report
from mutransfer.results import ResultsStore
from service.settings import Settings
from sweeps.registry import Registry

# Server-generated ids look like <spec name>-<8 hex>; anything else is not a sweep (never a path).
SWEEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}-[0-9a-f]{8}$")


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


class SweepData:
    """Shared read access; one per app."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = ResultsStore(settings.results)
        self.registry = Registry(settings.registry)
        self._runs, self._reports, self.pages = _LRU(), _LRU(), _LRU()
        self._parts, self._status, self._exists = _Ttl(), _Ttl(), _Ttl(2.0)

    def parts(self, sweep_id: str) -> frozenset:
        """Finished parts, re-listed at most every 0.5 s per sweep."""
        return self._parts.get(sweep_id, lambda: frozenset(self.store.completed_parts(sweep_id)))

    def exists(self, sweep_id: str) -> bool:
        if not SWEEP_ID.match(sweep_id):
            return False
        return self._exists.get(sweep_id, lambda: self.registry.sweep(sweep_id) is not None
                                or bool(self.parts(sweep_id)))

    def runs(self, sweep_id: str) -> pd.DataFrame:
        key = (sweep_id, self.parts(sweep_id))
        return self._runs.get(key, lambda: self.store.load_runs(sweep_id))

    def curves(self, sweep_id: str, **filters) -> pd.DataFrame:
        return self.store.load_curves(sweep_id, **filters)

    def report(self, sweep_id: str, metric: str) -> dict:
        key = (sweep_id, self.parts(sweep_id), metric)

        def make() -> dict:
            rep = optimum_shift_report(self.runs(sweep_id), metric=metric)
            rep["sweep_id"] = sweep_id
            return rep
        return self._reports.get(key, make)

    def status(self, sweep_id: str) -> dict:
        """Status, progress per cell and ETA; recomputed at most every 0.5 s per sweep."""
        return self._status.get(sweep_id, lambda: self._read_status(sweep_id))

    def invalidate(self, sweep_id: str) -> None:
        """Forget cached status after a write (submit, cancel) so the next read is fresh."""
        for ttl in (self._status, self._exists, self._parts):
            ttl.items.pop(sweep_id, None)

    def page(self, sweep_id: str, kind: str, render: Callable[[], str]) -> str:
        """A rendered dashboard page, cached until the sweep's finished parts or progress change."""
        st = self.status(sweep_id)
        key = (sweep_id, kind, self.parts(sweep_id), st["status"], round(st["progress"], 2))
        return self.pages.get(key, render)

    def _read_status(self, sweep_id: str) -> dict:
        row = self.registry.sweep(sweep_id) or {}
        trials = self.registry.trials(sweep_id) if row else []
        parts = self.parts(sweep_id)
        runs_total = row.get("runs_total") or 0
        runs_done = sum(t["runs"] for t in trials if t["part"] in parts)
        partial = sum(t["runs"] * t["progress"] for t in trials if t["status"] == "running" and t["part"] not in parts)
        if not row:  # results without a registry row (e.g. a CLI run elsewhere)
            runs_done = runs_total = len(self.runs(sweep_id))
        status = row.get("status") or "finished"
        eta = None
        if status == "running" and row.get("updated_at") and runs_total:
            frac = (runs_done + partial) / runs_total
            elapsed = time.time() - row["created_at"]
            if frac > 0:
                eta = max(0.0, elapsed * (1 - frac) / frac)
        spec = row.get("spec") or {}
        return {
            "id": sweep_id, "name": row.get("name") or sweep_id.rsplit("-", 1)[0], "status": status,
            "description": spec.get("description", ""),
            "runs_done": runs_done, "runs_in_progress": round(partial, 2), "runs_total": runs_total,
            "progress": (runs_done + partial) / runs_total if runs_total else 1.0,
            "eta_s": eta, "error": row.get("error"), "created_at": row.get("created_at"),
            "updated_at": row.get("updated_at"), "metric": spec.get("metric", "min_train_loss"),
            "cells": [{"part": t["part"], "cell_id": t["cell_id"], "runs": t["runs"],
                       "status": "done" if t["part"] in parts else t["status"],
                       "progress": 1.0 if t["part"] in parts else t["progress"], "attempts": t["attempts"],
                       "error": t["error"]} for t in trials],
        }
