"""Metric surfaces of one group: the (η, β) grid, the per-seed cost cube, seed means, the grid argmin
and the sub-grid optimum from a quadratic fit in (log2 η, log2 β) around it.

Seed averaging: M_s(η, β) is the mean cost over the seeds run at that point; any +inf seed makes the
mean +inf (with the report's default ``diverged: inf`` one diverging seed in N makes the lr unusable,
so it must not win the argmin). Missing (never run) entries are NaN and are skipped by the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .metrics import BETA_COL, ETA_COL, metric_info, prepare

@dataclass
class Grid:
    """The (eta, beta) grid of one analysis; ``beta`` is None when there is no activity lr."""

    eta: np.ndarray
    beta: np.ndarray | None

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.eta), 1 if self.beta is None else len(self.beta))

    def beta_at(self, j: int) -> float | None:
        return None if self.beta is None else float(self.beta[j])


def make_grid(df: pd.DataFrame) -> tuple[Grid, pd.DataFrame, list[str]]:
    """Union grid of a group. Rows with NaN beta are dropped if other rows have a beta."""
    warnings: list[str] = []
    has_beta = df[BETA_COL].notna()
    if has_beta.any() and not has_beta.all():
        warnings.append(f"{int((~has_beta).sum())} run(s) without activity_lr in a group that has one: ignored")
        df = df.loc[has_beta]
    eta = np.array(sorted(df[ETA_COL].unique()), dtype=float)
    beta = np.array(sorted(df[BETA_COL].unique()), dtype=float) if has_beta.any() else None
    return Grid(eta, beta), df, warnings


def seed_cube(rows: pd.DataFrame, grid: Grid) -> tuple[list[Any], np.ndarray]:
    """Cost per (seed, eta index, beta index); NaN where that seed was not run there.

    Duplicate rows for the same seed and point (e.g. retries) are averaged, with
    any inf making the average inf.
    """
    eta_idx = {v: k for k, v in enumerate(grid.eta)}
    beta_idx = {} if grid.beta is None else {v: k for k, v in enumerate(grid.beta)}
    seeds = sorted(rows["seed"].unique().tolist(), key=lambda s: (str(type(s)), s))
    seed_idx = {s: k for k, s in enumerate(seeds)}
    cube = np.full((len(seeds),) + grid.shape, np.nan)
    agg = rows.groupby(["seed", ETA_COL, BETA_COL], dropna=False)["_cost"].mean()
    for (seed, eta, beta), c in agg.items():
        j = 0 if grid.beta is None else beta_idx[beta]
        cube[seed_idx[seed], eta_idx[eta], j] = c
    return seeds, cube


def seed_mean(cube: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over seeds ignoring absent (NaN) entries; inf propagates; NaN if no seed ran."""
    present = ~np.isnan(cube)
    n = present.sum(axis=axis)
    total = np.where(present, cube, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def argmin(surf: np.ndarray) -> tuple[int, int] | None:
    """Grid argmin of a cost surface (NaN = missing); None when nothing is finite."""
    filled = np.where(np.isnan(surf), np.inf, surf)
    k = int(np.argmin(filled))
    if not np.isfinite(filled.flat[k]):
        return None
    i, j = np.unravel_index(k, surf.shape)
    return int(i), int(j)


def surface(
    runs: pd.DataFrame, *, metric: str = "min_train_loss", **filters: Any
) -> pd.DataFrame:
    """Seed-mean metric surface in natural units: index weight_lr, columns activity_lr.

    ``filters`` select rows by exact column value, e.g.
    ``surface(runs, metric="best_test_acc", algorithm="pc", width=128, depth=4)``.
    Diverged points are +inf (loss) / -inf (accuracy); points never run are NaN.
    Without an activity lr the single column is labelled NaN.
    """
    info = metric_info(metric)
    if len(runs) == 0:
        return pd.DataFrame()
    df, _ = prepare(runs, info)
    for col, val in filters.items():
        if col not in df.columns:
            raise ValueError(f"filter column {col!r} not in runs table")
        df = df.loc[df[col] == val]
    if len(df) == 0:
        return pd.DataFrame()
    grid, df, _ = make_grid(df)
    _, cube = seed_cube(df, grid)
    mean_cost = seed_mean(cube)
    surf = mean_cost if info.kind == "loss" else 1.0 - mean_cost  # NaN (no run) stays NaN
    cols = [np.nan] if grid.beta is None else list(grid.beta)
    return pd.DataFrame(surf, index=pd.Index(grid.eta, name=ETA_COL), columns=pd.Index(cols, name=BETA_COL))


# --------------------------------------------------------------------------- sub-grid fit


def _window(k: int, n: int) -> range:
    """3-wide index window containing k, shifted to stay inside a grid of n >= 3 points."""
    start = min(max(k - 1, 0), n - 3)
    return range(start, start + 3)


def _fit_1d(x: np.ndarray, z: np.ndarray, lo: float, hi: float) -> tuple[float, bool] | None:
    """Vertex of a least-squares parabola z(x); needs 3 points and positive curvature."""
    if len(x) < 3:
        return None
    x0 = float(np.mean(x))
    a = np.vander(x - x0, 3)  # columns: dx^2, dx, 1
    coef, _, rank, _ = np.linalg.lstsq(a, z, rcond=None)
    if rank < 3 or coef[0] <= 1e-12:
        return None
    v = x0 - coef[1] / (2 * coef[0])
    vc = min(max(v, lo), hi)
    return vc, vc != v


def _line_fit(pts: list, lo: float, hi: float) -> tuple[float, bool] | None:
    """1-D parabola fit of log10(cost) through (log2 lr, cost) points; None if not possible."""
    if len(pts) < 3:
        return None
    px, pz = (np.array(t, dtype=float) for t in zip(*pts))
    return _fit_1d(px, np.log10(pz), lo, hi)


def _fit_2d(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[float, float, bool] | None:
    """Vertex of a least-squares quadric z(x, y); needs >= 6 points and a PD Hessian."""
    if len(x) < 6:
        return None
    x0, y0 = float(np.mean(x)), float(np.mean(y))
    dx, dy = x - x0, y - y0
    a = np.column_stack([np.ones_like(dx), dx, dy, dx * dx, dx * dy, dy * dy])
    coef, _, rank, _ = np.linalg.lstsq(a, z, rcond=None)
    if rank < 6:
        return None
    hess = np.array([[2 * coef[3], coef[4]], [coef[4], 2 * coef[5]]])
    if np.any(np.linalg.eigvalsh(hess) <= 1e-12):
        return None
    vx, vy = np.linalg.solve(hess, -coef[1:3])
    vx, vy = vx + x0, vy + y0
    cx = min(max(vx, box[0]), box[1])
    cy = min(max(vy, box[2]), box[3])
    return cx, cy, bool(cx != vx or cy != vy)


def subgrid_optimum(
    surf: np.ndarray, grid: Grid, i: int, j: int
) -> tuple[float, float | None, str, bool]:
    """Sub-grid optimum (log2 eta*, log2 beta*, fit kind, clipped?) around grid argmin (i, j).

    Fits log10(cost) with a quadratic in (log2 eta, log2 beta) on the 3x3 window
    around the argmin (log of the cost because losses vary over decades and the
    log is closer to quadratic in log-lr near the optimum). Only finite, positive
    points are fitted. A dimension with < 3 grid values is held at its grid value
    (1-D fit along the other one). When the 2-D quadric is not convex, fits each lr on its
    own line through the argmin ("axis"). Falls back to the grid argmin ("grid") when the
    fit is under-determined or not convex; the vertex is clipped to the window.
    """
    lx = np.log2(grid.eta)
    ly = None if grid.beta is None else np.log2(grid.beta)
    gx, gy = float(lx[i]), (None if ly is None else float(ly[j]))
    fit_x = len(lx) >= 3
    fit_y = ly is not None and len(ly) >= 3

    def usable(a: int, b: int) -> bool:
        c = surf[a, b]
        return bool(np.isfinite(c) and c > 0)

    if fit_x and fit_y:
        wi, wj = _window(i, len(lx)), _window(j, len(ly))
        pts = [(lx[a], ly[b], math.log10(surf[a, b])) for a in wi for b in wj if usable(a, b)]
        if pts:
            px, py, pz = (np.array(t) for t in zip(*pts))
            box = (lx[wi[0]], lx[wi[-1]], ly[wj[0]], ly[wj[-1]])
            res = _fit_2d(px, py, pz, box)
            if res is not None:
                return float(res[0]), float(res[1]), "quadratic", res[2]
        # Real surfaces are often not jointly convex in a 3x3 window (PC's loss is flat in β over
        # a range, then diverges): fit each lr on its own line through the argmin instead.
        rx = _line_fit([(lx[a], surf[a, j]) for a in wi if usable(a, j)], lx[wi[0]], lx[wi[-1]])
        ry = _line_fit([(ly[b], surf[i, b]) for b in wj if usable(i, b)], ly[wj[0]], ly[wj[-1]])
        if rx is not None or ry is not None:
            return (gx if rx is None else rx[0], gy if ry is None else ry[0], "axis",
                    bool((rx and rx[1]) or (ry and ry[1])))
    elif fit_x:
        wi = _window(i, len(lx))
        res = _line_fit([(lx[a], surf[a, j]) for a in wi if usable(a, j)], lx[wi[0]], lx[wi[-1]])
        if res is not None:
            return float(res[0]), gy, "quadratic", res[1]
    elif fit_y:
        wj = _window(j, len(ly))
        res = _line_fit([(ly[b], surf[i, b]) for b in wj if usable(i, b)], ly[wj[0]], ly[wj[-1]])
        if res is not None:
            return gx, float(res[0]), "quadratic", res[1]
    return gx, gy, "grid", False


