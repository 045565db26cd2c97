"""The sweep registry: SQLite (WAL mode) beside the results, recording sweeps, their specs,
status, and per-trial progress. The driver is its only writer; the service reads it.

It is bookkeeping, not the source of truth for results: the Parquet parts are. A sweep's finished
cells are always recomputed from the store, so a lost or corrupted registry row loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id     TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    spec_json    TEXT NOT NULL,
    spec_hash    TEXT NOT NULL,
    status       TEXT NOT NULL,          -- queued | running | finished | failed | cancelled
    runs_total   INTEGER NOT NULL,
    trials_total INTEGER NOT NULL,
    address      TEXT,
    error        TEXT,
    driver_pid   INTEGER,                -- the process driving it (service-launched sweeps)
    cancel       INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    sweep_id   TEXT NOT NULL,
    part       TEXT NOT NULL,
    cell_id    TEXT NOT NULL,
    runs       INTEGER NOT NULL,
    status     TEXT NOT NULL,            -- pending | running | done | failed | skipped
    progress   REAL NOT NULL DEFAULT 0,  -- fraction of the trial's steps done
    attempts   INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (sweep_id, part)
);
"""

SWEEP_STATUSES = ("queued", "running", "finished", "failed", "cancelled")
TRIAL_STATUSES = ("pending", "running", "done", "failed", "skipped")


def default_path(results_root: str | Path) -> Path | None:
    """``<root>/registry.sqlite`` for a local results root; None for object stores (pass a local
    path explicitly there: SQLite needs a POSIX filesystem)."""
    root = str(results_root)
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://")) / "registry.sqlite"


class Registry:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.row_factory = sqlite3.Row
            with db:
                yield db
        finally:
            db.close()

    # -- writes (driver) --------------------------------------------------------------------
    def register(self, sweep_id: str, name: str, spec: dict, spec_hash: str, trials: list[tuple[str, str, int]],
                 address: str | None = None) -> None:
        """Create or refresh a sweep and its trials (part, cell_id, runs); keeps finished trials."""
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT INTO sweeps (sweep_id, name, spec_json, spec_hash, status, runs_total, trials_total, "
                "address, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(sweep_id) DO UPDATE "
                "SET status='queued', address=excluded.address, error=NULL, cancel=0, "
                "updated_at=excluded.updated_at",
                (sweep_id, name, json.dumps(spec), spec_hash, "queued", sum(t[2] for t in trials),
                 len(trials), address, now, now))
            db.executemany(
                "INSERT INTO trials (sweep_id, part, cell_id, runs, status, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(sweep_id, part) DO NOTHING",
                [(sweep_id, p, c, n, "pending", now) for p, c, n in trials])

    def set_sweep(self, sweep_id: str, status: str, error: str | None = None) -> None:
        assert status in SWEEP_STATUSES
        with self._db() as db:
            db.execute("UPDATE sweeps SET status=?, error=?, updated_at=? WHERE sweep_id=?",
                       (status, error, time.time(), sweep_id))

    def set_driver(self, sweep_id: str, pid: int | None) -> None:
        with self._db() as db:
            db.execute("UPDATE sweeps SET driver_pid=?, updated_at=? WHERE sweep_id=?", (pid, time.time(), sweep_id))

    def request_cancel(self, sweep_id: str) -> None:
        with self._db() as db:
            db.execute("UPDATE sweeps SET cancel=1, updated_at=? WHERE sweep_id=?", (time.time(), sweep_id))

    def set_trial(self, sweep_id: str, part: str, status: str | None = None, *, progress: float | None = None,
                  error: str | None = None, attempt: bool = False) -> None:
        assert status is None or status in TRIAL_STATUSES
        sets, args = ["updated_at=?"], [time.time()]
        if status is not None:
            sets.append("status=?"), args.append(status)
        if progress is not None:
            sets.append("progress=?"), args.append(float(progress))
        if error is not None or status == "done":
            sets.append("error=?"), args.append(error)
        if attempt:
            sets.append("attempts=attempts+1")
        with self._db() as db:
            db.execute(f"UPDATE trials SET {', '.join(sets)} WHERE sweep_id=? AND part=?",
                       (*args, sweep_id, part))

    # -- reads ------------------------------------------------------------------------------
    def sweep(self, sweep_id: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM sweeps WHERE sweep_id=?", (sweep_id,)).fetchone()
        return _sweep_row(row) if row else None

    def sweeps(self, status: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM sweeps", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        with self._db() as db:
            rows = db.execute(q + " ORDER BY created_at DESC", args).fetchall()
        return [_sweep_row(r) for r in rows]

    def trials(self, sweep_id: str) -> list[dict]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM trials WHERE sweep_id=? ORDER BY part", (sweep_id,)).fetchall()
        return [dict(r) for r in rows]

    def progress(self, sweep_id: str) -> dict[str, Any]:
        """Runs done/total (counting partly trained trials by their step fraction) and per-status counts."""
        ts = self.trials(sweep_id)
        done = sum(t["runs"] for t in ts if t["status"] in ("done", "skipped"))
        partial = sum(t["runs"] * t["progress"] for t in ts if t["status"] == "running")
        counts = {s: sum(t["status"] == s for t in ts) for s in TRIAL_STATUSES}
        return {"runs_done": done, "runs_in_progress": partial, "runs_total": sum(t["runs"] for t in ts),
                "trials": counts}


def _sweep_row(row: sqlite3.Row) -> dict:
    d = dict(row)
    try:
        d["spec"] = json.loads(d.pop("spec_json"))
    except (TypeError, ValueError):  # a corrupted row must not break readers
        d["spec"] = None
    return d
