"""Training curves: the figure of a selection of runs (the contours page shows each cell's best run)
and the per-run page ``/sweeps/{id}/runs/{run_id}`` — loss, energies and test metrics over steps,
the run's settings and metrics, and links to its other seeds and its neighbours on the lr grid.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from mutransfer.report import METRICS, fmt_lr
from mutransfer.budgets import BUDGET_FRACTIONS, budget_column, budget_steps
from mutransfer.report.metrics import DEFAULT_METRIC

from .common import (
    BAD_STATUSES, BETA, EMPTY_TEXT, ETA, FIXED_SETTINGS, SIZE_AXES, TEMPLATE, empty_figure, esc, fmt, log_axis, num,
    positive_range, size_title,
)
from .runlinks import shown_value
from .html import (
    DEFAULT_PLOTLY_URL, badge, document, esc_html, figure_html, run_url, sid_of, sweep_header, sweep_url,
)

def _run_label(row: Mapping[str, Any]) -> str:
    parts = []
    cell = row.get("cell_id")
    if isinstance(cell, str) and cell:
        parts.append(cell)
    else:
        bits = [str(row.get(k)) for k in ("algorithm", "parametrization") if row.get(k) is not None]
        for ax in SIZE_AXES:
            if row.get(ax) is not None and not (isinstance(row.get(ax), float) and math.isnan(row.get(ax))):
                bits.append(size_title(ax, row.get(ax)).replace(" ", ""))
        parts.append(" ".join(bits))
    lrs = f"η={fmt_lr(row.get(ETA))}"
    b = num(row.get(BETA))
    if np.isfinite(b):
        lrs += f" β={fmt_lr(b)}"
    parts.append(lrs)
    if row.get("seed") is not None:
        parts.append(f"s{row.get('seed')}")
    st = str(row.get("status", "ok"))
    if st != "ok":
        parts.append(f"[{st}]")
    return " ".join(p for p in parts if p)



def default_selection(runs: pd.DataFrame, max_runs: int, metric: str | None = None) -> list[Any]:
    """Best finished run of every cell by ``metric`` (default: lowest min_train_loss, else the best
    test accuracy), ordered by algorithm, parameterisation, depth and width."""
    df = runs.copy()
    status = df["status"].astype(str).str.lower() if "status" in df.columns else pd.Series("ok", index=df.index)
    ok = df.loc[status.eq("ok")]
    if len(ok) == 0:
        ok = df
    cell_keys = ["cell_id"] if "cell_id" in ok.columns else [
        c for c in FIXED_SETTINGS + SIZE_AXES if c in ok.columns]
    if metric not in METRICS or metric not in ok.columns:
        metric = next((m for m in (DEFAULT_METRIC, *METRICS) if m in ok.columns), None)
    if metric is not None:
        score = pd.to_numeric(ok[metric], errors="coerce")
        score = score if METRICS[metric].direction == "min" else -score
    else:
        score = pd.Series(0.0, index=ok.index)
    ok = ok.assign(_score=score.fillna(np.inf))
    if cell_keys:
        picked = ok.sort_values("_score", kind="stable").groupby(cell_keys, dropna=False, sort=True).head(1)
        sort_cols = [c for c in ("algorithm", "parametrization", "depth", "width") if c in picked.columns]
        if sort_cols:
            picked = picked.sort_values(sort_cols, kind="stable")
    else:
        picked = ok.sort_values("_score", kind="stable")
    return picked["run_id"].tolist()[:max_runs]


def _positive(values: Any) -> np.ndarray:
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def training_curves(
    curves: pd.DataFrame | None,
    runs: pd.DataFrame | None = None,
    *,
    run_ids: Sequence[Any] | None = None,
    max_runs: int = 12,
    show_test: bool = True,
    metric: str | None = None,
) -> go.Figure:
    """Train loss vs step (log y) for a selection of runs, with test accuracy below when measured.

    ``run_ids``: the runs to draw (in that order); default: the best run of every cell in ``runs``
    by ``metric`` (or the first runs in ``curves`` without a runs table), at most ``max_runs``.
    Diverged / failed runs are dashed and their last finite point is marked with an ``x``;
    non-finite or non-positive losses are left out (log axis).
    """
    need = {"run_id", "step", "train_loss"}
    if curves is None or not isinstance(curves, pd.DataFrame) or len(curves) == 0 or not need <= set(curves.columns):
        return empty_figure(EMPTY_TEXT, title="Training curves")
    have_runs = isinstance(runs, pd.DataFrame) and len(runs) > 0 and "run_id" in runs.columns
    if run_ids is None:
        if have_runs:
            ids = default_selection(runs[runs["run_id"].isin(curves["run_id"].unique())], max_runs, metric)
        else:
            ids = list(pd.unique(curves["run_id"]))[:max_runs]
    else:
        ids = list(run_ids)
    present = set(curves["run_id"].unique())
    ids = [r for r in ids if r in present]
    if not ids:
        return empty_figure("none of the selected runs has logged steps yet", title="Training curves")
    meta_rows: dict[Any, dict] = {}
    if have_runs:
        for rec in runs.loc[runs["run_id"].isin(ids)].drop_duplicates("run_id").to_dict("records"):
            meta_rows[rec["run_id"]] = rec
    sel = curves.loc[curves["run_id"].isin(ids)]
    has_test = show_test and "test_acc" in sel.columns and np.isfinite(
        pd.to_numeric(sel["test_acc"], errors="coerce").to_numpy(dtype=float)).any()
    nrows = 2 if has_test else 1
    fig = make_subplots(rows=nrows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["train loss"] + (["test accuracy"] if has_test else []))
    colors = sample_colorscale("Turbo", [0.5] if len(ids) == 1 else list(np.linspace(0.05, 0.95, len(ids))))
    for rid, color in zip(ids, colors):
        c = sel.loc[sel["run_id"] == rid].sort_values("step")
        row = meta_rows.get(rid, {"run_id": rid})
        label = _run_label(row) if rid in meta_rows else str(rid)
        status = str(row.get("status", "ok")).lower()
        dash = "dash" if status in BAD_STATUSES else "solid"
        step = pd.to_numeric(c["step"], errors="coerce").to_numpy(dtype=float)
        loss = _positive(c["train_loss"])
        good = np.isfinite(loss) & np.isfinite(step)
        fig.add_trace(go.Scatter(
            x=step[good], y=loss[good], mode="lines", name=esc(label), legendgroup=str(rid),
            line=dict(color=color, dash=dash, width=1.6),
            hovertemplate="step %{x}<br>train loss %{y:.4g}<extra>" + esc(label) + "</extra>",
            meta={"role": "train_loss", "run_id": str(rid)},
        ), row=1, col=1)
        if status in BAD_STATUSES and good.any():
            k = np.nonzero(good)[0][-1]
            fig.add_trace(go.Scatter(
                x=[step[k]], y=[loss[k]], mode="markers", showlegend=False, legendgroup=str(rid),
                marker=dict(symbol="x-thin", size=12, line=dict(width=2.5, color=color)),
                hovertemplate=f"{esc(status)} after step %{{x}}<extra></extra>",
                meta={"role": "diverged", "run_id": str(rid)},
            ), row=1, col=1)
        if has_test:
            acc = pd.to_numeric(c["test_acc"], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(acc) & np.isfinite(step)
            if ok.any():
                fig.add_trace(go.Scatter(
                    x=step[ok], y=acc[ok], mode="lines+markers", showlegend=False, legendgroup=str(rid),
                    line=dict(color=color, dash=dash, width=1.4), marker=dict(size=5),
                    hovertemplate="step %{x}<br>test acc %{y:.3f}<extra>" + esc(label) + "</extra>",
                    meta={"role": "test_acc", "run_id": str(rid)},
                ), row=2, col=1)
    lo, hi = positive_range(_positive(sel["train_loss"]))
    fig.update_yaxes(title_text="train loss", row=1, col=1, **log_axis(lo, hi))
    if has_test:
        fig.update_yaxes(title_text="test accuracy", row=2, col=1)
    fig.update_xaxes(title_text="step", row=nrows, col=1)
    what = "selected runs" if run_ids is not None else "best run of each cell"
    fig.update_layout(
        template=TEMPLATE, height=300 + 220 * nrows,
        title=dict(text=f"<b>Training curves</b> — {what} ({len(ids)})", x=0.01),
        legend=dict(font=dict(size=10)), margin=dict(t=70, l=70, r=30, b=50),
        meta={"kind": "training_curves", "run_ids": [str(r) for r in ids]},
    )
    return fig


def run_links(sid: str, run_ids: Sequence[Any], runs: pd.DataFrame | None = None) -> str:
    """Links to the run pages of ``run_ids`` (labelled by their settings when ``runs`` has them)."""
    rows: dict[Any, dict] = {}
    if isinstance(runs, pd.DataFrame) and "run_id" in runs.columns and len(runs):
        rows = {r["run_id"]: r for r in runs.loc[runs["run_id"].isin(list(run_ids))].to_dict("records")}
    items = "".join(f'<a href="{esc_html(run_url(sid, r))}">{esc_html(_run_label(rows[r]) if r in rows else r)}</a>'
                    for r in run_ids)
    return f'<div class="card runlinks"><b>Open a run:</b> <nav class="links">{items}</nav></div>'


# --------------------------------------------------------------------------- one run's page

# (column, label, log y?) per panel of the run figure; a panel without finite values is left out.
RUN_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...], bool], ...] = (
    ("loss", (("train_loss", "train loss"), ("test_loss", "test loss")), True),
    ("energy", (("energy_start", "energy before inference"), ("energy_end", "energy after inference")), True),
    ("test accuracy", (("test_acc", "test accuracy"),), False),
)
DIVERGED_LINE = "#c0262d"
_DASHES = ("solid", "dot", "dash")
# One run: each quantity of a panel in its own colour and marker (energy before inference vs after
# must read apart even where they nearly coincide); several runs: colour = run, dash + marker = quantity.
_QUANTITY_COLORS = ("#1f5fbf", "#e8590c", "#2b8a3e")
_SYMBOLS = ("circle", "diamond-open", "x-thin")


# The two step columns of a divergence (-1 when it did not happen that way): where the trainer froze a
# run whose loss diverged, and where divergence (loss or inference) began.
STEP_COLUMNS = {"diverged_step": "the loss did not diverge", "diverge_step": "no divergence"}


def _budget(run: Mapping[str, Any], runs: pd.DataFrame | None) -> int | None:
    """The step budget S of ``run``'s cell, as the report's by-budget view takes it: the most steps a
    finished run of the sweep trained (a diverged run's own ``steps`` may stop where it froze)."""
    if isinstance(runs, pd.DataFrame) and "steps" in runs.columns and "status" in runs.columns:
        ok = pd.to_numeric(runs.loc[runs["status"].astype(str) == "ok", "steps"], errors="coerce").dropna()
        if len(ok):
            return int(ok.max())
    return None


def divergence(run: Mapping[str, Any] | None) -> tuple[float, str] | None:
    """(step, reason) where a diverged run diverged, from ``diverge_step`` / ``diverged_step`` (a
    negative step means none) and ``diverge_reason`` ('loss' | 'inference'); None when it did not."""
    r = run or {}
    if str(r.get("status", "ok")).lower() != "diverged":
        return None
    for col in ("diverge_step", "diverged_step"):
        v = num(r.get(col))
        if np.isfinite(v) and v >= 0:
            reason = r.get("diverge_reason")
            return float(v), (str(reason) if isinstance(reason, str) and reason else "")
    return math.nan, str(r.get("diverge_reason") or "")


def run_figure(curves: pd.DataFrame | None, runs: pd.DataFrame | None, run_ids: Sequence[Any]) -> go.Figure:
    """Loss (train, test), energies (before / after inference: PC only) and test accuracy vs step
    for one run or a few overlaid (colour = run, dash = quantity); log y for losses and energies."""
    if curves is None or len(curves) == 0 or "run_id" not in curves.columns:
        return empty_figure("no logged steps for this run (yet)", title="Curves")
    sel = curves.loc[curves["run_id"].isin(list(run_ids))]
    if len(sel) == 0:
        return empty_figure("no logged steps for this run (yet)", title="Curves")
    panels = []
    for title, cols, log in RUN_PANELS:
        present = [(c, lab) for c, lab in cols if c in sel.columns
                   and np.isfinite(pd.to_numeric(sel[c], errors="coerce").to_numpy(dtype=float)).any()]
        if present:
            panels.append((title, present, log))
    if not panels:
        return empty_figure("no finite values logged for this run", title="Curves")
    rows = {r["run_id"]: r for r in runs.loc[runs["run_id"].isin(list(run_ids))].to_dict("records")} \
        if isinstance(runs, pd.DataFrame) and "run_id" in runs.columns else {}
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[p[0] for p in panels])
    colors = ["#1f5fbf"] if len(run_ids) == 1 else sample_colorscale(
        "Turbo", list(np.linspace(0.05, 0.95, len(run_ids))))
    for rid, color in zip(run_ids, colors):
        c = sel.loc[sel["run_id"] == rid].sort_values("step")
        step = pd.to_numeric(c["step"], errors="coerce").to_numpy(dtype=float)
        label = _run_label(rows[rid]) if rid in rows else str(rid)
        for r, (title, present, log) in enumerate(panels, start=1):
            for k, (col, lab) in enumerate(present):
                y = _positive(c[col]) if log else pd.to_numeric(c[col], errors="coerce").to_numpy(dtype=float)
                ok = np.isfinite(y) & np.isfinite(step)
                if not ok.any():
                    continue
                name = lab if len(run_ids) == 1 else f"{label}: {lab}"
                qcolor = _QUANTITY_COLORS[k % 3] if len(run_ids) == 1 else color
                fig.add_trace(go.Scatter(
                    x=step[ok], y=y[ok], mode="lines+markers" if ok.sum() < 60 else "lines", name=esc(name),
                    line=dict(color=qcolor, dash=_DASHES[k % 3], width=2.2 if k == 0 else 1.8),
                    marker=dict(size=7 if k else 5, symbol=_SYMBOLS[k % 3], line=dict(width=1.5, color=qcolor)),
                    legendgroup=str(rid), hovertemplate=f"step %{{x}}<br>{esc(lab)} %{{y:.4g}}<extra>"
                    f"{esc(label)}</extra>", meta={"role": col, "run_id": str(rid)}), row=r, col=1)
    # Where each diverged run diverged: a dashed vertical line across every panel, labelled once.
    xmax = float(pd.to_numeric(sel["step"], errors="coerce").max())
    for rid, color in zip(run_ids, colors):
        d = divergence(rows.get(rid))
        if d is None:
            continue
        at, reason = d
        if not np.isfinite(at):  # no step recorded: after its last logged step
            c = sel.loc[sel["run_id"] == rid]
            at = float(pd.to_numeric(c["step"], errors="coerce").max()) if len(c) else 0.0
        xmax = max(xmax, at)
        text = f"diverged{f' ({reason})' if reason else ''} at step {at:g}"
        for r in range(1, len(panels) + 1):
            fig.add_vline(x=at, line=dict(color=DIVERGED_LINE, dash="dash", width=2), row=r, col=1)
        fig.add_annotation(x=at, y=1, xref="x", yref="paper", yanchor="bottom", showarrow=False,
                           text=esc(text if len(run_ids) == 1 else f"{rows[rid].get('seed', '')}: {text}"),
                           font=dict(color=DIVERGED_LINE, size=12))
        fig.add_trace(go.Scatter(x=[at], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                                 meta={"role": "diverged_at", "run_id": str(rid), "step": at, "reason": reason}))
    if np.isfinite(xmax):
        fig.update_xaxes(range=[-0.02 * max(xmax, 1.0), 1.04 * max(xmax, 1.0)])
    for r, (title, present, log) in enumerate(panels, start=1):
        if log:
            lo, hi = positive_range(np.concatenate([_positive(sel[c]) for c, _ in present]))
            fig.update_yaxes(row=r, col=1, **log_axis(lo, hi))
        fig.update_yaxes(title_text=title, row=r, col=1)
    fig.update_xaxes(title_text="step (weight updates)", row=len(panels), col=1)
    fig.update_layout(template=TEMPLATE, height=140 + 260 * len(panels), margin=dict(t=40, l=70, r=30, b=50),
                      legend=dict(font=dict(size=11)),
                      meta={"kind": "run_curves", "run_ids": [str(r) for r in run_ids],
                            "panels": [p[0] for p in panels]})
    return fig


# Columns of a run that are bookkeeping, not settings or results.
HIDDEN_COLUMNS = ("sweep_id", "mutransfer_version", "jax_version", "spec_hash")


def _neighbours(run: Mapping[str, Any], runs: pd.DataFrame) -> list[tuple[str, Any]]:
    """(label, run_id) of the runs next to this one on the lr grid (same cell and seed) and of its
    other seeds (same cell and lrs)."""
    out: list[tuple[str, Any]] = []
    if not {"cell_id", "seed", ETA}.issubset(runs.columns):
        return out
    cell = runs.loc[runs["cell_id"] == run.get("cell_id")]
    b = num(run.get(BETA))
    same_b = cell[BETA].isna() if not np.isfinite(b) else np.isclose(cell[BETA].astype(float), b)
    same_e = np.isclose(cell[ETA].astype(float), num(run.get(ETA)))
    same_seed = cell["seed"] == run.get("seed")
    for lr, sym, mask in ((ETA, "η", same_b & same_seed), (BETA, "β", same_e & same_seed)):
        if lr == BETA and not np.isfinite(b):
            continue
        line = cell.loc[mask].sort_values(lr)
        vals = line[lr].astype(float).to_numpy()
        k = int(np.argmin(np.abs(np.log(vals) - math.log(num(run.get(lr)))))) if len(vals) else -1
        if k > 0:
            out.append((f"{sym} ↓ {fmt_lr(vals[k - 1])}", line["run_id"].iloc[k - 1]))
        if 0 <= k < len(vals) - 1:
            out.append((f"{sym} ↑ {fmt_lr(vals[k + 1])}", line["run_id"].iloc[k + 1]))
    for rec in cell.loc[same_e & same_b & ~same_seed].sort_values("seed").to_dict("records"):
        out.append((f"seed {rec['seed']}", rec["run_id"]))
    return out


def run_page(
    run: Mapping[str, Any],
    curves: pd.DataFrame | None,
    sweep_meta: Mapping[str, Any] | None,
    *,
    runs: pd.DataFrame | None = None,
    also: Sequence[Any] = (),
    plotly_url: str = DEFAULT_PLOTLY_URL,
) -> str:
    """One run: its settings and results, its curves (overlaid with the runs in ``also``), and
    links to its neighbours on the lr grid and its other seeds (``runs``: the sweep's runs table)."""
    meta = sweep_meta or {}
    sid = sid_of(meta)
    rid = run.get("run_id")
    body = [sweep_header(meta, f"run {rid}", None, active="table")]
    shown = [(k, v) for k, v in run.items() if k not in HIDDEN_COLUMNS]
    bad = str(run.get("status", "ok")).lower() in BAD_STATUSES

    d = divergence(run)
    fractions = {budget_column(f): f for f in BUDGET_FRACTIONS}
    budget = _budget(run, runs)

    def value(k: str, v: Any) -> str:
        if k == "status":
            return badge(v)
        if k in (ETA, BETA):
            return esc_html(fmt_lr(v))
        if k in STEP_COLUMNS and not num(v) >= 0:  # -1: the run did not diverge that way
            return f'<span class="muted">— ({esc_html(STEP_COLUMNS[k])})</span>'
        if bad and k in METRICS:  # as the report counts it (+inf for a loss), the recorded value aside
            return f'<span class="diverged-note">{esc_html(shown_value(run, k))}</span>'
        if d is not None and k in fractions:  # the by-budget view counts it +inf only if it diverged by then
            n = budget_steps(fractions[k], budget) if budget else None
            if n is None or not np.isfinite(d[0]) or d[0] < n:
                return f'<span class="diverged-note">{esc_html(shown_value(run, k))}</span>'
            return f'{esc_html(_value(v))} <span class="muted">(alive for its first {n} steps)</span>'
        return esc_html(_value(v))
    cells = "".join(f'<tr><th class="l">{esc_html(k)}</th><td class="l">{value(k, v)}</td></tr>' for k, v in shown)
    if d is not None:
        at, reason = d
        where = f" at step {at:g}" if np.isfinite(at) else ""
        why = {"loss": " (its training loss became non-finite or exploded)",
               "inference": " (its inference — the energy minimisation — blew up)"}.get(reason, "")
        body.append(f'<div class="card warn-box" id="diverged"><b class="bad">This run diverged{esc_html(where)}'
                    f"{esc_html(why)}.</b> The report counts its metrics as the worst value (+∞ for a loss); "
                    "the dashed red line marks the step on the curves below.</div>")
    elif bad:
        body.append(f'<div class="card warn-box" id="diverged"><b class="bad">This run {esc_html(run.get("status"))}'
                    f"{': ' + esc_html(run.get('error')) if run.get('error') else ''}.</b></div>")
    nav = ""
    if isinstance(runs, pd.DataFrame) and len(runs):
        links = _neighbours(run, runs)
        if links:
            nav = '<nav class="links">' + "".join(
                f'<a href="{esc_html(run_url(sid, r))}">{esc_html(lab)}</a>' for lab, r in links) + "</nav>"
            seeds = [r for lab, r in links if lab.startswith("seed ")]
            if seeds:
                q = urlencode([("also", r) for r in seeds])
                nav += f'<p><a href="{esc_html(run_url(sid, rid) + "?" + q)}">overlay every seed</a></p>'
    ids = [rid] + [a for a in also if a != rid]
    body.append('<div class="cols"><div class="card"><h3>Run</h3><table id="run-settings">' + cells
                + '</table></div><div class="card"><h3>Neighbours</h3>'
                + (nav or '<p class="muted">none</p>')
                + f'<p><a href="{esc_html(sweep_url(sid, "table"))}">back to the runs table</a></p></div></div>')
    body.append(figure_html(run_figure(curves, runs, ids), f"{sid}-{rid}-curves"))
    return document(f"run {rid}", "".join(body), plotly_url=plotly_url)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v, ".6g")
    return "" if v is None else str(v)
