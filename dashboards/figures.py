"""Plotly figures for transfer sweeps: plain functions of the ``runs`` / ``curves`` tables and of
the optimum-shift report dict (:func:`mutransfer.report.optimum_shift_report`).

Every function returns a :class:`plotly.graph_objects.Figure` and never raises on empty, partial
(a sweep still running) or degenerate (one size, everything diverged, NaN/inf) inputs: it draws
what exists and says what is missing in an annotation.

Conventions shared by all figures:

* eta = ``weight_lr``, beta = ``activity_lr``; learning rates are drawn on log axes whose tick
  labels are the grid values written like ``1e-1``, ``5e-2``.
* Report surfaces encode "not run" as ``None`` (left blank) and "diverged" as ``"inf"`` (loss) /
  ``"-inf"`` (accuracy); diverged points are drawn as a separate ``x`` marker trace, never as a
  colour of the scale.
* Every trace carries ``meta={"role": ...}`` (``surface``, ``optimum``, ``base_optimum``,
  ``diverged``, ``line``, ``band``, ``eta_star``, ``regret``, ...) so callers and tests can find
  traces by what they show rather than by position.
"""

from __future__ import annotations

import html
import math
import textwrap
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from mutransfer.report import METRICS, fmt_lr, fmt_num, with_run_defaults

__all__ = [
    "EMPTY_TEXT",
    "transfer_contours",
    "loss_vs_lr",
    "optimum_shift",
    "comparison",
    "training_curves",
    "empty_figure",
    "select_analysis",
    "companion_analysis",
    "size_symbol",
]

EMPTY_TEXT = "no finished runs yet"
FIXED_SETTINGS: tuple[str, ...] = ("algorithm", "parametrization", "activation", "dataset")
SIZE_AXES: tuple[str, ...] = ("width", "depth")
ETA, BETA = "weight_lr", "activity_lr"
TEMPLATE = "plotly_white"
COLORSCALE = "Viridis"
DIVERGED_COLOR = "#555555"
OPT_COLOR = "#ffd21f"
BASE_COLOR = "#e8112d"
PAIR_COLORS = ("#1f77b4", "#ff7f0e")
BAD_STATUSES = frozenset({"diverged", "failed"})


# --------------------------------------------------------------------------- small helpers


def size_symbol(axis: str) -> str:
    """'N' for width, 'H' for depth (the papers' letters)."""
    return {"width": "N", "depth": "H"}.get(axis, str(axis))


def _size_title(axis: str, size: Any) -> str:
    return f"{size_symbol(axis)} = {size}"


def _num(x: Any) -> float:
    """Decode a report value: None -> NaN, 'inf'/'-inf' strings -> ±inf, else float (NaN if odd)."""
    if x is None:
        return math.nan
    if isinstance(x, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(x.strip().lower(), math.nan)
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _esc(x: Any) -> str:
    """User-provided text for plotly labels (plotly renders a small HTML subset: escape it)."""
    return html.escape(str(x), quote=False)


_fmt = fmt_num  # one formatting of report numbers, shared with the text report


def _pct(x: Any) -> str:
    v = _num(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞"
    return f"{100 * v:.1f}%"


def _wrap(text: str, width: int = 110) -> str:
    return "<br>".join(textwrap.wrap(_esc(text), width)) if text else ""


def empty_figure(text: str = EMPTY_TEXT, *, title: str | None = None, height: int = 320) -> go.Figure:
    """A blank figure carrying one centred annotation (used for every 'nothing to draw' case)."""
    fig = go.Figure()
    fig.add_annotation(
        text=_esc(text), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
        font=dict(size=16, color="#666"),
    )
    fig.update_layout(
        template=TEMPLATE, height=height, title=_esc(title) if title else None,
        xaxis=dict(visible=False), yaxis=dict(visible=False), meta={"empty": True, "text": text},
    )
    return fig


def _group_title(group: Mapping[str, Any] | None) -> str:
    g = dict(group or {})
    fixed = [str(g[c]) for c in FIXED_SETTINGS if c in g and g[c] is not None]
    held = [_size_title(k, v) for k, v in g.items() if k in SIZE_AXES]
    other = [f"{k}={v}" for k, v in g.items() if k not in FIXED_SETTINGS and k not in SIZE_AXES]
    text = " / ".join(fixed)
    extra = held + other
    if extra:
        text += (", " if text else "") + ", ".join(extra)
    return text


class _Scale:
    """How a metric becomes a colour / y value: log10 for losses, as-is for accuracies."""

    def __init__(self, metric: str | None, direction: str | None = None):
        info = METRICS.get(metric or "")
        self.metric = metric or "metric"
        self.kind = info.kind if info is not None else ("accuracy" if direction == "max" else "loss")
        self.log = self.kind == "loss"
        # Keep "good" dark at both ends: low loss and high accuracy get the same colour.
        self.reverse = self.kind == "accuracy"

    @property
    def label(self) -> str:
        return f"log10 {self.metric}" if self.log else self.metric

    def ticks(self, zmin: float, zmax: float, n: int = 6) -> dict:
        """Tick positions on the z scale labelled in natural units (0.123, not -0.91)."""
        vals = [float(v) for v in np.linspace(zmin, zmax, n)]
        text = [f"{10 ** v:.3g}" if self.log else f"{v:.3g}" for v in vals]
        return dict(tickvals=vals, ticktext=text)

    @property
    def axis_title(self) -> str:
        return f"{self.metric} (log scale)" if self.log else self.metric

    def z(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log10(np.where(v > 0, v, np.nan)) if self.log else v.copy()
        return np.where(np.isfinite(out), out, np.nan)


def _finite_range(arrays: Iterable[np.ndarray]) -> tuple[float, float]:
    vals = [np.asarray(a, dtype=float).ravel() for a in arrays]
    vals = [v[np.isfinite(v)] for v in vals]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    allv = np.concatenate(vals)
    lo, hi = float(allv.min()), float(allv.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _lr_ticks(values: Sequence[float], log: Any = np.log10, max_ticks: int = 7) -> tuple[list[float], list[str]]:
    v = sorted({float(x) for x in values if x is not None and np.isfinite(x) and x > 0})
    if not v:
        return [], []
    step = max(1, math.ceil(len(v) / max_ticks))
    keep = v[::step]
    return [float(log(x)) for x in keep], [fmt_lr(x) for x in keep]


def _padded(coords: Sequence[float]) -> list[float]:
    c = sorted(float(x) for x in coords if np.isfinite(x))
    if not c:
        return [-1.0, 1.0]
    if len(c) == 1:
        return [c[0] - 0.5, c[0] + 0.5]
    pad = 0.5 * float(np.min(np.diff(c))) if len(c) > 1 else 0.5
    return [c[0] - pad, c[-1] + pad]


def _matches(group: Mapping[str, Any], filt: Mapping[str, Any] | None) -> bool:
    if not filt:
        return True
    for k, v in filt.items():
        if k == "axis":
            continue
        g = group.get(k, "__absent__")
        if g != v and str(g) != str(v):
            return False
    return True


def _analyses(report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not isinstance(report, Mapping):
        return []
    a = report.get("analyses") or []
    return [x for x in a if isinstance(x, Mapping)]


def _no_analysis_text(report: Mapping[str, Any] | None) -> str:
    if not isinstance(report, Mapping) or not report.get("n_runs"):
        return EMPTY_TEXT
    notes = report.get("notes") or []
    return "nothing to compare yet" + (f": {notes[-1]}" if notes else "")


def select_analysis(
    report: Mapping[str, Any] | None,
    *,
    analysis_index: int | None = None,
    group: Mapping[str, Any] | None = None,
    axis: str | None = None,
) -> int | None:
    """Index of the analysis to draw: ``analysis_index`` if given (IndexError if out of range),
    else the first analysis whose group matches ``group`` (a subset of its keys; ``axis`` may be
    given in ``group`` or separately), width before depth. None when nothing matches."""
    analyses = _analyses(report)
    if analysis_index is not None:
        if not -len(analyses) <= analysis_index < len(analyses):
            raise IndexError(f"analysis_index={analysis_index} but the report has {len(analyses)} analyses")
        return analysis_index % len(analyses)
    axis = axis or (group or {}).get("axis")
    cands = [i for i, a in enumerate(analyses) if _matches(a.get("group") or {}, group)
             and (axis is None or a.get("axis") == axis)]
    if not cands:
        return None
    # Prefer analyses with an activity lr (the 2-D surfaces this package is about), then width.
    ranked = sorted(cands, key=lambda i: (not _is_2d(analyses[i]),
                                          SIZE_AXES.index(analyses[i].get("axis"))
                                          if analyses[i].get("axis") in SIZE_AXES else 9, i))
    return ranked[0]


def companion_analysis(report: Mapping[str, Any] | None, index: int, *, exclude: Iterable[int] = ()) -> int | None:
    """The analysis along the *other* size axis for the same fixed settings (algorithm,
    parametrization, activation, dataset), preferring the one that crosses this one (its held size
    is one of ours and ours is one of its sizes, like the μPC paper's N = 512 / H = 8 pair)."""
    analyses = _analyses(report)
    if not 0 <= index < len(analyses):
        return None
    a = analyses[index]
    axis, g = a.get("axis"), a.get("group") or {}
    other = next((x for x in SIZE_AXES if x != axis), None)
    fixed = {k: g.get(k) for k in FIXED_SETTINGS if k in g}
    excluded = set(exclude)
    best, best_score = None, -1
    my_sizes = {e.get("size") for e in a.get("sizes") or []}
    for j, b in enumerate(analyses):
        if j == index or j in excluded or b.get("axis") != other:
            continue
        bg = b.get("group") or {}
        if any(bg.get(k) != v for k, v in fixed.items()):
            continue
        b_sizes = {e.get("size") for e in b.get("sizes") or []}
        score = int(bg.get(axis) in my_sizes) + int(g.get(other) in b_sizes)
        if score > best_score:
            best, best_score = j, score
    return best


# --------------------------------------------------------------------------- surface panels


class _Legend:
    """Show each legend entry once per figure."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, key: str) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _panel_sizes(analysis: Mapping[str, Any]) -> list[tuple[Any, dict | None, dict | None]]:
    """(size, sizes-entry, surface) for every size with runs plus sizes still missing (None, None)."""
    entries = {e.get("size"): e for e in analysis.get("sizes") or []}
    surfs = {s.get("size"): s for s in analysis.get("surfaces") or []}
    missing = {m.get("size") for m in analysis.get("missing") or [] if m.get("kind") == "size"}
    sizes = sorted(set(entries) | set(surfs) | missing, key=lambda s: (_num(s), str(s)))
    return [(s, entries.get(s), surfs.get(s)) for s in sizes]


def _surface_arrays(surf: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """(eta grid, beta grid or None, values[eta, beta] as floats, n_seeds[eta, beta])."""
    eta = np.array([_num(x) for x in surf.get(ETA) or []], dtype=float)
    beta_raw = surf.get(BETA)
    beta = None if beta_raw is None else np.array([_num(x) for x in beta_raw], dtype=float)
    ncol = 1 if beta is None else len(beta)
    vals = np.full((len(eta), ncol), np.nan)
    for i, row in enumerate(surf.get("values") or []):
        for j, v in enumerate(row or []):
            if i < vals.shape[0] and j < ncol:
                vals[i, j] = _num(v)
    nseeds = np.zeros_like(vals)
    for i, row in enumerate(surf.get("n_seeds") or []):
        for j, v in enumerate(row or []):
            if i < vals.shape[0] and j < ncol:
                nseeds[i, j] = _num(v) if v is not None else 0
    return eta, beta, vals, nseeds


def _is_2d(analysis: Mapping[str, Any]) -> bool:
    if analysis.get("beta_grid") is not None:
        return True
    return any(s.get(BETA) is not None for s in analysis.get("surfaces") or [])


def _zarrays(analyses: Iterable[Mapping[str, Any]], scale: _Scale) -> list[np.ndarray]:
    out = []
    for a in analyses:
        for s in a.get("surfaces") or []:
            out.append(scale.z(_surface_arrays(s)[2]))
    return out


def _hover(eta: float, beta: float | None, v: float, n: float, scale: _Scale) -> str:
    parts = [f"η = {fmt_lr(eta)}"]
    if beta is not None:
        parts.append(f"β = {fmt_lr(beta)}")
    if np.isnan(v):
        parts.append("not run")
    elif np.isinf(v):
        parts.append("diverged")
    else:
        parts.append(f"{_esc(scale.metric)} = {v:.4g}")
        parts.append(f"seeds: {int(n)}")
    return "<br>".join(parts)


def _opt_hover(label: str, entry: Mapping[str, Any]) -> str:
    txt = f"{label}<br>η* = {fmt_lr(entry.get('eta_star'))}"
    if entry.get("beta_star") is not None:
        txt += f", β* = {fmt_lr(entry.get('beta_star'))}"
    txt += f"<br>fit: η = {fmt_lr(entry.get('eta_star_fit'))}"
    if entry.get("beta_star_fit") is not None:
        txt += f", β = {fmt_lr(entry.get('beta_star_fit'))}"
    txt += f" ({_esc(entry.get('fit', '-'))})<br>metric = {_fmt(entry.get('metric_at_opt'))}"
    if "regret" in entry:
        txt += f"<br>regret of base optimum: {_pct(entry.get('regret'))}"
    return txt


def _add_optima(fig: go.Figure, row: int, col: int, p, bp, entry, base_entry, *, prefix: str, sname: str,
                base_label: str, size: Any, legend: Callable[[str], bool]) -> None:
    """The panel's optimum (star) and the base size's optimum (open circle), where finite."""
    if p is not None:
        fig.add_trace(go.Scatter(
            x=[p[0]], y=[p[1]], mode="markers", name=f"{prefix}optimum",
            marker=dict(symbol="star", size=16, color=OPT_COLOR, line=dict(width=1.2, color="black")),
            legendgroup=f"{prefix}optimum", showlegend=legend(f"{prefix}optimum"),
            hovertemplate=_opt_hover(f"{prefix}optimum at {sname}", entry) + "<extra></extra>",
            meta={"role": "optimum", "size": size}), row=row, col=col)
    if bp is not None:
        fig.add_trace(go.Scatter(
            x=[bp[0]], y=[bp[1]], mode="markers", name=base_label,
            marker=dict(symbol="circle-open", size=20, line=dict(width=2.5, color=BASE_COLOR), color=BASE_COLOR),
            legendgroup=base_label, showlegend=legend(base_label),
            hovertemplate=_opt_hover(base_label, base_entry) + "<extra></extra>",
            meta={"role": "base_optimum", "size": size}), row=row, col=col)


def _add_panel_annotation(fig: go.Figure, row: int, col: int, text: str) -> None:
    fig.add_annotation(
        text=_esc(text), x=0.5, y=0.5, xref="x domain", yref="y domain", showarrow=False,
        font=dict(color="#888", size=12), row=row, col=col,
    )


def _draw_surface_panel(
    fig: go.Figure,
    row: int,
    col: int,
    analysis: Mapping[str, Any],
    size: Any,
    entry: Mapping[str, Any] | None,
    surf: Mapping[str, Any] | None,
    scale: _Scale,
    zrange: tuple[float, float],
    legend: _Legend,
    *,
    show_scale: bool,
    kind: str = "contour",
    prefix: str = "",
) -> None:
    """One panel: 2-D contour (or heatmap) of the metric, or a 1-D line when there is no beta."""
    axis = analysis.get("axis", "")
    sname = _size_title(axis, size)
    if surf is None:
        _add_panel_annotation(fig, row, col, "no runs yet")
        return
    eta, beta, vals, nseeds = _surface_arrays(surf)
    if len(eta) == 0:
        _add_panel_annotation(fig, row, col, "no runs yet")
        return
    base_entry = (analysis.get("sizes") or [None])[0]
    base_label = f"{prefix}base optimum ({_size_title(axis, analysis.get('base_size'))})"
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
            hovertemplate="%{text}<extra>" + _esc(prefix + sname) + "</extra>",
            name=f"{prefix}{sname}", showlegend=False, meta={"role": "surface", "size": size},
            colorbar=dict(title=dict(text=_esc(scale.axis_title), side="right"), thickness=14,
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

        def point(e: Mapping[str, Any] | None) -> tuple[float, float] | None:
            if not e:
                return None
            a, b = _num(e.get("eta_star")), _num(e.get("beta_star"))
            if not (a > 0 and b > 0 and np.isfinite(a) and np.isfinite(b)):
                return None
            return float(np.log10(b)), float(np.log10(a))

        p = point(entry)
        if p is None and entry is not None:
            _add_panel_annotation(fig, row, col, "no finite optimum")
        _add_optima(fig, row, col, p, point(base_entry), entry, base_entry, prefix=prefix, sname=sname,
                    base_label=base_label, size=size, legend=legend)
        tv, tt = _lr_ticks(beta)
        fig.update_xaxes(tickvals=tv, ticktext=tt, range=_padded(lx), row=row, col=col)
        tv, tt = _lr_ticks(eta)
        fig.update_yaxes(tickvals=tv, ticktext=tt, range=_padded(ly), row=row, col=col)
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

    def point1(e: Mapping[str, Any] | None) -> tuple[float, float] | None:
        if not e:
            return None
        a = _num(e.get("eta_star"))
        if not (a > 0 and np.isfinite(a)):
            return None
        k = int(np.argmin(np.abs(np.log10(eta) - np.log10(a))))
        return float(np.log10(a)), (float(y[k]) if np.isfinite(y[k]) else top)

    _add_optima(fig, row, col, point1(entry), point1(base_entry), entry, base_entry, prefix=prefix,
                sname=sname, base_label=base_label, size=size, legend=legend)
    tv, tt = _lr_ticks(eta)
    fig.update_xaxes(tickvals=tv, ticktext=tt, range=_padded(ly), row=row, col=col)
    pad = 0.05 * (zmax - zmin)
    fig.update_yaxes(range=[zmin - pad, top + pad], row=row, col=col, **scale.ticks(zmin, zmax, 5))


def _label_axes(fig: go.Figure, row: int, analysis: Mapping[str, Any], scale: _Scale, ncols: int) -> None:
    if _is_2d(analysis):
        fig.update_yaxes(title_text="weight lr η", row=row, col=1)
        for c in range(1, ncols + 1):
            fig.update_xaxes(title_text="activity lr β", row=row, col=c)
    else:
        fig.update_yaxes(title_text=_esc(scale.axis_title), row=row, col=1)
        for c in range(1, ncols + 1):
            fig.update_xaxes(title_text="weight lr η", row=row, col=c)


def _draw_row(fig: go.Figure, r: int, a: Mapping[str, Any], panels, scale: "_Scale", zrange, legend,
              kind: str, first: bool, used: set) -> bool:
    """One row of surface panels (one per size); returns whether the colour bar is still to show."""
    for c, (s, entry, surf) in enumerate(panels, start=1):
        has_surface = surf is not None and _is_2d(a)
        _draw_surface_panel(fig, r, c, a, s, entry, surf, scale, zrange, legend,
                            show_scale=first and has_surface, kind=kind)
        first = first and not has_surface
        used.add((r, c))
    _label_axes(fig, r, a, scale, len(panels))
    return first


def _hide_unused(fig: go.Figure, used: set[tuple[int, int]], rows: int, cols: int) -> None:
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            if (r, c) not in used:
                try:
                    fig.update_xaxes(visible=False, row=r, col=c)
                    fig.update_yaxes(visible=False, row=r, col=c)
                except Exception:  # a None cell in specs has no axes
                    pass


# --------------------------------------------------------------------------- transfer contours


def transfer_contours(
    report: Mapping[str, Any] | None,
    *,
    analysis_index: int | None = None,
    group: Mapping[str, Any] | None = None,
    companion: bool | int | None = True,
    kind: str = "contour",
) -> go.Figure:
    """The μPC paper's Fig. 5: metric over (activity lr, weight lr), one panel per size.

    Row 1 has one panel per width and row 2 one per depth when the report has both axes for the
    same fixed settings (``companion=True`` picks the crossing analysis automatically, an int picks
    that analysis, ``False`` draws one row). Colour = log10(metric) for losses (the metric itself
    for accuracies) on ONE scale shared by all panels (one colorbar). Each panel marks its grid
    optimum (gold star) and the base size's optimum (red open circle); diverged points are grey
    ``x`` markers; points not run (yet) are blank; sizes with no runs yet get an empty panel.
    Without an activity lr (bp) each panel is a 1-D line of the metric vs weight lr.
    ``kind``: "contour" (default) or "heatmap".
    """
    analyses = _analyses(report)
    if not analyses:
        return empty_figure(_no_analysis_text(report), title="Transfer contours")
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
    chosen.sort(key=lambda i: order.get(analyses[i].get("axis"), 9))
    rows_a = [analyses[i] for i in chosen]

    scale = _Scale(report.get("metric"), report.get("direction"))
    zrange = _finite_range(_zarrays(rows_a, scale))
    panels = [_panel_sizes(a) for a in rows_a]
    ncols = max(1, max(len(p) for p in panels))
    nrows = len(rows_a)
    titles: list[str] = []
    for a, p in zip(rows_a, panels):
        t = [_size_title(a.get("axis", ""), s) for s, _, _ in p]
        titles += t + [""] * (ncols - len(t))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles,
                        horizontal_spacing=min(0.06, 0.6 / ncols), vertical_spacing=0.18 if nrows > 1 else 0.1)
    legend = _Legend()
    used: set[tuple[int, int]] = set()
    first = True
    for r, (a, p) in enumerate(zip(rows_a, panels), start=1):
        first = _draw_row(fig, r, a, p, scale, zrange, legend, kind, first, used)
    _hide_unused(fig, used, nrows, ncols)

    head = _group_title({k: v for k, v in (rows_a[0].get("group") or {}).items() if k in FIXED_SETTINGS})
    held = "; ".join(
        f"{a.get('axis')} sweep at {_group_title({k: v for k, v in (a.get('group') or {}).items() if k in SIZE_AXES})}"
        for a in rows_a if any(k in SIZE_AXES for k in a.get("group") or {})
    )
    verdicts = "; ".join(f"{a.get('axis')}: {_esc(a.get('verdict', '?'))}" for a in rows_a)
    title = f"<b>{_esc(head)}</b> — {_esc(scale.label)}" + (f" ({_esc(held)})" if held else "")
    title += f"<br><sup>{verdicts}</sup>"
    fig.update_layout(
        template=TEMPLATE, title=dict(text=title, x=0.01), height=130 + 300 * nrows,
        legend=_top_legend(130 + 300 * nrows, 120, 60),
        margin=dict(t=120, l=70, r=40, b=60),
        meta={"kind": "transfer_contours", "analyses": chosen},
    )
    return fig


# --------------------------------------------------------------------------- runs-table helpers


def _lr_key(x: float) -> float:
    return float(f"{x:.10g}") if np.isfinite(x) else math.nan


def _prepare_runs(runs: pd.DataFrame | None, metric: str) -> pd.DataFrame | None:
    """Finished runs with ``_val`` (natural units, NaN when bad) and ``_bad`` (diverged/failed)."""
    if runs is None or not isinstance(runs, pd.DataFrame) or len(runs) == 0 or metric not in runs.columns:
        return None
    df = with_run_defaults(runs)
    status = df["status"].astype(str).str.lower()
    df = df.loc[status.eq("ok") | status.isin(BAD_STATUSES)].copy()
    if len(df) == 0:
        return None
    status = df["status"].astype(str).str.lower()
    for c in (ETA, BETA):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float).map(_lr_key)
    df = df.loc[df[ETA] > 0]
    status = status.loc[df.index]
    val = pd.to_numeric(df[metric], errors="coerce").astype(float).to_numpy()
    bad = status.isin(BAD_STATUSES).to_numpy() | ~np.isfinite(val)
    df["_val"] = np.where(bad, np.nan, val)
    df["_bad"] = bad
    return df if len(df) else None


def _cost(values: np.ndarray, kind: str) -> np.ndarray:
    return values if kind == "loss" else 1.0 - values


# --------------------------------------------------------------------------- loss vs lr


def loss_vs_lr(
    runs: pd.DataFrame | None,
    *,
    metric: str = "min_train_loss",
    axis: str = "width",
    lr: str = "weight_lr",
    fix_other: str | float = "best",
    where: Mapping[str, Any] | None = None,
    band: str | None = "minmax",
) -> go.Figure:
    """The μP-literature view: metric vs log2(lr), one line per size (colour = size).

    Each point is the seed mean (a point where any seed diverged is drawn as a grey ``x`` at the
    top, not on the line, as in the report), with a band across seeds (``band``: "minmax",
    "std" or None). The other lr is held at each size's best value (``fix_other="best"``: the
    other coordinate of that size's grid argmin) or at the grid value nearest to a number.
    ``where`` filters rows by exact column values (e.g. an analysis' ``group``); if several
    settings remain (algorithm, parametrization, ..., the other size axis), the one with the most
    sizes (then: with an activity lr) is drawn and named in the title. Each line's best point is marked with a star.
    """
    info = METRICS.get(metric)
    if info is None:
        raise ValueError(f"unknown metric={metric!r}; allowed values: {sorted(METRICS)}")
    if lr not in (ETA, BETA):
        raise ValueError(f"lr must be {ETA!r} or {BETA!r}, got {lr!r}")
    if axis not in SIZE_AXES:
        raise ValueError(f"axis must be one of {SIZE_AXES}, got {axis!r}")
    title0 = f"{metric} vs {lr} across {axis}"
    df = _prepare_runs(runs, metric)
    if df is None or axis not in df.columns:
        return empty_figure(EMPTY_TEXT, title=title0)
    for k, v in (where or {}).items():
        if k in df.columns and v is not None:
            df = df.loc[(df[k] == v) | (df[k].astype(str) == str(v))]
    if len(df) == 0:
        return empty_figure(f"no finished runs match {dict(where or {})}", title=title0)
    keys = [c for c in FIXED_SETTINGS + tuple(a for a in SIZE_AXES if a != axis) if c in df.columns]
    note = ""
    if keys:
        groups = list(df.groupby(keys, dropna=False, sort=True))
        if len(groups) > 1:
            k_best, g_best = max(groups, key=lambda kg: (kg[1][axis].nunique(), bool(kg[1][BETA].notna().any())))
            k_best = k_best if isinstance(k_best, tuple) else (k_best,)
            note = f" (showing {_group_title(dict(zip(keys, k_best)))}; {len(groups)} settings in table)"
            df = g_best
        else:
            k0 = groups[0][0]
            k0 = k0 if isinstance(k0, tuple) else (k0,)
            note = f" — {_group_title(dict(zip(keys, k0)))}"
    other = BETA if lr == ETA else ETA
    has_beta = df[BETA].notna().any()
    if lr == BETA and not has_beta:
        return empty_figure("no activity lr in these runs (e.g. backprop)", title=title0 + note)
    if has_beta:
        df = df.loc[df[BETA].notna()]

    sizes = sorted(int(s) for s in df[axis].dropna().unique())
    colors = sample_colorscale(COLORSCALE, [0.5] if len(sizes) == 1 else list(np.linspace(0, 0.9, len(sizes))))
    log = info.kind == "loss"
    fig = go.Figure()
    ally: list[float] = []
    per_size: list[tuple] = []
    for s, color in zip(sizes, colors):
        g = df.loc[df[axis] == s]
        fixed_txt = ""
        if has_beta:
            # Seed-mean cost per (eta, beta); any bad seed makes the point unusable (+inf).
            agg = g.groupby([ETA, BETA]).agg(bad=("_bad", "any"), val=("_val", "mean"))
            cost = np.where(agg["bad"], np.inf, _cost(agg["val"].to_numpy(dtype=float), info.kind))
            cost = np.where(np.isnan(cost), np.inf, cost)
            if fix_other == "best":
                if np.isfinite(cost).any():
                    o = agg.index[int(np.argmin(cost))][1 if other == BETA else 0]
                else:
                    o = g[other].iloc[0]
            else:
                grid = np.array(sorted(g[other].unique()), dtype=float)
                o = float(grid[int(np.argmin(np.abs(np.log2(grid) - math.log2(float(fix_other)))))])
            g = g.loc[g[other] == o]
            fixed_txt = f" ({'β' if other == BETA else 'η'} = {fmt_lr(o)})"
        pts = g.groupby(lr).agg(
            bad=("_bad", "any"), mean=("_val", "mean"), lo=("_val", "min"), hi=("_val", "max"),
            std=("_val", "std"), n=("_val", "size"),
        ).sort_index()
        x = np.log2(pts.index.to_numpy(dtype=float))
        mean = np.where(pts["bad"], np.nan, pts["mean"].to_numpy(dtype=float))
        if band == "std":
            sd = np.nan_to_num(pts["std"].to_numpy(dtype=float))
            lo, hi = mean - sd, mean + sd
        else:
            lo = np.where(pts["bad"], np.nan, pts["lo"].to_numpy(dtype=float))
            hi = np.where(pts["bad"], np.nan, pts["hi"].to_numpy(dtype=float))
        if log:
            lo = np.where(lo > 0, lo, np.nan)
            mean = np.where(mean > 0, mean, np.nan)
        ally += [float(v) for v in np.concatenate([mean, lo, hi]) if np.isfinite(v) and (v > 0 or not log)]
        per_size.append((s, color, fixed_txt, pts, x, mean, lo, hi))

    if not ally:
        lo_y, hi_y = (0.0, 1.0)
    else:
        lo_y, hi_y = min(ally), max(ally)
    if log:
        llo, lhi = math.log10(lo_y) if lo_y > 0 else -1, math.log10(hi_y) if hi_y > 0 else 0
        span = max(lhi - llo, 0.1)
        top = 10 ** (lhi + 0.1 * span)
        yrange = [llo - 0.05 * span, lhi + 0.18 * span]
    else:
        span = max(hi_y - lo_y, 1e-3)
        top = hi_y + 0.1 * span
        yrange = [lo_y - 0.05 * span, hi_y + 0.18 * span]

    legend = _Legend()
    for s, color, fixed_txt, pts, x, mean, lo, hi in per_size:
        name = f"{_size_title(axis, s)}{fixed_txt}"
        rgba = color.replace("rgb(", "rgba(").replace(")", ", 0.18)")
        if band and np.isfinite(lo).any():
            fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=str(s), meta={"role": "band", "size": s}))
            fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line=dict(width=0), fill="tonexty",
                                     fillcolor=rgba, hoverinfo="skip", showlegend=False, legendgroup=str(s),
                                     meta={"role": "band", "size": s}))
        text = [f"{lr} = {fmt_lr(2 ** xi)}<br>{'diverged' if b else f'mean {_fmt(m)} (n={n})'}"
                for xi, b, m, n in zip(x, pts["bad"], mean, pts["n"])]
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="lines+markers", name=name, line=dict(color=color, width=2),
            marker=dict(color=color, size=6), legendgroup=str(s), text=text,
            hovertemplate="%{text}<extra>" + _esc(name) + "</extra>", meta={"role": "line", "size": s},
        ))
        if np.isfinite(mean).any():
            k = int(np.nanargmin(_cost(mean, info.kind)))
            fig.add_trace(go.Scatter(
                x=[x[k]], y=[mean[k]], mode="markers", name="best per size",
                marker=dict(symbol="star", size=14, color=color, line=dict(width=1, color="black")),
                legendgroup=str(s), showlegend=False, hovertemplate=f"best at {_esc(name)}<br>"
                f"{lr} = {fmt_lr(2 ** x[k])}<br>{_fmt(mean[k])}<extra></extra>",
                meta={"role": "optimum", "size": s},
            ))
        bad = pts["bad"].to_numpy(dtype=bool)
        if bad.any():
            fig.add_trace(go.Scatter(
                x=x[bad], y=[top] * int(bad.sum()), mode="markers", name="diverged",
                marker=dict(symbol="x-thin", size=9, line=dict(width=2, color=color)),
                legendgroup="diverged", showlegend=legend("diverged"),
                hovertemplate=f"{_esc(name)}: diverged<extra></extra>", meta={"role": "diverged", "size": s},
            ))
    tv, tt = _lr_ticks(df[lr].dropna().unique(), log=np.log2, max_ticks=10)
    lr_sym = "η" if lr == ETA else "β"
    band_txt = {"minmax": "band: min–max over seeds", "std": "band: ±1 std over seeds"}.get(band or "", "")
    fig.update_layout(
        template=TEMPLATE, height=460,
        title=dict(text=f"<b>{_esc(metric)}</b> vs {lr_sym} across {axis}{_esc(note)}"
                        f"<br><sup>seed mean; {band_txt}; other lr fixed at "
                        f"{'each size’s best' if fix_other == 'best' else fmt_lr(fix_other)}</sup>", x=0.01),
        xaxis=dict(title=f"{lr.replace('_', ' ')} {lr_sym} (log2 axis)", tickvals=tv, ticktext=tt),
        yaxis=dict(title=_esc(metric), type="log" if log else "linear", range=yrange),
        legend=dict(title=dict(text=size_symbol(axis))),
        margin=dict(t=90, l=70, r=30, b=60),
        meta={"kind": "loss_vs_lr", "sizes": sizes},
    )
    return fig


# --------------------------------------------------------------------------- optimum shift


def _log2(x: Any) -> float:
    v = _num(x)
    return math.log2(v) if v > 0 and np.isfinite(v) else math.nan


def _draw_shift(
    fig: go.Figure,
    analysis: Mapping[str, Any],
    *,
    eta_cell: tuple[int, int],
    beta_cell: tuple[int, int],
    regret_cell: tuple[int, int],
    color: str,
    label: str,
    tol: Mapping[str, Any],
    legend: _Legend,
    offset: float = 0.0,
    bar_width: float = 0.35,
) -> None:
    axis = analysis.get("axis", "")
    entries = list(analysis.get("sizes") or [])
    if not entries:
        return
    sizes = [e.get("size") for e in entries]
    x = np.array([_log2(s) for s in sizes])
    drift_tol = _num(tol.get("drift_tol", 0.5))
    regret_tol = _num(tol.get("regret_tol", 0.05))
    pre = f"{label}: " if label else ""
    for lrname, cell, key, fkey, slope_key, sym in (
        (ETA, eta_cell, "eta_star", "eta_star_fit", "drift_slope_eta", "η*"),
        (BETA, beta_cell, "beta_star", "beta_star_fit", "drift_slope_beta", "β*"),
    ):
        r, c = cell
        if lrname == BETA and not _is_2d(analysis):
            _add_panel_annotation(fig, r, c, "no activity lr (e.g. backprop)")
            continue
        g = np.array([_log2(e.get(key)) for e in entries])
        f = np.array([_log2(e.get(fkey)) for e in entries])
        b0 = f[0] if np.isfinite(f[0]) else g[0]
        if np.isfinite(b0) and np.isfinite(drift_tol):
            d = x - x[0]
            xs = np.concatenate([x, x[::-1]])
            ys = np.concatenate([b0 + drift_tol * d, (b0 - drift_tol * d)[::-1]])
            fig.add_trace(go.Scatter(
                x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0),
                fillcolor=color.replace("rgb(", "rgba(").replace(")", ",0.10)") if color.startswith("rgb(")
                else _hex_rgba(color, 0.10),
                name=f"{pre}±{drift_tol:g} octave/doubling", legendgroup=f"{label}tol",
                showlegend=legend(f"{label}tol"), hoverinfo="skip", meta={"role": "tolerance"},
            ), row=r, col=c)
        seed_txt = []
        for e in entries:
            m = e.get("seed_mode")
            if m:
                v = m.get(lrname)
                seed_txt.append(f"<br>seed mode {fmt_lr(v)} ({_pct(e.get('seed_mode_freq'))})")
            else:
                seed_txt.append("")
        hover = [
            f"{_size_title(axis, s)}<br>{sym} grid = {fmt_lr(e.get(key))}, fit = {fmt_lr(e.get(fkey))}"
            f"<br>Δlog2 = {_fmt(e.get('dlog2_eta' if lrname == ETA else 'dlog2_beta'), '+.2f')} octaves"
            f"{st}"
            for s, e, st in zip(sizes, entries, seed_txt)
        ]
        fig.add_trace(go.Scatter(
            x=x + offset, y=g, mode="markers", name=f"{pre}grid argmin",
            marker=dict(symbol="square", size=11, color=color, line=dict(width=1, color="black")),
            legendgroup=f"{label}grid", showlegend=legend(f"{label}grid"), text=hover,
            hovertemplate="%{text}<extra></extra>", meta={"role": f"{key}", "estimate": "grid"},
        ), row=r, col=c)
        slope = _num(analysis.get(slope_key))
        fig.add_trace(go.Scatter(
            x=x + offset, y=f, mode="lines+markers", name=f"{pre}fitted",
            line=dict(color=color, dash="dash"), marker=dict(symbol="diamond", size=8, color=color),
            legendgroup=f"{label}fit", showlegend=legend(f"{label}fit"), text=hover,
            hovertemplate="%{text}" + f"<br>drift slope {_fmt(slope, '+.2f')} oct/doubling<extra></extra>",
            meta={"role": f"{key}", "estimate": "fit"},
        ), row=r, col=c)
        grid = analysis.get("eta_grid" if lrname == ETA else "beta_grid") or []
        tv, tt = _lr_ticks([_num(v) for v in grid], log=np.log2, max_ticks=8)
        if tv:
            fig.update_yaxes(tickvals=tv, ticktext=tt, row=r, col=c)
        fig.update_yaxes(title_text=f"{sym} (log2 axis)", row=r, col=c)

    # Regret bars (%), inf drawn as a capped hatched bar labelled ∞, NaN as "n/a".
    r, c = regret_cell
    reg = np.array([_num(e.get("regret")) for e in entries])
    finite = reg[np.isfinite(reg)]
    cap = max(float(finite.max()) * 100 * 1.3 if finite.size else 0.0, regret_tol * 100 * 3, 1.0)
    y = np.where(np.isinf(reg), cap, np.where(np.isnan(reg), 0.0, reg * 100))
    colors = ["#999999" if np.isnan(v) else ("#d62728" if (np.isinf(v) or v > regret_tol) else "#2ca02c") for v in reg]
    if label:
        colors = [color if k == "#2ca02c" else k for k in colors]
    txt = [_pct(v) if not np.isinf(v) else "∞ (base optimum diverged)" for v in reg]
    fig.add_trace(go.Bar(
        x=x + offset, y=y, width=bar_width, name=f"{pre}regret", marker=dict(
            color=colors, line=dict(color=color if label else "#333", width=1.5),
            pattern=dict(shape=["/" if np.isinf(v) else "" for v in reg])),
        text=txt, textposition="outside", cliponaxis=False, showlegend=bool(label) and legend(f"{label}regret"),
        legendgroup=f"{label}regret",
        hovertext=[f"{_size_title(axis, s)}: regret {t}<br>metric at base optimum {_fmt(e.get('metric_at_base_opt'))}"
                   f" vs own optimum {_fmt(e.get('metric_at_opt'))}" for s, t, e in zip(sizes, txt, entries)],
        hovertemplate="%{hovertext}<extra></extra>", meta={"role": "regret"},
    ), row=r, col=c)
    fig.add_hline(y=regret_tol * 100, line=dict(dash="dot", color="#d62728", width=1), row=r, col=c,
                  annotation_text=f"tolerance {regret_tol * 100:g}%", annotation_position="top left")
    fig.update_yaxes(title_text="regret of base optimum (%)", rangemode="tozero", row=r, col=c)


def _hex_rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    if len(c) != 6:
        return f"rgba(100,100,100,{alpha})"
    r, g, b = (int(c[k:k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _size_ticks(fig: go.Figure, sizes: Iterable[Any], cells: Iterable[tuple[int, int]], axis: str) -> None:
    ss = sorted({int(_num(s)) for s in sizes if _num(s) > 0})
    tv = [math.log2(s) for s in ss]
    tt = [str(s) for s in ss]
    for r, c in cells:
        fig.update_xaxes(tickvals=tv, ticktext=tt, title_text=f"{axis} {size_symbol(axis)} (log2 axis)",
                         range=_padded(tv), row=r, col=c)


def _top_legend(height: float, top: float, bottom: float, gap_px: float = 26) -> dict:
    """A horizontal legend in the top margin, above the subplot titles (paper y > 1)."""
    plot_h = max(float(height) - top - bottom, 50.0)
    return dict(orientation="h", yanchor="bottom", y=1.0 + gap_px / plot_h, xanchor="right", x=1.0,
                font=dict(size=11))


def _verdict_color(v: str | None) -> str:
    return {"transfers": "#2ca02c", "does not transfer": "#d62728"}.get(v or "", "#ff7f0e")


def optimum_shift(report: Mapping[str, Any] | None, analysis_index: int = 0) -> go.Figure:
    """Optimum vs size for both lrs, and the regret of transferring the base optimum.

    Top row: log2 η* and log2 β* vs log2 size, grid argmin (squares) and sub-grid fit (dashed),
    with the ±drift-tolerance cone around the base optimum. Bottom: regret per size as bars (%),
    the tolerance as a dotted line, an infinite regret (base optimum diverged) as a hatched bar
    labelled ∞. The verdict is the title.
    """
    analyses = _analyses(report)
    if not analyses:
        return empty_figure(_no_analysis_text(report), title="Optimum shift")
    idx = select_analysis(report, analysis_index=analysis_index)
    a = analyses[idx]
    axis = a.get("axis", "")
    fig = make_subplots(
        rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]],
        subplot_titles=["weight lr optimum η*", "activity lr optimum β*", "regret of transfer"],
        vertical_spacing=0.16, horizontal_spacing=0.1,
    )
    _draw_shift(fig, a, eta_cell=(1, 1), beta_cell=(1, 2), regret_cell=(2, 1), color="#1f77b4", label="",
                tol=report.get("thresholds") or {}, legend=_Legend())
    _size_ticks(fig, [e.get("size") for e in a.get("sizes") or []], [(1, 1), (1, 2), (2, 1)], axis)
    verdict = a.get("verdict", "?")
    slopes = (f"drift η* {_fmt(a.get('drift_slope_eta'), '+.2f')}, β* {_fmt(a.get('drift_slope_beta'), '+.2f')} "
              f"octave/doubling")
    fig.update_layout(
        template=TEMPLATE, height=700,
        title=dict(
            text=f"<b>{_esc(_group_title(a.get('group')))}</b> — {axis}: "
                 f"<span style='color:{_verdict_color(verdict)}'><b>{_esc(verdict)}</b></span>"
                 f"<br><sup>{_wrap(a.get('verdict_text', ''))}<br>{slopes}</sup>",
            x=0.01,
        ),
        legend=_top_legend(700, 150, 60),
        margin=dict(t=150, l=70, r=30, b=60),
        meta={"kind": "optimum_shift", "analysis": idx, "verdict": verdict},
    )
    return fig


# --------------------------------------------------------------------------- comparison


def _pick_pair(report_a: Mapping[str, Any], report_b: Mapping[str, Any], axis: str | None,
               index_a: int | None, index_b: int | None) -> tuple[int | None, int | None]:
    aa, bb = _analyses(report_a), _analyses(report_b)
    if index_a is not None and not 0 <= index_a < len(aa):
        raise IndexError(f"index_a={index_a} out of range ({len(aa)} analyses)")
    if index_b is not None and not 0 <= index_b < len(bb):
        raise IndexError(f"index_b={index_b} out of range ({len(bb)} analyses)")
    ia = index_a if index_a is not None else (select_analysis(report_a, axis=axis) if aa else None)
    if index_b is not None or not bb:
        return ia, index_b
    a = aa[ia] if ia is not None else {}
    ax = a.get("axis", axis)
    ga = a.get("group") or {}
    same = report_a is report_b

    def score(j: int) -> tuple:
        b = bb[j]
        gb = b.get("group") or {}
        differs = any(gb.get(k) != ga.get(k) for k in FIXED_SETTINGS)
        held = [k for k in SIZE_AXES if k != ax]
        return (
            b.get("axis") == ax,                                  # same size axis
            (j != ia) if same else True,                          # not the very same analysis
            differs if same else True,                            # two settings of one sweep
            all(gb.get(k) == ga.get(k) for k in held),            # same held size
            gb.get("algorithm") == ga.get("algorithm"),           # e.g. pc mupc vs pc sp
            _is_2d(b) == _is_2d(a) if a else True,
            -j,
        )

    return ia, max(range(len(bb)), key=score)


def comparison(
    report_a: Mapping[str, Any] | None,
    report_b: Mapping[str, Any] | None,
    labels: Sequence[str] = ("μPC", "SP"),
    *,
    axis: str | None = None,
    index_a: int | None = None,
    index_b: int | None = None,
    kind: str = "contour",
) -> go.Figure:
    """Two sweeps (or two parametrizations of one sweep) side by side.

    Row 1: A's surfaces (one panel per size), row 2: B's, on ONE shared colour scale; row 3:
    η* and β* vs size for both (A blue, B orange) and grouped regret bars. The analyses are the
    first along ``axis`` (width preferred) unless ``index_a`` / ``index_b`` say otherwise; passing
    the same report twice compares two of its groups (e.g. μPC vs SP of one sweep).
    """
    la, lb = (list(labels) + ["A", "B"])[:2]
    ia, ib = _pick_pair(report_a or {}, report_b or {}, axis, index_a, index_b)
    if ia is None and ib is None:
        return empty_figure(EMPTY_TEXT if not (report_a or {}).get("n_runs") and not (report_b or {}).get("n_runs")
                            else "nothing to compare yet", title=f"{la} vs {lb}")
    sides = []
    for rep, i, lab in ((report_a, ia, la), (report_b, ib, lb)):
        sides.append((rep, None if i is None else _analyses(rep)[i], lab))
    metric_a = (report_a or {}).get("metric") or (report_b or {}).get("metric")
    metric_b = (report_b or {}).get("metric") or metric_a
    scale = _Scale(metric_a, (report_a or {}).get("direction"))
    zrange = _finite_range(_zarrays([s[1] for s in sides if s[1] is not None], scale))
    panels = [(_panel_sizes(a) if a is not None else []) for _, a, _ in sides]
    ncols = max(3, max(len(p) for p in panels))
    spans = [ncols // 3 + (1 if k < ncols % 3 else 0) for k in range(3)]
    row3: list[dict | None] = []
    for sp in spans:
        row3 += [{"colspan": sp}] + [None] * (sp - 1)
    titles = []
    for (_, a, lab), p in zip(sides, panels):
        t = [f"{_esc(lab)}: {_size_title(a.get('axis', ''), s)}" for s, _, _ in p] if a is not None else [f"{_esc(lab)}: no analysis"]
        titles += t + [""] * (ncols - len(t))
    titles += ["η* vs size", "β* vs size", "regret of transfer"]
    fig = make_subplots(rows=3, cols=ncols, specs=[[{}] * ncols, [{}] * ncols, row3],
                        subplot_titles=titles, vertical_spacing=0.12,
                        horizontal_spacing=min(0.06, 0.6 / ncols), row_heights=[0.34, 0.34, 0.32])
    legend = _Legend()
    used: set[tuple[int, int]] = set()
    first = True
    for r, ((rep, a, lab), p) in enumerate(zip(sides, panels), start=1):
        if a is None:
            _add_panel_annotation(fig, r, 1, f"{lab}: {_no_analysis_text(rep)}")
            used.add((r, 1))
            continue
        first = _draw_row(fig, r, a, p, scale, zrange, legend, kind, first, used)
    _hide_unused(fig, used, 2, ncols)
    c_eta, c_beta, c_reg = 1, 1 + spans[0], 1 + spans[0] + spans[1]
    all_sizes: list[Any] = []
    n_sides = sum(a is not None for _, a, _ in sides)
    for k, ((rep, a, lab), color) in enumerate(zip(sides, PAIR_COLORS)):
        if a is None:
            continue
        off = (k - 0.5) * 0.2 if n_sides == 2 else 0.0
        _draw_shift(fig, a, eta_cell=(3, c_eta), beta_cell=(3, c_beta), regret_cell=(3, c_reg), color=color,
                    label=lab, tol=(rep or {}).get("thresholds") or {}, legend=legend, offset=off, bar_width=0.2)
        all_sizes += [e.get("size") for e in a.get("sizes") or []]
    ax_name = next((a.get("axis") for _, a, _ in sides if a is not None), "")
    _size_ticks(fig, all_sizes, [(3, c_eta), (3, c_beta), (3, c_reg)], ax_name)
    heads = []
    for _, a, lab in sides:
        if a is None:
            heads.append(f"{_esc(lab)}: no analysis")
        else:
            v = a.get("verdict", "?")
            heads.append(f"{_esc(lab)} ({_esc(_group_title(a.get('group')))}): "
                         f"<span style='color:{_verdict_color(v)}'><b>{_esc(v)}</b></span>")
    sub = f"{_esc(scale.label)}, one colour scale for both"
    if metric_a != metric_b:
        sub += f" — WARNING: metrics differ ({_esc(metric_a)} vs {_esc(metric_b)})"
    fig.update_layout(
        template=TEMPLATE, height=1000, barmode="overlay",
        title=dict(text=" vs ".join(heads) + f"<br><sup>{sub}</sup>", x=0.01),
        legend=_top_legend(1000, 130, 60),
        margin=dict(t=130, l=70, r=40, b=60),
        meta={"kind": "comparison", "analyses": [ia, ib], "labels": [la, lb]},
    )
    return fig


# --------------------------------------------------------------------------- training curves


def _run_label(row: Mapping[str, Any]) -> str:
    parts = []
    cell = row.get("cell_id")
    if isinstance(cell, str) and cell:
        parts.append(cell)
    else:
        bits = [str(row.get(k)) for k in ("algorithm", "parametrization") if row.get(k) is not None]
        for ax in SIZE_AXES:
            if row.get(ax) is not None and not (isinstance(row.get(ax), float) and math.isnan(row.get(ax))):
                bits.append(_size_title(ax, row.get(ax)).replace(" ", ""))
        parts.append(" ".join(bits))
    lrs = f"η={fmt_lr(row.get(ETA))}"
    b = _num(row.get(BETA))
    if np.isfinite(b):
        lrs += f" β={fmt_lr(b)}"
    parts.append(lrs)
    if row.get("seed") is not None:
        parts.append(f"s{row.get('seed')}")
    st = str(row.get("status", "ok"))
    if st != "ok":
        parts.append(f"[{st}]")
    return " ".join(p for p in parts if p)


def _default_selection(runs: pd.DataFrame, max_runs: int) -> list[Any]:
    """Best finished run (lowest min_train_loss, else best test acc) of every cell."""
    df = runs.copy()
    status = df["status"].astype(str).str.lower() if "status" in df.columns else pd.Series("ok", index=df.index)
    ok = df.loc[status.eq("ok")]
    if len(ok) == 0:
        ok = df
    cell_keys = ["cell_id"] if "cell_id" in ok.columns else [
        c for c in FIXED_SETTINGS + SIZE_AXES if c in ok.columns]
    if "min_train_loss" in ok.columns:
        score = pd.to_numeric(ok["min_train_loss"], errors="coerce")
    elif "best_test_acc" in ok.columns:
        score = -pd.to_numeric(ok["best_test_acc"], errors="coerce")
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


def training_curves(
    curves: pd.DataFrame | None,
    runs: pd.DataFrame | None = None,
    *,
    run_ids: Sequence[Any] | None = None,
    max_runs: int = 12,
    show_test: bool = True,
) -> go.Figure:
    """Train loss vs step (log y) for a selection of runs, with test accuracy below when measured.

    ``run_ids``: the runs to draw (in that order); default: the best run of every cell in ``runs``
    (or the first runs in ``curves`` without a runs table), at most ``max_runs``. Diverged /
    failed runs are dashed and their last finite point is marked with an ``x``; non-finite or
    non-positive losses are left out (log axis).
    """
    need = {"run_id", "step", "train_loss"}
    if curves is None or not isinstance(curves, pd.DataFrame) or len(curves) == 0 or not need <= set(curves.columns):
        return empty_figure(EMPTY_TEXT, title="Training curves")
    have_runs = isinstance(runs, pd.DataFrame) and len(runs) > 0 and "run_id" in runs.columns
    if run_ids is None:
        if have_runs:
            ids = _default_selection(runs[runs["run_id"].isin(curves["run_id"].unique())], max_runs)
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
        loss = pd.to_numeric(c["train_loss"], errors="coerce").to_numpy(dtype=float)
        good = np.isfinite(loss) & (loss > 0) & np.isfinite(step)
        fig.add_trace(go.Scatter(
            x=step[good], y=loss[good], mode="lines", name=_esc(label), legendgroup=str(rid),
            line=dict(color=color, dash=dash, width=1.6),
            hovertemplate="step %{x}<br>train loss %{y:.4g}<extra>" + _esc(label) + "</extra>",
            meta={"role": "train_loss", "run_id": str(rid)},
        ), row=1, col=1)
        if status in BAD_STATUSES and good.any():
            k = np.nonzero(good)[0][-1]
            fig.add_trace(go.Scatter(
                x=[step[k]], y=[loss[k]], mode="markers", showlegend=False, legendgroup=str(rid),
                marker=dict(symbol="x-thin", size=12, line=dict(width=2.5, color=color)),
                hovertemplate=f"{_esc(status)} after step %{{x}}<extra></extra>",
                meta={"role": "diverged", "run_id": str(rid)},
            ), row=1, col=1)
        if has_test:
            acc = pd.to_numeric(c["test_acc"], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(acc) & np.isfinite(step)
            if ok.any():
                fig.add_trace(go.Scatter(
                    x=step[ok], y=acc[ok], mode="lines+markers", showlegend=False, legendgroup=str(rid),
                    line=dict(color=color, dash=dash, width=1.4), marker=dict(size=5),
                    hovertemplate="step %{x}<br>test acc %{y:.3f}<extra>" + _esc(label) + "</extra>",
                    meta={"role": "test_acc", "run_id": str(rid)},
                ), row=2, col=1)
    fig.update_yaxes(type="log", title_text="train loss", row=1, col=1)
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
