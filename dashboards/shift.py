"""The optimum-shift page (``/sweeps/{id}/shift``): per analysis, where the optimum sits at every
size (log2 η*, log2 β* vs log2 size, with the verdict's band: within one grid step of the base optimum) and the regret of transferring
the base size's optimum, with the verdict, its reasons and the numbers table.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mutransfer.report import Analysis, fmt_lr

from .common import (
    BETA, ETA, TEMPLATE, Legend, analyses_of, empty_figure, esc, fmt, group_title, head_layout, hex_rgba, is_2d,
    log2, lr_ticks, no_analysis_text, num, panel_note, pct, report_of, select_analysis, size_ticks, size_title,
    verdict_color, wrap,
)
from .runlinks import runs_at, seeds_url
from .html import DEFAULT_PLOTLY_URL, document, esc_html, figure_html, is_running, metric_of, sid_of, sweep_header
from .verdicts import (Tolerances, analysis_table, ci_text, provisional_banner, provisional_of, reasons_html,
                       regret_ci_text, regret_text, tolerances, verdict_badge, views_html, warnings_html)


def draw_shift(
    fig: go.Figure,
    analysis: Analysis,
    *,
    eta_cell: tuple[int, int],
    beta_cell: tuple[int, int],
    regret_cell: tuple[int, int],
    color: str,
    label: str,
    tol: Tolerances,
    legend: Legend,
    offset: float = 0.0,
    bar_width: float = 0.35,
) -> None:
    axis = analysis.axis
    entries = list(analysis.sizes)
    if not entries:
        return
    sizes = [e.size for e in entries]
    x = np.array([log2(s) for s in sizes])
    steps_tol = num(tol.steps_tol)
    regret_tol = num(tol.regret_tol)
    unit = tol.regret_unit
    pre = f"{label}: " if label else ""
    for lrname, cell, key, sym in ((ETA, eta_cell, "eta_star", "η*"), (BETA, beta_cell, "beta_star", "β*")):
        r, c = cell
        if lrname == BETA and not is_2d(analysis):
            panel_note(fig, r, c, "no activity lr (e.g. backprop)")
            continue
        g = np.array([log2(e.star(lrname)) for e in entries])
        f = np.array([log2(e.star_fit(lrname)) for e in entries])
        band = _step_band(analysis, lrname, entries[0].star(lrname), steps_tol)
        xs = None
        if band is not None:  # the verdict's rule: within steps_tol grid steps of the base's grid argmin
            lo, hi = band
            xs = np.array([x[0], x[-1], x[-1], x[0]])
            ys = np.array([lo, lo, hi, hi])
            name = f"{pre}within {steps_tol:g} grid step{'s' if steps_tol != 1 else ''} of the base optimum"
        if xs is not None:
            fig.add_trace(go.Scatter(
                x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0),
                fillcolor=color.replace("rgb(", "rgba(").replace(")", ",0.10)") if color.startswith("rgb(")
                else hex_rgba(color, 0.10),
                name=name, legendgroup=f"{label}tol",
                showlegend=legend(f"{label}tol"), hoverinfo="skip", meta={"role": "tolerance"},
            ), row=r, col=c)
        seed_txt = []
        for e in entries:
            m = e.seed_mode
            if m:
                v = m.weight_lr if lrname == ETA else m.activity_lr
                seed_txt.append(f"<br>seed mode {fmt_lr(v)} ({pct(e.seed_mode_freq)})")
            else:
                seed_txt.append("")
        hover = [
            f"{size_title(axis, s)}<br>{sym} grid = {fmt_lr(e.star(lrname))}, fit = {fmt_lr(e.star_fit(lrname))}"
            f"<br>Δlog2 = {fmt(e.dlog2(lrname), '+.2f')} octaves"
            f"{st}"
            for s, e, st in zip(sizes, entries, seed_txt)
        ]
        fig.add_trace(go.Scatter(
            x=x + offset, y=g, mode="markers", name=f"{pre}grid argmin",
            marker=dict(symbol="square", size=11, color=color, line=dict(width=1, color="black")),
            legendgroup=f"{label}grid", showlegend=legend(f"{label}grid"), text=hover,
            hovertemplate="%{text}<extra></extra>", meta={"role": f"{key}", "estimate": "grid"},
        ), row=r, col=c)
        slope = num(analysis.drift_slope(lrname).value)
        fig.add_trace(go.Scatter(
            x=x + offset, y=f, mode="lines+markers", name=f"{pre}fitted",
            line=dict(color=color, dash="dash"), marker=dict(symbol="diamond", size=8, color=color),
            legendgroup=f"{label}fit", showlegend=legend(f"{label}fit"), text=hover,
            hovertemplate="%{text}" + f"<br>drift slope {fmt(slope, '+.2f')} oct/doubling<extra></extra>",
            meta={"role": f"{key}", "estimate": "fit"},
        ), row=r, col=c)
        grid = (analysis.eta_grid if lrname == ETA else analysis.beta_grid) or ()
        tv, tt = lr_ticks([num(v) for v in grid], log=np.log2, max_ticks=8)
        if tv:
            fig.update_yaxes(tickvals=tv, ticktext=tt, row=r, col=c)
        fig.update_yaxes(title_text=f"{sym} (log2 axis)", row=r, col=c)

    # Regret bars (%), inf drawn as a capped hatched bar labelled ∞, NaN as "n/a".
    r, c = regret_cell
    reg = np.array([num(e.regret) for e in entries])
    finite = reg[np.isfinite(reg)]
    cap = max(float(finite.max()) * 100 * 1.3 if finite.size else 0.0, regret_tol * 100 * 3, 1.0)
    y = np.where(np.isinf(reg), cap, np.where(np.isnan(reg), 0.0, reg * 100))
    over = [bool(np.isinf(v) or v > regret_tol) for v in reg]
    colors = ["#999999" if np.isnan(v) else ("#d62728" if o else "#2ca02c") for v, o in zip(reg, over)]
    if label:  # two sides: each side's bars in its own colour (as its legend entry); over tolerance: red edge
        colors = [color] * len(reg)
    txt = [regret_text(v, unit) if not np.isinf(v) else "∞ (base optimum diverged)" for v in reg]
    ci = [e.regret_ci for e in entries]
    plus = [max(0.0, num(c[1]) * 100 - yy) if c and np.isfinite(num(c[1])) else 0.0 for c, yy in zip(ci, y)]
    minus = [max(0.0, yy - num(c[0]) * 100) if c and np.isfinite(num(c[0])) else 0.0 for c, yy in zip(ci, y)]
    fig.add_trace(go.Bar(
        x=x + offset, y=y, width=bar_width, name=f"{pre}regret",
        error_y=dict(type="data", array=plus, arrayminus=minus, visible=any(ci), color="#333", thickness=1),
        marker=dict(
            color=colors, line=dict(color=["#d62728" if o and label else (color if label else "#333") for o in over],
                                    width=[3 if o and label else 1.5 for o in over]),
            pattern=dict(shape=["/" if np.isinf(v) else "" for v in reg])),
        text=txt, textposition="outside", cliponaxis=False, showlegend=bool(label) and legend(f"{label}regret"),
        legendgroup=f"{label}regret",
        hovertext=[f"{size_title(axis, s)}: regret {t}{' CI ' + regret_ci_text(e.regret_ci, unit) if e.regret_ci else ''}"
                   f"<br>metric at base optimum {fmt(e.metric_at_base_opt)}"
                   f" vs own optimum {fmt(e.metric_at_opt)}" for s, t, e in zip(sizes, txt, entries)],
        hovertemplate="%{hovertext}<extra></extra>", meta={"role": "regret"},
    ), row=r, col=c)
    # A level mark on every measured bar, so a regret of 0 % is drawn (a zero-height bar is invisible).
    ok = ~np.isnan(reg)
    if ok.any():
        fig.add_trace(go.Scatter(
            x=(x + offset)[ok], y=y[ok], mode="markers", showlegend=False, legendgroup=f"{label}regret",
            marker=dict(symbol="line-ew", size=max(14, int(120 * bar_width)),
                        line=dict(width=3, color=color if label else "#333")),
            hoverinfo="skip", meta={"role": "regret_level"}), row=r, col=c)
    pp = unit != "relative"
    fig.add_hline(y=regret_tol * 100, line=dict(dash="dot", color="#d62728", width=1), row=r, col=c,
                  annotation_text=f"tolerance {regret_tol * 100:g}{' pp' if pp else '%'}",
                  annotation_position="top left")
    fig.update_yaxes(title_text="regret of base optimum (accuracy points)" if pp else "regret of base optimum (%)",
                     rangemode="tozero", row=r, col=c)


def _step_band(analysis: Analysis, lrname: str, base_value: Any, steps_tol: float) -> tuple | None:
    """log2 of the grid values ``steps_tol`` grid steps below and above the base's grid argmin."""
    grid = [num(v) for v in (analysis.eta_grid if lrname == ETA else analysis.beta_grid) or ()]
    b = num(base_value)
    if not np.isfinite(steps_tol) or not grid or not np.isfinite(b):
        return None
    i = int(np.argmin([abs(np.log2(v) - np.log2(b)) for v in grid]))
    k = int(steps_tol)
    return float(np.log2(grid[max(i - k, 0)])), float(np.log2(grid[min(i + k, len(grid) - 1)]))



def optimum_shift(report: Any, analysis_index: int = 0, *, verdict_in_title: bool = True
                  ) -> go.Figure:
    """Optimum vs size for both lrs, and the regret of transferring the base optimum.

    Top row: log2 η* and log2 β* vs log2 size, grid argmin (squares) and sub-grid fit (dashed),
    with the band of grid values within ``steps_tol`` grid steps of the base's argmin (the verdict's
    drift rule). Bottom: regret per size as bars (% or accuracy points) with bootstrap CI whiskers,
    the tolerance as a dotted line, an infinite regret (base optimum diverged) as a hatched bar
    labelled ∞. The verdict is the title.
    """
    report = report_of(report)
    analyses = analyses_of(report)
    if not analyses:
        return empty_figure(no_analysis_text(report), title="Optimum shift")
    idx = select_analysis(report, analysis_index=analysis_index)
    a = analyses[idx]
    axis = a.axis
    fig = make_subplots(
        rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]],
        subplot_titles=["weight lr optimum η*", "activity lr optimum β*", "regret of transfer"],
        vertical_spacing=0.16, horizontal_spacing=0.1,
    )
    draw_shift(fig, a, eta_cell=(1, 1), beta_cell=(1, 2), regret_cell=(2, 1), color="#1f77b4", label="",
               tol=tolerances(report), legend=Legend())
    size_ticks(fig, [e.size for e in a.sizes], [(1, 1), (1, 2), (2, 1)], axis)
    verdict = str(a.verdict)
    slopes = (f"fitted drift η* {fmt(a.drift_slope_eta, '+.2f')}{ci_text(a.drift_slope_eta_ci)}, "
              f"β* {fmt(a.drift_slope_beta, '+.2f')}{ci_text(a.drift_slope_beta_ci)} octave/doubling")
    if verdict_in_title:
        title = (f"<b>{esc(group_title(a.group))}</b> — {axis}: "
                 f"<span style='color:{verdict_color(verdict)}'><b>{esc(verdict)}</b></span>"
                 f"<br><sup>{wrap(a.verdict_text)}<br>{slopes}</sup>")
    else:  # the page states the verdict once, above the figure
        title = f"<b>{esc(group_title(a.group))}</b> — {axis}<br><sup>{slopes}</sup>"
    fig.update_layout(template=TEMPLATE, meta={"kind": "optimum_shift", "analysis": idx, "verdict": verdict})
    head_layout(fig, title, 720)
    return fig


def size_links(a: Analysis, runs: pd.DataFrame | None, sid: str) -> dict[Any, tuple[str | None, str | None]]:
    """size -> (run page of the seeds at its own optimum, at the base optimum)."""
    if runs is None or not sid or not a.sizes:
        return {}
    base = a.base
    out = {}
    for e in a.sizes:
        urls = []
        for src in (e, base):
            eta, beta = num(src.eta_star), num(src.beta_star)
            seeds = runs_at(runs, a.group, a.axis, e.size, eta,
                            beta if np.isfinite(beta) else None) if eta > 0 else None
            urls.append(seeds_url(sid, list(seeds["run_id"])) if seeds is not None and len(seeds) else None)
        out[e.size] = (urls[0], urls[1])
    return out


def shift_page(
    report: Any,
    sweep_meta: Mapping[str, Any] | None,
    *,
    plotly_url: str = DEFAULT_PLOTLY_URL,
    refresh_s: float | None = 5,
    runs: pd.DataFrame | None = None,
) -> str:
    """Optimum vs size and regret per analysis, each with its verdict (once), reasons, numbers and
    warnings; with ``runs`` each row of the numbers opens the seeds at that size's optimum and at the
    base optimum."""
    report = report_of(report)
    meta = sweep_meta or {}
    sid = sid_of(meta)
    metric = metric_of(report)
    body = [sweep_header(meta, "optimum shift", refresh_s, active="shift", metric=metric)]
    analyses = analyses_of(report)
    prov = provisional_of(report, meta)
    if not analyses:
        body.append(f'<div class="card"><p>{esc_html(no_analysis_text(report))}.</p></div>')
    tol = tolerances(report)
    if prov:
        body.append(provisional_banner(prov))
    for i, a in enumerate(analyses):
        title = f"{group_title(a.group)} — {a.axis}"
        body.append(f'<h2 id="a-{i}">{esc_html(title)} {verdict_badge(a.verdict, prov)}</h2>'
                    f'<p>{reasons_html(a)} <span class="muted">{esc_html(a.verdict_text)}</span></p>')
        body.append(figure_html(optimum_shift(report, analysis_index=i, verdict_in_title=False),
                                f"{sid}-shift-{title}"))
        body.append(analysis_table(a, tol, links=size_links(a, runs, sid)))
        body.append(views_html(a, tol))
        body.append(warnings_html(a))
    name = meta.get("name") or sid or "sweep"
    return document(f"{name} — optimum shift", "".join(body), plotly_url=plotly_url,
                    refresh_s=refresh_s if is_running(meta) else None)
