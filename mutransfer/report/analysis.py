"""One analysis: a group of fixed settings along one size axis (width or depth) — per-size surfaces
and optima on the grid and fitted, the transfer of the base size's optimum (:mod:`.transfer`),
seed-bootstrap confidence intervals, the verdict (:mod:`.verdict`), the fitted drift slopes, and the
robustness views ``by_base`` and ``by_budget`` (:mod:`.views`) (docs/reference/transfer-analysis.md).

Conventions: learning rates are analysed in log2, so shifts are in octaves (1 octave = a factor 2)
and drift slopes in octaves per doubling of size (d log2 lr* / d log2 s). ``grid_steps_*`` count
steps of the sweep's own lr grid (index differences on the sorted union grid of the group).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import verdict as V
from .encoding import fmt_lr, signed
from .metrics import BETA_COL, ETA_COL, MetricInfo
from .surfaces import Grid, make_grid, subgrid_optimum
from .transfer import Options, SizeData, _full_grid, compare, judge_entries, size_data
from .uncertainty import argmin_counts, percentile_ci
from .views import by_base, by_budget


def drift_slope(log2_sizes: Sequence[float], log2_lrs: Sequence[float | None]) -> float:
    """Least-squares slope d log2 lr* / d log2 s (octaves per doubling); NaN if < 2 sizes."""
    pts = [(s, v) for s, v in zip(log2_sizes, log2_lrs) if v is not None and np.isfinite(v)]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return float("nan")
    xs, ys = np.array(pts).T
    return float(np.polyfit(xs, ys, 1)[0])


def _fits(p: SizeData, grid: Grid, b: int) -> tuple[tuple, np.ndarray | None]:
    """Point sub-grid fit (log2 η*, log2 β*, kind, clipped) and per-resample fits (B, 2) (NaN where a
    resample has no optimum; None without a bootstrap)."""
    point = (None, None, "none", False) if p.opt is None else subgrid_optimum(p.surf, grid, *p.opt)
    if p.boot is None:
        return point, None
    out = np.full((b, 2), np.nan)
    done: dict[int, tuple[float, float]] = {}  # resamples of one seed multiset share their fit
    for r in range(b):
        i, j = p.boot_opt[r]
        if i >= 0:
            c = int(p.boot_class[r])
            if c not in done:
                fx, fy, _, _ = subgrid_optimum(p.boot[r], grid, int(i), int(j))
                done[c] = (fx, np.nan if fy is None else fy)
            out[r] = done[c]
    return point, out


def fit_drift_state(slope: float, ci: Sequence[float] | None, drift_tol: float) -> str | None:
    """The fitted drift slope against ``drift_tol`` (octaves per doubling), CI included: "within",
    "beyond" or "uncertain" (the CI straddles ±drift_tol); reported beside the verdict, not deciding."""
    if slope is None or not np.isfinite(slope):
        return None
    mags = (abs(slope), abs(slope)) if not ci else (
        (0.0 if ci[0] <= 0 <= ci[1] else min(abs(ci[0]), abs(ci[1]))), max(abs(ci[0]), abs(ci[1]), abs(slope)))
    return {"pass": "within", "fail": "beyond", "uncertain": "uncertain"}[V.judge(abs(slope), mags, drift_tol)]


def _slope(c: int, lr: str, log2_sizes: list[float], fits: list, boot_fits: list, entries: list[dict],
           grid: Grid, opts: Options, warnings: list[str]) -> tuple[float | None, list | None, str | None]:
    """The sub-grid fit's drift slope of lr (c = 0: eta, 1: beta) with its bootstrap CI and state;
    (None, None, None) without an activity lr. Warns when it drifts beyond ``drift_tol`` while the
    grid argmin stays within ``steps_tol``."""
    if c == 1 and grid.beta is None:
        return None, None, None
    slope = drift_slope(log2_sizes, [f[c] for f in fits])
    ci = None
    if opts.n_bootstrap > 0 and any(bf is not None for bf in boot_fits):
        b = opts.n_bootstrap
        cols = [bf[:, c] if bf is not None else np.full(b, np.nan if f[c] is None else f[c])
                for bf, f in zip(boot_fits, fits)]
        ci = percentile_ci([drift_slope(log2_sizes, [col[r] for col in cols]) for r in range(b)], opts.ci_level)
    state = fit_drift_state(slope, ci, opts.drift_tol)
    steps_key = "grid_steps_eta" if c == 0 else "grid_steps_beta"
    worst_steps = max((abs(e[steps_key]) for e in entries if e.get(steps_key) is not None), default=0)
    if state == "beyond" and ci and worst_steps <= opts.steps_tol:
        warnings.append(f"the sub-grid fit of {lr}* drifts {signed(slope)} "
                        f"[{signed(ci[0])}, {signed(ci[1])}] octave/doubling although the grid argmin stays within "
                        f"{worst_steps} grid step(s): the grid may be too coarse to resolve the drift")
    return slope, ci, state


def analyse(df: pd.DataFrame, axis: str, group: dict[str, Any], expected_sizes: Sequence[int],
            info: MetricInfo, opts: Options) -> dict[str, Any]:
    """Optimum-shift analysis of one group along one size axis (floats un-encoded)."""
    grid, df, warnings = make_grid(df)
    per = size_data(df, axis, grid, opts)
    sizes = [p.size for p in per]
    missing_sizes = [int(s) for s in expected_sizes if int(s) not in sizes]
    missing: list[dict] = [{"kind": "size", "size": s} for s in missing_sizes]
    if missing_sizes:
        warnings.append(f"no runs for {axis}={', '.join(map(str, missing_sizes))} "
                        "(expected from the sweep's plan or its other groups): analysed the sizes that exist")
    planned = _full_grid(df, axis, grid, opts)
    for p in per:
        n_pt = (~np.isnan(p.cube)).sum(axis=0)
        want = len(p.seeds) if opts.expected_seeds is None else min(opts.expected_seeds, len(p.seeds))
        for a in range(grid.shape[0]):
            for b in range(grid.shape[1]):
                point = {"size": p.size, ETA_COL: float(grid.eta[a]), BETA_COL: grid.beta_at(b)}
                if n_pt[a, b] == 0:
                    if not p.local and planned[a, b]:  # outside a local neighbourhood: not planned, not missing
                        missing.append({"kind": "point", **point})
                elif n_pt[a, b] < want:
                    missing.append({"kind": "seeds", **point, "n_seeds": int(n_pt[a, b]),
                                    "expected_seeds": want})
        if p.local:
            warnings.append(f"{axis}={p.size} ran a local grid ({int((n_pt > 0).sum())} of {n_pt.size} points, "
                            "around the base optimum): its optimum and regret are against the best point of "
                            "that neighbourhood, not of the full grid")
        if p.n_missing_points:
            warnings.append(f"{p.n_missing_points} of {n_pt.size} grid points have no runs at {axis}={p.size} "
                            "(sweep incomplete?): argmin is over the points that exist")

    entries = compare(per, 0, grid, info, opts)
    base_size = per[0].size
    fits, boot_fits = [], []
    for p, e in zip(per, entries):
        (fx, fy, kind, clipped), bf = _fits(p, grid, opts.n_bootstrap)
        fits.append((fx, fy))
        boot_fits.append(bf)
        if p.opt is None:
            e.update(eta_star=None, beta_star=None, eta_star_fit=None, beta_star_fit=None, fit="none",
                     fit_clipped=False, metric_at_opt=math.nan)
            warnings.append(f"no finite optimum at {axis}={p.size}: every run diverged or is missing")
        else:
            i, j = p.opt
            e.update(eta_star=float(grid.eta[i]), beta_star=grid.beta_at(j), eta_star_fit=float(2.0**fx),
                     beta_star_fit=None if fy is None else float(2.0**fy), fit=kind, fit_clipped=clipped,
                     metric_at_opt=info.from_cost(p.surf[i, j]))
        e["eta_star_fit_ci"] = e["beta_star_fit_ci"] = None
        if bf is not None:
            ci = percentile_ci(bf[:, 0], opts.ci_level)
            e["eta_star_fit_ci"] = None if ci is None else [2.0**ci[0], 2.0**ci[1]]
            if grid.beta is not None:
                ci = percentile_ci(bf[:, 1], opts.ci_level)
                e["beta_star_fit_ci"] = None if ci is None else [2.0**ci[0], 2.0**ci[1]]

    base_fx, base_fy = fits[0]
    single_seed = []
    for k, (p, e) in enumerate(zip(per, entries)):
        fx, fy = fits[k]
        ok = fx is not None and base_fx is not None
        e["dlog2_eta_fit"] = float(fx - base_fx) if ok else math.nan
        e["dlog2_beta_fit"] = float(fy - base_fy) if ok and fy is not None and base_fy is not None else None
        doublings = math.log2(p.size / base_size) if p.size > 0 and base_size > 0 else math.nan
        if k == 0 or e["eta_star"] is None or per[0].opt is None or doublings == 0:
            e["drift_eta"] = None if k == 0 else math.nan
            e["drift_beta"] = None
        else:  # grid-argmin shift per doubling (docs/reference/transfer-analysis.md#shift: Δlog2 of η*_s, β*_s)
            e["drift_eta"] = e["dlog2_eta"] / doublings
            e["drift_beta"] = None if e["dlog2_beta"] is None else e["dlog2_beta"] / doublings
        if p.boot is None:
            single_seed.append(p.size)
            e.update(seed_mode=None, seed_mode_freq=None, seed_argmin_freq=[])
        else:
            counts = argmin_counts(p.boot_opt)
            total = sum(counts.values())
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], (1e9, 1e9) if kv[0] is None else kv[0]))
            freq = [{ETA_COL: None if pt is None else float(grid.eta[pt[0]]),
                     BETA_COL: None if pt is None else grid.beta_at(pt[1]), "freq": c / total} for pt, c in ranked]
            e.update(seed_mode={ETA_COL: freq[0][ETA_COL], BETA_COL: freq[0][BETA_COL]},
                     seed_mode_freq=freq[0]["freq"], seed_argmin_freq=freq)
        e["n_runs"] = int(len(p.rows))
        st = p.rows["status"].astype(str).str.lower()
        e["n_diverged"] = int((st != "ok").sum() + (p.rows["_bad"] & (st == "ok")).sum())
        reason = p.rows["diverge_reason"].astype(str) if "diverge_reason" in p.rows else pd.Series("", p.rows.index)
        e["n_diverged_inference"] = int(((st == "diverged") & (reason == "inference")).sum())
        for f in e["edge"]:
            v = fmt_lr(f["value"])
            word, way = ("lowest", "below") if f["side"] == "low" else ("highest", "above")
            warnings.append(f"{f['lr']} optimum at the {word} grid value {v} for {axis}={p.size}: "
                            f"extend the grid {way} {v}")
    if single_seed and opts.n_bootstrap > 0:
        warnings.append(f"seed uncertainty unavailable for {axis}={', '.join(map(str, single_seed))} (only one seed)")

    log2_sizes = [math.log2(s) if s > 0 else math.nan for s in sizes]
    slope_eta = _slope(0, "eta", log2_sizes, fits, boot_fits, entries, grid, opts, warnings)
    slope_beta = _slope(1, "beta", log2_sizes, fits, boot_fits, entries, grid, opts, warnings)
    slopes: dict[str, Any] = {
        "drift_slope_eta": slope_eta[0], "drift_slope_eta_ci": slope_eta[1], "drift_slope_eta_state": slope_eta[2],
        "drift_slope_beta": slope_beta[0], "drift_slope_beta_ci": slope_beta[1],
        "drift_slope_beta_state": slope_beta[2],
    }
    verdict, text, reasons = judge_entries(axis, entries, 0, info, opts, missing_sizes, slopes)

    budget, budget_note = by_budget(df, axis, grid, info, opts, missing_sizes)
    surfaces = [{"size": p.size, ETA_COL: grid.eta.tolist(),
                 BETA_COL: None if grid.beta is None else grid.beta.tolist(),
                 "values": [[info.from_cost(c) if not np.isnan(c) else math.nan for c in row] for row in p.surf],
                 "n_seeds": (~np.isnan(p.cube)).sum(axis=0).tolist()} for p in per]
    public = [{k: v for k, v in e.items() if not k.startswith("_") and k not in ("has_opt", "base_pt_run")}
              for e in entries]
    return {
        "group": group, "axis": axis, "base_size": base_size,
        "eta_grid": grid.eta.tolist(), "beta_grid": None if grid.beta is None else grid.beta.tolist(),
        "sizes": public, **slopes,
        "verdict": verdict, "verdict_text": text, "reasons": reasons,
        "by_base": by_base(per, grid, info, opts, axis, missing_sizes),
        "by_budget": budget, "by_budget_note": budget_note,
        "warnings": warnings, "missing": missing, "surfaces": surfaces,
    }
