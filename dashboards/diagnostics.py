"""The diagnostics page (``/sweeps/{id}/diagnostics``) and its figures, plain functions of the
analysis tables (:mod:`mutransfer.diagnostics`): heatmaps over (width N, depth H) as in the μPC
paper's Figs. 2, 4 and 6, lines over training (Fig. 3) or width, and the μP papers' coordinate
check — log-log panels of the per-layer update size |Δz_l| against width, one panel per step.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from mutransfer.diagnostic_columns import KIND_COLUMNS

from .common import TEMPLATE, empty_figure, esc, log_axis, log_ticks, positive_range
from .html import DEFAULT_PLOTLY_URL, document, esc_html, figure_html, is_running, sid_of, sweep_header

# kind -> (value column, log10 colour scale?, title), from the one table of kinds and columns
KINDS = {kind: tuple(k.headline) for kind, k in KIND_COLUMNS.items()}
# Settings that split a diagnostics table into panels / rows when they vary.
PANEL_KEYS = ("parametrization", "residual", "activation", "algorithm")


def kind_of(name: str) -> str:
    """Analysis tables are stored as '<i>-<kind>'."""
    return name.split("-", 1)[1] if "-" in name else name


def _panels(df: pd.DataFrame, keys: tuple[str, ...] = PANEL_KEYS) -> list[tuple[str, pd.DataFrame]]:
    keys = [c for c in keys if c in df.columns and df[c].nunique() > 1]
    if not keys:
        return [("", df)]
    return [(", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,))), g)
            for key, g in df.groupby(keys)]


def _width_axis(widths: Any) -> dict:
    """A log2-spaced width axis labelled with the widths themselves."""
    w = sorted({int(x) for x in widths if np.isfinite(x) and x > 0})
    if not w:
        return dict(type="log")
    lo, hi = math.log10(w[0]), math.log10(w[-1])
    pad = 0.06 * max(hi - lo, 0.3)
    return dict(type="log", tickvals=w, ticktext=[str(x) for x in w], range=[lo - pad, hi + pad])


def heatmap(df: pd.DataFrame, value: str, *, log: bool, title: str) -> go.Figure:
    """One heatmap per setting (e.g. parametrization × skips) over depth (y) × width (x), one
    shared colour scale; non-finite cells (indefinite Hessians, NaN) are left blank and listed."""
    if df.empty or value not in df.columns:
        return empty_figure("no diagnostics yet", title=title)
    if "step" in df.columns:
        df = df[df["step"] == df["step"].min()]
    panels = _panels(df, ("parametrization", "residual", "activation"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[esc(p) or title for p, _ in panels],
                        horizontal_spacing=0.06)
    tables = [g.pivot_table(index="depth", columns="width", values=value, aggfunc="median") for _, g in panels]
    vals = np.concatenate([t.to_numpy(float).ravel() for t in tables])
    finite = vals[np.isfinite(vals) & ((vals > 0) if log else True)]
    tx = (lambda a: np.log10(a)) if log else (lambda a: a)
    zmin, zmax = (float(tx(finite).min()), float(tx(finite).max())) if finite.size else (0.0, 1.0)
    bar: dict[str, Any] = {"title": f"{value} (log scale)" if log else value}
    if log and finite.size:
        tv, tt = log_ticks(10 ** zmin, 10 ** zmax, 6)
        bar.update(tickvals=[math.log10(v) for v in tv], ticktext=tt)
    for i, t in enumerate(tables):
        z = t.to_numpy(float)
        with np.errstate(all="ignore"):
            zz = np.where(np.isfinite(z) & ((z > 0) if log else True), tx(z), np.nan)
        text = [[("—" if not math.isfinite(v) else f"{v:.3g}") for v in row] for row in z]
        fig.add_trace(go.Heatmap(
            z=zz, x=[str(c) for c in t.columns], y=[str(r) for r in t.index], zmin=zmin, zmax=zmax,
            colorscale="Viridis", showscale=i == 0, text=text, texttemplate="%{text}", colorbar=bar,
            hovertemplate="N=%{x}, H=%{y}: %{text}<extra></extra>"), row=1, col=i + 1)
        fig.update_xaxes(title_text="width N", type="category", row=1, col=i + 1)
        fig.update_yaxes(title_text="depth H" if i == 0 else None, type="category", row=1, col=i + 1)
    fig.update_layout(template=TEMPLATE, title=title, height=420, margin={"t": 80})
    return fig


def lines(df: pd.DataFrame, x: str, value: str, *, log: bool, title: str, by: str) -> go.Figure:
    """``value`` against ``x`` (median over repeats), one line per ``by`` × parametrization; log
    axes get full-value tick labels, a width axis is log2-spaced and labelled with the widths."""
    if df.empty or value not in df.columns or x not in df.columns:
        return empty_figure("no diagnostics yet", title=title)
    fig = go.Figure()
    for key, g in df.groupby([c for c in (by, "parametrization") if c in df.columns]):
        label = ", ".join(map(str, key if isinstance(key, tuple) else (key,)))
        g = g.groupby(x, as_index=False)[value].median()
        fig.add_trace(go.Scatter(x=g[x], y=g[value], mode="lines+markers", name=esc(label)))
    fig.update_layout(template=TEMPLATE, title=title, height=420, xaxis_title=x, yaxis_title=value)
    if log:
        fig.update_yaxes(**log_axis(*positive_range(df[value])))
    if x == "width":
        fig.update_xaxes(**_width_axis(df[x]))
    return fig


def coordinate_check_figure(df: pd.DataFrame, *, max_steps: int = 8, value: str = "mean_abs_dz") -> go.Figure:
    """The μP coordinate check: mean |Δz_l| (how far layer l's activities moved from
    initialisation, on a fixed probe batch) against width N on log-log axes, one panel per recorded
    recorded step t > 0 (columns: every step, as mup draws it, or ``max_steps`` spread over a
    longer run; a table that recorded only its last step says so under the title), one row per setting
    (parameterisation, and depth when several), one line per layer (hidden layers by colour, the
    output dashed black). All panels share both axes. Under a width-stable parameterisation every
    line is flat in N; a line rising with N is an update that blows up with width.
    """
    title = KINDS["coordinate_check"][2]
    need = {"width", "layer", "step", value}
    if df.empty or not need <= set(df.columns):
        return empty_figure("no coordinate check yet", title=title)
    steps = sorted(s for s in df["step"].unique() if s > 0)
    if not steps:
        return empty_figure("only the initialisation was recorded (steps: 0): nothing moved yet", title=title)
    if len(steps) > max_steps:
        steps = [steps[int(round(k))] for k in np.linspace(0, len(steps) - 1, max_steps)]
    row_keys = ("parametrization", "depth", "residual", "activation", "algorithm")
    rows = _panels(df, row_keys)
    ncols = len(steps)
    titles = [f"{esc(label) + ': ' if label else ''}step {s}" for label, _ in rows for s in steps]
    fig = make_subplots(rows=len(rows), cols=ncols, shared_xaxes=True, shared_yaxes=True, subplot_titles=titles,
                        horizontal_spacing=0.03, vertical_spacing=0.12 if len(rows) > 1 else 0.1)
    layers = sorted(df["layer"].unique())
    out_layer = df.loc[df.get("kind", pd.Series("", index=df.index)) == "output", "layer"]
    out_layers = set(out_layer.unique()) if len(out_layer) else {max(layers)}
    hidden = [lay for lay in layers if lay not in out_layers]
    colours = dict(zip(hidden, sample_colorscale("Viridis", [0.5] if len(hidden) == 1 else
                                                 list(np.linspace(0, 0.9, len(hidden))))))
    shown: set[str] = set()
    for r, (label, g) in enumerate(rows, start=1):
        for c, s in enumerate(steps, start=1):
            at = g.loc[g["step"] == s]
            for lay in layers:
                pts = at.loc[at["layer"] == lay].groupby("width")[value].median().sort_index()
                y = pts.to_numpy(dtype=float)
                ok = np.isfinite(y) & (y > 0)
                if not ok.any():
                    continue
                is_out = lay in out_layers
                name = "output f" if is_out else f"layer {lay}"
                fig.add_trace(go.Scatter(
                    x=pts.index.to_numpy()[ok], y=y[ok], mode="lines+markers", name=name, legendgroup=name,
                    showlegend=name not in shown,
                    line=dict(color="black" if is_out else colours[lay], dash="dash" if is_out else "solid",
                              width=1.8),
                    marker=dict(size=5), hovertemplate=f"{esc(label)} step {s}<br>{name}<br>N = %{{x}}<br>"
                    f"|Δz| = %{{y:.3g}}<extra></extra>",
                    meta={"role": "dz", "layer": int(lay), "step": int(s), "row": label}), row=r, col=c)
                shown.add(name)
    fig.update_xaxes(**_width_axis(df["width"]))
    fig.update_xaxes(title_text="width N", row=len(rows))
    lo, hi = positive_range(df.loc[df["step"].isin(steps), value])
    fig.update_yaxes(**log_axis(lo, hi))
    for r in range(1, len(rows) + 1):
        fig.update_yaxes(title_text="mean |Δz_l|", row=r, col=1)
    all_steps = sorted(s for s in df["step"].unique() if s > 0)
    gap = (" — only these steps were recorded (set record_every: 1 to see every step)"
           if len(all_steps) < max(all_steps) and len(all_steps) < max_steps else "")
    fig.update_layout(
        template=TEMPLATE, height=120 + 300 * len(rows),
        title=dict(text=f"<b>{title}</b><br><sup>log-log; flat in N = width-stable updates; "
                        f"one line per layer; one panel per step{esc(gap)}</sup>", x=0.01),
        margin=dict(t=100, l=80, r=30, b=60), legend=dict(font=dict(size=11)),
        meta={"kind": "coordinate_check", "steps": [int(s) for s in steps], "rows": [lab for lab, _ in rows]},
    )
    return fig


def diagnostic_figure(df: pd.DataFrame, kind: str) -> go.Figure:
    """The paper-style figure for one analysis table."""
    value, log, title = KINDS.get(kind, (None, False, kind))
    if kind in ("hessian_condition", "loss_energy_ratio"):
        return heatmap(df, value, log=log, title=title)
    if kind == "hessian_condition_during_training":
        return lines(df, "step", value, log=True, title=title, by="width")
    if kind == "training_diagnostics":
        return lines(df, "step", value, log=True, title=title, by="depth")
    if kind == "coordinate_check":
        return coordinate_check_figure(df)
    if kind == "gradient_alignment":
        whole = df[df["layer"] == "all"] if "layer" in df.columns else df
        return lines(whole, "width", value, log=False, title=title, by="gamma_exponent")
    return empty_figure(f"no figure for analysis kind {kind!r}")


def diagnostic_figures(df: pd.DataFrame, kind: str) -> list[go.Figure]:
    """Every figure of one analysis table (the coordinate check adds |z_l| at initialisation)."""
    figs = [diagnostic_figure(df, kind)]
    if kind == "training_diagnostics":
        for value, log, title in KIND_COLUMNS[kind].extra:
            if value in df.columns:
                figs.append(lines(df, "step", value, log=log, title=title, by="depth"))
    if kind == "coordinate_check" and {"step", "mean_abs_z", "width"} <= set(df.columns):
        init = df[df["step"] == df["step"].min()]
        (col,) = KIND_COLUMNS[kind].extra
        figs.append(lines(init, "width", col.value, log=col.log, by="layer", title=col.title))
    return figs


def diagnostics_page(analyses: Mapping[str, pd.DataFrame], sweep_meta: Mapping[str, Any] | None, *,
                     plotly_url: str = DEFAULT_PLOTLY_URL, refresh_s: float | None = 5) -> str:
    """The sweep's diagnostics (``analyses`` in its spec): the paper-style figures of each table."""
    meta = sweep_meta or {}
    sid = sid_of(meta)
    body = [sweep_header(meta, "diagnostics", refresh_s, active="diagnostics")]
    if not analyses:
        body.append('<div class="card"><p>No diagnostics for this sweep (add <code>analyses:</code> to its '
                    f"spec, or run <code>mutransfer diagnose KIND --sweep {esc_html(sid)}</code>: its table then "
                    "appears here).</p></div>")
    for name, df in analyses.items():
        src = " <span class=\"muted\">(from <code>mutransfer diagnose</code>)</span>" if name.startswith("cli") else ""
        body.append(f"<h2>{esc_html(name)}{src}</h2>")
        for k, fig in enumerate(diagnostic_figures(df, kind_of(name))):
            body.append(figure_html(fig, f"{sid}-{name}-{k}"))
    title = f"{meta.get('name') or sid or 'sweep'} — diagnostics"
    return document(title, "".join(body), plotly_url=plotly_url,
                    refresh_s=refresh_s if is_running(meta) else None)
