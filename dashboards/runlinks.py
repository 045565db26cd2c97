"""Which runs sit behind a mark on a figure, and the link that opens them.

Every grid point, optimum star, curve and shift-table row on the pages stands for a set of runs:
the seeds of one (η, β) point of one cell (an analysis' group at one size). :func:`runs_at` finds
them in the runs table; :func:`seeds_url` is the run page of the first seed with the others
overlaid (``?also=``); :func:`seed_hover` lists each seed's value for a hover label.

Learning rates are matched on a relative tolerance of 1e-6 (grid values go through YAML and
Parquet as floats); a missing activity lr (bp) matches NaN.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd

from mutransfer.report import METRICS, fmt_lr, fmt_num
from mutransfer.report.metrics import BETA_COL as BETA
from mutransfer.report.metrics import ETA_COL as ETA

BAD = frozenset({"diverged", "failed"})


def _same_lr(col: pd.Series, value: Any) -> np.ndarray:
    v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        return ~np.isfinite(v)
    return np.isfinite(v) & (np.abs(v - x) <= 1e-6 * abs(x))


def cell_runs(runs: pd.DataFrame | None, group: Mapping[str, Any] | None, axis: str | None = None,
              size: Any = None) -> pd.DataFrame:
    """The rows of ``runs`` whose settings equal ``group`` (and ``axis`` = ``size`` when given)."""
    if not isinstance(runs, pd.DataFrame) or len(runs) == 0:
        return pd.DataFrame()
    mask = np.ones(len(runs), dtype=bool)
    for k, v in {**dict(group or {}), **({axis: size} if axis else {})}.items():
        if k not in runs.columns:
            continue
        col = runs[k]
        if pd.api.types.is_numeric_dtype(col):
            mask &= _same_lr(col, v) if v is not None else col.isna().to_numpy()
        else:
            mask &= (col.astype(str) == str(v)).to_numpy()
    return runs.loc[mask]


def runs_at(runs: pd.DataFrame | None, group: Mapping[str, Any] | None, axis: str | None, size: Any,
            eta: Any, beta: Any = None) -> pd.DataFrame:
    """The seeds of one grid point (η, β) of one cell, ordered by seed."""
    cell = cell_runs(runs, group, axis, size)
    if len(cell) == 0 or ETA not in cell.columns:
        return cell
    mask = _same_lr(cell[ETA], eta)
    if BETA in cell.columns:
        mask &= _same_lr(cell[BETA], beta)
    out = cell.loc[mask]
    return out.sort_values("seed", kind="stable") if "seed" in out.columns else out


def run_url(sid: str, run_id: Any) -> str:
    return f"/sweeps/{quote(sid, safe='')}/runs/{quote(str(run_id), safe='')}"


def seeds_url(sid: str, run_ids: Sequence[Any]) -> str | None:
    """The run page of the first run with the others overlaid; None without runs or sweep id."""
    ids = [str(r) for r in run_ids]
    if not ids or not sid:
        return None
    url = run_url(sid, ids[0])
    return url + ("?" + urlencode([("also", r) for r in ids[1:12]]) if len(ids) > 1 else "")


def shown_value(row: Mapping[str, Any], metric: str) -> str:
    """A run's value of ``metric`` as the report counts it: a diverged or failed run is +∞ for a
    loss (the report's default policy), and reads "diverged" / "failed" next to its recorded value."""
    st = str(row.get("status", "ok")).lower()
    v = row.get(metric)
    try:
        v = float(v)
    except (TypeError, ValueError):
        v = math.nan
    if st in BAD:
        info = METRICS.get(metric)
        worst = "+∞" if info is None or info.direction == "min" else "−∞"
        rec = f", recorded {fmt_num(v)}" if math.isfinite(v) else ""
        return f"{worst} ({st}{rec})"
    return fmt_num(v) if math.isfinite(v) else "n/a"


def seed_hover(seeds: pd.DataFrame, metric: str) -> str:
    """One line per seed: ``seed 0: 0.412`` (diverged seeds say so)."""
    if len(seeds) == 0:
        return "no runs"
    lines = []
    for rec in seeds.to_dict("records"):
        lines.append(f"seed {rec.get('seed', '?')}: {shown_value(rec, metric)}")
    return "<br>".join(lines)


def lr_text(eta: Any, beta: Any = None) -> str:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        b = math.nan
    return f"η = {fmt_lr(eta)}" + (f", β = {fmt_lr(b)}" if math.isfinite(b) else "")
