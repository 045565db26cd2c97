"""The μP papers' figure, from the runs table: the metric against log2 of a learning rate, one
curve per size (colour = size), seed bands, and parameterisations side by side on shared axes
(:func:`lr_transfer`), or one panel (:func:`loss_vs_lr`). Shown on the contours page.

Each point is the seed mean; a point where any seed diverged is left off its line and drawn as an
``x`` at the top of the panel (as the report counts it); the band spans the seeds (min–max or ±1
std). The other learning rate is held at each size's best value (``fix_other="best"``: the other
coordinate of that size's grid argmin) or at the grid value nearest to a number.

The optima are the report's (:func:`size_optima`: the size rows of :func:`mutransfer.report.build_report`
over the setting's runs), never re-derived here: with ``fix_other="best"`` the star on each line is that
size's (η*, β*); with the other lr held at a number, the star marks the lowest point of that slice.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from mutransfer.report import METRICS, MetricInfo, build_report, fmt_lr
from mutransfer.report.metrics import DEFAULT_METRIC

from .common import (
    BETA, COLORSCALE, EMPTY_TEXT, ETA, FIXED_SETTINGS, SIZE_AXES, TEMPLATE, Legend, cost_of, empty_figure, esc, fmt,
    group_title, log_axis, lr_ticks, prepare_runs, size_symbol, size_title,
)

BANDS = {"minmax": "band: min–max over seeds", "std": "band: ±1 std over seeds"}


def _check(metric: str, axis: str, lr: str) -> MetricInfo:
    info = METRICS.get(metric)
    if info is None:
        raise ValueError(f"unknown metric={metric!r}; allowed values: {sorted(METRICS)}")
    if lr not in (ETA, BETA):
        raise ValueError(f"lr must be {ETA!r} or {BETA!r}, got {lr!r}")
    if axis not in SIZE_AXES:
        raise ValueError(f"axis must be one of {SIZE_AXES}, got {axis!r}")
    return info


def _filtered(runs: pd.DataFrame | None, metric: str, axis: str, where: Mapping[str, Any] | None):
    """Finished runs matching ``where`` (None when there are none), and a 'nothing' message."""
    df = prepare_runs(runs, metric)
    if df is None or axis not in df.columns:
        return None, EMPTY_TEXT
    for k, v in (where or {}).items():
        if k in df.columns and v is not None:
            df = df.loc[(df[k] == v) | (df[k].astype(str) == str(v))]
    if len(df) == 0:
        return None, f"no finished runs match {dict(where or {})}"
    return df, ""


def _one_setting(df: pd.DataFrame, axis: str, keys: list[str]) -> tuple[pd.DataFrame, str]:
    """The setting (values of ``keys``) with the most sizes (then: with an activity lr), and a note
    naming it."""
    if not keys:
        return df, ""
    groups = list(df.groupby(keys, dropna=False, sort=True))
    if len(groups) > 1:
        k_best, g_best = max(groups, key=lambda kg: (kg[1][axis].nunique(), bool(kg[1][BETA].notna().any())))
        k_best = k_best if isinstance(k_best, tuple) else (k_best,)
        return g_best, f" (showing {group_title(dict(zip(keys, k_best)))}; {len(groups)} settings in table)"
    k0 = groups[0][0]
    k0 = k0 if isinstance(k0, tuple) else (k0,)
    return df, f" — {group_title(dict(zip(keys, k0)))}"


def size_optima(rows: pd.DataFrame, axis: str, info: MetricInfo) -> dict[int, tuple[float | None, float | None]]:
    """The report's grid optimum (η*, β*) at every size of one setting's runs: the size rows of its
    analysis along ``axis`` (:func:`mutransfer.report.build_report`, no bootstrap), or with one size
    its single-size row; (None, None) where no point has a finite seed mean."""
    report = build_report(rows, metric=info.column, n_bootstrap=0)
    found = [a for a in report.analyses if a.axis == axis]
    if found:
        return {e.size: (e.eta_star, e.beta_star) for e in found[0].sizes}
    sizes = rows[axis].dropna().unique()
    if len(sizes) == 1 and report.single_size:
        row = report.single_size[0].row
        return {int(sizes[0]): (row.eta_star, row.beta_star)}
    return {}


def _series(df: pd.DataFrame, axis: str, lr: str, fix_other: str | float, band: str | None,
            info: MetricInfo) -> list[dict]:
    """Per size: x = log2 lr, the seed mean / band (NaN where a seed diverged), flags and counts."""
    other = BETA if lr == ETA else ETA
    has_beta = bool(df[BETA].notna().any())
    if has_beta:
        df = df.loc[df[BETA].notna()]
    out = []
    optima = size_optima(df, axis, info) if fix_other == "best" else {}
    for s in sorted(int(v) for v in df[axis].dropna().unique()):
        g = df.loc[df[axis] == s]
        fixed_txt = ""
        star = optima.get(s, (None, None))
        if has_beta:
            if fix_other == "best":
                o = star[1 if other == BETA else 0]
                o = g[other].iloc[0] if o is None else o
            else:
                grid = np.array(sorted(g[other].unique()), dtype=float)
                o = float(grid[int(np.argmin(np.abs(np.log2(grid) - math.log2(float(fix_other)))))])
            g = g.loc[g[other] == o]
            fixed_txt = f" ({'β' if other == BETA else 'η'} = {fmt_lr(o)})"
        pts = g.groupby(lr).agg(bad=("_bad", "any"), mean=("_val", "mean"), lo=("_val", "min"),
                                hi=("_val", "max"), std=("_val", "std"), n=("_val", "size")).sort_index()
        bad = pts["bad"].to_numpy(dtype=bool)
        mean = np.where(bad, np.nan, pts["mean"].to_numpy(dtype=float))
        if band == "std":
            sd = np.nan_to_num(pts["std"].to_numpy(dtype=float))
            lo, hi = mean - sd, mean + sd
        else:
            lo = np.where(bad, np.nan, pts["lo"].to_numpy(dtype=float))
            hi = np.where(bad, np.nan, pts["hi"].to_numpy(dtype=float))
        if info.kind == "loss":
            lo, mean = np.where(lo > 0, lo, np.nan), np.where(mean > 0, mean, np.nan)
        x = np.log2(pts.index.to_numpy(dtype=float))
        best = star[0 if lr == ETA else 1]
        if fix_other != "best":  # a slice at a fixed other lr: its lowest point (not an optimum of the report)
            best_k = int(np.nanargmin(cost_of(mean, info.kind))) if np.isfinite(mean).any() else None
        else:
            hit = np.flatnonzero(np.isclose(x, math.log2(best))) if best is not None else []
            best_k = int(hit[0]) if len(hit) and np.isfinite(mean[hit[0]]) else None
        out.append(dict(size=s, fixed=fixed_txt, x=x, mean=mean, lo=lo, hi=hi, bad=bad, n=pts["n"].to_numpy(),
                        best=best_k))
    return out


def _y_layout(series: list[dict], info: MetricInfo) -> tuple[dict, float]:
    """Shared y-axis layout (log with full-value ticks for losses) and the y of diverged markers."""
    ys = np.concatenate([np.concatenate([s["mean"], s["lo"], s["hi"]]) for s in series]) if series else np.array([])
    ys = ys[np.isfinite(ys) & ((ys > 0) if info.kind == "loss" else True)]
    lo_y, hi_y = (float(ys.min()), float(ys.max())) if ys.size else (0.1, 1.0)
    if info.kind == "loss":
        llo, lhi = math.log10(lo_y), math.log10(hi_y)
        span = max(lhi - llo, 0.1)
        rng = [llo - 0.05 * span, lhi + 0.18 * span]
        ax = log_axis(10 ** rng[0], 10 ** rng[1], pad=0.0)
        ax["range"] = rng
        return ax, 10 ** (lhi + 0.1 * span)
    span = max(hi_y - lo_y, 1e-3)
    return dict(type="linear", range=[lo_y - 0.05 * span, hi_y + 0.18 * span]), hi_y + 0.1 * span


def _size_colors(sizes: list[int]) -> dict[int, str]:
    cols = sample_colorscale(COLORSCALE, [0.5] if len(sizes) == 1 else list(np.linspace(0, 0.9, len(sizes))))
    return dict(zip(sizes, cols))


def _draw_panel(fig: go.Figure, series: list[dict], colors: dict[int, str], *, axis: str, lr: str,
                info: MetricInfo, top: float, legend: Legend, band: str | None, row: int | None = None,
                col: int | None = None, panel: str = "") -> None:
    pos = dict(row=row, col=col) if row is not None else {}
    for s in series:
        size, color = s["size"], colors[s["size"]]
        name = f"{size_title(axis, size)}{s['fixed']}" if not panel else size_title(axis, size)
        rgba = color.replace("rgb(", "rgba(").replace(")", ", 0.18)")
        meta = {"size": size, "panel": panel}
        if band and np.isfinite(s["lo"]).any():
            fig.add_trace(go.Scatter(x=s["x"], y=s["hi"], mode="lines", line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=str(size), meta={"role": "band", **meta}), **pos)
            fig.add_trace(go.Scatter(x=s["x"], y=s["lo"], mode="lines", line=dict(width=0), fill="tonexty",
                                     fillcolor=rgba, hoverinfo="skip", showlegend=False, legendgroup=str(size),
                                     meta={"role": "band", **meta}), **pos)
        text = [f"{lr} = {fmt_lr(2 ** xi)}{esc(s['fixed'])}<br>"
                f"{'diverged' if b else f'mean {fmt(m)} (n={n})'}"
                for xi, b, m, n in zip(s["x"], s["bad"], s["mean"], s["n"])]
        fig.add_trace(go.Scatter(
            x=s["x"], y=s["mean"], mode="lines+markers", name=name, line=dict(color=color, width=2),
            marker=dict(color=color, size=6), legendgroup=str(size), text=text,
            showlegend=legend(f"size{size}") if panel else True,
            hovertemplate="%{text}<extra>" + esc(f"{panel + ': ' if panel else ''}{name}") + "</extra>",
            meta={"role": "line", **meta}), **pos)
        if s["best"] is not None:
            k = s["best"]
            fig.add_trace(go.Scatter(
                x=[s["x"][k]], y=[s["mean"][k]], mode="markers", name="best per size",
                marker=dict(symbol="star", size=14, color=color, line=dict(width=1, color="black")),
                legendgroup=str(size), showlegend=False, hovertemplate=f"best at {esc(name)}<br>"
                f"{lr} = {fmt_lr(2 ** s['x'][k])}<br>{fmt(s['mean'][k])}<extra></extra>",
                meta={"role": "optimum", **meta}), **pos)
        if s["bad"].any():
            fig.add_trace(go.Scatter(
                x=s["x"][s["bad"]], y=[top] * int(s["bad"].sum()), mode="markers", name="diverged",
                marker=dict(symbol="x-thin", size=9, line=dict(width=2, color=color)),
                legendgroup="diverged", showlegend=legend("diverged"),
                hovertemplate=f"{esc(name)}: diverged<extra></extra>", meta={"role": "diverged", **meta}), **pos)


def _x_title(lr: str) -> str:
    return f"{lr.replace('_', ' ')} {'η' if lr == ETA else 'β'} (log2 axis)"


def loss_vs_lr(
    runs: pd.DataFrame | None,
    *,
    metric: str = DEFAULT_METRIC,
    axis: str = "width",
    lr: str = "weight_lr",
    fix_other: str | float = "best",
    where: Mapping[str, Any] | None = None,
    band: str | None = "minmax",
) -> go.Figure:
    """The metric vs log2(lr) for one setting, one line per size (colour = size).

    ``where`` filters rows by exact column values (e.g. an analysis' ``group``); if several
    settings remain (algorithm, parametrization, ..., the other size axis), the one with the most
    sizes (then: with an activity lr) is drawn and named in the title. Each line's best point is
    marked with a star; ``band``: "minmax", "std" or None.
    """
    info = _check(metric, axis, lr)
    title0 = f"{metric} vs {lr} across {axis}"
    df, why = _filtered(runs, metric, axis, where)
    if df is None:
        return empty_figure(why, title=title0)
    keys = [c for c in FIXED_SETTINGS + tuple(a for a in SIZE_AXES if a != axis) if c in df.columns]
    df, note = _one_setting(df, axis, keys)
    if lr == BETA and not df[BETA].notna().any():
        return empty_figure("no activity lr in these runs (e.g. backprop)", title=title0 + note)
    series = _series(df, axis, lr, fix_other, band, info)
    sizes = [s["size"] for s in series]
    yaxis, top = _y_layout(series, info)
    fig = go.Figure()
    _draw_panel(fig, series, _size_colors(sizes), axis=axis, lr=lr, info=info, top=top, legend=Legend(), band=band)
    tv, tt = lr_ticks(df[lr].dropna().unique(), log=np.log2, max_ticks=10)
    lr_sym = "η" if lr == ETA else "β"
    fig.update_layout(
        template=TEMPLATE, height=460,
        title=dict(text=f"<b>{esc(metric)}</b> vs {lr_sym} across {axis}{esc(note)}"
                        f"<br><sup>seed mean; {BANDS.get(band or '', 'no band')}; other lr fixed at "
                        f"{'each size’s best' if fix_other == 'best' else fmt_lr(fix_other)}</sup>", x=0.01),
        xaxis=dict(title=_x_title(lr), tickvals=tv, ticktext=tt),
        yaxis=dict(title=esc(metric), **yaxis),
        legend=dict(title=dict(text=size_symbol(axis))),
        margin=dict(t=90, l=70, r=30, b=60),
        meta={"kind": "loss_vs_lr", "sizes": sizes},
    )
    return fig


def lr_transfer(
    runs: pd.DataFrame | None,
    *,
    metric: str = DEFAULT_METRIC,
    axis: str = "width",
    lr: str = "weight_lr",
    by: str = "parametrization",
    where: Mapping[str, Any] | None = None,
    fix_other: str | float = "best",
    band: str | None = "minmax",
) -> go.Figure:
    """The μP papers' transfer figure: one panel per value of ``by`` (parameterisations, side by
    side), each the metric vs log2(lr) with one curve per size; all panels share the x and y axes
    and the size colours, so a shifting optimum and a stable one can be read against each other.

    ``where`` fixes the other settings (e.g. algorithm, activation, the held size); when several
    remain, the one with the most sizes is drawn and named in the title.
    """
    info = _check(metric, axis, lr)
    title0 = f"{metric} vs {lr} across {axis}, by {by}"
    df, why = _filtered(runs, metric, axis, where)
    if df is None:
        return empty_figure(why, title=title0)
    keys = [c for c in FIXED_SETTINGS + tuple(a for a in SIZE_AXES if a != axis) if c in df.columns and c != by]
    df, note = _one_setting(df, axis, keys)
    if lr == BETA and not df[BETA].notna().any():
        return empty_figure("no activity lr in these runs (e.g. backprop)", title=title0 + note)
    panels = sorted(df[by].astype(str).unique()) if by in df.columns else [""]
    per_panel = []
    for p in panels:
        sub = df.loc[df[by].astype(str) == p] if by in df.columns else df
        if lr == BETA and not sub[BETA].notna().any():
            per_panel.append((p, []))
            continue
        per_panel.append((p, _series(sub, axis, lr, fix_other, band, info)))
    all_series = [s for _, ser in per_panel for s in ser]
    sizes = sorted({s["size"] for s in all_series})
    colors = _size_colors(sizes)
    yaxis, top = _y_layout(all_series, info)
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, shared_xaxes=True,
                        horizontal_spacing=0.04 if len(panels) > 1 else 0.1,
                        subplot_titles=[f"{by} = {esc(p)}" if by in df.columns else "" for p in panels])
    legend = Legend()
    for c, (p, ser) in enumerate(per_panel, start=1):
        if not ser:
            fig.add_annotation(text="no activity lr", x=0.5, y=0.5, xref="x domain" if c == 1 else f"x{c} domain",
                               yref="y domain" if c == 1 else f"y{c} domain", showarrow=False)
        _draw_panel(fig, ser, colors, axis=axis, lr=lr, info=info, top=top, legend=legend, band=band,
                    row=1, col=c, panel=p)
    tv, tt = lr_ticks(df[lr].dropna().unique(), log=np.log2, max_ticks=10)
    fig.update_xaxes(tickvals=tv, ticktext=tt, title_text=_x_title(lr))
    fig.update_yaxes(**yaxis)
    fig.update_yaxes(title_text=esc(metric), row=1, col=1)
    lr_sym = "η" if lr == ETA else "β"
    fig.update_layout(
        template=TEMPLATE, height=440,
        title=dict(text=f"<b>{esc(metric)}</b> vs log2 {lr_sym} across {axis}{esc(note)}"
                        f"<br><sup>one curve per {size_symbol(axis)}; seed mean, "
                        f"{BANDS.get(band or '', 'no band')}; other lr at each size’s best; "
                        f"star: best per size; x at the top: diverged</sup>", x=0.01, y=0.97, yanchor="top"),
        legend=dict(title=dict(text=size_symbol(axis)), orientation="v", x=1.01, y=1, yanchor="top"),
        margin=dict(t=100, l=70, r=110, b=60),
        meta={"kind": "lr_transfer", "sizes": sizes, "panels": panels, "by": by, "lr": lr, "axis": axis},
    )
    return fig
