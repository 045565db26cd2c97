"""The sweep registry: SQLite (WAL mode) beside the results, recording sweeps, their specs, status,
heartbeats and per-cell progress. A sweep's driver writes its own rows; the service reads them,
and writes only what it decides (submissions, cancel flags, relaunches, failures it detects).

It is bookkeeping, not the source of truth for results: the Parquet parts are. A sweep's finished
cells are always recomputed from the store, so a lost or corrupted registry loses nothing: a file
SQLite cannot read is moved aside (``registry.sqlite.corrupt-<time>``) and a new one is rebuilt from
the results store and the specs stored beside it (``sweeps/recovery.py``), by whichever process
first notices.

**Status vocabulary** (:class:`Status`, the one place it is defined): sweeps and their cells share
it. queued (accepted, waiting for a driver / a cell not started), running, finished (every cell's
results are in the store and verified), failed (``error`` says why), cancelled (finished cells kept).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator


class Status(str, Enum):
    """Status of a sweep and of each of its cells (one vocabulary for both)."""

    queued = "queued"
    running = "running"
    finished = "finished"
    failed = "failed"
    cancelled = "cancelled"


STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
ACTIVE: tuple[str, ...] = ("queued", "running")
TERMINAL: tuple[str, ...] = ("finished", "failed", "cancelled")
SWEEP_STATUSES = TRIAL_STATUSES = STATUSES  # older names
_LEGACY = {"pending": "queued", "done": "finished", "skipped": "finished"}  # cell statuses before one vocabulary

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id     TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    spec_json    TEXT NOT NULL,
    spec_hash    TEXT NOT NULL,
    status       TEXT NOT NULL,          -- Status
    runs_total   INTEGER NOT NULL,
    trials_total INTEGER NOT NULL,
    address      TEXT,
    error        TEXT,
    driver_pid   INTEGER,                -- the process driving it
    cancel       INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    sweep_id   TEXT NOT NULL,
    part       TEXT NOT NULL,
    cell_id    TEXT NOT NULL,
    runs       INTEGER NOT NULL,
    status     TEXT NOT NULL,            -- Status
    progress   REAL NOT NULL DEFAULT 0,  -- fraction of the trial's steps done
    attempts   INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (sweep_id, part)
);
"""
# Columns added since the first schema (added to older files on open).
_ADDED = {
    "sweeps": {
        "owner": "TEXT",                 # service | cli: who relaunches it when its driver dies
        "heartbeat_at": "REAL",          # the current driver's last heartbeat (every second while it lives)
        "launched_at": "REAL",           # when the current driver was launched (its liveness before a beat)
        "launch_gen": "INTEGER NOT NULL DEFAULT 0",  # launches so far; a driver beats only for its own
        "started_at": "REAL",            # when the current driver started training
        "runs_at_start": "INTEGER",      # runs already done then (resumed work, not this driver's)
        "restarts": "INTEGER NOT NULL DEFAULT 0",
        "note": "TEXT",                  # what the service did about it (relaunches, recoveries)
    },
    "trials": {"note": "TEXT", "finished_at": "REAL"},
}


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt))(: .*)?$")
ERROR_CHARS = 500  # the most a cell's error shows


def one_line_error(text: str | BaseException | None) -> str | None:
    """A cell's error as one line for the status: terminal colour codes removed, and of a traceback
    (Ray wraps a trial's exception in its own) only the innermost ``SomeError: message`` line."""
    if text is None:
        return None
    if isinstance(text, BaseException):
        text = f"{type(text).__name__}: {text}"
    lines = [ln.strip() for ln in _ANSI.sub("", str(text)).splitlines() if ln.strip()]
    if not lines:
        return None
    exc = [ln for ln in lines if _EXC_LINE.match(ln)]
    line = exc[-1] if exc else lines[-1]
    return line if len(line) <= ERROR_CHARS else line[:ERROR_CHARS - 1] + "…"


def default_path(results_root: str | Path) -> Path | None:
    """``<root>/registry.sqlite`` for a local results root; None for object stores (pass a local
    path explicitly there: SQLite needs a POSIX filesystem)."""
    root = str(results_root)
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://")) / "registry.sqlite"


def _corrupt(e: sqlite3.DatabaseError) -> bool:
    """A file SQLite cannot read as a database (not a busy or locked one)."""
    name = getattr(e, "sqlite_errorname", "")
    return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or any(
        w in str(e) for w in ("file is not a database", "malformed", "file is encrypted"))


class Registry:
    """One registry file. Every method opens its own short connection (processes share the file).

    ``rebuild(registry)`` is called after a corrupt file was moved aside and a fresh one created
    (the service and the CLI pass ``sweeps.recovery.rebuild`` bound to their results store).
    """

    def __init__(self, path: str | Path, rebuild: Callable[["Registry"], None] | None = None):
        self.path = Path(path)
        self.rebuild = rebuild
        self.recovered: list[str] = []  # where corrupt files were moved, oldest first
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._call(self._init_schema)

    # -- plumbing ---------------------------------------------------------------------------
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

    def _call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` in a transaction; a corrupt file is moved aside, rebuilt, and ``fn`` retried once."""
        try:
            with self._db() as db:
                return fn(db)
        except sqlite3.DatabaseError as e:
            if not _corrupt(e) and "no such table" not in str(e):
                raise
            self._recover(str(e))
            with self._db() as db:
                return fn(db)

    @staticmethod
    def _init_schema(db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)
        for table, cols in _ADDED.items():
            have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            for col, decl in cols.items():
                if col not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {decl}")
        for old, new in _LEGACY.items():
            db.execute("UPDATE trials SET status=? WHERE status=?", (new, old))

    def _recover(self, why: str) -> None:
        """Replace a corrupt file by a rebuilt one, atomically: the new registry is built (and
        filled by ``rebuild``) in a file of its own, then renamed over the old one, which is kept as
        ``registry.sqlite.corrupt-<time>``. Readers see the old file or the complete new one; one
        process recovers at a time, the others wait for it."""
        with open(str(self.path) + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:  # another process may have recovered it already
                with self._db() as db:
                    db.execute("SELECT count(*) FROM sweeps").fetchone()
                    self._init_schema(db)
                return
            except sqlite3.DatabaseError as e:
                if not _corrupt(e) and "no such table" not in str(e):
                    raise
            aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            fresh = Path(f"{self.path}.rebuilding-{os.getpid()}")
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(fresh) + suffix).unlink(missing_ok=True)
            new = Registry(fresh)
            new.recovered = [*self.recovered, aside]
            if self.rebuild is not None:
                self.rebuild(new)
            with sqlite3.connect(fresh) as db:  # one self-contained file (the WAL folded in)
                db.execute("PRAGMA journal_mode=DELETE")
            if self.path.exists():
                try:
                    os.link(self.path, aside)
                except OSError:
                    os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                if Path(str(self.path) + suffix).exists():
                    os.replace(str(self.path) + suffix, aside + suffix)
            os.replace(fresh, self.path)
            self.recovered.append(aside)

    # -- writes -----------------------------------------------------------------------------
    def register(self, sweep_id: str, name: str, spec: dict, spec_hash: str, trials: list[tuple[str, str, int]],
                 address: str | None = None, *, owner: str = "cli", fresh: bool = True) -> None:
        """Create a sweep and its cells (part, cell_id, runs), keeping cells already recorded.

        ``fresh`` (a new submission or ``mutransfer run``): the sweep is queued again with its cancel
        flag, error, restart count and liveness record cleared (``launched_at`` NULL: not launched
        since this submission). A driver re-registering a sweep it was given
        (``fresh=False``) never clears a cancel sent before it started.
        """
        now = time.time()
        # A fresh submission of the same sweep keeps its latest spec: its refine:/decide: limits (not part of
        # the hash, so the same sweep id) are what its driver reads.
        on_conflict = ("status='queued', address=excluded.address, error=NULL, cancel=0, restarts=0, note=NULL, "
                       "heartbeat_at=NULL, launched_at=NULL, owner=excluded.owner, updated_at=excluded.updated_at, "
                       "spec_json=excluded.spec_json") \
            if fresh else "address=excluded.address"
        # A refined sweep registers again with more cells (sweeps/refine.py): its totals grow.
        on_conflict += ", runs_total=excluded.runs_total, trials_total=excluded.trials_total"

        def write(db):
            db.execute(
                "INSERT INTO sweeps (sweep_id, name, spec_json, spec_hash, status, runs_total, trials_total, "
                f"address, owner, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(sweep_id) "
                f"DO UPDATE SET {on_conflict}",
                (sweep_id, name, json.dumps(spec), spec_hash, "queued", sum(t[2] for t in trials),
                 len(trials), address, owner, now, now))
            db.executemany(
                "INSERT INTO trials (sweep_id, part, cell_id, runs, status, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(sweep_id, part) DO NOTHING",
                [(sweep_id, p, c, n, "queued", now) for p, c, n in trials])
        self._call(write)

    def _update(self, table: str, where: str, args: tuple, **cols) -> None:
        cols["updated_at"] = time.time()
        sets = ", ".join(f"{k}=?" for k in cols)
        self._call(lambda db: db.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*cols.values(), *args)))

    def set_sweep(self, sweep_id: str, status: str, error: str | None = None, **cols) -> None:
        assert status in STATUSES, status
        self._update("sweeps", "sweep_id=?", (sweep_id,), status=status, error=error, **cols)

    def start_run(self, sweep_id: str, runs_at_start: int, pid: int | None = None) -> None:
        """A driver begins training: running, with the clock its ETA is measured from."""
        now = time.time()
        self._update("sweeps", "sweep_id=?", (sweep_id,), status="running", error=None, started_at=now,
                     heartbeat_at=now, runs_at_start=int(runs_at_start), driver_pid=pid or os.getpid())

    def heartbeat(self, sweep_id: str, generation: int | None = None) -> None:
        """The driver of launch ``generation`` is alive (a driver of an older launch writes nothing)."""
        now = time.time()
        self._call(lambda db: db.execute(
            "UPDATE sweeps SET heartbeat_at=? WHERE sweep_id=? AND (? IS NULL OR launch_gen=?)",
            (now, sweep_id, generation, generation)))

    def new_launch(self, sweep_id: str) -> int:
        """A driver is about to be launched: a fresh liveness record (``launched_at`` now, no heartbeat
        yet, the next launch generation, returned). Whatever path starts it (a submission, a
        resubmission of a finished or cancelled sweep, a recompute of quarantined parts, a relaunch),
        the supervisor measures its silence from here, never from an earlier driver's last beat."""
        now = time.time()

        def write(db):
            db.execute("UPDATE sweeps SET launch_gen=launch_gen+1, launched_at=?, heartbeat_at=NULL, "
                       "updated_at=? WHERE sweep_id=?", (now, now, sweep_id))
            row = db.execute("SELECT launch_gen FROM sweeps WHERE sweep_id=?", (sweep_id,)).fetchone()
            return int(row[0]) if row else 0
        return self._call(write)

    def set_driver(self, sweep_id: str, pid: int | None) -> None:
        self._update("sweeps", "sweep_id=?", (sweep_id,), driver_pid=pid)

    def request_cancel(self, sweep_id: str) -> None:
        self._update("sweeps", "sweep_id=?", (sweep_id,), cancel=1)

    def relaunched(self, sweep_id: str, note: str) -> None:
        """The service starts another driver for a sweep whose driver died."""
        self._call(lambda db: db.execute(
            "UPDATE sweeps SET status='queued', restarts=restarts+1, note=?, heartbeat_at=NULL, driver_pid=NULL, "
            "updated_at=? WHERE sweep_id=?", (note, time.time(), sweep_id)))

    def set_note(self, sweep_id: str, note: str | None) -> None:
        self._update("sweeps", "sweep_id=?", (sweep_id,), note=note)

    def set_trial(self, sweep_id: str, part: str, status: str | None = None, *, progress: float | None = None,
                  error: str | None = None, attempt: bool = False, note: str | None = None) -> None:
        assert status is None or status in STATUSES, status
        sets, args = ["updated_at=?"], [time.time()]
        if status is not None:
            sets.append("status=?"), args.append(status)
            if status == "finished":
                sets.append("finished_at=?"), args.append(time.time())
        if progress is not None:
            sets.append("progress=?"), args.append(float(progress))
        if error is not None or status == "finished":
            sets.append("error=?"), args.append(one_line_error(error))
        if note is not None:
            sets.append("note=?"), args.append(note or None)
        if attempt:
            sets.append("attempts=attempts+1")
        self._call(lambda db: db.execute(f"UPDATE trials SET {', '.join(sets)} WHERE sweep_id=? AND part=?",
                                         (*args, sweep_id, part)))

    # -- reads ------------------------------------------------------------------------------
    def ping(self) -> None:
        """Raises when the registry cannot be read (the service's /health)."""
        self._call(lambda db: db.execute("SELECT 1 FROM sweeps LIMIT 1").fetchall())

    def sweep(self, sweep_id: str) -> dict | None:
        row = self._call(lambda db: db.execute("SELECT * FROM sweeps WHERE sweep_id=?", (sweep_id,)).fetchone())
        return _sweep_row(row) if row else None

    def sweeps(self, status: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM sweeps", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        rows = self._call(lambda db: db.execute(q + " ORDER BY created_at DESC", args).fetchall())
        return [_sweep_row(r) for r in rows]

    def trials(self, sweep_id: str) -> list[dict]:
        rows = self._call(lambda db: db.execute(
            "SELECT * FROM trials WHERE sweep_id=? ORDER BY part", (sweep_id,)).fetchall())
        return [dict(r) for r in rows]

    def progress(self, sweep_id: str) -> dict[str, Any]:
        """Runs done/total (counting partly trained cells by their step fraction) and per-status counts."""
        ts = self.trials(sweep_id)
        done = sum(t["runs"] for t in ts if t["status"] == "finished")
        partial = sum(t["runs"] * t["progress"] for t in ts if t["status"] == "running")
        counts = {s: sum(t["status"] == s for t in ts) for s in STATUSES}
        return {"runs_done": done, "runs_in_progress": partial, "runs_total": sum(t["runs"] for t in ts),
                "trials": counts}


def last_sign_of_life(row: dict) -> float | None:
    """When the current driver last showed it lives: its heartbeat, or its launch if it has not
    beaten yet (``new_launch`` clears the previous driver's heartbeat)."""
    times = [t for t in (row.get("heartbeat_at"), row.get("launched_at")) if t]
    return max(times) if times else None


def effective_status(row: dict, registry_path: str | Path) -> tuple[str, str | None]:
    """(status, error) as a reader should show them: a sweep recorded ``running`` whose driver is gone
    (its lock is free: the process ended, however it ended) is ``failed``, not running forever. The
    service's supervisor also relaunches such sweeps; readers without it (``mutransfer list``) use this."""
    from sweeps import locks

    if row.get("status") == "running" and not locks.held(locks.lock_path(registry_path, row["sweep_id"])):
        return "failed", row.get("error") or (
            f"its driver (pid {row.get('driver_pid')}) stopped before the sweep finished; resubmit the spec or "
            "rerun the same `mutransfer run` to resume it (finished cells are kept)")
    return row.get("status"), row.get("error")


def _sweep_row(row: sqlite3.Row) -> dict:
    d = dict(row)
    try:
        d["spec"] = json.loads(d.pop("spec_json"))
    except (TypeError, ValueError):  # a corrupted row must not break readers
        d["spec"] = None
    return d
