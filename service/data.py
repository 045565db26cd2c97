"""Reading a sweep's state for the API: registry row + results store, with small caches keyed
on what changes them (the set of finished parts), so polling clients don't re-read Parquet or
recompute the report on every request."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import pandas as pd

from mutransfer.report import optimum_shift_report
from mutransfer.results import ResultsStore
from service.settings import Settings
from sweeps import progress as eta
from sweeps.recovery import open_registry
from sweeps.registry import ACTIVE, TERMINAL, effective_status

log = logging.getLogger("service")

# Server-generated ids look like <spec name>-<8 hex>; anything else is not a sweep (never a path).
# Always used with fullmatch: `$` would also match before a trailing newline ("...%0A").
SWEEP_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}-[0-9a-f]{8}")


PAGE_RENDERS = 2  # dashboard pages rendered at once (SweepData.page)


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
        self._sizes: dict[str, dict] = {}  # sweep -> the spec's sizes, for the report
        self._renders = threading.BoundedSemaphore(PAGE_RENDERS)

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
        from sweeps.local import load_saved_spec
        from sweeps.plan import trials as plan_trials

        spec = load_saved_spec(self.store, sweep_id)
        return None if spec is None else {t.part: len(t.runs) for t in plan_trials(spec)}

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
        """The optimum-shift report, provisional (k/n cells) while cells of the sweep's plan are
        unfinished; sizes of the spec not reached yet are named."""
        plan = self._plan(sweep_id)
        key = (sweep_id, self.parts(sweep_id), metric, diverged, repr(sorted(plan.items())))

        def make() -> dict:
            rep = optimum_shift_report(self.runs(sweep_id), metric=metric, diverged=diverged, **plan)
            rep["sweep_id"] = sweep_id
            from sweeps.refine import load_record

            record = load_record(self.store, sweep_id)  # a refined grid: its rounds and why it stopped
            if record is not None:
                rep["refinement"] = record.to_json()
            return rep
        return self._reports.get(key, make)

    def _plan(self, sweep_id: str) -> dict:
        """cells_total / cells_done (the status' cells, i.e. the registry's trials) and expected_sizes
        (the spec's widths/depths); nothing for results without a registry row (they are finished)."""
        sizes = self._sizes.get(sweep_id)
        if sizes is None:  # a sweep's sizes never change: one registry read per sweep that has a row
            row = self.row(sweep_id)
            spec = row.get("spec") or {}
            sizes = {k: list(spec[f"{k}s"]) for k in ("width", "depth") if isinstance(spec.get(f"{k}s"), list)}
            if row:
                self._sizes[sweep_id] = sizes
        cells: dict[str, bool] = {}
        for c in self.status(sweep_id)["cells"]:
            cid = c.get("cell_id") or c["part"]
            cells[cid] = cells.get(cid, True) and c["status"] == "finished"
        out: dict = {"expected_sizes": sizes} if sizes else {}
        if cells:
            out.update(cells_total=len(cells), cells_done=sum(cells.values()))
        return out

    def status(self, sweep_id: str) -> dict:
        """Status, progress per cell and ETA; recomputed at most every 0.5 s per sweep."""
        return self._status.get(sweep_id, lambda: self._read_status(sweep_id))

    def invalidate(self, sweep_id: str) -> None:
        """Forget cached status after a write (submit, cancel) so the next read is fresh."""
        for ttl in (self._status, self._exists, self._parts):
            ttl.items.pop(sweep_id, None)

    def page(self, sweep_id: str, kind: str, render: Callable[[], str]) -> str:
        """A rendered dashboard page, cached until the sweep's finished parts or progress change.
        At most ``PAGE_RENDERS`` pages render at once (rendering is CPU-bound Python: more threads
        would only share the GIL, and delay every other answer); the others wait without it."""
        st = self.status(sweep_id)
        key = (sweep_id, kind, self.parts(sweep_id), st["status"], round(st["progress"], 2))

        def bounded() -> str:
            with self._renders:
                return render()
        return self.pages.get(key, bounded)

    def _unregistered(self, sweep_id: str, done: frozenset) -> tuple[str, str | None]:
        """Status of results with no registry row: finished only when every run its saved spec plans
        is in the store (verified), else ``unknown`` saying what is there."""
        planned = self.planned_parts(sweep_id)
        if planned is None:
            return "unknown", ("not in this service's registry and no spec saved beside its results: whether "
                               "every planned run is here cannot be told")
        have = sum(n for p, n in planned.items() if p in done)
        if have == sum(planned.values()):
            return "finished", None
        return "unknown", (f"not in this service's registry; {have} of {sum(planned.values())} planned runs are in "
                           "the store (resubmit the spec to finish it)")

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
        if not row:  # results without a registry row (a CLI run with another registry, copied results)
            planned = self.planned_parts(sweep_id)
            if planned:
                runs_total = sum(planned.values())
                runs_done = sum(n for p, n in planned.items() if p in done)
            else:  # no plan to compare with: what is stored is all that is known
                runs_done = runs_total = len(self.runs(sweep_id))
        else:
            runs_total = row.get("runs_total") or 0
            runs_done = sum(t["runs"] for t in trials if t["part"] in done)
            missing = [t["part"] for t in trials if t["part"] not in done]
            if status == "finished" and missing:  # its stored results are not all there (any more)
                status = "failed"
                error = (f"{len(missing)} of {len(trials)} cells' stored results are missing or unreadable; "
                         "they are quarantined and recomputed (or resubmit the spec)")
        cells = []
        for t in trials:
            st, note_t = t["status"], t.get("note")
            if t["part"] in done:
                st = "finished"
            elif st == "finished":
                st, note_t = "queued", note_t or "its stored results are missing or unreadable; to be recomputed"
            elif status == "cancelled" and st in ACTIVE:
                st = "cancelled"
            elif st == "running" and status != "running":
                st = "queued"  # a stale row of a driver that is gone
            cells.append({"part": t["part"], "cell_id": t["cell_id"], "runs": t["runs"], "status": st,
                          "progress": 1.0 if st == "finished" else (t["progress"] if st == "running" else 0.0),
                          "attempts": t["attempts"], "error": t["error"], "note": note_t})
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
            "metric": spec.get("metric", "min_train_loss"),
            "cells": cells,
        }
