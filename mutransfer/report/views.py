"""Robustness views of an analysis (docs/reference/transfer-analysis.md#robustness-views), from the
stored runs table alone: ``by_base`` (the verdict
with every size taken as the base) and ``by_budget`` (argmin, regret and verdict at 25 / 50 / 100 %
of the training steps, from the trainer's checkpoint columns, :data:`.metrics.BUDGET_COLUMNS`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import BUDGET_COLUMNS, DIVERGED, MetricInfo, run_costs
from .surfaces import Grid
from .transfer import Options, SizeData, compare, judge_entries, size_data


def _summary(view: dict, entries: list[dict], verdict: str, text: str, reasons: list[dict]) -> dict:
    return {**view, "verdict": verdict, "verdict_text": text,
            "reason_codes": sorted({r["code"] for r in reasons}),
            "max_regret": max((e["regret"] for e in entries if not math.isnan(e["regret"])), default=math.nan)}


def by_base(per: list[SizeData], grid: Grid, info: MetricInfo, opts: Options, axis: str,
            missing_sizes: Sequence[int]) -> list[dict]:
    """The verdict with every size taken as the base: per base size its verdict, reasons' codes and
    the regret (with CI) at every size."""
    out = []
    for k, p in enumerate(per):
        entries = compare(per, k, grid, info, opts)
        verdict, text, reasons = judge_entries(axis, entries, k, info, opts, missing_sizes)
        out.append(_summary({"base_size": p.size}, entries, verdict, text, reasons) | {
            "regret": [{"size": e["size"], "regret": e["regret"], "regret_ci": e["regret_ci"]} for e in entries]})
    return out


def by_budget(df: pd.DataFrame, axis: str, grid: Grid, info: MetricInfo, opts: Options,
              missing_sizes: Sequence[int]) -> tuple[list[dict] | None, str | None]:
    """Grid argmin, regret and verdict at 25 / 50 / 100 % of the step budget, from the runs columns of
    :data:`.metrics.BUDGET_COLUMNS`; (None, why) when the metric has none or the table lacks them."""
    cols = BUDGET_COLUMNS.get(info.column)
    if not cols:
        return None, f"by_budget is only available for metric {', '.join(BUDGET_COLUMNS)}"
    absent = [c for _, c in cols if c not in df.columns or not df[c].notna().any()]
    if absent:
        return None, (f"by_budget view absent: the runs table has no {', '.join(absent)} "
                      "(sweep recorded before the trainer wrote them)")
    status = df["status"].astype(str).str.lower().to_numpy()
    # A table that mixes sweeps recorded before and after the trainer wrote the columns (pd.concat of
    # two sweeps) would drop whole sizes at some fractions: no view rather than a misleading one.
    unrecorded = [c for _, c in cols if (df.loc[status == "ok", c].isna()).any()]
    if unrecorded:
        n = int(max((df.loc[status == "ok", c].isna()).sum() for c in unrecorded))
        return None, (f"by_budget view absent: {n} finished run(s) have no {', '.join(unrecorded)} "
                      "(recorded before the trainer wrote them); report those sweeps separately")
    steps = pd.to_numeric(df.get("steps"), errors="coerce") if "steps" in df.columns else None
    total = float(steps[status == "ok"].max()) if steps is not None and (status == "ok").any() else math.nan
    dstep = pd.to_numeric(df["diverged_step"], errors="coerce").to_numpy(float) \
        if "diverged_step" in df.columns else np.full(len(df), np.nan)
    if "diverge_step" in df.columns:  # the step divergence began, loss or inference (inference_health)
        began = pd.to_numeric(df["diverge_step"], errors="coerce").to_numpy(float)
        dstep = np.where(np.nan_to_num(began, nan=-1) >= 0, began, dstep)
    out = []
    for frac, col in cols:
        if math.isnan(total) or np.isnan(dstep).all():
            div = status == DIVERGED
        else:
            div = (status == DIVERGED) & (np.nan_to_num(dstep, nan=-1) >= 0) & (dstep < math.ceil(frac * total))
        d = df.copy()
        d["_cost"] = run_costs(d, col, info, opts.diverged, div)
        recorded = pd.to_numeric(d[col], errors="coerce").notna().to_numpy() | div | (status == "failed")
        d = d.loc[recorded]
        per = size_data(d, axis, grid, opts)
        entries = compare(per, 0, grid, info, opts)
        verdict, text, reasons = judge_entries(axis, entries, 0, info, opts, missing_sizes)
        sizes = [{"size": p.size, "eta_star": None if p.opt is None else float(grid.eta[p.opt[0]]),
                  "beta_star": None if p.opt is None else grid.beta_at(p.opt[1]),
                  "metric_at_opt": math.nan if p.opt is None else info.from_cost(p.surf[p.opt]),
                  "regret": e["regret"], "regret_ci": e["regret_ci"]} for p, e in zip(per, entries)]
        out.append(_summary({"fraction": frac, "column": col}, entries, verdict, text, reasons) | {"sizes": sizes})
    return out, None
