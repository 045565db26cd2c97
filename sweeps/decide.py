"""Sweeps that run until the verdict is decided: after the spec's own runs, report, act on every
undecided analysis's reason codes, train what they ask for, report again — until every analysis
is *transfers* / *does not transfer* or a limit is hit (``mutransfer run SPEC --decide``, or the
spec's ``decide: {max_runs, max_seeds, max_rounds}``).

The actions (:data:`ACTIONS`, the one table of them; reason codes from mutransfer/report/verdict.py)
--------------------------------------------------------------------------------------------------
==================  ==========================================================================
reason              action
==================  ==========================================================================
optimum_on_edge     extend that lr axis one grid step beyond the edge (sweeps/refine.py's rule:
                    v0·v0/v1 below, v−1·v−1/v−2 above): at every full-grid size of the group
                    (the grid stays a rectangle), or at a local size its neighbourhood only
not_run             the base optimum was not run at a size: run it there (under a local grid,
                    the (2r+1)-point neighbourhood around it)
uncertain           add seeds at the sizes whose CI straddles the tolerance, only at the points
too_few_seeds       that can still be the optimum there (their seed-mean CI overlaps the best
                    one's, mutransfer/report/candidates.py), and at the base size's candidates
                    (every regret is measured at the base optimum, whose uncertainty is part of
                    its CI); seeds grow to n + max(2, n/2) at most ``max_seeds``
partial             finish the planned parts (every round starts by doing so); nothing to add
no_optimum          no finite optimum at the base size: say so and stop that analysis
regret, drift       failures: decided by the data once complete (else ``partial`` blocks)
(decided)           ``confirm``: a verdict decided with fewer than 4 seeds at some size gets seeds
                    at that size's candidate points first (a 2-seed bootstrap CI is the range
                    of two values); if the limits leave no room, it stops ``decided`` and says so
==================  ==========================================================================

An analysis with a structural action (edge, not_run) gets only those in a round: seeds are added
once the grid around the optimum is settled. A local grid (``grid: {larger_sizes: local}``) is
placed first: once the base cell is trained, every other cell gets the (2r+1)-point neighbourhood
per lr axis around the base cell's seed-mean optimum (``local_grid``).

Limits and stop reasons
-----------------------
``max_rounds`` rounds, ``max_runs`` added runs in all (a round that would pass it is not started; a
local grid's first placement is the spec's own, counted by ``count_runs``, not by ``max_runs``),
``max_seeds`` seeds at a point. The loop stops ``decided`` (every analysis transfers / does not
transfer), or on the limit hit (``max_rounds`` | ``max_runs`` | ``max_seeds`` | ``lr_bound``), or
``stuck`` (open reasons with no action, e.g. ``no_optimum``), or ``failed`` (a part failed to
train); the analyses still open are recorded with their reasons.

Identity and resumption
-----------------------
Every added run is a normal run: the content-addressed id of :func:`sweeps.plan.run_id` under the
sweep's spec hash (so none is trained twice: a run already planned is never planned again), in
parts ``cell-<cell_id>-decide-<round>[-chunk-<k>]``, trained by the same executor as the spec's
own. The rounds are saved (``specs/<sweep_id>.decide.json``) before their runs train; the trials
are rebuilt from the spec and that record (:func:`decide_trials`), so a killed loop resumes where
it stopped and trains nothing twice.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import pandas as pd

from mutransfer.algorithms import ALGORITHMS
from mutransfer.results import ResultsStore, part_name
from sweeps.plan import Cell, Run, Trial, cell_id, plan, run_id
from sweeps.spec import DEFAULT_DECIDE_ROUNDS, DEFAULT_DECIDE_SEEDS, LR_MAX, SweepSpec, count_runs

Point = tuple[float, "float | None"]  # (weight_lr, activity_lr or None)

# reason code -> (action, what it does): the one table of the loop's actions (module docstring).
ACTIONS: dict[str, tuple[str, str]] = {
    "optimum_on_edge": ("extend", "extend that lr axis one grid step beyond the edge"),
    "not_run": ("recentre", "run the base optimum at that size (its neighbourhood under a local grid)"),
    "uncertain": ("seeds", "add seeds where the CI straddles the tolerance, at the points that can still be the optimum"),
    "too_few_seeds": ("seeds", "add seeds at the points that can still be the optimum"),
    "partial": ("finish", "finish the planned parts (done at the start of every round)"),
    "no_optimum": ("stop", "no finite optimum at the base size: nothing to act on; this analysis stops"),
    "regret": ("none", "a failure: decided by the data once complete"),
    "drift": ("none", "a failure: decided by the data once complete"),
}
STRUCTURAL = ("extend", "recentre")
# A verdict decided on fewer seeds than this at some size is confirmed first (seeds at that size's
# candidate points): with 2 seeds the report's bootstrap has 3 resample classes, so its "95 %" CI is
# the range of two values and can exclude the tolerance by luck.
CONFIRM_SEEDS = 4
STOPS = {"decided": "every analysis is decided", "max_rounds": "LIMIT HIT (max_rounds)",
         "max_runs": "LIMIT HIT (max_runs)", "max_seeds": "LIMIT HIT (max_seeds)",
         "lr_bound": "LIMIT HIT (lr bound)", "stuck": "open reasons with no action left",
         "failed": "a part failed to train", None: "not finished"}


class DecideError(ValueError):
    """A decide loop that must not start (the sweep's spec changed); the message says why."""


@dataclass
class Addition:
    """Runs added to one cell: ``points`` × ``seeds`` (less those planned before), and why."""

    cell: str
    points: list[list]  # [weight_lr, activity_lr or None]
    seeds: list[int]
    code: str  # local_grid, or the reason code acted on
    why: str
    runs: int = 0


def charged(additions: Iterable["Addition"]) -> int:
    """Runs of ``additions`` counted against ``max_runs`` (a local grid's placement is not: it is the spec's)."""
    return sum(a.runs for a in additions if a.code != "local_grid")


@dataclass
class Round:
    number: int
    additions: list[Addition]
    runs: int


@dataclass
class DecideRecord:
    sweep_id: str
    spec_hash: str
    rounds: list[Round] = field(default_factory=list)
    stopped: str | None = None
    detail: str = ""
    open: list[dict] = field(default_factory=list)  # analyses still undecided: {analysis, outcome, codes, detail}
    verdicts: list[dict] = field(default_factory=list)  # the last report's: {analysis, outcome}

    @property
    def runs_added(self) -> int:
        return sum(r.runs for r in self.rounds)

    @property
    def runs_charged(self) -> int:
        """The added runs counted against ``max_runs``: all but a local grid's first placement (the
        spec's own runs: :func:`sweeps.spec.count_runs` counts them)."""
        return sum(charged(r.additions) for r in self.rounds)

    @property
    def unconfirmed(self) -> bool:
        """Decided, but the confirmation seeds were cut by a limit (fewer than CONFIRM_SEEDS somewhere)."""
        return self.stopped == "decided" and bool(self.detail) and self.detail != STOPS["decided"]

    def to_json(self) -> dict:
        return asdict(self) | {"runs_added": self.runs_added}

    @classmethod
    def from_json(cls, d: dict) -> "DecideRecord":
        rounds = [Round(r["number"], [Addition(**a) for a in r["additions"]], r["runs"]) for r in d.get("rounds", [])]
        return cls(d["sweep_id"], d["spec_hash"], rounds, d.get("stopped"), d.get("detail", ""),
                   list(d.get("open") or []), list(d.get("verdicts") or []))


@dataclass(frozen=True)
class Limits:
    max_rounds: int
    max_runs: int
    max_seeds: int


def limits(spec: SweepSpec) -> Limits:
    """The spec's ``decide`` limits; unset ones default to 6 rounds, 8 seeds, as many runs as the spec."""
    d = spec.decide
    return Limits(max_rounds=(d.max_rounds if d and d.max_rounds else DEFAULT_DECIDE_ROUNDS),
                  max_runs=(d.max_runs if d and d.max_runs else count_runs(spec)),
                  max_seeds=(d.max_seeds if d and d.max_seeds else DEFAULT_DECIDE_SEEDS))


def most_runs(spec: SweepSpec) -> int:
    """The most runs a sweep with the decide loop can train: its own and ``max_runs`` added."""
    return count_runs(spec) + limits(spec).max_runs


# -- the record beside the spec ---------------------------------------------------------------

def record_path(store: ResultsStore, sweep_id: str) -> str:
    return f"{store.base_path}/specs/{sweep_id}.decide.json"


def load_record(store: ResultsStore, sweep_id: str) -> DecideRecord | None:
    try:
        with store.filesystem.open_input_stream(record_path(store, sweep_id)) as f:
            return DecideRecord.from_json(json.loads(f.read().decode()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_record(store: ResultsStore, record: DecideRecord) -> None:
    """Write the record atomically (a kill mid-write leaves the previous one)."""
    fs = store.filesystem
    fs.create_dir(f"{store.base_path}/specs", recursive=True)
    path = record_path(store, record.sweep_id)
    tmp = path + ".tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(json.dumps(record.to_json(), indent=2, allow_nan=False).encode())
    fs.move(tmp, path)


def start_record(store: ResultsStore, sweep_id: str, spec: SweepSpec) -> DecideRecord:
    """The sweep's record (a new one if none), refusing one made under another spec."""
    from sweeps.bookkeeping import load_saved_spec

    saved = load_saved_spec(store, sweep_id)
    if saved is not None and saved.spec_hash() != spec.spec_hash():
        raise DecideError(f"sweep {sweep_id} was run with a different spec (hash {saved.spec_hash()[:8]}, this one "
                          f"{spec.spec_hash()[:8]}); run the changed spec as a new sweep")
    rec = load_record(store, sweep_id)
    if rec is not None and rec.spec_hash != spec.spec_hash():
        raise DecideError(f"sweep {sweep_id}'s decide record was made under spec hash {rec.spec_hash[:8]}, not "
                          f"this spec's {spec.spec_hash()[:8]}; run the changed spec as a new sweep")
    return rec or DecideRecord(sweep_id, spec.spec_hash())


def matching_record(store: ResultsStore, sweep_id: str, spec: SweepSpec | None) -> DecideRecord | None:
    """The sweep's record when it belongs to ``spec`` (None otherwise)."""
    rec = load_record(store, sweep_id)
    return rec if rec is not None and spec is not None and rec.spec_hash == spec.spec_hash() else None


# -- what is planned (pure) ---------------------------------------------------------------------

def _key(p: Iterable) -> tuple[float, float | None]:
    eta, beta = p
    return float(eta), None if beta is None or (isinstance(beta, float) and math.isnan(beta)) else float(beta)


def _seed_order(spec: SweepSpec, n: int) -> list[int]:
    """The spec's seeds, then the smallest non-negative integers not among them: the first n."""
    out = list(spec.seeds)
    k = 0
    while len(out) < n:
        if k not in spec.seeds:
            out.append(k)
        k += 1
    return out[:n]


def _runs(spec: SweepSpec, cid: str, points: Iterable, seeds: Iterable[int], known: set[str]) -> tuple[Run, ...]:
    h = spec.spec_hash()
    out = []
    for (eta, beta), seed in itertools.product([_key(p) for p in points], seeds):
        b = math.nan if beta is None else beta
        rid = run_id(h, cid, eta, b, seed)
        if rid not in known:
            known.add(rid)
            out.append(Run(rid, eta, b, int(seed)))
    return tuple(out)


def _chunked(spec: SweepSpec, cell: Cell, runs: tuple[Run, ...], rnd: int, k0: int = 0) -> list[Trial]:
    base = f"{cell.cell_id}-decide-{rnd}"
    cap = spec.resources.max_runs_per_trial
    n = 1 if cap is None else math.ceil(len(runs) / cap)
    size = math.ceil(len(runs) / n)
    return [Trial(part_name(base, k0 + k) if (n > 1 or k0) else part_name(base), cell,
                  runs[k * size:(k + 1) * size]) for k in range(n)]


def decide_trials(spec: SweepSpec, record: DecideRecord | None, known: set[str] | None = None) -> list[Trial]:
    """The trials the recorded rounds added, in a stable order; ``known``: run ids planned before
    (the spec's and its refinement's), updated with these."""
    if not record or not record.rounds:
        return []
    cells = {c.cell_id: c for c in plan(spec)}
    known = set() if known is None else known
    out = []
    for rnd in record.rounds:
        by_cell: dict[str, list[Run]] = {}
        for a in rnd.additions:
            by_cell.setdefault(a.cell, []).extend(_runs(spec, a.cell, a.points, a.seeds, known))
        for cid in sorted(by_cell):
            runs = tuple(by_cell[cid])
            if runs:
                out.extend(_chunked(spec, cells[cid]._replace(runs=runs), runs, rnd.number))
    return out


def all_trials(spec: SweepSpec, refine_record=None, record: DecideRecord | None = None) -> list[Trial]:
    """Every planned trial of a sweep: the spec's own, its refinement's (sweeps/refine.py), then its
    decide loop's (none of whose runs is planned twice). What the executors train."""
    from sweeps.refine import all_trials as spec_and_refine

    out = spec_and_refine(spec, refine_record)
    if record is not None and record.rounds:
        out += decide_trials(spec, record, {r.run_id for t in out for r in t.runs})
    return out


def cell_points(spec: SweepSpec, record: DecideRecord | None) -> dict[str, dict[tuple, set[int]]]:
    """Cell id -> {(η, β or None): seeds planned there} after every recorded round."""
    out: dict[str, dict[tuple, set[int]]] = {}
    for c in plan(spec):
        pts = out.setdefault(c.cell_id, {})
        for r in c.runs:
            pts.setdefault(_key((r.weight_lr, r.activity_lr)), set()).add(r.seed)
    for rnd in (record.rounds if record else []):
        for a in rnd.additions:
            pts = out.setdefault(a.cell, {})
            for p in a.points:
                pts.setdefault(_key(p), set()).update(a.seeds)
    return out


def design(spec: SweepSpec, record: DecideRecord | None = None) -> dict:
    """Report keyword arguments describing the sweep's design (mutransfer/report/build.py):
    ``expected_seeds`` (the spec's seed count) and, under a local grid, ``local_cells``."""
    out: dict[str, Any] = {"expected_seeds": len(spec.seeds)}
    if spec.local_grid:
        base = spec.grid_base
        out["local_cells"] = [(w, d) for w in spec.widths for d in spec.depths if (w, d) != base]
    return out


# -- the report, read in one place ---------------------------------------------------------------

@dataclass(frozen=True)
class Analysis:
    """What the loop reads of one report analysis."""

    title: str
    algorithm: str | None
    parametrization: str | None
    axis: str
    other: int | None  # the other size (depth of a width analysis, width of a depth one)
    sizes: list[int]
    base_size: int
    base_opt: Point | None
    local: frozenset
    seeds: dict  # size -> seeds run there
    verdict: str
    reasons: list  # mutransfer.report.Reason
    text: str

    def cell(self, size: int) -> str | None:
        if self.algorithm is None or self.parametrization is None or self.other is None:
            return None
        w, d = (size, self.other) if self.axis == "width" else (self.other, size)
        return cell_id(self.algorithm, self.parametrization, int(w), int(d))


def analyses(report) -> list[Analysis]:
    """The typed report's analyses (a :class:`mutransfer.report.Report` or its JSON) as :class:`Analysis`."""
    from mutransfer.report import Report

    out = []
    for a in Report.coerce(report).analyses:
        g, axis = a.group, a.axis
        other = g.get("depth" if axis == "width" else "width")
        base = a.size_row(a.base_size)
        opt = None if base is None or base.eta_star is None else (base.eta_star, base.beta_star)
        title = "/".join(str(g[k]) for k in ("algorithm", "parametrization") if g.get(k) is not None)
        title += f" over {axis}" + (f" ({'depth' if axis == 'width' else 'width'}={other})" if other is not None else "")
        out.append(Analysis(title, g.get("algorithm"), g.get("parametrization"), axis,
                            None if other is None else int(other), [int(e.size) for e in a.sizes],
                            int(a.base_size), opt, frozenset(int(e.size) for e in a.sizes if e.local),
                            {int(e.size): int(e.n_seeds) for e in a.sizes}, str(a.verdict), list(a.reasons),
                            a.verdict_text))
    return out


def report_of(spec: SweepSpec, runs: pd.DataFrame, record: DecideRecord | None = None):
    """The typed report of ``runs`` under the sweep's design (:func:`design`)."""
    from mutransfer.report import build_report

    return build_report(runs, metric=spec.metric, **design(spec, record))


# -- planning a round (pure) ----------------------------------------------------------------------

def _step_beyond(values: list[float], side: str) -> float:
    from sweeps.refine import _step_beyond as step

    return float(f"{step(values, side):.12g}")  # 2e-4, not 1.9999999999999998e-4


def _axis(points: Iterable[tuple], k: int) -> list[float]:
    return sorted({p[k] for p in points if p[k] is not None})


def _neighbourhood(values: list[float], centre: float, radius: int) -> list[float]:
    """The min(2r+1, n) consecutive values of the sorted axis nearest ``centre`` (the window is
    shifted inward at the axis's ends; growing past them is the edge rule's job)."""
    v = sorted(values)
    if len(v) < 2:
        return v
    i = min(range(len(v)), key=lambda k: abs(math.log(v[k] / centre)))
    n = min(2 * radius + 1, len(v))
    lo = max(0, min(i - radius, len(v) - n))
    return v[lo:lo + n]


def _near(p: tuple, pts: dict) -> tuple | None:
    """The planned point equal to ``p`` up to float rounding (the report canonicalises lrs)."""
    for q in pts:
        if math.isclose(q[0], p[0], rel_tol=1e-9) and (
                (q[1] is None and p[1] is None) or (q[1] is not None and p[1] is not None
                                                    and math.isclose(q[1], p[1], rel_tol=1e-9))):
            return q
    return None


@dataclass
class Plan:
    additions: list[Addition] = field(default_factory=list)
    blocked: dict[str, list[str]] = field(default_factory=dict)  # stop reason -> details

    def add(self, points: dict[str, dict[tuple, set[int]]], cid: str, pts: Iterable[tuple], seeds: list[int],
            code: str, why: str) -> None:
        cell = points.setdefault(cid, {})
        new = [p for p in pts if p not in cell or not set(seeds) <= cell[p]]
        if not new:
            return
        for p in new:
            cell.setdefault(p, set()).update(seeds)
        self.additions.append(Addition(cid, [list(p) for p in new], list(seeds), code, why))


def _base_cells(spec: SweepSpec) -> dict[tuple[str, str], str]:
    w, d = spec.grid_base
    return {(c.spec.algorithm, c.spec.parametrization): c.cell_id for c in plan(spec)
            if (c.spec.width, c.spec.depth) == (w, d)}


def place_local(spec: SweepSpec, runs: pd.DataFrame, points: dict, plan_: Plan) -> None:
    """Under a local grid: every cell with nothing planned gets the neighbourhood around its base
    cell's seed-mean optimum (once that cell has results)."""
    from mutransfer.report.candidates import candidate_points

    if not spec.local_grid:
        return
    r = spec.grid.radius
    for c in plan(spec):
        if points.get(c.cell_id):
            continue
        base = _base_cells(spec)[(c.spec.algorithm, c.spec.parametrization)]
        rows = runs.loc[runs["cell_id"] == base] if "cell_id" in runs.columns and len(runs) else runs.iloc[:0]
        best = candidate_points(rows, metric=spec.metric, n_bootstrap=0)[:1] if len(rows) else []
        if not best:
            continue
        bpts = points[base]
        etas = _neighbourhood(_axis(bpts, 0), best[0][0], r)
        betas = _neighbourhood(_axis(bpts, 1), best[0][1], r) if best[0][1] is not None else [None]
        near = [_near(p, bpts) or p for p in itertools.product(etas, betas)]
        plan_.add(points, c.cell_id, near, list(spec.seeds), "local_grid",
                  f"local grid: {len(near)} points around the base optimum η*={best[0][0]:g}"
                  + (f", β*={best[0][1]:g}" if best[0][1] is not None else "") + f" of {base}")


def _extend(spec: SweepSpec, a: Analysis, reason: dict, points: dict, plan_: Plan) -> None:
    k = 0 if reason.lr == "weight_lr" else 1
    side = reason.side
    local_hits = [s for s in reason.sizes if s in a.local]
    full_hits = [s for s in reason.sizes if s not in a.local]
    if full_hits:  # refine's rule: the new value at every full-grid size of the group
        cells = [c for c in (a.cell(s) for s in a.sizes if s not in a.local) if c in points]
        union = sorted({p[k] for c in cells for p in points[c] if p[k] is not None})
        if len(union) >= 2:
            new = _step_beyond(union, side)
            if not 0 < new <= LR_MAX:
                plan_.blocked.setdefault("lr_bound", []).append(
                    f"{a.title}: {reason.lr} next value {new:.3g} is outside (0, {LR_MAX:g}]")
            else:
                for c in cells:
                    others = _axis(points[c], 1 - k) or [None]
                    pts = [(new, o) if k == 0 else (o, new) for o in others]
                    plan_.add(points, c, pts, list(spec.seeds), "optimum_on_edge",
                              f"{a.title}: {reason.lr} optimum on the {side} edge at {a.axis}="
                              f"{','.join(map(str, full_hits))} → {reason.lr}={new:.3g} at every full-grid {a.axis}")
    base_vals = _axis(points.get(a.cell(a.base_size), {}), k)
    for s in local_hits:  # a local neighbourhood: extend it at that size only
        c = a.cell(s)
        if c not in points:
            continue
        axis_vals = _axis(points[c], k)
        if len(axis_vals) < 2:
            continue
        new = _next_on_grid(base_vals, axis_vals, side)
        if not 0 < new <= LR_MAX:
            plan_.blocked.setdefault("lr_bound", []).append(f"{a.title}: {reason.lr} {new:.3g} out of bounds")
            continue
        others = _axis(points[c], 1 - k) or [None]
        pts = [(new, o) if k == 0 else (o, new) for o in others]
        plan_.add(points, c, pts, list(spec.seeds), "optimum_on_edge",
                  f"{a.title}: optimum on the {side} edge of the local grid at {a.axis}={s} → {reason.lr}={new:.3g}")


def _next_on_grid(grid: list[float], values: list[float], side: str) -> float:
    """The value a local neighbourhood ``values`` grows to on ``side``: the base grid's next value
    beyond its edge (the neighbourhood stays on the grid the base ran), else one step beyond by
    the refinement rule."""
    beyond = [v for v in grid if (v < values[0] if side == "low" else v > values[-1])
              and not math.isclose(v, values[0 if side == "low" else -1], rel_tol=1e-9)]
    if beyond:
        return max(beyond) if side == "low" else min(beyond)
    return _step_beyond(values, side)


def _recentre(spec: SweepSpec, a: Analysis, reason: dict, points: dict, plan_: Plan) -> None:
    s = reason.size
    c = a.cell(s)
    if c is None or a.base_opt is None or c not in points:
        return
    bcell = a.cell(a.base_size)
    opt = _key(a.base_opt)
    if s in a.local and bcell in points:
        r = spec.grid.radius if spec.grid else 1
        bpts = points[bcell]
        etas = _neighbourhood(_axis(bpts, 0), opt[0], r)
        betas = _neighbourhood(_axis(bpts, 1), opt[1], r) if opt[1] is not None else [None]
        pts = [_near(p, bpts) or p for p in itertools.product(etas, betas)]
    else:
        pts = [_near(opt, points.get(bcell, {})) or opt]
    plan_.add(points, c, pts, list(spec.seeds), "not_run",
              f"{a.title}: the base optimum η*={opt[0]:g} was not run at {a.axis}={s} → run "
              + ("its neighbourhood" if s in a.local else "it") + " there")


def _add_seeds(spec: SweepSpec, a: Analysis, sizes: set[int], runs: pd.DataFrame, points: dict,
               lim: Limits, plan_: Plan, codes: str) -> None:
    from mutransfer.report.candidates import candidate_points

    for s in sorted(sizes | {a.base_size}):
        c = a.cell(s)
        if c is None or c not in points:
            continue
        rows = runs.loc[runs["cell_id"] == c]
        cand = [_near(_key(p), points[c]) for p in candidate_points(rows, metric=spec.metric)]
        if s != a.base_size:  # the base optimum's candidates are measured here too (the regret's point)
            brows = runs.loc[runs["cell_id"] == a.cell(a.base_size)]
            cand += [_near(_key(p), points[c]) for p in candidate_points(brows, metric=spec.metric)]
        cand = list(dict.fromkeys(p for p in cand if p is not None))
        if not cand:
            continue
        have = max(len(points[c][p]) for p in cand)
        target = min(lim.max_seeds, have + max(2, have // 2))
        if all(len(points[c][p]) >= lim.max_seeds for p in cand):
            plan_.blocked.setdefault("max_seeds", []).append(
                f"{a.title}: {len(cand)} candidate point(s) at {a.axis}={s} already have {lim.max_seeds} seeds")
            continue
        seeds = _seed_order(spec, target)
        where = "the base size" if s == a.base_size else f"{a.axis}={s}"
        plan_.add(points, c, cand, seeds, codes,
                  f"{a.title}: {codes} → {target} seeds at {len(cand)} candidate point(s) of "
                  f"{len(points[c])} at {where}")


def plan_round(spec: SweepSpec, runs: pd.DataFrame, record: DecideRecord, lim: Limits,
               report=None) -> tuple[list[Addition], dict[str, list[str]], list[Analysis]]:
    """The next round's additions from the finished runs, the blocked actions by stop reason, and
    the report's analyses (read through :func:`analyses`)."""
    points = cell_points(spec, record)
    plan_ = Plan()
    place_local(spec, runs, points, plan_)
    if plan_.additions:  # the neighbourhoods first: the analyses need them
        return plan_.additions, plan_.blocked, []
    found = analyses(report if report is not None else report_of(spec, runs, record))
    for a in found:
        if a.verdict != "inconclusive":
            few = {s for s, n in a.seeds.items() if n < CONFIRM_SEEDS}
            if few:
                _add_seeds(spec, a, few, runs, points, lim, plan_, "confirm")
            continue
        kinds = {str(r.code): ACTIONS.get(str(r.code), ("none", ""))[0] for r in a.reasons}
        if "stop" in kinds.values():
            plan_.blocked.setdefault("stuck", []).append(f"{a.title}: {ACTIONS['no_optimum'][1]}")
            continue
        n = len(plan_.additions)
        for r in a.reasons:
            act = ACTIONS.get(str(r.code), ("none", ""))[0]
            if act == "extend":
                _extend(spec, a, r, points, plan_)
            elif act == "recentre":
                _recentre(spec, a, r, points, plan_)
        if len(plan_.additions) > n or any(k in STRUCTURAL for k in kinds.values()):
            continue  # seeds once the grid around the optimum is settled
        sizes = {int(r.size) for r in a.reasons if r.code == "uncertain"}
        sizes |= {int(s) for r in a.reasons if r.code == "too_few_seeds" for s in (r.sizes or ())}
        if sizes:
            codes = "+".join(sorted({str(r.code) for r in a.reasons if r.code in ("uncertain", "too_few_seeds")}))
            _add_seeds(spec, a, sizes, runs, points, lim, plan_, codes)
    return plan_.additions, plan_.blocked, found


def _open(found: list[Analysis]) -> list[dict]:
    return [{"analysis": a.title, "outcome": a.verdict, "codes": sorted({str(r.code) for r in a.reasons}),
             "detail": a.text} for a in found if a.verdict == "inconclusive"]


def _count(spec: SweepSpec, record: DecideRecord, additions: list[Addition]) -> int:
    """Runs ``additions`` add beyond everything planned (sets each addition's ``runs``)."""
    known = {r.run_id for t in all_trials(spec, None, record) for r in t.runs}
    total = 0
    for a in additions:
        a.runs = len(_runs(spec, a.cell, a.points, a.seeds, known))
        total += a.runs
    return total


def run_decide(spec: SweepSpec, store: ResultsStore, sweep_id: str,
               execute: Callable[[DecideRecord], bool],
               say: Callable[[str], None] = lambda s: None) -> DecideRecord:
    """The loop. ``execute(record)`` trains every unfinished part of the spec and the record's
    rounds (finished parts are skipped) and returns whether all finished. Each round is recorded
    before it trains; so is why the loop stopped and what is still open."""
    record = start_record(store, sweep_id, spec)
    lim = limits(spec)
    record.stopped, record.detail = None, ""
    while True:
        if not execute(record):
            record.stopped, record.detail = "failed", "a part failed to train; rerun to resume"
            break
        runs = store.load_runs(sweep_id)
        additions, blocked, found = plan_round(spec, runs, record, lim)
        if found or not additions:
            record.open = _open(found)
            record.verdicts = [{"analysis": a.title, "outcome": a.verdict} for a in found]
        if not additions:
            if found and not record.open:
                record.stopped, record.detail = "decided", STOPS["decided"]
            else:
                why = next((k for k in ("max_seeds", "lr_bound", "stuck") if k in blocked), "stuck")
                record.stopped, record.detail = why, "; ".join(d for v in blocked.values() for d in v) or \
                    "nothing to act on"
            break
        n = _count(spec, record, additions)
        confirming = found and not record.open and all(a.code == "confirm" for a in additions)
        if n == 0:  # every point asked for is planned already: nothing new would train
            record.stopped, record.detail = ("decided", STOPS["decided"]) if confirming else (
                "stuck", "the actions ask only for runs already planned")
            break
        limit = None
        if len(record.rounds) >= lim.max_rounds:
            limit = "max_rounds", f"{lim.max_rounds} round(s) done; the next would add {n} runs"
        elif record.runs_charged + charged(additions) > lim.max_runs:
            limit = "max_runs", (f"the next round needs {charged(additions)} runs and max_runs={lim.max_runs} "
                                 f"leaves {lim.max_runs - record.runs_charged}")
        if limit is not None:
            record.stopped, record.detail = limit
            if confirming:  # decided, but on fewer than CONFIRM_SEEDS seeds somewhere: say so
                record.stopped, record.detail = "decided", (
                    f"decided with fewer than {CONFIRM_SEEDS} seeds at some size; confirming it was cut by "
                    f"{limit[0]} ({limit[1]})")
            break
        rnd = Round(len(record.rounds) + 1, [a for a in additions if a.runs], n)
        record.rounds.append(rnd)
        save_record(store, record)
        say(f"decide round {rnd.number}: +{n} runs — " + "; ".join(dict.fromkeys(a.why for a in rnd.additions)))
    save_record(store, record)
    return record


def summary(record: DecideRecord | None) -> list[str]:
    """Lines for the text report: the rounds, what each added and why, why the loop stopped."""
    if record is None:
        return []
    lines = [f"Decide: {len(record.rounds)} round(s), {record.runs_added} runs added"]
    for r in record.rounds:
        lines.append(f"  round {r.number}: +{r.runs} runs")
        lines += [f"    {a.cell}: +{a.runs} ({a.code}) — {a.why}" for a in r.additions]
    lines.append(f"  stopped: {STOPS.get(record.stopped, record.stopped)}"
                 + (f" — {record.detail}" if record.detail and (record.stopped != "decided" or record.unconfirmed)
                    else ""))
    for o in record.open:
        lines.append(f"  open: {o['analysis']}: {o['outcome']} ({', '.join(o['codes'])})")
    return lines
