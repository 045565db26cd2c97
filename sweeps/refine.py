"""Grids that extend themselves: after a sweep's grid is finished, every lr axis whose optimum sits
on the grid's edge is extended by the grid's own step in that direction, round after round, until
the optima are interior or a limit is hit.

Rule (one round)
----------------
For every report group (``optimum_shift_report``: fixed settings, one size axis) and every
size whose grid argmin carries an ``edge`` flag ``{lr, side, value}``, the group's ``lr`` axis gets
one new value beyond that edge: ``value · value/neighbour`` (low side: below the lowest value;
high side: above the highest), where ``neighbour`` is the next value inward — the grid's own
log-spaced step at that end (the ratio of its two outermost values). The new value is added at
*every* size of the group, not only at the edge size: the group's grid stays a full rectangle, so
every size is measured at every other size's optimum (regret and ``by_base`` need that) and the
report sees a complete grid rather than a ragged one. Groups and axes whose optima are interior get
nothing.

Limits (``refine: {max_rounds, max_runs}`` in the spec, or defaults): at most ``max_rounds``
rounds and ``max_runs`` added runs in all; a round that would exceed ``max_runs`` is not started.
A new value outside the spec's lr bounds (0, 1e6] stops the refinement too. Every stop is recorded
with its reason (``RefineRecord.stopped``) and printed under the report.

Identity
--------
The extension belongs to the same sweep: same sweep id, same results root. Its runs get the
content-addressed ids of :func:`sweeps.plan.run_id` under the sweep's spec hash, so a grid point is
never trained twice, and its parts are named ``cell-<cell_id>-refine-<round>`` (chunked like the
spec's own parts). The rounds are recorded beside the spec (``specs/<sweep_id>.refine.json``):
the extra trials are rebuilt from the spec and that record (:func:`refine_trials`), so a resumed
or relaunched driver plans exactly the same parts. A record made under another spec hash is
refused (:class:`RefineError`).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import pandas as pd

from mutransfer.algorithms import ALGORITHMS
from mutransfer.results import ResultsStore, part_name
from mutransfer.report import Analysis as ReportAnalysis
from mutransfer.report import Report, build_report
from sweeps.bookkeeping import load_saved_spec
from sweeps.plan import Cell, Run, Trial, cell_id, plan, run_id
from sweeps.spec import LR_MAX, SweepSpec, count_runs

AXES = {"weight_lr": "weight_lrs", "activity_lr": "activity_lrs"}  # report lr column -> spec field
DEFAULT_MAX_ROUNDS = 3


class RefineError(ValueError):
    """A refinement that must not start (the sweep's spec changed); the message says why."""


@dataclass
class Extension:
    """One axis of one group extended by one value."""

    group: dict
    axis: str  # the group's size axis (width | depth)
    lr: str  # weight_lr | activity_lr
    side: str  # low | high
    edge: float  # the grid value the optimum sat on
    new: float  # the value added beyond it
    sizes: list[int]  # the sizes whose optimum sat on that edge
    cells: list[str]  # the cells that get the new value (every size of the group)


@dataclass
class Round:
    number: int
    extensions: list[Extension]
    axes: dict[str, dict[str, list[float]]]  # cell id -> {weight_lrs, activity_lrs} after the round
    runs: int  # runs added by the round


@dataclass
class RefineRecord:
    sweep_id: str
    spec_hash: str
    rounds: list[Round] = field(default_factory=list)
    stopped: str | None = None  # why refinement ended: "interior", or the limit that was hit
    detail: str = ""

    @property
    def runs_added(self) -> int:
        return sum(r.runs for r in self.rounds)

    def to_json(self) -> dict:
        """Plain JSON (strict: an algorithm without an activity lr has ``activity_lrs: [null]``)."""
        d = asdict(self)
        for r in d["rounds"]:
            for ax in r["axes"].values():
                ax["activity_lrs"] = [None if isinstance(v, float) and math.isnan(v) else v for v in ax["activity_lrs"]]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RefineRecord":
        def axes(a: dict) -> dict:
            return {cid: {k: [math.nan if v is None else v for v in vals] for k, vals in ax.items()}
                    for cid, ax in a.items()}
        rounds = [Round(r["number"], [Extension(**e) for e in r["extensions"]], axes(r["axes"]), r["runs"])
                  for r in d.get("rounds", [])]
        return cls(d["sweep_id"], d["spec_hash"], rounds, d.get("stopped"), d.get("detail", ""))


@dataclass(frozen=True)
class Limits:
    max_rounds: int
    max_runs: int


def limits(spec: SweepSpec) -> Limits:
    """The spec's ``refine`` limits; unset ones default to 3 rounds and as many runs as the spec."""
    r = spec.refine
    return Limits(max_rounds=(r.max_rounds if r and r.max_rounds else DEFAULT_MAX_ROUNDS),
                  max_runs=(r.max_runs if r and r.max_runs else count_runs(spec)))


# -- the record beside the spec ---------------------------------------------------------------

def record_path(store: ResultsStore, sweep_id: str) -> str:
    return f"{store.base_path}/specs/{sweep_id}.refine.json"


def load_record(store: ResultsStore, sweep_id: str) -> RefineRecord | None:
    try:
        with store.filesystem.open_input_stream(record_path(store, sweep_id)) as f:
            return RefineRecord.from_json(json.loads(f.read().decode()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_record(store: ResultsStore, record: RefineRecord) -> None:
    fs = store.filesystem
    fs.create_dir(f"{store.base_path}/specs", recursive=True)
    with fs.open_output_stream(record_path(store, record.sweep_id)) as f:
        f.write(json.dumps(record.to_json(), indent=2, allow_nan=False).encode())


def start_record(store: ResultsStore, sweep_id: str, spec: SweepSpec) -> RefineRecord:
    """The sweep's record (a new one if none), refusing one made under another spec."""
    saved = load_saved_spec(store, sweep_id)
    if saved is not None and saved.spec_hash() != spec.spec_hash():
        raise RefineError(f"sweep {sweep_id} was run with a different spec (hash {saved.spec_hash()[:8]}, this "
                          f"one {spec.spec_hash()[:8]}); refinement only extends the grid of the same spec — run "
                          "the changed spec as a new sweep")
    rec = load_record(store, sweep_id)
    if rec is not None and rec.spec_hash != spec.spec_hash():
        raise RefineError(f"sweep {sweep_id}'s refinement was made under spec hash {rec.spec_hash[:8]}, not this "
                          f"spec's {spec.spec_hash()[:8]}; the spec changed since — run it as a new sweep")
    return rec or RefineRecord(sweep_id, spec.spec_hash())


# -- planning (pure) -----------------------------------------------------------------------------

def _spec_axes(spec: SweepSpec, cell: Cell) -> dict[str, list[float]]:
    uses_beta = ALGORITHMS[cell.spec.algorithm].uses_activity_lr
    return {"weight_lrs": sorted(spec.weight_lrs),
            "activity_lrs": sorted(spec.activity_lrs) if uses_beta else [math.nan]}


def current_axes(spec: SweepSpec, record: RefineRecord | None) -> dict[str, dict[str, list[float]]]:
    """Cell id -> its lr axes after every recorded round."""
    axes = {c.cell_id: _spec_axes(spec, c) for c in plan(spec)}
    for rnd in (record.rounds if record else []):
        for cid, ax in rnd.axes.items():
            axes[cid] = {k: list(v) for k, v in ax.items()}
    return axes


def _grid(ax: dict[str, list[float]]) -> set[tuple[float, float | None]]:
    """The (η, β) points of a cell's axes; β None for algorithms without an activity lr (NaN is
    not equal to itself, so it cannot be a set key)."""
    betas = [None if b is None or math.isnan(b) else b for b in ax["activity_lrs"]]
    return set(itertools.product(ax["weight_lrs"], betas))


def _chunked(spec: SweepSpec, cell: Cell, runs: tuple[Run, ...], rnd: int) -> list[Trial]:
    base = f"{cell.cell_id}-refine-{rnd}"
    cap = spec.resources.max_runs_per_trial
    if cap is None or len(runs) <= cap:
        return [Trial(part_name(base), cell, runs)]
    n = math.ceil(len(runs) / cap)
    size = math.ceil(len(runs) / n)
    return [Trial(part_name(base, k), cell, runs[k * size:(k + 1) * size]) for k in range(n)]


def refine_trials(spec: SweepSpec, record: RefineRecord | None) -> list[Trial]:
    """The trials the recorded rounds added (empty without a record), in a stable order: round r,
    cell c trains the points of c's grid after r that its grid before r lacked, × the spec's seeds."""
    if not record or not record.rounds:
        return []
    cells = {c.cell_id: c for c in plan(spec)}
    h = spec.spec_hash()
    axes = {cid: _spec_axes(spec, c) for cid, c in cells.items()}
    out = []
    for rnd in record.rounds:
        for cid in sorted(rnd.axes):
            before, after = _grid(axes[cid]), rnd.axes[cid]
            new = sorted(_grid(after) - before, key=lambda p: (p[0], -1.0 if p[1] is None else p[1]))
            axes[cid] = {k: list(v) for k, v in after.items()}
            cell = cells[cid]
            runs = tuple(Run(run_id(h, cid, eta, beta, seed), eta, beta, seed)
                         for eta, beta in ((e, math.nan if b is None else b) for e, b in new)
                         for seed in spec.seeds)
            if runs:
                out.extend(_chunked(spec, cell._replace(runs=runs), runs, rnd.number))
    return out


def all_trials(spec: SweepSpec, record: RefineRecord | None) -> list[Trial]:
    """The spec's own trials followed by those its refinement added."""
    from sweeps.plan import trials

    return trials(spec) + refine_trials(spec, record)


def _step_beyond(values: list[float], side: str) -> float:
    """One grid step past the edge: v0·(v0/v1) below, v−1·(v−1/v−2) above (log-spaced grids)."""
    v = sorted(values)
    return v[0] * (v[0] / v[1]) if side == "low" else v[-1] * (v[-1] / v[-2])


def _group_cells(analysis: ReportAnalysis, cells: dict[str, Cell]) -> dict[int, str]:
    """Size -> cell id for the sizes of a report group (that exist in the plan)."""
    g, axis = analysis.group, analysis.axis
    out = {}
    for e in analysis.sizes:
        width = e.size if axis == "width" else g.get("width")
        depth = e.size if axis == "depth" else g.get("depth")
        if width is None or depth is None or "algorithm" not in g or "parametrization" not in g:
            continue
        cid = cell_id(g["algorithm"], g["parametrization"], int(width), int(depth))
        if cid in cells:
            out[int(e.size)] = cid
    return out


def plan_round(spec: SweepSpec, report: Report | dict, record: RefineRecord) -> tuple[Round | None, str | None, str]:
    """The next round from a report over the finished grid: ``(round, None, "")``, or ``(None,
    reason, detail)`` with reason "interior" (no optimum on an edge) or "lr_bound" (the next value
    would leave (0, 1e6]). Does not check the limits (see :func:`next_round`)."""
    cells = {c.cell_id: c for c in plan(spec)}
    axes = current_axes(spec, record)
    new_axes: dict[str, dict[str, list[float]]] = {}
    extensions: list[Extension] = []
    blocked: list[str] = []
    for a in Report.coerce(report).analyses:
        by_size = _group_cells(a, cells)
        hits: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for e in a.sizes:
            for f in e.edge:
                if int(e.size) in by_size and f.lr in AXES:
                    hits.setdefault((f.lr, f.side), []).append((int(e.size), float(f.value)))
        for (lr, side), where in sorted(hits.items()):
            field_ = AXES[lr]
            group_cells = sorted(set(by_size.values()))
            union = sorted({v for cid in group_cells for v in (new_axes.get(cid) or axes[cid])[field_]})
            if len(union) < 2 or any(math.isnan(v) for v in union):
                continue
            new = float(f"{_step_beyond(union, side):.12g}")  # 2e-4, not 1.9999999999999998e-4
            if not (0 < new <= LR_MAX):
                blocked.append(f"{lr} {side} edge of {_title(a)}: the next value {new:.3g} is outside (0, {LR_MAX:g}]")
                continue
            for cid in group_cells:
                ax = new_axes.setdefault(cid, {k: list(v) for k, v in axes[cid].items()})
                if new not in ax[field_]:
                    ax[field_] = sorted(ax[field_] + [new])
            extensions.append(Extension(group=dict(a.group), axis=a.axis, lr=lr, side=side, edge=union[0 if side == "low" else -1],
                                        new=float(new), sizes=sorted(s for s, _ in where), cells=group_cells))
    if not extensions:
        if blocked:
            return None, "lr_bound", "; ".join(blocked)
        return None, "interior", "every optimum is interior to its grid"
    added = sum(len(_grid(ax) - _grid(axes[cid])) for cid, ax in new_axes.items()) * len(spec.seeds)
    return Round(len(record.rounds) + 1, extensions, new_axes, added), None, "; ".join(blocked)


def _title(a: ReportAnalysis) -> str:
    g = a.group
    return "/".join(str(g[k]) for k in ("algorithm", "parametrization") if k in g) + f" over {a.axis}"


def next_round(spec: SweepSpec, runs: pd.DataFrame, record: RefineRecord, lim: Limits,
               report: Callable[[pd.DataFrame], Report | dict] | None = None) -> tuple[Round | None, str | None, str]:
    """:func:`plan_round` on the report of ``runs`` (the finished union), then the limits:
    ``(None, "max_rounds" | "max_runs", detail)`` when the round may not start."""
    if report is None:
        def report(df):
            return build_report(df, metric=spec.metric)
    rnd, reason, detail = plan_round(spec, report(runs), record)
    if rnd is None:
        return None, reason, detail
    where = "; ".join(f"{e.lr} {e.side} edge {e.edge:g} of {_title_ext(e)} at {e.axis}={','.join(map(str, e.sizes))}"
                      for e in rnd.extensions)
    if len(record.rounds) >= lim.max_rounds:
        return None, "max_rounds", f"{lim.max_rounds} round(s) done and optima still on an edge: {where}"
    if record.runs_added + rnd.runs > lim.max_runs:
        return None, "max_runs", (f"the next round needs {rnd.runs} runs and max_runs={lim.max_runs} leaves "
                                  f"{lim.max_runs - record.runs_added}; optima still on an edge: {where}")
    return rnd, None, detail


def _title_ext(e: Extension) -> str:
    return "/".join(str(e.group[k]) for k in ("algorithm", "parametrization") if k in e.group)


def run_refinement(spec: SweepSpec, store: ResultsStore, sweep_id: str,
                   execute: Callable[[RefineRecord], bool],
                   say: Callable[[str], None] = lambda s: None) -> RefineRecord:
    """Extend the finished grid round by round. ``execute(record)`` trains every unfinished part
    of the spec plus the record's rounds (:func:`all_trials`; finished parts are skipped) and
    returns whether all finished. Each round is recorded before it trains; so is why refinement
    stopped."""
    record = start_record(store, sweep_id, spec)
    lim = limits(spec)
    record.stopped, record.detail = None, ""
    while True:
        if not execute(record):  # earlier rounds' parts first (a resumed refinement)
            record.stopped, record.detail = "failed", "a part failed to train; rerun to resume"
            break
        rnd, reason, detail = next_round(spec, store.load_runs(sweep_id), record, lim)
        if rnd is None:
            record.stopped, record.detail = reason, detail
            break
        record.rounds.append(rnd)
        save_record(store, record)
        say(f"refine round {rnd.number}: +{rnd.runs} runs — " + "; ".join(
            f"{e.lr} {e.side} of {e.edge:g} → {e.new:.3g} ({_title_ext(e)}, optimum on the edge at "
            f"{e.axis}={','.join(map(str, e.sizes))})" for e in rnd.extensions))
    save_record(store, record)
    return record


def summary(record: RefineRecord | None) -> list[str]:
    """Lines for the report: the rounds, the runs they added and why refinement stopped."""
    if record is None:
        return []
    lines = [f"Refinement: {len(record.rounds)} round(s), {record.runs_added} runs added"]
    for r in record.rounds:
        for e in r.extensions:
            lines.append(f"  round {r.number}: {_title_ext(e)} over {e.axis}: {e.lr} extended {e.side} of {e.edge:g} "
                         f"to {e.new:.3g} (optimum on that edge at {e.axis}={', '.join(map(str, e.sizes))}; added "
                         f"at every {e.axis} of the group)")
    why = {"interior": "every optimum is interior to its grid",
           "max_rounds": "LIMIT HIT (max_rounds)", "max_runs": "LIMIT HIT (max_runs)",
           "lr_bound": "LIMIT HIT (lr bound)", "failed": "a part failed", None: "not finished"}
    lines.append(f"  stopped: {why.get(record.stopped, record.stopped)}" + (f" — {record.detail}" if record.detail
                                                                             and record.stopped != "interior" else ""))
    return lines

