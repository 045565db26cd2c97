"""Optimum-shift report: does the best learning rate stay put as the network grows?

Input is the ``runs`` table (one row per training run, see :func:`optimum_shift_report`).
Rows are grouped by the fixed settings (algorithm, parametrization, activation,
dataset and the *other* size axis); for every size axis (``width`` or ``depth``)
that takes at least two values inside a group, the report locates the optimum of
the metric surface M_s(eta, beta) at every size s and measures how far it moves.

Conventions (used throughout, also in the returned dict):

* eta = ``weight_lr``, beta = ``activity_lr``. Learning rates are analysed in
  log2, so shifts are in *octaves* (1 octave = a factor of 2 in the lr) and drift
  slopes are in *octaves per doubling of size* (d log2 lr* / d log2 s).
* Internally every metric is turned into a *cost* that is minimised: losses are
  used as they are, accuracies become the error rate ``1 - acc`` (accuracies are
  fractions in [0, 1]). Reported metric values are in natural units (loss, or
  accuracy). Regret uses cost ratios, i.e. error-rate ratios for accuracies.
* Runs whose status is ``diverged`` or ``failed``, and ``ok`` runs whose metric is
  not finite, have cost +inf (the worst possible value). Rows with any other
  status (e.g. ``running``) are not results yet and are treated as missing.
* Seed averaging: M_s(eta, beta) is the mean cost over the seeds run at that
  point; if *any* seed diverged the mean is +inf (one diverging seed in N makes
  the lr unusable in practice, so it must not win the argmin).
* JSON encoding of the returned dict: finite floats are plain floats, +inf is the
  string ``"inf"``, -inf is ``"-inf"`` (a diverged accuracy: 1 - inf), and
  NaN / "not available" is ``None``. So in a surface, ``None`` means "no run
  here" and ``"inf"`` means "diverged". ``json.dumps(report, allow_nan=False)``
  always works.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "MetricInfo",
    "optimum_shift_report",
    "format_report",
    "surface",
    "fmt_lr",
]

SIZE_AXES: tuple[str, ...] = ("width", "depth")
FIXED_SETTINGS: tuple[str, ...] = ("algorithm", "parametrization", "activation", "dataset")
ETA_COL = "weight_lr"
BETA_COL = "activity_lr"
OK_STATUS = "ok"
BAD_STATUSES = frozenset({"diverged", "failed"})


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric column.

    ``direction`` is the natural sense ("min": lower is better, "max": higher is
    better). ``kind`` decides the internal cost: a loss is its own cost, an
    accuracy (fraction in [0, 1]) becomes the error rate 1 - acc.
    """

    column: str
    direction: Literal["min", "max"]
    kind: Literal["loss", "accuracy"]
    description: str

    def to_cost(self, values: Any) -> np.ndarray:
        """Natural values -> cost to minimise; non-finite values become +inf."""
        v = np.asarray(values, dtype=float)
        cost = v if self.kind == "loss" else 1.0 - v
        return np.where(np.isfinite(cost), cost, np.inf)

    def from_cost(self, cost: float) -> float:
        """Cost -> natural units (an infinite error rate maps to accuracy -inf)."""
        return float(cost) if self.kind == "loss" else float(1.0 - cost)


METRICS: dict[str, MetricInfo] = {
    "min_train_loss": MetricInfo("min_train_loss", "min", "loss", "minimum training loss"),
    "final_train_loss": MetricInfo("final_train_loss", "min", "loss", "final training loss"),
    "best_test_acc": MetricInfo("best_test_acc", "max", "accuracy", "best test accuracy"),
    "final_test_acc": MetricInfo("final_test_acc", "max", "accuracy", "final test accuracy"),
}


def with_run_defaults(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of a runs table with its optional columns filled in where absent: activity_lr NaN
    (algorithms without one), seed 0, status ok."""
    df = runs.copy()
    for column, default in ((BETA_COL, np.nan), ("seed", 0), ("status", OK_STATUS)):
        if column not in df.columns:
            df[column] = default
    return df


def _metric_info(metric: str) -> MetricInfo:
    if metric not in METRICS:
        raise ValueError(f"unknown metric={metric!r}; allowed values: {sorted(METRICS)}")
    return METRICS[metric]


# --------------------------------------------------------------------------- formatting


def fmt_lr(x: Any) -> str:
    """Learning rate as compact scientific text: 0.1 -> '1e-1', 0.05 -> '5e-2', 0.0123 -> '1.23e-2'."""
    x = _as_float(x)
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    mant, exp = f"{x:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def _as_float(x: Any) -> float | None:
    """Read back a value that may be JSON-encoded ('inf', '-inf', None)."""
    if x is None:
        return None
    if isinstance(x, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt_num(x: Any, spec: str = ".4g") -> str:
    """A report number for display: "-" for missing/NaN, "inf"/"-inf", else ``format(x, spec)``."""
    v = _as_float(x)
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, spec)


def _fmt_pct(x: Any) -> str:
    v = _as_float(x)
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{100 * v:.1f}%"


def _to_json(obj: Any) -> Any:
    """Recursively convert to plain Python; +inf -> 'inf', -inf -> '-inf', NaN -> None."""
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_json(obj.tolist())
    if obj is None or isinstance(obj, (bool, np.bool_)):
        return None if obj is None else bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def _scalar(v: Any) -> Any:
    """Group-key value -> plain JSON scalar (ints stay ints, NaN -> None)."""
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if math.isnan(f):
            return None
        return int(f) if f.is_integer() else f
    if v is None or v is pd.NA:
        return None
    return str(v)


# --------------------------------------------------------------------------- table prep


def _lr_key(x: float) -> float:
    """Canonical lr value so that 0.1 and 0.1000000000001 land on one grid point."""
    return float(f"{x:.10g}") if np.isfinite(x) else float("nan")


def _prepare(runs: pd.DataFrame, info: MetricInfo) -> tuple[pd.DataFrame, list[str]]:
    """Add ``_cost``, canonical lrs and defaults for optional columns; drop non-results.

    Returns the prepared frame and human-readable notes about what was dropped.
    """
    notes: list[str] = []
    missing = [c for c in (ETA_COL, info.column) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks required column(s): {missing}")
    df = with_run_defaults(runs)
    df[ETA_COL] = pd.to_numeric(df[ETA_COL], errors="coerce").astype(float).map(_lr_key)
    df[BETA_COL] = pd.to_numeric(df[BETA_COL], errors="coerce").astype(float).map(_lr_key)
    status = df["status"].astype(str).str.lower()

    # Unfinished runs are not evidence of anything yet: treat as missing data.
    pending = ~(status.eq(OK_STATUS) | status.isin(BAD_STATUSES))
    if pending.any():
        notes.append(
            f"{int(pending.sum())} run(s) with status other than ok/diverged/failed "
            f"(e.g. {status[pending].iloc[0]!r}) ignored as missing"
        )
    bad_eta = ~(df[ETA_COL] > 0)
    if (bad_eta & ~pending).any():
        notes.append(f"{int((bad_eta & ~pending).sum())} run(s) with non-positive/NaN weight_lr ignored")
    keep = ~pending & ~bad_eta
    df = df.loc[keep].copy()
    status = status[keep]
    cost = info.to_cost(pd.to_numeric(df[info.column], errors="coerce").to_numpy(dtype=float))
    df["_cost"] = np.where(status.isin(BAD_STATUSES).to_numpy(), np.inf, cost)
    df["_bad"] = ~np.isfinite(df["_cost"].to_numpy())
    return df, notes


# --------------------------------------------------------------------------- surfaces


@dataclass
class _Grid:
    """The (eta, beta) grid of one analysis; ``beta`` is None when there is no activity lr."""

    eta: np.ndarray
    beta: np.ndarray | None

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.eta), 1 if self.beta is None else len(self.beta))

    def beta_at(self, j: int) -> float | None:
        return None if self.beta is None else float(self.beta[j])


def _make_grid(df: pd.DataFrame) -> tuple[_Grid, pd.DataFrame, list[str]]:
    """Union grid of a group. Rows with NaN beta are dropped if other rows have a beta."""
    warnings: list[str] = []
    has_beta = df[BETA_COL].notna()
    if has_beta.any() and not has_beta.all():
        warnings.append(f"{int((~has_beta).sum())} run(s) without activity_lr in a group that has one: ignored")
        df = df.loc[has_beta]
    eta = np.array(sorted(df[ETA_COL].unique()), dtype=float)
    beta = np.array(sorted(df[BETA_COL].unique()), dtype=float) if has_beta.any() else None
    return _Grid(eta, beta), df, warnings


def _seed_cube(rows: pd.DataFrame, grid: _Grid) -> tuple[list[Any], np.ndarray]:
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


def _seed_mean(cube: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over seeds ignoring absent (NaN) entries; inf propagates; NaN if no seed ran."""
    present = ~np.isnan(cube)
    n = present.sum(axis=axis)
    total = np.where(present, cube, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _argmin(surf: np.ndarray) -> tuple[int, int] | None:
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
    info = _metric_info(metric)
    if len(runs) == 0:
        return pd.DataFrame()
    df, _ = _prepare(runs, info)
    for col, val in filters.items():
        if col not in df.columns:
            raise ValueError(f"filter column {col!r} not in runs table")
        df = df.loc[df[col] == val]
    if len(df) == 0:
        return pd.DataFrame()
    grid, df, _ = _make_grid(df)
    _, cube = _seed_cube(df, grid)
    mean_cost = _seed_mean(cube)
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


def _subgrid_optimum(
    surf: np.ndarray, grid: _Grid, i: int, j: int
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


# --------------------------------------------------------------------------- bootstrap


def _bootstrap_argmin(
    cube: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> Counter | None:
    """Resample seeds with replacement; count how often each grid point is the argmin.

    Keys are (i, j) or None (no finite point in that resample). None if < 2 seeds.
    """
    n = cube.shape[0]
    if n < 2 or n_bootstrap <= 0:
        return None
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    means = _seed_mean(cube[idx], axis=1)  # (B, n_eta, n_beta)
    flat = np.where(np.isnan(means), np.inf, means).reshape(n_bootstrap, -1)
    am = flat.argmin(axis=1)
    finite = np.isfinite(flat[np.arange(n_bootstrap), am])
    shape = cube.shape[1:]
    counts: Counter = Counter()
    for k, ok in zip(am.tolist(), finite.tolist()):
        counts[tuple(int(v) for v in np.unravel_index(k, shape)) if ok else None] += 1
    return counts


# --------------------------------------------------------------------------- one analysis


def _regret(cost_base_pt: float, cost_opt: float | None) -> float:
    """M_s(base optimum) / M_s(own optimum) - 1 on costs; inf if the base optimum diverged.

    NaN when the base optimum was not run at this size (unknown).
    """
    if np.isnan(cost_base_pt):
        return float("nan")
    if not np.isfinite(cost_base_pt):
        return float("inf")
    if cost_opt is None or not np.isfinite(cost_opt):
        return float("nan")
    if cost_base_pt == cost_opt:
        return 0.0
    if cost_opt <= 0:  # ratio undefined for a zero (or negative) optimum cost
        return float("inf")
    return float(cost_base_pt / cost_opt - 1.0)


def _edge(grid: _Grid, i: int, j: int, axis: str, size: int) -> tuple[list[dict], list[str]]:
    """Edge flags and warnings when the argmin sits on the boundary of a >= 2-point lr grid."""
    flags: list[dict] = []
    msgs: list[str] = []
    for lr, values, k in ((ETA_COL, grid.eta, i), (BETA_COL, grid.beta, j)):
        if values is None or len(values) < 2:
            continue
        side = "low" if k == 0 else "high" if k == len(values) - 1 else None
        if side is None:
            continue
        v = fmt_lr(values[k])
        word, way = ("lowest", "below") if side == "low" else ("highest", "above")
        flags.append({"lr": lr, "side": side, "value": float(values[k])})
        msgs.append(f"{lr} optimum at the {word} grid value {v} for {axis}={size}: extend the grid {way} {v}")
    return flags, msgs


def _drift_slope(log2_sizes: Sequence[float], log2_lrs: Sequence[float | None]) -> float:
    """Least-squares slope d log2 lr* / d log2 s (octaves per doubling); NaN if < 2 sizes."""
    pts = [(s, v) for s, v in zip(log2_sizes, log2_lrs) if v is not None and np.isfinite(v)]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return float("nan")
    xs, ys = np.array(pts).T
    return float(np.polyfit(xs, ys, 1)[0])


def _verdict(
    axis: str,
    sizes: list[dict],
    base_ok: bool,
    regret_tol: float,
    drift_tol: float,
) -> tuple[str, str]:
    """'transfers' / 'does not transfer' / 'inconclusive' plus a one-line reason.

    The first size (ascending) that breaks a tolerance is named. 'inconclusive'
    is only used when nothing breaks but something needed could not be measured
    (no finite optimum at the base size, or the base optimum never run at a size).
    """
    base = sizes[0]["size"]
    if not base_ok:
        return "inconclusive", f"no finite optimum at the base size {axis}={base} (all runs diverged or missing)"
    unknown: list[str] = []
    for e in sizes[1:]:
        s = e["size"]
        where = f"{axis}={s}"
        parts: list[str] = []
        r = e["regret"]
        if e["eta_star"] is None:
            parts.append(f"no finite optimum at {where} (all runs diverged)")
        if np.isnan(r):
            if e["eta_star"] is not None:
                unknown.append(f"regret unknown at {where} (base optimum not run there)")
                continue  # its argmin is over an incomplete grid: its drift says nothing yet
        elif r > regret_tol:
            tag = " (base optimum diverged)" if np.isinf(r) else ""
            parts.append(f"regret {_fmt_pct(r)}{tag} at {where}")
        for sym, key in (("η*", "drift_eta"), ("β*", "drift_beta")):
            d = e[key]
            if d is not None and np.isfinite(d) and abs(d) > drift_tol:
                parts.append(f"{sym} drifts {d:+.1f} octave/doubling")
        if parts:
            if where not in parts[0]:
                parts[0] += f" at {where}"
            return "does not transfer", "; ".join(parts)
    if unknown:
        return "inconclusive", "; ".join(unknown)
    regrets = [e["regret"] for e in sizes[1:] if np.isfinite(e["regret"])]
    drifts = [abs(e[k]) for e in sizes[1:] for k in ("drift_eta", "drift_beta") if e[k] is not None and np.isfinite(e[k])]
    return "transfers", (
        f"regret ≤ {_fmt_pct(max(regrets, default=0.0))} and |drift| ≤ "
        f"{max(drifts, default=0.0):.2f} octave/doubling at every {axis} "
        f"({', '.join(str(e['size']) for e in sizes)})"
    )


def _analyse(
    df: pd.DataFrame,
    axis: str,
    group: dict[str, Any],
    expected_sizes: Sequence[int],
    info: MetricInfo,
    regret_tol: float,
    drift_tol: float,
    n_bootstrap: int,
    rng_seed: int,
) -> dict[str, Any]:
    """Optimum-shift analysis of one group along one size axis (floats un-encoded)."""
    grid, df, warnings = _make_grid(df)
    sizes = sorted(int(s) for s in df[axis].unique())
    missing: list[dict] = [
        {"kind": "size", "size": int(s)} for s in expected_sizes if int(s) not in sizes
    ]
    if missing:
        warnings.append(
            f"no runs for {axis}={', '.join(str(m['size']) for m in missing)} "
            "(present in other groups of this sweep): analysed the sizes that exist"
        )

    # Per-size surfaces and grid optima.
    per: list[dict[str, Any]] = []
    for s in sizes:
        rows = df.loc[df[axis] == s]
        seeds, cube = _seed_cube(rows, grid)
        surf = _seed_mean(cube)
        per.append(
            dict(size=s, rows=rows, seeds=seeds, cube=cube, surf=surf, opt=_argmin(surf))
        )
        n_seed_pt = (~np.isnan(cube)).sum(axis=0)
        n_missing = 0
        for a in range(grid.shape[0]):
            for b in range(grid.shape[1]):
                point = {"size": s, ETA_COL: float(grid.eta[a]), BETA_COL: grid.beta_at(b)}
                if n_seed_pt[a, b] == 0:
                    missing.append({"kind": "point", **point})
                    n_missing += 1
                elif n_seed_pt[a, b] < len(seeds):
                    missing.append(
                        {"kind": "seeds", **point, "n_seeds": int(n_seed_pt[a, b]), "expected_seeds": len(seeds)}
                    )
        if n_missing:
            warnings.append(
                f"{n_missing} of {n_seed_pt.size} grid points have no runs at {axis}={s} "
                "(sweep incomplete?): argmin is over the points that exist"
            )

    base = per[0]
    base_opt = base["opt"]
    base_size = base["size"]
    lx = np.log2(grid.eta)
    ly = None if grid.beta is None else np.log2(grid.beta)

    entries: list[dict[str, Any]] = []
    fits: list[tuple[float | None, float | None]] = []
    single_seed: list[int] = []
    for k, p in enumerate(per):
        s, surf, opt = p["size"], p["surf"], p["opt"]
        e: dict[str, Any] = {"size": s}
        if opt is None:
            fx = fy = None
            e.update(
                eta_star=None, beta_star=None, eta_star_fit=None, beta_star_fit=None, fit="none",
                fit_clipped=False, metric_at_opt=float("nan"),
            )
            warnings.append(f"no finite optimum at {axis}={s}: every run diverged or is missing")
        else:
            i, j = opt
            fx, fy, kind, clipped = _subgrid_optimum(surf, grid, i, j)
            e.update(
                eta_star=float(grid.eta[i]),
                beta_star=grid.beta_at(j),
                eta_star_fit=float(2.0**fx),
                beta_star_fit=None if fy is None else float(2.0**fy),
                fit=kind,
                fit_clipped=clipped,
                metric_at_opt=info.from_cost(surf[i, j]),
            )
        fits.append((fx, fy))

        # Transfer of the base optimum to this size.
        if base_opt is not None:
            bi, bj = base_opt
            c_base_pt = float(surf[bi, bj])
            e["metric_at_base_opt"] = info.from_cost(c_base_pt) if not np.isnan(c_base_pt) else float("nan")
            e["regret"] = _regret(c_base_pt, None if opt is None else float(surf[opt]))
        else:
            e["metric_at_base_opt"] = float("nan")
            e["regret"] = float("nan")

        # Shifts vs base: grid (exact grid steps) and sub-grid (fitted) estimates.
        ok = opt is not None and base_opt is not None
        bfx, bfy = fits[0]
        e["dlog2_eta"] = float(lx[opt[0]] - lx[base_opt[0]]) if ok else float("nan")
        e["dlog2_beta"] = float(ly[opt[1]] - ly[base_opt[1]]) if ok and ly is not None else None
        e["dlog2_eta_fit"] = float(fx - bfx) if ok else float("nan")
        e["dlog2_beta_fit"] = float(fy - bfy) if ok and fy is not None and bfy is not None else None
        e["grid_steps_eta"] = int(opt[0] - base_opt[0]) if ok else None
        e["grid_steps_beta"] = int(opt[1] - base_opt[1]) if ok and ly is not None else None
        doublings = math.log2(s / base_size) if s > 0 and base_size > 0 else float("nan")
        if k == 0 or not ok or doublings == 0:
            e["drift_eta"] = None if k == 0 else float("nan")
            e["drift_beta"] = None
        else:
            # The verdict's per-size drift uses the grid argmin (SPEC §7: Δlog2 of η*_s, β*_s): a
            # sub-grid fit wobbles with seed noise even when the argmin never moves.
            e["drift_eta"] = e["dlog2_eta"] / doublings
            e["drift_beta"] = None if e["dlog2_beta"] is None else e["dlog2_beta"] / doublings

        # Seed uncertainty: how often does each grid point win under seed resampling?
        counts = _bootstrap_argmin(p["cube"], n_bootstrap, np.random.default_rng(rng_seed))
        if counts is None:
            single_seed.append(s)
            e.update(seed_mode=None, seed_mode_freq=None, seed_argmin_freq=[])
        else:
            total = sum(counts.values())
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], (1e9, 1e9) if kv[0] is None else kv[0]))
            freq = [
                {
                    ETA_COL: None if pt is None else float(grid.eta[pt[0]]),
                    BETA_COL: None if pt is None else grid.beta_at(pt[1]),
                    "freq": c / total,
                }
                for pt, c in ranked
            ]
            e.update(
                seed_mode={ETA_COL: freq[0][ETA_COL], BETA_COL: freq[0][BETA_COL]},
                seed_mode_freq=freq[0]["freq"],
                seed_argmin_freq=freq,
            )
        e["n_seeds"] = len(p["seeds"])
        e["n_runs"] = int(len(p["rows"]))
        e["n_diverged"] = int(p["rows"]["_bad"].sum())

        if opt is not None:
            flags, msgs = _edge(grid, opt[0], opt[1], axis, s)
            e["edge"] = flags
            warnings.extend(msgs)
        else:
            e["edge"] = []
        entries.append(e)

    if single_seed:
        warnings.append(
            f"seed uncertainty unavailable for {axis}={', '.join(map(str, single_seed))} (only one seed)"
        )

    log2_sizes = [math.log2(e["size"]) if e["size"] > 0 else float("nan") for e in entries]
    slope_eta = _drift_slope(log2_sizes, [f[0] for f in fits])
    slope_beta = None if ly is None else _drift_slope(log2_sizes, [f[1] for f in fits])
    verdict, text = _verdict(axis, entries, base_opt is not None, regret_tol, drift_tol)
    if verdict == "transfers" and any(e["edge"] for e in entries):
        # An optimum pinned to the grid boundary can "transfer" only because the grid is too narrow.
        text += "; caution: optimum on the grid edge (see warnings), the true optimum may lie outside the grid"

    surfaces = [
        {
            "size": p["size"],
            ETA_COL: grid.eta.tolist(),
            BETA_COL: None if grid.beta is None else grid.beta.tolist(),
            "values": [[info.from_cost(c) if not np.isnan(c) else float("nan") for c in row] for row in p["surf"]],
            "n_seeds": (~np.isnan(p["cube"])).sum(axis=0).tolist(),
        }
        for p in per
    ]
    return {
        "group": group,
        "axis": axis,
        "base_size": base_size,
        "eta_grid": grid.eta.tolist(),
        "beta_grid": None if grid.beta is None else grid.beta.tolist(),
        "sizes": entries,
        "drift_slope_eta": slope_eta,
        "drift_slope_beta": slope_beta,
        "verdict": verdict,
        "verdict_text": text,
        "warnings": warnings,
        "missing": missing,
        "surfaces": surfaces,
    }


# --------------------------------------------------------------------------- public API


def optimum_shift_report(
    runs: pd.DataFrame,
    *,
    metric: str = "min_train_loss",
    regret_tol: float = 0.05,
    drift_tol: float = 0.5,
    n_bootstrap: int = 200,
    rng_seed: int = 0,
) -> dict[str, Any]:
    """Does the optimal (weight_lr, activity_lr) stay put as width / depth grow?

    ``runs``: one row per run with at least ``weight_lr``, the metric column and
    ``width`` and/or ``depth``; ``activity_lr`` (NaN for e.g. bp), ``seed``,
    ``status`` (ok|diverged|failed) and the fixed settings (algorithm,
    parametrization, activation, dataset) are used when present; other columns
    are ignored. See the module docstring for the cost / inf / seed-averaging and
    JSON-encoding conventions ("inf"/"-inf" strings, None for NaN/unavailable).

    For every group of fixed settings (plus the other size axis held fixed) and
    each size axis with >= 2 values, returns one entry of ``analyses`` with:
    ``group``, ``axis``, ``base_size`` (smallest size), ``eta_grid``/``beta_grid``,
    ``sizes`` (per size: grid optimum ``eta_star``/``beta_star``; sub-grid
    ``eta_star_fit``/``beta_star_fit`` and ``fit`` in {"quadratic","axis","grid","none"} ("axis": separate 1-D fits along each lr through the argmin, used when the 2-D quadric is not convex);
    ``metric_at_opt`` and ``metric_at_base_opt`` (natural units); ``regret``
    (cost ratio - 1 of using the base optimum, error-rate ratio for accuracies);
    ``dlog2_eta``/``dlog2_beta`` (grid, octaves) and ``..._fit`` (sub-grid);
    ``drift_eta``/``drift_beta`` (grid-argmin shift / log2(s/s_base), octaves per
    doubling — what the verdict checks); ``grid_steps_eta``/``grid_steps_beta``; ``seed_mode``,
    ``seed_mode_freq`` and ``seed_argmin_freq`` from ``n_bootstrap`` seed
    resamples (None / [] with one seed); ``n_seeds``, ``n_runs``, ``n_diverged``;
    ``edge`` flags), ``drift_slope_eta``/``drift_slope_beta`` (least squares of
    log2 lr*_fit on log2 size), ``verdict`` ("transfers" when regret <=
    ``regret_tol`` and |drift| <= ``drift_tol`` for both lrs at every size, else
    "does not transfer"; "inconclusive" only when nothing fails but the base has
    no finite optimum or the base optimum was not run at some size),
    ``verdict_text``, ``warnings``, ``missing`` and ``surfaces`` (per size:
    lr grids, ``values`` as rows=weight_lr x cols=activity_lr in natural units,
    ``n_seeds`` per point).

    Raises ValueError for an unknown ``metric``; an empty table or one without any
    varying size axis gives ``analyses == []`` and an explanatory ``notes`` entry.
    """
    info = _metric_info(metric)
    report: dict[str, Any] = {
        "metric": metric,
        "column": info.column,
        "direction": info.direction,
        "units": "lrs in log2 (octave = factor 2); drift in octaves per doubling of size",
        "encoding": "+inf -> 'inf', -inf -> '-inf', NaN/unavailable -> null",
        "thresholds": {"regret_tol": regret_tol, "drift_tol": drift_tol},
        "n_bootstrap": n_bootstrap,
        "rng_seed": rng_seed,
        "n_runs": int(len(runs)),
        "analyses": [],
        "notes": [],
    }
    if len(runs) == 0:
        report["notes"].append("no runs: nothing to analyse")
        return _to_json(report)

    df, notes = _prepare(runs, info)
    report["notes"].extend(notes)
    axes = [a for a in SIZE_AXES if a in df.columns]
    if not axes:
        raise ValueError(f"runs table has none of the size columns {list(SIZE_AXES)}")
    fixed = [c for c in FIXED_SETTINGS if c in df.columns]

    for axis in axes:
        others = [a for a in axes if a != axis]
        sub = df.loc[df[axis].notna()]
        if len(sub) == 0:
            continue
        keys = fixed + others
        # Sizes seen anywhere for the same fixed settings: used to flag missing sizes.
        expected: dict[tuple, list[int]] = {}
        if fixed:
            for k, g in sub.groupby(fixed, dropna=False, sort=True):
                expected[_key(k)] = sorted(int(s) for s in g[axis].unique())
        else:
            expected[()] = sorted(int(s) for s in sub[axis].unique())
        grouped = sub.groupby(keys, dropna=False, sort=True) if keys else [((), sub)]
        for key, g in grouped:
            key = key if isinstance(key, tuple) else (key,)
            if g[axis].nunique() < 2:
                continue
            group = {c: _scalar(v) for c, v in zip(keys, key)}
            if "sweep_id" in g.columns:
                group_sweeps = sorted(str(x) for x in g["sweep_id"].dropna().unique())
            else:
                group_sweeps = []
            analysis = _analyse(
                g, axis, group, expected[_key(key[: len(fixed)])], info,
                regret_tol, drift_tol, n_bootstrap, rng_seed,
            )
            analysis["sweep_ids"] = group_sweeps
            report["analyses"].append(analysis)

    if not report["analyses"]:
        report["notes"].append(
            "no group has a size axis (width or depth) with >= 2 values while the other settings are fixed: "
            "nothing to compare"
        )
    return _to_json(report)


def _key(k: Any) -> tuple:
    """Hashable group key with NaN -> None (NaN != NaN would break dict look-ups)."""
    return tuple(_scalar(v) for v in (k if isinstance(k, tuple) else (k,)))


def _group_title(analysis: dict[str, Any]) -> str:
    g = analysis["group"]
    fixed = [str(g[c]) for c in FIXED_SETTINGS if c in g]
    held = [f"{k}={v}" for k, v in g.items() if k not in FIXED_SETTINGS]
    return " / ".join(fixed) + (f", {', '.join(held)}" if held else "")


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text of an :func:`optimum_shift_report` result.

    Per analysis: a table (size | η* | β* | fitted η*, β* | metric | regret |
    Δlog2η | Δlog2β | seed mode), drift slopes, warnings and the verdict line.
    Learning rates print like 1e-1, 5e-2; shifts in octaves.
    """
    direction = "lower" if report.get("direction") == "min" else "higher"
    lines = [f"Optimum-shift report — metric {report.get('metric')} ({direction} is better)"]
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    if not report.get("analyses"):
        lines.append("no analyses")
        return "\n".join(lines)
    for a in report["analyses"]:
        axis = a["axis"]
        lines += ["", f"== {_group_title(a)} — axis: {axis} (base {axis}={a['base_size']}) =="]
        header = [axis, "η*", "β*", "fit η*", "fit β*", "fit", "metric", "regret", "Δlog2η", "Δlog2β", "seed mode"]
        rows = [header]
        for e in a["sizes"]:
            mode = "n/a (1 seed)" if e["seed_mode"] is None else (
                f"{fmt_lr(e['seed_mode']['weight_lr'])},{fmt_lr(e['seed_mode']['activity_lr'])} "
                f"{_fmt_pct(e['seed_mode_freq'])}"
            )
            rows.append([
                str(e["size"]),
                fmt_lr(e["eta_star"]),
                fmt_lr(e["beta_star"]),
                fmt_lr(e["eta_star_fit"]),
                fmt_lr(e["beta_star_fit"]),
                e["fit"],
                fmt_num(e["metric_at_opt"]),
                _fmt_pct(e["regret"]),
                fmt_num(e["dlog2_eta"], "+.2f"),
                fmt_num(e["dlog2_beta"], "+.2f"),
                mode,
            ])
        widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
        for r in rows:
            lines.append(" | ".join(cell.rjust(w) for cell, w in zip(r, widths)))
        lines.append(
            f"drift slope (octaves per doubling of {axis}): η* {fmt_num(a['drift_slope_eta'], '+.2f')}, "
            f"β* {fmt_num(a['drift_slope_beta'], '+.2f')}"
        )
        if a["warnings"]:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in a["warnings"]]
        lines.append(f"verdict: {a['verdict']} — {a['verdict_text']}")
    return "\n".join(lines)
