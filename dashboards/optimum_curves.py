"""Training curves at the optimum: for every analysis of the optimum-shift report (one setting ×
one size axis), the train loss and test accuracy of each size **at that size's optimum** (the
report's seed-mean grid optimum, the gold star on the contours) and **at the base size's optimum
transferred** to that size (the red circle). The gap between the two curves of a size is the
regret of transferring, drawn as training dynamics.

* Solid line: mean over seeds at the size's own optimum; shaded band: min–max over seeds.
* Dashed line: mean over seeds at the base size's optimum (left out at the base size itself and
  wherever both optima coincide).
* Test accuracy (measured at a few steps only) is drawn as markers with seed whiskers — joined by
  a thin dotted line only from four evaluations on — so two evaluations do not read as a ramp.
* Every trace carries ``customdata`` = the run page of its seeds (``?also=`` the others) so a click
  opens them, and ``meta={"role": "optimum_curve" | "base_curve" | "seed_band" | "test_acc",
  "size": ..., "run_ids": [...], "lrs": {...}}``.

Sizes appear as soon as their cell's runs are stored (the page reloads while the sweep runs).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from mutransfer.report import Analysis

from .common import (BETA, ETA, TEMPLATE, analyses_of, empty_figure, esc, group_title, hex_rgba, log_axis, num,
                     positive_range, size_title)
from .runlinks import lr_text, runs_at, seeds_url


def _rgb_to_rgba(color: str, alpha: float) -> str:
    if color.startswith("rgb("):
        return color.replace("rgb(", "rgba(").replace(")", f",{alpha})")
    return hex_rgba(color, alpha)


def _seed_stats(curves: pd.DataFrame, run_ids: list[str], col: str, positive: bool) -> pd.DataFrame:
    """Per step: mean, min, max of ``col`` over the runs (finite values; positive ones for logs)."""
    c = curves.loc[curves["run_id"].isin(run_ids), ["run_id", "step", col]].copy()
    c[col] = pd.to_numeric(c[col], errors="coerce")
    ok = np.isfinite(c[col].to_numpy(dtype=float))
    if positive:
        ok &= c[col].to_numpy(dtype=float) > 0
    c = c.loc[ok]
    if len(c) == 0:
        return pd.DataFrame(columns=["step", "mean", "lo", "hi", "n"])
    g = c.groupby("step")[col]
    out = pd.DataFrame({"mean": g.mean(), "lo": g.min(), "hi": g.max(), "n": g.count()}).reset_index()
    return out.sort_values("step")


def optimum_points(analysis: Analysis) -> list[dict[str, Any]]:
    """(size, own optimum (η, β), base optimum (η, β)) of each size with a finite optimum."""
    sizes = analysis.sizes
    if not sizes:
        return []
    base = sizes[0]
    out = []
    for e in sizes:
        eta = num(e.eta_star)
        if not (eta > 0 and math.isfinite(eta)):
            continue
        out.append({"size": e.size, "own": (eta, num(e.beta_star)), "base": (num(base.eta_star), num(base.beta_star)),
                    "is_base": e is base})
    return out


def _same_point(a: tuple[float, float], b: tuple[float, float]) -> bool:
    def close(x, y):
        return (not math.isfinite(x) and not math.isfinite(y)) or (
            math.isfinite(x) and math.isfinite(y) and abs(x - y) <= 1e-6 * abs(y))
    return close(a[0], b[0]) and close(a[1], b[1])


def optimum_curves(
    analysis: Analysis,
    runs: pd.DataFrame | None,
    curves: pd.DataFrame | None,
    *,
    sid: str = "",
) -> go.Figure:
    """Train loss (log y) and test accuracy vs step at each size's optimum and at the base size's
    optimum transferred (see the module docstring)."""
    axis = str(analysis.axis)
    group = analysis.group
    title = f"<b>Training curves at the optimum</b> — {esc(group_title(group))}, {esc(axis)} sweep"
    pts = optimum_points(analysis)
    if not pts or curves is None or len(curves) == 0 or not {"run_id", "step", "train_loss"} <= set(curves.columns):
        return empty_figure("no finished runs at an optimum yet", title="Training curves at the optimum")
    has_test = "test_acc" in curves.columns and np.isfinite(
        pd.to_numeric(curves["test_acc"], errors="coerce").to_numpy(dtype=float)).any()
    nrows = 2 if has_test else 1
    fig = make_subplots(rows=nrows, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=["train loss"] + (["test accuracy"] if has_test else []))
    colors = sample_colorscale("Viridis", [0.0] if len(pts) == 1 else list(np.linspace(0.0, 0.85, len(pts))))
    losses: list[float] = []
    drawn: list[dict] = []
    for p, color in zip(pts, colors):
        size = p["size"]
        sname = size_title(axis, size)
        lines = [("optimum_curve", p["own"], "solid", f"{sname} at its optimum")]
        if not p["is_base"] and not _same_point(p["own"], p["base"]) and p["base"][0] > 0:
            lines.append(("base_curve", p["base"], "dash", f"{sname} at the base optimum"))
        for role, (eta, beta), dash, label in lines:
            seeds = runs_at(runs, group, axis, size, eta, beta if math.isfinite(beta) else None)
            ids = [str(r) for r in seeds["run_id"]] if len(seeds) else []
            if not ids:
                continue
            url = seeds_url(sid, ids)
            stats = _seed_stats(curves, ids, "train_loss", positive=True)
            if len(stats) == 0:
                continue
            losses += list(stats["lo"]) + list(stats["hi"])
            name = f"{label} ({lr_text(eta, beta)})"
            info = {"size": size, "run_ids": ids, "lrs": {ETA: eta, BETA: beta if math.isfinite(beta) else None}}
            if role == "optimum_curve" and len(ids) > 1:
                xs = list(stats["step"]) + list(stats["step"])[::-1]
                ys = list(stats["hi"]) + list(stats["lo"])[::-1]
                fig.add_trace(go.Scatter(
                    x=xs, y=ys, fill="toself", fillcolor=_rgb_to_rgba(color, 0.18), line=dict(width=0),
                    hoverinfo="skip", showlegend=False, legendgroup=f"{size}-{role}",
                    meta={"role": "seed_band", **info}), row=1, col=1)
            n = stats["n"].to_numpy()
            hover = [f"step {s:g}<br>train loss {m:.4g} (seeds {lo:.4g} – {hi:.4g}, n = {k})"
                     for s, m, lo, hi, k in zip(stats["step"], stats["mean"], stats["lo"], stats["hi"], n)]
            fig.add_trace(go.Scatter(
                x=stats["step"], y=stats["mean"], mode="lines", name=esc(name), legendgroup=f"{size}-{role}",
                line=dict(color=color, dash=dash, width=2.2 if role == "optimum_curve" else 1.8),
                text=hover, hovertemplate="%{text}<extra>" + esc(name) + "</extra>",
                customdata=[url] * len(stats), meta={"role": role, **info}), row=1, col=1)
            drawn.append({"role": role, **info})
            if has_test:
                acc = _seed_stats(curves, ids, "test_acc", positive=False)
                if len(acc):
                    fig.add_trace(go.Scatter(  # a few evaluations: markers only (a line reads as a ramp)
                        x=acc["step"], y=acc["mean"], mode="markers" if len(acc) <= 3 else "lines+markers",
                        showlegend=False,
                        legendgroup=f"{size}-{role}",
                        line=dict(color=color, dash="dot", width=0.8),
                        marker=dict(size=9, color=color if role == "optimum_curve" else "white",
                                    symbol="circle" if role == "optimum_curve" else "diamond",
                                    line=dict(width=1.5, color=color)),
                        error_y=dict(type="data", symmetric=False, array=acc["hi"] - acc["mean"],
                                     arrayminus=acc["mean"] - acc["lo"], color=color, thickness=1, width=3),
                        hovertemplate="step %{x}<br>test acc %{y:.3f}<extra>" + esc(name) + "</extra>",
                        customdata=[url] * len(acc), meta={"role": "test_acc", **info}), row=2, col=1)
    if not drawn:
        return empty_figure("no logged steps at the optima yet", title="Training curves at the optimum")
    lo, hi = positive_range(losses)
    fig.update_yaxes(title_text="train loss", row=1, col=1, **log_axis(lo, hi))
    if has_test:
        fig.update_yaxes(title_text="test accuracy", row=2, col=1)
    fig.update_xaxes(title_text="step (weight updates)", row=nrows, col=1)
    fig.update_layout(
        template=TEMPLATE, height=260 + 230 * nrows, hovermode="closest",
        title=dict(text=title + "<br><sup>solid: each size at its own optimum (band: min–max over seeds); "
                   "dashed: the base size's optimum transferred; click a curve to open its runs</sup>", x=0.01),
        legend=dict(font=dict(size=11)), margin=dict(t=90, l=70, r=30, b=50),
        meta={"kind": "optimum_curves", "curves": drawn},
    )
    return fig


def optimum_run_ids(report: Any, runs: pd.DataFrame | None) -> list[str]:
    """Every run at an optimum (own or base) of any analysis: the runs whose curves the page needs."""
    ids: list[str] = []
    for a in analyses_of(report):
        axis, group = a.axis, a.group
        for p in optimum_points(a):
            for eta, beta in (p["own"], p["base"]):
                if eta > 0:
                    seeds = runs_at(runs, group, axis, p["size"], eta, beta if math.isfinite(beta) else None)
                    ids += [str(r) for r in seeds.get("run_id", [])]
    return list(dict.fromkeys(ids))
