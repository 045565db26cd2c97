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
from mutransfer.report.metrics import SIZE_AXES

DEFAULT_METRIC = "min_train_loss"


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
