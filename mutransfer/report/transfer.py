"""Transfer of one size's optimum to the other sizes of an analysis: per-size surfaces with their seed
bootstrap (:class:`SizeData`), and per size the regret of the base optimum and the argmin's move in
grid steps and octaves, with bootstrap CIs (:func:`compare`), judged by :mod:`.verdict`. Used by the
main analysis (base = smallest size) and by the robustness views (:mod:`.views`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import verdict as V
from .metrics import BETA_COL, ETA_COL, MetricInfo
from .surfaces import Grid, argmin, seed_cube, seed_mean
from .uncertainty import argmins, percentile_ci, resample_means


@dataclass(frozen=True)
class Options:
    """Report options: tolerances of the verdict (:mod:`.verdict`), bootstrap size and CI level, and
    the divergence policy (:mod:`.metrics`)."""

    regret_tol: float
    steps_tol: int = 1
    drift_tol: float = 0.5
    n_bootstrap: int = 200
    rng_seed: int = 0
    ci_level: float = 0.95
    diverged: str = "inf"
    # The sweep's design (sweeps/decide.py), when it is not a full grid × the same seeds everywhere:
    # ``expected_seeds`` — seeds every run grid point is planned with (a point with more has seeds
    # added where the optimum is still open; one with fewer is missing seeds; default: every seed
    # seen at that size); ``local_sizes`` — sizes that run a local neighbourhood of the grid, not
    # all of it (points outside it are not missing; an optimum on the neighbourhood's edge is on
    # the edge; regret there is against the best point of the neighbourhood).
    expected_seeds: int | None = None
    local_sizes: frozenset = frozenset()


@dataclass
class SizeData:
    """One size of an analysis: its runs, seeds, cost cube (seed, η, β), seed-mean surface, grid
    argmin, and the bootstrap resample means and argmins (None with < 2 seeds)."""

    size: int
    rows: pd.DataFrame
    seeds: list
    cube: np.ndarray
    surf: np.ndarray
    opt: tuple[int, int] | None
    boot: np.ndarray | None
    boot_opt: np.ndarray | None
    boot_class: np.ndarray | None
    n_missing_points: int
    n_missing_seeds: int
    local: bool = False

    @property
    def complete(self) -> bool:
        return self.n_missing_points == 0 and self.n_missing_seeds == 0


def _full_grid(df: pd.DataFrame, axis: str, grid: Grid, opts: Options) -> np.ndarray:
    """(η, β) mask of the points a full-grid size is planned with: every grid point, or, when some
    sizes run local grids, the points whose values some full-grid size ran (a local neighbourhood
    grown past the base's grid adds values the full-grid sizes never planned)."""
    mask = np.ones(grid.shape, bool)
    if not opts.local_sizes:
        return mask
    full = df.loc[~df[axis].isin(list(opts.local_sizes))]
    etas = np.isin(grid.eta, full[ETA_COL].unique())
    betas = np.ones(grid.shape[1], bool) if grid.beta is None else np.isin(grid.beta, full[BETA_COL].unique())
    return etas[:, None] & betas[None, :]


def size_data(df: pd.DataFrame, axis: str, grid: Grid, opts: Options) -> list[SizeData]:
    out = []
    planned = _full_grid(df, axis, grid, opts)
    for k, s in enumerate(sorted(int(v) for v in df[axis].unique())):
        rows = df.loc[df[axis] == s]
        seeds, cube = seed_cube(rows, grid)
        surf = seed_mean(cube)
        boot, cls = resample_means(cube, opts.n_bootstrap, np.random.default_rng((opts.rng_seed, k)))
        n_pt = (~np.isnan(cube)).sum(axis=0)
        local = s in opts.local_sizes
        want = len(seeds) if opts.expected_seeds is None else min(opts.expected_seeds, len(seeds))
        out.append(SizeData(s, rows, seeds, cube, surf, argmin(surf), boot,
                            None if boot is None else argmins(boot), cls,
                            0 if local else int(((n_pt == 0) & planned).sum()), int(((n_pt > 0) & (n_pt < want)).sum()),
                            local))
    return out


def _tiled(p: SizeData, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample surfaces and argmins of a size; its point values repeated when it has no bootstrap."""
    if p.boot is not None:
        return p.boot, p.boot_opt
    opt = (-1, -1) if p.opt is None else p.opt
    return np.broadcast_to(p.surf, (b,) + p.surf.shape), np.tile(np.array(opt), (b, 1))


def edge_flags(grid: Grid, opt: tuple[int, int] | None, present: np.ndarray | None = None) -> list[dict]:
    """``[{lr, side: low|high, value}]`` for each lr (with >= 2 grid values) whose argmin is on the edge:
    of the grid, or with ``present`` (a boolean (η, β) mask: a local neighbourhood) of the values run
    in the argmin's row/column of the mask."""
    if opt is None:
        return []
    flags = []
    for ax, (lr, values, k) in enumerate(((ETA_COL, grid.eta, opt[0]), (BETA_COL, grid.beta, opt[1]))):
        if values is None or len(values) < 2:
            continue
        lo, hi = 0, len(values) - 1
        if present is not None:
            line = present[:, opt[1]] if ax == 0 else present[opt[0], :]
            run = np.flatnonzero(line)
            if len(run) < 2:
                continue
            lo, hi = int(run[0]), int(run[-1])
        side = "low" if k == lo else "high" if k == hi else None
        if side is not None:
            flags.append({"lr": lr, "side": side, "value": float(values[k])})
    return flags


def _int_ci(steps, level: float) -> list[int] | None:
    """CI of a count of grid steps (the percentile picks actual values, so they are integers)."""
    ci = percentile_ci(steps, level)
    return None if ci is None else [int(ci[0]), int(ci[1])]


def compare(per: list[SizeData], base_k: int, grid: Grid, info: MetricInfo, opts: Options) -> list[dict]:
    """Per size: the transfer of size ``base_k``'s optimum — regret, grid-step and octave moves of the
    argmin — with bootstrap CIs, plus what the verdict needs (:func:`.verdict.reasons_for`)."""
    lx = np.log2(grid.eta)
    ly = None if grid.beta is None else np.log2(grid.beta)
    base = per[base_k]
    bo = base.opt
    entries = []
    for k, p in enumerate(per):
        present = (~np.isnan(p.cube)).any(axis=0) if p.local else None
        e: dict[str, Any] = {"size": p.size, "has_opt": p.opt is not None, "complete": p.complete,
                             "n_seeds": len(p.seeds), "edge": edge_flags(grid, p.opt, present), "local": p.local}
        ok = p.opt is not None and bo is not None
        c_base_pt = float(p.surf[bo]) if bo is not None else math.nan
        e["base_pt_run"] = not math.isnan(c_base_pt)
        e["metric_at_base_opt"] = info.from_cost(c_base_pt) if bo is not None and not math.isnan(c_base_pt) \
            else math.nan
        e["regret"] = info.regret(c_base_pt, None if p.opt is None else float(p.surf[p.opt])) \
            if bo is not None else math.nan
        e["grid_steps_eta"] = int(p.opt[0] - bo[0]) if ok else None
        e["grid_steps_beta"] = int(p.opt[1] - bo[1]) if ok and ly is not None else None
        e["dlog2_eta"] = float(lx[p.opt[0]] - lx[bo[0]]) if ok else math.nan
        e["dlog2_beta"] = float(ly[p.opt[1]] - ly[bo[1]]) if ok and ly is not None else None
        for key in ("regret_ci", "grid_steps_eta_ci", "grid_steps_beta_ci",
                    "_abs_regret_ci", "_abs_grid_steps_eta_ci", "_abs_grid_steps_beta_ci"):
            e[key] = None
        if k != base_k and ok and (p.boot is not None or base.boot is not None):
            b = opts.n_bootstrap
            bs, bopt = _tiled(base, b)
            ss, sopt = _tiled(p, b)
            reg, di, dj = [], [], []
            for r in range(b):
                (bi, bj), (si, sj) = bopt[r], sopt[r]
                if bi < 0:
                    continue
                reg.append(info.regret(float(ss[r][bi, bj]), None if si < 0 else float(ss[r][si, sj])))
                if si >= 0:
                    di.append(si - bi)
                    dj.append(sj - bj)
            e["regret_ci"] = e["_abs_regret_ci"] = percentile_ci(reg, opts.ci_level)
            e["grid_steps_eta_ci"] = _int_ci(di, opts.ci_level)
            e["_abs_grid_steps_eta_ci"] = _int_ci(np.abs(di), opts.ci_level)
            if ly is not None:
                e["grid_steps_beta_ci"] = _int_ci(dj, opts.ci_level)
                e["_abs_grid_steps_beta_ci"] = _int_ci(np.abs(dj), opts.ci_level)
        entries.append(e)
    return entries


def judge_entries(axis: str, entries: list[dict], base_k: int, info: MetricInfo, opts: Options,
                  missing_sizes: Sequence[int], slopes: dict | None = None) -> tuple[str, str, list[dict]]:
    reasons = V.reasons_for(axis, entries, base_k, opts, info.regret_unit, missing_sizes)
    verdict = V.decide(reasons)
    return verdict, V.verdict_text(verdict, reasons, axis, entries, base_k, info.regret_unit, slopes), reasons
