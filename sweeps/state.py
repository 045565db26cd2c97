"""A sweep's state from its plan and its stored results: which cells are planned and finished, the
sizes its spec expects, and its optimum-shift report with the verdict per analysis — assembled
once here for ``mutransfer report`` (:mod:`sweeps.cli`), ``mutransfer list`` (:mod:`sweeps.listing`)
and the service (:mod:`service.data`).

A *cell* (one algorithm × parametrization × width × depth) may be stored as several parts (chunks);
it is finished when all its parts are. The report is provisional while some planned cell is not
finished (``Report.provisional``); sizes of the spec not reached yet are named in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from mutransfer.report import Report, Verdict, build_report
from mutransfer.report.metrics import DEFAULT_METRIC, SIZE_AXES


@dataclass(frozen=True)
class Plan:
    """What a sweep planned and what of it is finished: ``cells_total``/``cells_done`` (None when
    there is no plan, e.g. results copied without their spec), the spec's ``expected_sizes``
    ({"width": [...], "depth": [...]}) and the ``missing`` parts (not finished yet)."""

    cells_total: int | None = None
    cells_done: int | None = None
    expected_sizes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    missing: tuple[str, ...] | None = None
    design: Mapping[str, Any] = field(default_factory=dict)  # seeds per point, local-grid cells (sweeps/decide.py)

    def report_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`mutransfer.report.build_report` this plan fixes."""
        out: dict[str, Any] = dict(self.design)
        if self.expected_sizes:
            out["expected_sizes"] = {k: list(v) for k, v in self.expected_sizes.items()}
        if self.cells_total is not None:
            out.update(cells_total=self.cells_total, cells_done=self.cells_done)
        return out


def expected_sizes(spec: Any) -> dict[str, list[int]]:
    """The sizes a spec sweeps ({"width": [...], "depth": [...]}), from a SweepSpec or its JSON."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return {k: list(spec[f"{k}s"]) for k in SIZE_AXES if isinstance(spec.get(f"{k}s"), list)}
    return {k: list(getattr(spec, f"{k}s")) for k in SIZE_AXES}


def plan_of(cells: Iterable[tuple[str, str, bool]], sizes: Mapping[str, Sequence[int]] | None = None) -> Plan:
    """A plan from its parts as (part, cell_id, finished): a cell is finished when all its parts are."""
    finished: dict[str, bool] = {}
    missing = []
    for part, cell_id, done in cells:
        finished[cell_id] = finished.get(cell_id, True) and bool(done)
        if not done:
            missing.append(part.removeprefix("cell-"))
    if not finished:
        return Plan(expected_sizes=dict(sizes or {}))
    return Plan(len(finished), sum(finished.values()), dict(sizes or {}), tuple(missing))


def spec_plan(store: Any, sweep_id: str, spec: Any, record: Any = None, decided: Any = None) -> Plan:
    """The plan of a sweep run from ``spec`` (its refinement ``record``, :mod:`sweeps.refine`, and its
    decide loop's record ``decided``, :mod:`sweeps.decide`), against the parts verified finished in
    ``store``."""
    from dataclasses import replace

    from sweeps import decide

    planned = decide.all_trials(spec, record, decided)
    done = store.verify_parts(sweep_id, {t.part: len(t.runs) for t in planned}).done
    plan = plan_of(((t.part, t.cell.cell_id, t.part in done) for t in planned), expected_sizes(spec))
    return replace(plan, design=decide.design(spec, decided))


def registry_plan(cells: Iterable[Mapping[str, Any]], spec: Mapping[str, Any] | None) -> Plan:
    """The plan from the registry's cells (``part``, ``cell_id``, ``status``) and the spec's JSON."""
    from dataclasses import replace

    plan = plan_of(((c["part"], c.get("cell_id") or c["part"], c["status"] == "finished") for c in cells),
                   expected_sizes(spec or {}))
    return replace(plan, design=spec_design(spec))


def spec_design(spec: Any) -> dict[str, Any]:
    """The report's design options of a spec (a SweepSpec or its JSON; {} when unreadable)."""
    from sweeps.decide import design
    from sweeps.spec import parse_spec

    if spec is None or (isinstance(spec, Mapping) and not spec):
        return {}
    try:
        return design(spec if not isinstance(spec, Mapping) else parse_spec(dict(spec)))
    except ValueError:
        return {}


def sweep_report(runs: pd.DataFrame, *, sweep_id: str, plan: Plan | None = None, metric: str = DEFAULT_METRIC,
                 diverged: str = "inf", refinement: Mapping[str, Any] | None = None,
                 decide: Mapping[str, Any] | None = None) -> Report:
    """The sweep's typed report: provisional per ``plan``, with its ``sweep_id``, the parts not
    finished (``cells_missing``, when the plan knows them), the refinement and decide records."""
    plan = plan or Plan()
    report = build_report(runs, metric=metric, diverged=diverged, **plan.report_options())
    return report.with_(sweep_id=sweep_id, cells_missing=plan.missing, refinement=refinement, decide=decide)


def verdicts(report: Report | None) -> list[dict[str, Any]]:
    """Per analysis: ``setting`` ("pc mupc width") and ``verdict`` (its string value)."""
    out = []
    for a in (report.analyses if report is not None else ()):
        label = " ".join(str(a.group[k]) for k in ("algorithm", "parametrization") if a.group.get(k) is not None)
        out.append({"setting": f"{label} {a.axis}".strip(), "verdict": Verdict(a.verdict).value})
    return out


def runs_done(trials: Iterable[Mapping[str, Any]], done_parts: Iterable[str]) -> int:
    """Runs of the registry trials whose parts are verified finished."""
    done = set(done_parts)
    return sum(int(t["runs"]) for t in trials if t["part"] in done)


# --------------------------------------------------------------------------- status and progress


@dataclass(frozen=True)
class Progress:
    """Where a sweep stands: its ``status`` and ``error`` (adjusted for what the store holds), runs
    done of ``runs_total``, the registry's cells with their effective status, and the ``missing``
    parts of a sweep that says it finished."""

    status: str
    error: str | None
    runs_done: int
    runs_total: int
    cells: tuple[dict, ...] = ()


def planned_parts(store: Any, sweep_id: str) -> dict[str, int] | None:
    """part -> runs planned, from the spec saved beside the results (None without one)."""
    from sweeps.bookkeeping import load_saved_spec
    from sweeps.plan import trials as plan_trials

    spec = load_saved_spec(store, sweep_id)
    return None if spec is None else {t.part: len(t.runs) for t in plan_trials(spec)}


def unregistered_status(planned: Mapping[str, int] | None, done: Iterable[str]) -> tuple[str, str | None]:
    """Status of results with no registry row: finished only when every run its saved spec plans is
    in the store (verified), else ``unknown`` saying what is there."""
    if planned is None:
        return "unknown", ("not in this service's registry and no spec saved beside its results: whether "
                           "every planned run is here cannot be told")
    done = set(done)
    have = sum(n for p, n in planned.items() if p in done)
    if have == sum(planned.values()):
        return "finished", None
    return "unknown", (f"not in this service's registry; {have} of {sum(planned.values())} planned runs are in "
                       "the store (resubmit the spec to finish it)")


def cell_states(trials: Iterable[Mapping[str, Any]], done: Iterable[str], status: str) -> list[dict]:
    """The registry's cells with their effective status: a verified part is finished; a part the
    registry calls finished but the store lacks is queued again; active cells of a cancelled sweep
    are cancelled; a running cell of a sweep that is not running is queued (a stale row)."""
    from sweeps.registry import ACTIVE

    done = set(done)
    cells = []
    for t in trials:
        st, note = t["status"], t.get("note")
        if t["part"] in done:
            st = "finished"
        elif st == "finished":
            st, note = "queued", note or "its stored results are missing or unreadable; to be recomputed"
        elif status == "cancelled" and st in ACTIVE:
            st = "cancelled"
        elif st == "running" and status != "running":
            st = "queued"  # a stale row of a driver that is gone
        cells.append({"part": t["part"], "cell_id": t["cell_id"], "runs": t["runs"], "status": st,
                      "progress": 1.0 if st == "finished" else (t["progress"] if st == "running" else 0.0),
                      "attempts": t["attempts"], "error": t["error"], "note": note})
    return cells


def progress(row: Mapping[str, Any] | None, trials: Sequence[Mapping[str, Any]], done: Iterable[str],
             status: str, error: str | None, *, planned: Mapping[str, int] | None = None,
             stored_runs: int = 0) -> Progress:
    """A sweep's progress from its registry ``row`` and ``trials`` (None / [] for results without a
    registry row: then from the ``planned`` parts of its saved spec, else the ``stored_runs``) and the
    verified finished parts ``done``. A sweep whose row says finished but whose stored results are
    not all there is failed, saying so."""
    done = frozenset(done)
    if not row:
        if planned:
            total = sum(planned.values())
            return Progress(status, error, sum(n for p, n in planned.items() if p in done), total)
        return Progress(status, error, stored_runs, stored_runs)
    missing = [t["part"] for t in trials if t["part"] not in done]
    if status == "finished" and missing:  # its stored results are not all there (any more)
        status = "failed"
        error = (f"{len(missing)} of {len(trials)} cells' stored results are missing or unreadable; "
                 "they are quarantined and recomputed (or resubmit the spec)")
    return Progress(status, error, runs_done(trials, done), int(row.get("runs_total") or 0),
                    tuple(cell_states(trials, done, status)))
