"""Figures of the inference-landscape diagnostics (plain functions of their tables): heatmaps over
(width N, depth H) as in the μPC paper's Figs. 2, 4 and 6, and lines over training (Fig. 3) or
width (coordinate checks)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.figures import empty_figure

# kind -> (value column, log10 colour scale?, title)
KINDS = {
    "hessian_condition": ("kappa", True, "condition number κ(H_z) at initialisation"),
    "loss_energy_ratio": ("ratio", False, "loss / equilibrated energy F(z*) (→ 1: Theorem 1)"),
    "hessian_condition_during_training": ("kappa", True, "κ(H_z) during training"),
    "coordinate_check": ("mean_abs_z", False, "coordinate check: mean |z_l|"),
    "gradient_alignment": ("cos_pc_bp", False, "cos(PC equilibrium gradient, BP gradient) vs width"),
}


def kind_of(name: str) -> str:
    """Analysis tables are stored as '<i>-<kind>'."""
    return name.split("-", 1)[1] if "-" in name else name


def _panels(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    keys = [c for c in ("parametrization", "residual", "activation") if c in df.columns and df[c].nunique() > 1]
    if not keys:
        return [("", df)]
    return [(", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,))), g)
            for key, g in df.groupby(keys)]


def heatmap(df: pd.DataFrame, value: str, *, log: bool, title: str) -> go.Figure:
    """One heatmap per setting (e.g. parametrization × skips) over depth (y) × width (x), one
    shared colour scale; non-finite cells (indefinite Hessians, NaN) are left blank and listed."""
    if df.empty or value not in df.columns:
        return empty_figure("no diagnostics yet", title=title)
    if "step" in df.columns:
        df = df[df["step"] == df["step"].min()]
    panels = _panels(df)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p or title for p, _ in panels],
                        horizontal_spacing=0.06)
    tables = [g.pivot_table(index="depth", columns="width", values=value, aggfunc="median") for _, g in panels]
    vals = np.concatenate([t.to_numpy(float).ravel() for t in tables])
    finite = vals[np.isfinite(vals) & ((vals > 0) if log else True)]
    tx = (lambda a: np.log10(a)) if log else (lambda a: a)
    zmin, zmax = (float(tx(finite).min()), float(tx(finite).max())) if finite.size else (0.0, 1.0)
    for i, t in enumerate(tables):
        z = t.to_numpy(float)
        with np.errstate(all="ignore"):
            zz = np.where(np.isfinite(z) & ((z > 0) if log else True), tx(z), np.nan)
        text = [[("—" if not math.isfinite(v) else f"{v:.3g}") for v in row] for row in z]
        fig.add_trace(go.Heatmap(
            z=zz, x=[str(c) for c in t.columns], y=[str(r) for r in t.index], zmin=zmin, zmax=zmax,
            colorscale="Viridis", showscale=i == 0, text=text, texttemplate="%{text}",
            colorbar={"title": f"log10 {value}" if log else value},
            hovertemplate="N=%{x}, H=%{y}: %{text}<extra></extra>"), row=1, col=i + 1)
        fig.update_xaxes(title_text="width N", type="category", row=1, col=i + 1)
        fig.update_yaxes(title_text="depth H" if i == 0 else None, type="category", row=1, col=i + 1)
    fig.update_layout(title=title, height=420, margin={"t": 80})
    return fig


def lines(df: pd.DataFrame, x: str, value: str, *, log: bool, title: str, by: str) -> go.Figure:
    if df.empty or value not in df.columns or x not in df.columns:
        return empty_figure("no diagnostics yet", title=title)
    fig = go.Figure()
    for key, g in df.groupby([c for c in (by, "parametrization") if c in df.columns]):
        label = ", ".join(map(str, key if isinstance(key, tuple) else (key,)))
        g = g.groupby(x, as_index=False)[value].median()
        fig.add_trace(go.Scatter(x=g[x], y=g[value], mode="lines+markers", name=label))
    fig.update_layout(title=title, height=420, xaxis_title=x, yaxis_title=value,
                      yaxis_type="log" if log else None)
    if x == "width":
        fig.update_xaxes(type="log")
    return fig


def diagnostic_figure(df: pd.DataFrame, kind: str) -> go.Figure:
    """The paper-style figure for one analysis table."""
    value, log, title = KINDS.get(kind, (None, False, kind))
    if kind in ("hessian_condition", "loss_energy_ratio"):
        return heatmap(df, value, log=log, title=title)
    if kind == "hessian_condition_during_training":
        return lines(df, "step", value, log=True, title=title, by="width")
    if kind == "coordinate_check":
        last = df[df["step"] == df["step"].max()] if "step" in df.columns else df
        return lines(last, "width", value, log=False, title=title + " (last recorded step), per layer", by="layer")
    if kind == "gradient_alignment":
        whole = df[df["layer"] == "all"] if "layer" in df.columns else df
        return lines(whole, "width", value, log=False, title=title, by="gamma_exponent")
    return empty_figure(f"no figure for analysis kind {kind!r}")
