"""``mutransfer list``: one line per sweep of a results root — id, name, status, runs done/total,
verdicts and age — from the sweep registry (status, progress, spec) and the results store (finished
cells, runs), so sweeps run without a registry (``--executor local``, copied results) are listed too.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mutransfer.report import build_report
from mutransfer.results import ResultsStore

from sweeps import state
from sweeps.registry import ACTIVE  # statuses whose verdicts are provisional


def _registry(store: ResultsStore):
    from sweeps.registry import Registry, default_path

    path = default_path(store.root)
    if path is None or not path.exists():
        return None
    try:
        return Registry(path)
    except Exception:  # an unreadable registry must not hide the results
        return None


def _spec_of(store: ResultsStore, sweep_id: str, row: dict | None):
    from sweeps.spec import parse_spec

    if row and row.get("spec"):
        try:
            return parse_spec(row["spec"])
        except Exception:
            pass
    try:
        with store.filesystem.open_input_stream(f"{store.base_path}/specs/{sweep_id}.json") as f:
            return parse_spec(json.loads(f.read().decode()))
    except (OSError, ValueError):
        return None


def _verdicts(runs, metric: str, spec=None) -> list[dict[str, Any]]:
    from sweeps.state import spec_design, verdicts

    if runs is None or len(runs) == 0:
        return []
    return verdicts(build_report(runs, metric=metric, **spec_design(spec)))


def sweep_rows(results: str, *, verdicts: bool = True) -> list[dict[str, Any]]:
    """Every sweep of ``results``, newest first: ``id``, ``name``, ``status`` (as the service says it,
    :mod:`sweeps.state`: the registry's, adjusted for what the store holds; for results without a
    registry row finished or unknown), ``runs_done``, ``runs_total``, ``verdicts`` (per analysis:
    setting and verdict, from the runs finished so far), ``provisional`` and ``created_at``."""
    from sweeps.plan import count_runs
    from sweeps.registry import effective_status

    store = ResultsStore(results)
    reg = _registry(store)
    rows = []
    try:
        reg_rows = reg.sweeps() if reg is not None else []
    except Exception:
        reg_rows = []
    known = {r["sweep_id"]: r for r in reg_rows}
    ids = [r["sweep_id"] for r in reg_rows] + [s for s in store.sweeps() if s not in known]
    for sid in ids:
        row = known.get(sid)
        spec = _spec_of(store, sid, row)
        trials = reg.trials(sid) if row is not None else []
        expected = {t["part"]: t["runs"] for t in trials} or None
        done = store.verify_parts(sid, expected).done  # readable, with all their rows
        runs = store.load_runs(sid) if done else None
        planned = None if row is not None else state.planned_parts(store, sid)
        if row is not None:
            status, error = effective_status(row, reg.path)  # a dead driver's sweep is not running
        else:
            status, error = state.unregistered_status(planned, done)
        p = state.progress(row, trials, done, status, error, planned=planned,
                           stored_runs=0 if runs is None else len(runs))
        total = p.runs_total or (count_runs(spec) if spec is not None else 0)  # a row written before runs_total
        metric = spec.metric if spec is not None else state.DEFAULT_METRIC
        rows.append({
            "id": sid, "name": (row or {}).get("name") or (spec.name if spec else sid.rsplit("-", 1)[0]),
            "status": p.status, "runs_done": int(p.runs_done), "runs_total": int(total), "metric": metric,
            "verdicts": _verdicts(runs, metric, spec) if verdicts else None,
            "provisional": p.status in ACTIVE or p.runs_done < total,
            "created_at": (row or {}).get("created_at"),
        })
    return rows


def _age(t: Any, now: float) -> str:
    if not isinstance(t, (int, float)):
        return "-"
    s = max(0.0, now - t)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def format_rows(rows: list[dict[str, Any]], now: float | None = None) -> str:
    """The rows as an aligned text table (verdicts joined with '; ', marked provisional while the
    sweep is unfinished)."""
    now = time.time() if now is None else now
    if not rows:
        return "no sweeps"
    table = [("ID", "NAME", "STATUS", "RUNS", "VERDICTS", "AGE")]
    for r in rows:
        if r["verdicts"] is None:
            v = "(not computed)"
        else:
            v = "; ".join(f"{x['setting']}: {x['verdict']}" for x in r["verdicts"]) or "-"
            if r["verdicts"] and r["provisional"]:
                v += " (provisional)"
        table.append((r["id"], r["name"], r["status"], f"{r['runs_done']}/{r['runs_total']}", v,
                      _age(r["created_at"], now)))
    widths = [max(len(str(row[k])) for row in table) for k in range(len(table[0]) - 2)]
    lines = []
    for row in table:
        head = "  ".join(str(c).ljust(w) for c, w in zip(row[:-2], widths))
        lines.append(f"{head}  {row[-1]:>10}  {row[-2]}")
    return "\n".join(lines)
