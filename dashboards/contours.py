"""The contours page (``/sweeps/{id}/contours``): the μPC paper's Fig. 5 — the metric over
(activity lr, weight lr), one panel per size — for every setting of the sweep, followed by the μP
papers' metric-vs-log2-lr figures (:mod:`dashboards.lr_sweep`) and training curves
(:mod:`dashboards.curves`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mutransfer.report import METRICS, Analysis, Report, SizeRow, Surface, fmt_lr

from .common import (
    BASE_COLOR, BETA, COLORSCALE, DIVERGED_COLOR, EMPTY_TEXT, ETA, FIXED_SETTINGS, OPT_COLOR, SIZE_AXES, TEMPLATE,
    Legend, Scale, analyses_of, companion_analysis, empty_figure, esc, finite_range, fmt, group_title, head_layout,
    hide_unused, is_2d, lr_ticks, no_analysis_text, num, padded, panel_note, pct, prepare_runs, report_of,
    select_analysis, size_title,
)
from .optimum_curves import optimum_curves, optimum_run_ids
from .html import DEFAULT_PLOTLY_URL, document, esc_html, figure_html, is_running, metric_of, sid_of, sweep_header
from .lr_sweep import lr_transfer
from .runlinks import lr_text, runs_at, seed_hover, seeds_url
from .verdicts import provisional_banner, provisional_of, verdict_line

# --------------------------------------------------------------------------- surface panels


def panel_sizes(analysis: Analysis) -> list[tuple[Any, SizeRow | None, Surface | None]]:
    """(size, size row, surface) for every size with runs plus sizes still missing (None, None)."""
    entries = {e.size: e for e in analysis.sizes}
    surfs = {s.size: s for s in analysis.surfaces}
    missing = {m.size for m in analysis.missing if m.kind == "size"}
    sizes = sorted(set(entries) | set(surfs) | missing, key=lambda s: (num(s), str(s)))
    return [(s, entries.get(s), surfs.get(s)) for s in sizes]


def _surface_arrays(surf: Surface) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """(eta grid, beta grid or None, values[eta, beta] as floats, n_seeds[eta, beta])."""
    eta = np.array([num(x) for x in surf.weight_lr], dtype=float)
    beta = None if surf.activity_lr is None else np.array([num(x) for x in surf.activity_lr], dtype=float)
    ncol = 1 if beta is None else len(beta)
    vals = np.full((len(eta), ncol), np.nan)
    for i, row in enumerate(surf.values):
        for j, v in enumerate(row or []):
            if i < vals.shape[0] and j < ncol:
                vals[i, j] = num(v)
    nseeds = np.zeros_like(vals)
    for i, row in enumerate(surf.n_seeds):
        for j, v in enumerate(row or []):
            if i < vals.shape[0] and j < ncol:
                nseeds[i, j] = num(v) if v is not None else 0
    return eta, beta, vals, nseeds


def surface_zarrays(analyses: Iterable[Analysis], scale: Scale) -> list[np.ndarray]:
    out = []
    for a in analyses:
        for s in a.surfaces:
            out.append(scale.z(_surface_arrays(s)[2]))
    return out


def _hover(eta: float, beta: float | None, v: float, n: float, scale: Scale) -> str:
    parts = [f"η = {fmt_lr(eta)}"]
    if beta is not None:
        parts.append(f"β = {fmt_lr(beta)}")
    if np.isnan(v):
        parts.append("not run")
    elif np.isinf(v):
        parts.append("diverged")
    else:
        parts.append(f"{esc(scale.metric)} = {v:.4g}")
        parts.append(f"seeds: {int(n)}")
    return "<br>".join(parts)


def _opt_hover(label: str, entry: SizeRow, single: bool = False) -> str:
    txt = f"{label}<br>η* = {fmt_lr(entry.eta_star)}"
    if entry.beta_star is not None:
        txt += f", β* = {fmt_lr(entry.beta_star)}"
    txt += f"<br>fit: η = {fmt_lr(entry.eta_star_fit)}"
    if entry.beta_star_fit is not None:
        txt += f", β = {fmt_lr(entry.beta_star_fit)}"
    txt += f" ({esc(entry.fit or '-')})<br>metric = {fmt(entry.metric_at_opt)}"
    if not single:
        txt += f"<br>regret of base optimum: {pct(entry.regret)}"
    return txt


def _optima_urls(analysis: Analysis, size: Any, entry: SizeRow | None, base_entry: SizeRow | None,
                 runs: pd.DataFrame | None, sid: str) -> tuple[str | None, str | None]:
    """Run pages of the seeds at this size's optimum and at the base optimum (at this size)."""
    out = []
    for e in (entry, base_entry):
        eta = num(None if e is None else e.eta_star)
        if not (eta > 0 and np.isfinite(eta)) or runs is None:
            out.append(None)
            continue
        beta = num(e.beta_star)
        seeds = runs_at(runs, analysis.group, analysis.axis, size, eta, beta if np.isfinite(beta) else None)
        out.append(seeds_url(sid, list(seeds["run_id"])) if len(seeds) else None)
    return out[0], out[1]


def _grid_points(fig: go.Figure, row: int, col: int, analysis: Analysis, size: Any, eta: np.ndarray,
                 beta: np.ndarray | None, nseeds: np.ndarray, runs: pd.DataFrame | None, sid: str, scale: "Scale",
                 legend: Legend, *, y: np.ndarray | None = None, top: float = 0.0) -> None:
    """Small dots on every grid point that has runs: hover lists each seed's value, a click opens
    the seeds' run page (``customdata``)."""
    ii, jj = np.nonzero(nseeds > 0)
    if len(ii) == 0:
        return
    group, axis = analysis.group, analysis.axis
    xs, ys, text, urls, ids = [], [], [], [], []
    for i, j in zip(ii, jj):
        b = None if beta is None else float(beta[j])
        seeds = runs_at(runs, group, axis, size, float(eta[i]), b) if runs is not None else pd.DataFrame()
        rid = [str(r) for r in seeds["run_id"]] if len(seeds) else []
        if beta is not None:
            xs.append(float(np.log10(b)))
            ys.append(float(np.log10(eta[i])))
        else:
            xs.append(float(np.log10(eta[i])))
            ys.append(float(y[i]) if y is not None and np.isfinite(y[i]) else top)
        head = lr_text(float(eta[i]), b)
        text.append(f"{head}<br>{seed_hover(seeds, scale.metric)}" + ("<br><i>click: open its runs</i>" if rid else ""))
        urls.append(seeds_url(sid, rid) or "")
        ids.append(rid)
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", name="grid point (click: runs)",
        marker=dict(symbol="circle", size=7, color="rgba(255,255,255,0.85)", line=dict(width=1, color="#333")),
        text=text, hovertemplate="%{text}<extra></extra>", customdata=urls,
        legendgroup="grid", showlegend=legend("grid"),
        meta={"role": "grid_point", "size": size, "run_ids": ids}), row=row, col=col)


def _add_optima(fig: go.Figure, row: int, col: int, p, bp, entry, base_entry, *, prefix: str, sname: str,
                base_label: str, size: Any, legend: Callable[[str], bool],
                urls: tuple[str | None, str | None] = (None, None), single: bool = False) -> None:
    """The panel's optimum (star) and the base size's optimum (open circle), where finite; a click
    opens the seeds at that point."""
    if p is not None:
        fig.add_trace(go.Scatter(
            x=[p[0]], y=[p[1]], mode="markers", name=f"{prefix}optimum",
            marker=dict(symbol="star", size=16, color=OPT_COLOR, line=dict(width=1.2, color="black")),
            legendgroup=f"{prefix}optimum", showlegend=legend(f"{prefix}optimum"),
            hovertemplate=_opt_hover(f"{prefix}optimum at {sname}", entry, single) + "<extra></extra>",
            customdata=[urls[0] or ""], meta={"role": "optimum", "size": size}), row=row, col=col)
    if bp is not None:
        fig.add_trace(go.Scatter(
            x=[bp[0]], y=[bp[1]], mode="markers", name=base_label,
            marker=dict(symbol="circle-open", size=20, line=dict(width=2.5, color=BASE_COLOR), color=BASE_COLOR),
            legendgroup=base_label, showlegend=legend(base_label),
            hovertemplate=_opt_hover(base_label, base_entry, single) + "<extra></extra>",
            customdata=[urls[1] or ""], meta={"role": "base_optimum", "size": size}), row=row, col=col)


def _draw_surface_panel(
    fig: go.Figure,
    row: int,
    col: int,
    analysis: Analysis,
    size: Any,
    entry: SizeRow | None,
    surf: Surface | None,
    scale: Scale,
    zrange: tuple[float, float],
    legend: Legend,
    *,
    show_scale: bool,
    kind: str = "contour",
    prefix: str = "",
    runs: pd.DataFrame | None = None,
    sid: str = "",
) -> None:
    """One panel: 2-D contour (or heatmap) of the metric, or a 1-D line when there is no beta.
    Every grid point that has runs is marked (hover: each seed's value; click: its runs)."""
    axis = analysis.axis
    single = isinstance(analysis, SingleSizeView)
    sname = size_title(axis, size)
    if surf is None:
        panel_note(fig, row, col, "no runs yet")
        return
    eta, beta, vals, nseeds = _surface_arrays(surf)
    if len(eta) == 0:
        panel_note(fig, row, col, "no runs yet")
        return
    base_entry = analysis.sizes[0] if analysis.sizes else None
    base_label = f"{prefix}base optimum ({size_title(axis, analysis.base_size)})"
    diverged = np.isinf(vals)
    zmin, zmax = zrange
    ly = np.log10(eta)

    if beta is not None:
        lx = np.log10(beta)
        z = scale.z(vals)
        text = [[_hover(eta[i], beta[j], vals[i, j], nseeds[i, j], scale) for j in range(len(beta))]
                for i in range(len(eta))]
        common = dict(
            x=lx, y=ly, z=z, zmin=zmin, zmax=zmax, zauto=False, colorscale=COLORSCALE,
            reversescale=scale.reverse, showscale=show_scale, text=text,
            hovertemplate="%{text}<extra>" + esc(prefix + sname) + "</extra>",
            name=f"{prefix}{sname}", showlegend=False, meta={"role": "surface", "size": size},
            colorbar=dict(title=dict(text=esc(scale.axis_title), side="right"), thickness=14,
                          **scale.ticks(zmin, zmax)),
        )
        if kind == "contour" and len(eta) >= 2 and len(beta) >= 2:
            ncont = 14
            fig.add_trace(
                go.Contour(
                    **common, connectgaps=False, autocontour=False, ncontours=ncont,
                    contours=dict(start=zmin, end=zmax, size=(zmax - zmin) / ncont, coloring="fill"),
                    line=dict(width=0.5, color="rgba(255,255,255,0.5)"),
                ),
                row=row, col=col,
            )
        else:
            fig.add_trace(go.Heatmap(**common, xgap=1, ygap=1), row=row, col=col)
        if diverged.any():
            ii, jj = np.nonzero(diverged)
            fig.add_trace(
                go.Scatter(
                    x=lx[jj], y=ly[ii], mode="markers", name="diverged",
                    marker=dict(symbol="x-thin", size=9, line=dict(width=2, color=DIVERGED_COLOR),
                                color=DIVERGED_COLOR),
                    legendgroup="diverged", showlegend=legend("diverged"),
                    hovertemplate=[f"η = {fmt_lr(eta[i])}<br>β = {fmt_lr(beta[j])}<br>diverged<extra></extra>"
                                   for i, j in zip(ii, jj)],
                    meta={"role": "diverged", "size": size},
                ),
                row=row, col=col,
            )

        _grid_points(fig, row, col, analysis, size, eta, beta, nseeds, runs, sid, scale, legend)

        def point(e: SizeRow | None) -> tuple[float, float] | None:
            if e is None:
                return None
            a, b = num(e.eta_star), num(e.beta_star)
            if not (a > 0 and b > 0 and np.isfinite(a) and np.isfinite(b)):
                return None
            return float(np.log10(b)), float(np.log10(a))

        p = point(entry)
        if p is None and entry is not None:
            panel_note(fig, row, col, "no finite optimum")
        _add_optima(fig, row, col, p, point(base_entry), entry, base_entry, prefix=prefix, sname=sname,
                    base_label=base_label, size=size, legend=legend,
                    urls=_optima_urls(analysis, size, entry, base_entry, runs, sid), single=single)
        tv, tt = lr_ticks(beta)
        fig.update_xaxes(tickvals=tv, ticktext=tt, range=padded(lx), row=row, col=col)
        tv, tt = lr_ticks(eta)
        fig.update_yaxes(tickvals=tv, ticktext=tt, range=padded(ly), row=row, col=col)
        return

    # 1-D (no activity lr, e.g. backprop): metric vs weight lr, y shared through zrange.
    v = vals[:, 0]
    y = scale.z(v)
    top = zmax + 0.08 * (zmax - zmin)
    fig.add_trace(
        go.Scatter(
            x=ly, y=y, mode="lines+markers", name=f"{prefix}{sname}", line=dict(color="#1f77b4"),
            text=[_hover(eta[i], None, v[i], nseeds[i, 0], scale) for i in range(len(eta))],
            hovertemplate="%{text}<extra></extra>", showlegend=False,
            meta={"role": "surface", "size": size},
        ),
        row=row, col=col,
    )
    if diverged[:, 0].any():
        ii = np.nonzero(diverged[:, 0])[0]
        fig.add_trace(
            go.Scatter(
                x=ly[ii], y=[top] * len(ii), mode="markers", name="diverged",
                marker=dict(symbol="x-thin", size=9, line=dict(width=2, color=DIVERGED_COLOR)),
                legendgroup="diverged", showlegend=legend("diverged"),
                hovertemplate=[f"η = {fmt_lr(eta[i])}<br>diverged<extra></extra>" for i in ii],
                meta={"role": "diverged", "size": size},
            ),
            row=row, col=col,
        )

    def point1(e: SizeRow | None) -> tuple[float, float] | None:
        if e is None:
            return None
        a = num(e.eta_star)
        if not (a > 0 and np.isfinite(a)):
            return None
        k = int(np.argmin(np.abs(np.log10(eta) - np.log10(a))))
        return float(np.log10(a)), (float(y[k]) if np.isfinite(y[k]) else top)

    _grid_points(fig, row, col, analysis, size, eta, None, nseeds, runs, sid, scale, legend, y=y, top=top)
    _add_optima(fig, row, col, point1(entry), point1(base_entry), entry, base_entry, prefix=prefix,
                sname=sname, base_label=base_label, size=size, legend=legend,
                urls=_optima_urls(analysis, size, entry, base_entry, runs, sid), single=single)
    tv, tt = lr_ticks(eta)
    fig.update_xaxes(tickvals=tv, ticktext=tt, range=padded(ly), row=row, col=col)
    pad = 0.05 * (zmax - zmin)
    fig.update_yaxes(range=[zmin - pad, top + pad], row=row, col=col, **scale.ticks(zmin, zmax, 5))


def _label_axes(fig: go.Figure, row: int, analysis: Analysis, scale: Scale, ncols: int) -> None:
    if is_2d(analysis):
        fig.update_yaxes(title_text="weight lr η", row=row, col=1)
        for c in range(1, ncols + 1):
            fig.update_xaxes(title_text="activity lr β", row=row, col=c)
    else:
        fig.update_yaxes(title_text=esc(scale.axis_title), row=row, col=1)
        for c in range(1, ncols + 1):
            fig.update_xaxes(title_text="weight lr η", row=row, col=c)


def draw_surface_row(fig: go.Figure, r: int, a: Analysis, panels, scale: "Scale", zrange, legend,
              kind: str, first: bool, used: set, runs: pd.DataFrame | None = None, sid: str = "") -> bool:
    """One row of surface panels (one per size); returns whether the colour bar is still to show."""
    for c, (s, entry, surf) in enumerate(panels, start=1):
        has_surface = surf is not None and is_2d(a)
        _draw_surface_panel(fig, r, c, a, s, entry, surf, scale, zrange, legend,
                            show_scale=first and has_surface, kind=kind, runs=runs, sid=sid)
        first = first and not has_surface
        used.add((r, c))
    _label_axes(fig, r, a, scale, len(panels))
    return first


# --------------------------------------------------------------------------- transfer contours


def transfer_contours(
    report: Any,
    *,
    analysis_index: int | None = None,
    group: Mapping[str, Any] | None = None,
    companion: bool | int | None = True,
    kind: str = "contour",
    runs: pd.DataFrame | None = None,
    sid: str = "",
) -> go.Figure:
    """The μPC paper's Fig. 5: metric over (activity lr, weight lr), one panel per size.

    Row 1 has one panel per width and row 2 one per depth when the report has both axes for the
    same fixed settings (``companion=True`` picks the crossing analysis automatically, an int picks
    that analysis, ``False`` draws one row). Colour = log10(metric) for losses (the metric itself
    for accuracies) on ONE scale shared by all panels (one colorbar). Each panel marks its grid
    optimum (gold star) and the base size's optimum (red open circle); diverged points are grey
    ``x`` markers; points not run (yet) are blank; sizes with no runs yet get an empty panel.
    Without an activity lr (bp) each panel is a 1-D line of the metric vs weight lr. With ``runs``
    (and ``sid``), every grid point with runs is a dot whose hover lists each seed's value and whose
    click (the page's script reads ``customdata``) opens its seeds; so do the star and the circle.
    ``kind``: "contour" (default) or "heatmap".
    """
    report = report_of(report)
    analyses = analyses_of(report)
    if not analyses:
        return empty_figure(no_analysis_text(report), title="Transfer contours")
    idx = select_analysis(report, analysis_index=analysis_index, group=group)
    if idx is None:
        return empty_figure(f"no analysis matches {dict(group or {})}", title="Transfer contours")
    chosen = [idx]
    if companion is True:
        j = companion_analysis(report, idx)
        if j is not None:
            chosen.append(j)
    elif isinstance(companion, int) and not isinstance(companion, bool) and companion is not None:
        if 0 <= companion < len(analyses) and companion != idx:
            chosen.append(companion)
    order = {ax: k for k, ax in enumerate(SIZE_AXES)}
    chosen.sort(key=lambda i: order.get(analyses[i].axis, 9))
    rows_a = [analyses[i] for i in chosen]

    scale = Scale(report.metric, report.direction)
    zrange = finite_range(surface_zarrays(rows_a, scale))
    panels = [panel_sizes(a) for a in rows_a]
    ncols = max(1, max(len(p) for p in panels))
    nrows = len(rows_a)
    titles: list[str] = []
    for a, p in zip(rows_a, panels):
        t = [size_title(a.axis, s) for s, _, _ in p]
        titles += t + [""] * (ncols - len(t))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles,
                        horizontal_spacing=min(0.06, 0.6 / ncols), vertical_spacing=0.18 if nrows > 1 else 0.1)
    legend = Legend()
    used: set[tuple[int, int]] = set()
    first = True
    for r, (a, p) in enumerate(zip(rows_a, panels), start=1):
        first = draw_surface_row(fig, r, a, p, scale, zrange, legend, kind, first, used, runs, sid)
    hide_unused(fig, used, nrows, ncols)

    head = group_title({k: v for k, v in rows_a[0].group.items() if k in FIXED_SETTINGS})
    held = "; ".join(
        f"{a.axis} sweep at {group_title({k: v for k, v in a.group.items() if k in SIZE_AXES})}"
        for a in rows_a if any(k in SIZE_AXES for k in a.group)
    )
    verdicts = "; ".join(f"{a.axis}: {esc(a.verdict)}" for a in rows_a)
    title = f"<b>{esc(head)}</b> — {esc(scale.label)}" + (f" ({esc(held)})" if held else "")
    title += f"<br><sup>{verdicts}</sup>"
    fig.update_layout(template=TEMPLATE, meta={"kind": "transfer_contours", "analyses": chosen})
    head_layout(fig, title, 110 + 300 * nrows)
    return fig


# --------------------------------------------------------------------------- single-size fallback


@dataclass(frozen=True)
class SingleSizeView:
    """One group with one size so far (:class:`mutransfer.report.SingleSize`) seen as the analysis
    the surface panels draw: its one size row and surface, no verdict ("single size"), nothing to
    transfer. Every value is the report's; this only names them as an :class:`Analysis` does."""

    cell: Any  # mutransfer.report.SingleSize

    verdict = "single size"
    verdict_text = "only one size so far: nothing to compare yet"
    reasons: tuple = ()
    missing: tuple = ()
    drift_slope_eta = drift_slope_eta_ci = drift_slope_beta = drift_slope_beta_ci = None

    group = property(lambda self: self.cell.group)
    axis = property(lambda self: self.cell.axis)
    base_size = property(lambda self: self.cell.size)
    eta_grid = property(lambda self: self.cell.eta_grid)
    beta_grid = property(lambda self: self.cell.beta_grid)
    warnings = property(lambda self: self.cell.warnings)
    sizes = property(lambda self: (self.cell.row,))
    surfaces = property(lambda self: (self.cell.surface,))


@dataclass(frozen=True)
class SingleSizeReport:
    """The report's single-size case (``Report.single_size``) as the contours page draws it: one
    :class:`SingleSizeView` per cell, with the report's metric, direction, run count and notes."""

    report: Report
    analyses: tuple[SingleSizeView, ...]

    metric = property(lambda self: self.report.metric)
    direction = property(lambda self: self.report.direction)
    n_runs = property(lambda self: self.report.n_runs)
    provisional = property(lambda self: self.report.provisional)
    notes = property(lambda self: self.report.notes)


def _single_size_report(report: Any) -> SingleSizeReport | None:
    """The report's single-size case (groups with one size so far, their surfaces and optima, no
    verdict) as the surface panels draw it; None when the report has none."""
    rep = report_of(report)
    if not isinstance(rep, Report) or not rep.single_size:
        return None
    return SingleSizeReport(rep, tuple(SingleSizeView(s) for s in rep.single_size))


def _contour_pairs(report: Any) -> list[tuple[int, int | None]]:
    """Cover every analysis once: (primary, companion along the other axis or None)."""
    analyses = analyses_of(report)
    used: set[int] = set()
    pairs: list[tuple[int, int | None]] = []
    order = sorted(range(len(analyses)), key=lambda i: (not is_2d(analyses[i]),
                                                         0 if analyses[i].axis == "width" else 1, i))
    for i in order:
        if i in used:
            continue
        used.add(i)
        j = companion_analysis(report, i, exclude=used)
        if j is not None:
            used.add(j)
        pairs.append((i, j))
    return pairs




def lr_figure_settings(report: Any) -> list[tuple[str, dict, bool]]:
    """(size axis, settings other than the parameterisation, has an activity lr) of every analysis,
    once each: the μP-style figures put the parameterisations of one setting side by side."""
    out: dict[tuple, tuple[str, dict, bool]] = {}
    for a in analyses_of(report):
        where = {k: v for k, v in a.group.items() if k != "parametrization"}
        key = (a.axis, tuple(sorted((k, str(v)) for k, v in where.items())))
        prev = out.get(key)
        out[key] = (str(a.axis), where, bool(is_2d(a) or (prev and prev[2])))
    return list(out.values())


def contour_page(
    report: Any,
    runs: pd.DataFrame | None,
    sweep_meta: Mapping[str, Any] | None,
    *,
    curves: pd.DataFrame | None = None,
    curves_of: Callable[[list[str]], pd.DataFrame] | None = None,
    plotly_url: str = DEFAULT_PLOTLY_URL,
    refresh_s: float | None = 5,
) -> str:
    """The sweep dashboard: transfer contours (width row + depth row per setting) with verdicts,
    the metric vs log2 of each lr per size with parameterisations side by side, and the training
    curves at each size's optimum and at the base optimum transferred (:mod:`dashboards.optimum_curves`;
    ``curves``: the curves table, or ``curves_of(run_ids)`` loads the rows of those runs)."""
    report = report_of(report)
    meta = sweep_meta or {}
    sid = sid_of(meta)
    metric = metric_of(report)
    refresh = refresh_s if is_running(meta) else None
    body = [sweep_header(meta, "transfer contours", refresh_s, active="contours", metric=metric)]
    rep = report if analyses_of(report) else None
    if rep is None:
        rep = _single_size_report(report)
    prov = provisional_of(report, meta)
    if prov:
        body.append(provisional_banner(prov))
    if rep is None:
        body.append(f'<div class="card"><p>{esc_html(EMPTY_TEXT)}.</p>'
                    + "".join(f'<p class="muted">{esc_html(n)}</p>' for n in (report.notes if report else ()))
                    + "</div>")
    else:
        analyses = analyses_of(rep)
        pairs = _contour_pairs(rep)
        toc = []
        for k, (i, j) in enumerate(pairs):
            toc.append(verdict_line(analyses[i], f"set-{k}", prov))
            if j is not None:
                toc.append(verdict_line(analyses[j], f"set-{k}", prov))
        body.append(f'<div class="card"><b>Metric:</b> {esc_html(metric)} '
                    f'({"lower" if METRICS[metric].direction == "min" else "higher"} is better). '
                    "Gold star: optimum at that size; red circle: the base (smallest) size's optimum; "
                    "dots: grid points run (hover: each seed; click: open the runs); "
                    "grey ×: diverged; blank: not run (yet). "
                    '<a href="#lr">metric vs learning rate</a> · <a href="#curves">training curves</a>'
                    "<ul>" + "".join(toc) + "</ul></div>")
        for k, (i, j) in enumerate(pairs):
            fixed = {g: v for g, v in analyses[i].group.items() if g in FIXED_SETTINGS}
            body.append(f'<h2 id="set-{k}">{esc_html(group_title(fixed))}</h2>')
            fig = transfer_contours(rep, analysis_index=i, companion=j if j is not None else False, runs=runs,
                                    sid=sid)
            body.append(figure_html(fig, f"{sid}-contours-{group_title(fixed)}"))
        if runs is not None and len(runs):
            body.append('<h2 id="lr">Metric vs learning rate, parameterisations side by side</h2>')
            for axis, where, two_d in lr_figure_settings(rep):
                for lr in ([ETA, BETA] if two_d else [ETA]):
                    fig = lr_transfer(runs, metric=metric, axis=axis, lr=lr, where=where)
                    body.append(figure_html(fig, f"{sid}-{metric}-vs-{lr}-{axis}-{group_title(where)}"))
    if rep is not None and curves is None and curves_of is not None:
        ids = optimum_run_ids(rep, runs)
        curves = curves_of(ids) if ids else None
    if rep is not None and curves is not None:
        body.append('<h2 id="curves">Training curves at the optimum</h2>')
        for k, a in enumerate(analyses_of(rep)):
            fig = optimum_curves(a, runs, curves, sid=sid)
            body.append(figure_html(fig, f"{sid}-curves-{a.axis}-{group_title(a.group)}"))
            drawn = (fig.layout.meta or {}).get("curves") or []
            if drawn and sid:
                items = "".join(
                    f'<a href="{esc_html(seeds_url(sid, c["run_ids"]))}" data-role="{esc_html(c["role"])}">'
                    f'{esc_html(size_title(a.axis, c["size"]))} at '
                    f'{"its optimum" if c["role"] == "optimum_curve" else "the base optimum"} '
                    f'({esc_html(lr_text(c["lrs"][ETA], c["lrs"][BETA]))}, {len(c["run_ids"])} seed'
                    f'{"s" * (len(c["run_ids"]) != 1)})</a>' for c in drawn)
                body.append(f'<div class="card runlinks"><b>Open the runs:</b> <nav class="links">{items}</nav></div>')
    name = meta.get("name") or sid or "sweep"
    return document(f"{name} — contours", "".join(body), plotly_url=plotly_url, refresh_s=refresh)
