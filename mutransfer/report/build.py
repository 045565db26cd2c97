"""The optimum-shift report over a whole runs table: groups, size axes, provisional status, notes."""

from __future__ import annotations

import dataclasses
from typing import Any, Collection, Mapping, Sequence

import pandas as pd

from .analysis import analyse
from .transfer import Options
from .encoding import scalar, to_json
from .model import Report
from .metrics import DEFAULT_METRIC, FIXED_SETTINGS, SIZE_AXES, check_diverged, metric_info, prepare

CELL_KEYS: tuple[str, ...] = ("algorithm", "parametrization", "width", "depth")


def optimum_shift_report(runs: pd.DataFrame, **options: Any) -> dict[str, Any]:
    """The report of :func:`build_report` as its JSON (the wire format: ``GET /sweeps/{id}/report``,
    ``mutransfer report --json``); same arguments."""
    return build_report(runs, **options).to_json()


def build_report(
    runs: pd.DataFrame,
    *,
    metric: str = DEFAULT_METRIC,
    regret_tol: float | None = None,
    steps_tol: int = 1,
    drift_tol: float = 0.5,
    n_bootstrap: int = 200,
    rng_seed: int = 0,
    ci_level: float = 0.95,
    diverged: str = "inf",
    cells_total: int | None = None,
    cells_done: int | None = None,
    expected_sizes: Mapping[str, Sequence[int]] | None = None,
    expected_seeds: int | None = None,
    local_cells: Collection[tuple[int, int]] | None = None,
) -> Report:
    """Does the optimal (weight_lr, activity_lr) stay put as width / depth grow? (docs/reference/transfer-analysis.md)

    ``runs``: one row per run with at least ``weight_lr``, the metric column and ``width`` and/or
    ``depth``; ``activity_lr`` (NaN for e.g. bp), ``seed``, ``status`` (ok|diverged|failed, others
    are ignored as unfinished), ``steps``/``diverged_step``, the budget columns
    (``min_train_loss_25pct``/``_50pct``) and the fixed settings (algorithm, parametrization,
    activation, dataset) are used when present.

    Options: ``metric`` (:data:`METRICS`); ``diverged`` ("inf" | "best_before", see
    :mod:`mutransfer.report.metrics`); ``regret_tol`` (default per metric: 0.05 relative for losses,
    0.01 = 1 percentage point for accuracies), ``steps_tol`` (grid steps the argmin may move),
    ``drift_tol`` (octaves per doubling; only flags a sub-grid drift the grid cannot resolve);
    ``n_bootstrap`` seed resamples and ``ci_level`` for the confidence intervals; ``rng_seed``.
    ``cells_total`` (and optionally ``cells_done``, else counted from the finished rows): the sweep's
    planned cells, which makes the report ``provisional`` while some are unfinished;
    ``expected_sizes`` ({"width": [...], "depth": [...]}, e.g. from the spec) names sizes not run yet.
    The sweep's design when it is not a full grid with the same seeds everywhere (sweeps/decide.py):
    ``expected_seeds`` — the seeds every run grid point is planned with (points with more had seeds
    added); ``local_cells`` — (width, depth) cells that ran a local neighbourhood of the lr grid
    (their sizes are marked ``local`` and their regret is against the neighbourhood's best point).

    Returns the typed :class:`~mutransfer.report.model.Report` (its JSON: :meth:`Report.to_json`,
    +inf -> "inf", NaN -> None): ``provisional`` (None or
    {cells_done, cells_total}), ``notes``, ``thresholds``, ``regret_unit``, ``diverged`` and
    ``analyses``: per group and size axis with >= 2 sizes — ``verdict`` (transfers | does not
    transfer | inconclusive), ``reasons`` ([{code, detail, ...}], :mod:`mutransfer.report.verdict`),
    ``verdict_text`` (measured numbers), ``sizes`` (per size: optima on the grid and fitted, with
    CIs; regret with CI; grid steps with CIs; octave shifts; drifts; seed mode; counts; ``edge``
    flags [{lr, side: low|high, value}]), ``drift_slope_eta``/``_beta`` with ``_ci``, ``by_base``,
    ``by_budget`` (None with ``by_budget_note`` when unavailable), ``warnings``, ``missing`` and
    ``surfaces``. Raises ValueError naming an unknown ``metric`` or ``diverged``.
    """
    info = metric_info(metric)
    check_diverged(diverged)
    tol = info.regret_tol if regret_tol is None else float(regret_tol)
    checks = (
        ("regret_tol", tol, tol >= 0, ">= 0"),
        ("steps_tol", steps_tol, steps_tol >= 0 and int(steps_tol) == steps_tol, "an integer >= 0"),
        ("drift_tol", drift_tol, drift_tol >= 0, ">= 0"),
        ("n_bootstrap", n_bootstrap, n_bootstrap >= 0 and int(n_bootstrap) == n_bootstrap, "an integer >= 0"),
        ("ci_level", ci_level, 0 < ci_level < 1, "in (0, 1)"),
    )
    for name, value, ok, want in checks:
        if not ok:
            raise ValueError(f"{name}={value!r} must be {want}")
    opts = Options(regret_tol=tol, steps_tol=int(steps_tol), drift_tol=float(drift_tol),
                   n_bootstrap=int(n_bootstrap), rng_seed=int(rng_seed), ci_level=float(ci_level), diverged=diverged,
                   expected_seeds=None if expected_seeds is None else int(expected_seeds))
    local = {(int(w), int(d)) for w, d in (local_cells or ())}
    report: dict[str, Any] = {
        "metric": metric, "column": info.column, "direction": info.direction,
        "units": "lrs in log2 (octave = factor 2); drift in octaves per doubling of size; "
                 "argmin moves in grid steps of the sweep's grid",
        "encoding": "+inf -> 'inf', -inf -> '-inf', NaN/unavailable -> null",
        "regret_unit": info.regret_unit,
        "thresholds": {"regret_tol": tol, "steps_tol": opts.steps_tol, "drift_tol": opts.drift_tol},
        "ci_level": opts.ci_level, "diverged": diverged,
        "n_bootstrap": opts.n_bootstrap, "rng_seed": opts.rng_seed,
        "n_runs": int(len(runs)), "provisional": None, "analyses": [], "notes": [], "single_size": [],
    }
    if len(runs) == 0:
        if cells_total:
            report["provisional"] = {"cells_done": int(cells_done or 0), "cells_total": int(cells_total)}
        report["notes"].append("no runs: nothing to analyse")
        return Report.from_json(to_json(report))

    df, notes = prepare(runs, info, diverged)
    report["notes"].extend(notes)
    report["n_diverged_loss"], report["n_diverged_inference"] = _diverged_by_reason(df)
    if cells_total is not None:
        done = _cells_done(df) if cells_done is None else int(cells_done)
        if done < int(cells_total):
            report["provisional"] = {"cells_done": done, "cells_total": int(cells_total)}
    if opts.n_bootstrap <= 0:
        report["notes"].append("n_bootstrap=0: no confidence intervals; verdicts judged on point values")
    axes = [a for a in SIZE_AXES if a in df.columns]
    if not axes:
        raise ValueError(f"runs table has none of the size columns {list(SIZE_AXES)}")
    fixed = [c for c in FIXED_SETTINGS if c in df.columns]
    budget_notes: set[str] = set()

    for axis in axes:
        others = [a for a in axes if a != axis]
        sub = df.loc[df[axis].notna()]
        if len(sub) == 0:
            continue
        keys = fixed + others
        planned = {int(s) for s in (expected_sizes or {}).get(axis, [])}
        expected: dict[tuple, list[int]] = {}
        for k, g in (sub.groupby(fixed, dropna=False, sort=True) if fixed else [((), sub)]):
            expected[_key(k)] = sorted(planned | {int(s) for s in g[axis].unique()})
        for key, g in (sub.groupby(keys, dropna=False, sort=True) if keys else [((), sub)]):
            key = key if isinstance(key, tuple) else (key,)
            group = {c: scalar(v) for c, v in zip(keys, key)}
            exp = expected[_key(key[: len(fixed)])]
            if g[axis].nunique() < 2:
                if axis == axes[0]:  # the cell's surfaces and optimum, once per cell (first size axis)
                    report["single_size"].append(_single(g, axis, group, info, opts))
                if len(exp) >= 2:
                    only = int(g[axis].iloc[0])
                    report["notes"].append(
                        f"{_title(group)}: only {axis}={only} has results so far (of "
                        f"{', '.join(map(str, exp))}): nothing to compare along {axis} yet")
                continue
            a = analyse(g, axis, group, exp, info, _local_sizes(opts, local, axis, group, g[axis].unique()))
            a["sweep_ids"] = sorted(str(x) for x in g["sweep_id"].dropna().unique()) if "sweep_id" in g else []
            if a["by_budget_note"]:
                budget_notes.add(a["by_budget_note"])
            report["analyses"].append(a)

    report["notes"].extend(sorted(budget_notes))
    if not report["analyses"]:
        report["notes"].append(
            "no group has a size axis (width or depth) with >= 2 values while the other settings are fixed: "
            "nothing to compare")
    return Report.from_json(to_json(report))


def _local_sizes(opts: Options, local: set, axis: str, group: Mapping[str, Any], sizes) -> Options:
    """``opts`` with the sizes of this analysis whose cell ran a local grid."""
    if not local:
        return opts
    other = group.get("depth" if axis == "width" else "width")
    if other is None:
        return opts
    cells = {int(s): ((int(s), int(other)) if axis == "width" else (int(other), int(s))) for s in sizes}
    return dataclasses.replace(opts, local_sizes=frozenset(s for s, c in cells.items() if c in local))


def _single(g: pd.DataFrame, axis: str, group: dict, info, opts: Options) -> dict[str, Any]:
    """A group with one size: the analysis machinery's size row, surface and warnings, no verdict."""
    size = int(g[axis].iloc[0])
    a = analyse(g, axis, group, [size], info, opts)
    return {"group": group, "axis": axis, "size": size, "eta_grid": a["eta_grid"], "beta_grid": a["beta_grid"],
            "row": a["sizes"][0], "surface": a["surfaces"][0], "warnings": a["warnings"]}


def _cells_done(df: pd.DataFrame) -> int:
    """Cells with finished runs: distinct ``cell_id`` (or algorithm, parametrization, width, depth)."""
    if "cell_id" in df.columns:
        return int(df["cell_id"].nunique())
    cols = [c for c in CELL_KEYS if c in df.columns]
    return int(len(df[cols].drop_duplicates())) if cols else 0


def _key(k: Any) -> tuple:
    """Hashable group key with NaN -> None (NaN != NaN would break dict look-ups)."""
    return tuple(scalar(v) for v in (k if isinstance(k, tuple) else (k,)))


def _title(group: Mapping[str, Any]) -> str:
    fixed = [str(group[c]) for c in FIXED_SETTINGS if c in group]
    held = [f"{k}={v}" for k, v in group.items() if k not in FIXED_SETTINGS]
    return " / ".join(fixed) + (f", {', '.join(held)}" if held else "")


def _diverged_by_reason(df: pd.DataFrame) -> tuple[int, int]:
    """Diverged runs counted by ``diverge_reason`` (mutransfer.inference_health): ``loss`` (training
    loss blew up; also every diverged run recorded before the column existed) and ``inference``."""
    div = df["status"].astype(str).str.lower().eq("diverged")
    reason = df["diverge_reason"].astype(str) if "diverge_reason" in df.columns else pd.Series("", df.index)
    inference = int((div & reason.eq("inference")).sum())
    return int(div.sum()) - inference, inference
