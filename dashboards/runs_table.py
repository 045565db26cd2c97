"""The runs table page (``/sweeps/{id}/table``): every run with its settings, status and metrics,
sorted, filtered and paged in the browser (no server round trip per click), each run linking to its
curves (``/sweeps/{id}/runs/{run_id}``).

The page embeds the table once, column-wise (:func:`table_payload`): strings dictionary-encoded,
numbers rounded to 5 significant digits (a metric of a diverged or failed run is ``"inf"`` /
``"-inf"``, as the report counts it, with the recorded value kept aside), run ids stored as their suffix after the cell id when they
have that form, and columns that are constant over the sweep moved to a one-line summary. The
script renders one page of rows at a time (100 by default), so 10k+ runs stay fast to sort, filter
and scroll; the view (sort, filters, page) lives in the URL's hash, so a link or the back button
restores it. The script is ``dashboards/static/runs_table.js``.

Filters, per column: text matches a substring (``mupc``), ``a|b`` either, ``!x`` anything but;
numbers take ``>0.1``, ``<=32``, ``=128``, ``1e-3..1e-1`` (a closed range) or a plain value.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from mutransfer.report import METRICS

from .common import BAD_STATUSES, BETA, ETA, FIXED_SETTINGS, SIZE_AXES
from .curves import HIDDEN_COLUMNS
from .html import DEFAULT_METRIC, document, esc_html, run_url, sid_of, sweep_header

# Column order: settings first, then status and results; others (new schema columns) at the end.
# The report's settings, size axes, lr columns and metrics, in its order (mutransfer.report.metrics).
ORDER = ("run_id", *FIXED_SETTINGS, *SIZE_AXES, ETA, BETA, "seed", "status", *METRICS,
         "steps", "diverged_step", "wall_s", "cell_id")
LR_COLUMNS = (ETA, BETA)
PAGE_SIZES = (50, 100, 500)


def _round(v: float) -> float | None:
    if not math.isfinite(v):
        return None
    return float(f"{v:.5g}")


def _column(name: str, s: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_bool_dtype(s):
        s = s.astype(str)
    if pd.api.types.is_numeric_dtype(s):
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        ints = pd.api.types.is_integer_dtype(s)
        vals = [None if not math.isfinite(x) else (int(x) if ints else _round(x)) for x in v]
        kind = "lr" if name in LR_COLUMNS else ("int" if ints else "num")
        return {"name": name, "kind": kind, "values": vals}
    codes, uniques = pd.factorize(s.astype(object).where(s.notna(), ""), sort=True)
    return {"name": name, "kind": "str", "dict": [str(u) for u in uniques], "codes": codes.tolist()}


def table_payload(runs: pd.DataFrame | None, metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """The runs table as compact JSON for the page's script (see the module docstring)."""
    if runs is None or len(runs) == 0:
        return {"n": 0, "columns": [], "fixed": {}, "metric": metric}
    df = runs.drop(columns=[c for c in HIDDEN_COLUMNS if c in runs.columns]).reset_index(drop=True)
    cols = [c for c in ORDER if c in df.columns] + [c for c in df.columns if c not in ORDER]
    fixed: dict[str, Any] = {}
    shown = []
    for c in cols:
        if c in ("run_id", "status") or c in METRICS:
            shown.append(c)
            continue
        vals = df[c]
        if vals.nunique(dropna=False) <= 1 and len(df) > 1:
            v = vals.iloc[0]
            fixed[c] = None if (isinstance(v, float) and not math.isfinite(v)) else (
                v.item() if hasattr(v, "item") else v)
        else:
            shown.append(c)
    status = df["status"].astype(str).str.lower() if "status" in df.columns else pd.Series("ok", index=df.index)
    bad = status.isin(BAD_STATUSES).to_numpy()
    columns = []
    for c in shown:
        if c == "run_id":
            rid = df["run_id"].astype(str)
            cell = df["cell_id"].astype(str) if "cell_id" in df.columns else pd.Series("", index=df.index)
            prefixed = np.array([r.startswith(k + "-") and k != "" for r, k in zip(rid, cell)])
            if "cell_id" in df.columns and prefixed.all():
                codes, uniques = pd.factorize(cell, sort=True)
                columns.append({"name": "run_id", "kind": "run", "cells": [str(u) for u in uniques],
                                "cell_codes": codes.tolist(),
                                "suffix": [r[len(k) + 1:] for r, k in zip(rid, cell)]})
            else:
                columns.append({"name": "run_id", "kind": "run", "ids": rid.tolist()})
            continue
        col = _column(c, df[c])
        if c in METRICS and col["kind"] != "str" and bad.any():
            # As the report counts it: a diverged or failed run is the worst value (+inf for a loss,
            # -inf for an accuracy); what it recorded before diverging stays in ``recorded``.
            worst = "inf" if METRICS[c].direction == "min" else "-inf"
            col["recorded"] = {int(i): col["values"][i] for i in np.nonzero(bad)[0]}
            col["values"] = [worst if b else v for v, b in zip(col["values"], bad)]
        columns.append(col)
    return {"n": int(len(df)), "columns": columns, "fixed": fixed, "metric": metric}


def runs_table_page(
    runs: pd.DataFrame | None,
    sweep_meta: Mapping[str, Any] | None,
    *,
    metric: str = DEFAULT_METRIC,
    page_size: int = 100,
) -> str:
    """The runs table of a sweep (see the module docstring); ``metric`` is highlighted and is the
    default sort (best first)."""
    meta = sweep_meta or {}
    sid = sid_of(meta)
    metric = metric if metric in METRICS else DEFAULT_METRIC
    payload = table_payload(runs, metric)
    direction = METRICS[metric].direction
    fixed = payload["fixed"]
    fixed_html = ("<p class=\"muted\" id=\"fixed\">same for every run: "
                  + ", ".join(f"{esc_html(k)} = <b>{esc_html(v)}</b>" for k, v in fixed.items()) + "</p>") if fixed else ""
    sizes = "".join(f'<option value="{n}"{" selected" if n == page_size else ""}>{n}</option>' for n in PAGE_SIZES)
    body = [sweep_header(meta, "runs table", None, active="table", metric=metric), f"""
<div class="card" id="table-tools">
  <b id="count">{payload['n']} runs</b> {fixed_html}
  <div class="tools">
    <input type="search" id="q" placeholder="search run id / any text" aria-label="search">
    <span id="status-chips"></span>
    <button type="button" class="secondary" id="clear">clear filters</button>
    <button type="button" class="secondary" id="csv">download CSV (filtered)</button>
    <button type="button" id="plot-selected" disabled>plot selected</button>
    <label>rows per page <select id="page-size">{sizes}</select></label>
  </div>
  <p class="muted">Click a header to sort (again: reverse). Filters: text <code>mupc</code>, <code>a|b</code>,
  <code>!x</code>; numbers <code>&gt;0.1</code>, <code>&lt;=32</code>, <code>=128</code>, <code>1e-3..1e-1</code>.</p>
</div>
<div class="card" style="overflow-x:auto"><table id="runs"><thead></thead><tbody></tbody></table>
<div class="pager"><button type="button" class="secondary" id="first">«</button>
<button type="button" class="secondary" id="prev">‹ prev</button> <span id="pageinfo"></span>
<button type="button" class="secondary" id="next">next ›</button>
<button type="button" class="secondary" id="last">»</button></div></div>
"""]
    data = {"table": payload, "sweep": sid, "run_base": run_url(sid, "") if sid else "", "metric": metric,
            "metric_dir": direction}
    return document(f"{meta.get('name') or sid or 'sweep'} — runs table", "".join(body), data=data,
                    scripts=("runs_table.js",), styles=("runs_table.css",))
