"""Shared pieces of the dashboard figures: constants, number formatting, the metric colour/axis
scale, learning-rate and log-axis ticks, and how an analysis of the optimum-shift report is picked.

Conventions shared by all figures:

* eta = ``weight_lr``, beta = ``activity_lr``; learning rates are drawn on log axes whose tick
  labels are the grid values written like ``1e-1``, ``5e-2``.
* Every log axis gets explicit ticks labelled with the full value (``0.2``, ``0.5``, ``1``, ``2``),
  never plotly's bare minor digits ("2 3 … 9 1") that read as 0.2 below 1 (:func:`log_ticks`).
* Report surfaces encode "not run" as ``None`` (left blank) and "diverged" as ``"inf"`` (loss) /
  ``"-inf"`` (accuracy); diverged points are drawn as a separate ``x`` marker trace, never as a
  colour of the scale.
* Every trace carries ``meta={"role": ...}`` (``surface``, ``optimum``, ``base_optimum``,
  ``diverged``, ``line``, ``band``, ``eta_star``, ``regret``, ...) so callers and tests can find
  traces by what they show rather than by position.
* No figure function raises on empty, partial (a sweep still running) or degenerate (one size,
  everything diverged, NaN/inf) inputs: it draws what exists and says what is missing.
"""

from __future__ import annotations

import html
import math
import textwrap
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mutransfer.report import METRICS, Analysis, MetricInfo, Report, Verdict, fmt_lr, fmt_num
from mutransfer.report.encoding import as_float
from mutransfer.report.metrics import BAD_STATUSES, FIXED_SETTINGS, SIZE_AXES, lr_key, prepare
from mutransfer.report.metrics import BETA_COL as BETA
from mutransfer.report.metrics import ETA_COL as ETA

# The report's conventions (settings, size axes, lr columns, statuses, lr canonicalisation) are
# imported above, never copied: a page and the report cannot disagree on them.
__all__ = ["BAD_STATUSES", "BETA", "ETA", "FIXED_SETTINGS", "SIZE_AXES", "lr_key"]

EMPTY_TEXT = "no finished runs yet"
TEMPLATE = "plotly_white"
COLORSCALE = "Viridis"
DIVERGED_COLOR = "#555555"
OPT_COLOR = "#ffd21f"
BASE_COLOR = "#e8112d"
PAIR_COLORS = ("#1f77b4", "#ff7f0e")


# --------------------------------------------------------------------------- small helpers


def size_symbol(axis: str) -> str:
    """'N' for width, 'H' for depth (the papers' letters)."""
    return {"width": "N", "depth": "H"}.get(axis, str(axis))


def size_title(axis: str, size: Any) -> str:
    return f"{size_symbol(axis)} = {size}"


def num(x: Any) -> float:
    """A report value as a float: None (not available) -> NaN, 'inf'/'-inf' -> ±inf (the report's
    encoding, :func:`mutransfer.report.encoding.as_float`), NaN where it is not a number."""
    v = as_float(x.strip().lower() if isinstance(x, str) else x)
    return math.nan if v is None else v


def esc(x: Any) -> str:
    """User-provided text for plotly labels (plotly renders a small HTML subset: escape it)."""
    return html.escape(str(x), quote=False)


fmt = fmt_num  # one formatting of report numbers, shared with the text report


def pct(x: Any) -> str:
    v = num(x)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞"
    return f"{100 * v:.1f}%"


def wrap(text: str, width: int = 110) -> str:
    return "<br>".join(textwrap.wrap(esc(text), width)) if text else ""


def empty_figure(text: str = EMPTY_TEXT, *, title: str | None = None, height: int = 320) -> go.Figure:
    """A blank figure carrying one centred annotation (used for every 'nothing to draw' case)."""
    fig = go.Figure()
    fig.add_annotation(
        text=esc(text), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
        font=dict(size=16, color="#666"),
    )
    fig.update_layout(
        template=TEMPLATE, height=height, title=esc(title) if title else None,
        xaxis=dict(visible=False), yaxis=dict(visible=False), meta={"empty": True, "text": text},
    )
    return fig


def group_title(group: Mapping[str, Any] | None) -> str:
    g = dict(group or {})
    fixed = [str(g[c]) for c in FIXED_SETTINGS if c in g and g[c] is not None]
    held = [size_title(k, v) for k, v in g.items() if k in SIZE_AXES]
    other = [f"{k}={v}" for k, v in g.items() if k not in FIXED_SETTINGS and k not in SIZE_AXES]
    text = " / ".join(fixed)
    extra = held + other
    if extra:
        text += (", " if text else "") + ", ".join(extra)
    return text


class Scale:
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


def finite_range(arrays: Iterable[np.ndarray]) -> tuple[float, float]:
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


def lr_ticks(values: Sequence[float], log: Any = np.log10, max_ticks: int = 7) -> tuple[list[float], list[str]]:
    v = sorted({float(x) for x in values if x is not None and np.isfinite(x) and x > 0})
    if not v:
        return [], []
    step = max(1, math.ceil(len(v) / max_ticks))
    keep = v[::step]
    return [float(log(x)) for x in keep], [fmt_lr(x) for x in keep]


def padded(coords: Sequence[float]) -> list[float]:
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


def report_of(report: Any) -> Any:
    """The typed report (:class:`mutransfer.report.Report`) of a Report or its JSON; None stays None.
    A page-side view with the same attributes (the contours page's single-size panels) passes as it is."""
    if report is None or isinstance(report, Report):
        return report
    if not isinstance(report, Mapping) and hasattr(report, "analyses"):
        return report
    return Report.from_json(report)


def analyses_of(report: Any) -> list[Analysis]:
    """The report's analyses (typed), [] without a report."""
    rep = report_of(report)
    return [] if rep is None else list(rep.analyses)


def no_analysis_text(report: Any) -> str:
    rep = report_of(report)
    if rep is None or not rep.n_runs:
        return EMPTY_TEXT
    notes = list(rep.notes)
    return "nothing to compare yet" + (f": {notes[-1]}" if notes else "")


def select_analysis(
    report: Any,
    *,
    analysis_index: int | None = None,
    group: Mapping[str, Any] | None = None,
    axis: str | None = None,
) -> int | None:
    """Index of the analysis to draw: ``analysis_index`` if given (IndexError if out of range),
    else the first analysis whose group matches ``group`` (a subset of its keys; ``axis`` may be
    given in ``group`` or separately), width before depth. None when nothing matches."""
    analyses = analyses_of(report)
    if analysis_index is not None:
        if not -len(analyses) <= analysis_index < len(analyses):
            raise IndexError(f"analysis_index={analysis_index} but the report has {len(analyses)} analyses")
        return analysis_index % len(analyses)
    axis = axis or (group or {}).get("axis")
    cands = [i for i, a in enumerate(analyses) if _matches(a.group, group) and (axis is None or a.axis == axis)]
    if not cands:
        return None
    # Prefer analyses with an activity lr (the 2-D surfaces this package is about), then width.
    ranked = sorted(cands, key=lambda i: (not is_2d(analyses[i]),
                                          SIZE_AXES.index(analyses[i].axis) if analyses[i].axis in SIZE_AXES else 9, i))
    return ranked[0]


def companion_analysis(report: Any, index: int, *, exclude: Iterable[int] = ()) -> int | None:
    """The analysis along the *other* size axis for the same fixed settings (algorithm,
    parametrization, activation, dataset), preferring the one that crosses this one (its held size
    is one of ours and ours is one of its sizes, like the μPC paper's N = 512 / H = 8 pair)."""
    analyses = analyses_of(report)
    if not 0 <= index < len(analyses):
        return None
    a = analyses[index]
    axis, g = a.axis, a.group
    other = next((x for x in SIZE_AXES if x != axis), None)
    fixed = {k: g.get(k) for k in FIXED_SETTINGS if k in g}
    excluded = set(exclude)
    best, best_score = None, -1
    my_sizes = {e.size for e in a.sizes}
    for j, b in enumerate(analyses):
        if j == index or j in excluded or b.axis != other:
            continue
        bg = b.group
        if any(bg.get(k) != v for k, v in fixed.items()):
            continue
        b_sizes = {e.size for e in b.sizes}
        score = int(bg.get(axis) in my_sizes) + int(g.get(other) in b_sizes)
        if score > best_score:
            best, best_score = j, score
    return best


class Legend:
    """Show each legend entry once per figure."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, key: str) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

def is_2d(analysis: Any) -> bool:
    """The analysis has an activity lr (a 2-D (η, β) surface)."""
    return analysis.beta_grid is not None or any(s.activity_lr is not None for s in analysis.surfaces)

def panel_note(fig: go.Figure, row: int, col: int, text: str) -> None:
    fig.add_annotation(
        text=esc(text), x=0.5, y=0.5, xref="x domain", yref="y domain", showarrow=False,
        font=dict(color="#888", size=12), row=row, col=col,
    )

def hide_unused(fig: go.Figure, used: set[tuple[int, int]], rows: int, cols: int) -> None:
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            if (r, c) not in used:
                try:
                    fig.update_xaxes(visible=False, row=r, col=c)
                    fig.update_yaxes(visible=False, row=r, col=c)
                except Exception:  # a None cell in specs has no axes
                    pass

# --------------------------------------------------------------------------- runs-table helpers


def prepare_runs(runs: pd.DataFrame | None, metric: str) -> pd.DataFrame | None:
    """Finished runs prepared by the report's own rule (:func:`mutransfer.report.metrics.prepare`:
    canonical lrs, unfinished statuses and non-positive lrs dropped, ``_cost`` under the default
    ``diverged: inf`` policy, ``_bad``), plus ``_val`` = the metric in natural units, NaN when bad.
    None when nothing is left."""
    if runs is None or not isinstance(runs, pd.DataFrame) or len(runs) == 0 or metric not in runs.columns:
        return None
    info = METRICS.get(metric) or MetricInfo(metric, "min", "loss", metric)
    try:
        df, _ = prepare(runs.reset_index(drop=True), info)  # a concatenated table may repeat index labels
    except ValueError:  # no weight_lr column: nothing the pages can place on an lr axis
        return None
    if len(df) == 0:
        return None
    df["_val"] = np.where(df["_bad"].to_numpy(), np.nan, pd.to_numeric(df[metric], errors="coerce").to_numpy(float))
    return df


def cost_of(values: np.ndarray, kind: str) -> np.ndarray:
    """The report's cost convention (:class:`mutransfer.report.MetricInfo`): a loss is its own cost,
    an accuracy a becomes 1 − a; NaN (not run / diverged) stays NaN."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isnan(v), np.nan, MetricInfo("", "min", kind, "").to_cost(v))


def log2(x: Any) -> float:
    v = num(x)
    return math.log2(v) if v > 0 and np.isfinite(v) else math.nan

def hex_rgba(color: str, alpha: float) -> str:
    c = color.lstrip("#")
    if len(c) != 6:
        return f"rgba(100,100,100,{alpha})"
    r, g, b = (int(c[k:k + 2], 16) for k in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def size_ticks(fig: go.Figure, sizes: Iterable[Any], cells: Iterable[tuple[int, int]], axis: str) -> None:
    ss = sorted({int(num(s)) for s in sizes if num(s) > 0})
    tv = [math.log2(s) for s in ss]
    tt = [str(s) for s in ss]
    for r, c in cells:
        fig.update_xaxes(tickvals=tv, ticktext=tt, title_text=f"{axis} {size_symbol(axis)} (log2 axis)",
                         range=padded(tv), row=r, col=c)


def head_layout(fig: go.Figure, title: str, height: int, *, subplot_titles: bool = True, bottom: int = 60,
                left: int = 70, right: int = 40, width_px: float = 1100) -> None:
    """Stack the title, the legend and the plots top-down so that none overlaps another: the title
    at the top of the figure, the legend in its own band below it (rows estimated from the entry
    names), then the subplot titles and the plots. Sets ``height``, ``title``, ``legend``, ``margin``."""
    lines = 1 + title.count("<br>")
    names = [t.name or "" for t in fig.data if t.showlegend is not False and t.name]
    names = list(dict.fromkeys(names))
    rows = max(1, math.ceil(sum(40 + 7 * len(n) for n in names) / width_px)) if names else 0
    title_px, legend_px, sub_px = 24 + 21 * lines, 24 * rows + 6, (26 if subplot_titles else 8)
    top = title_px + legend_px + sub_px
    plot_h = max(height - top - bottom, 50.0)
    fig.update_layout(
        height=height,
        # plotly puts a "top"-anchored title ~15 px above its y: 22 px down keeps it inside the figure.
        title=dict(text=title, x=0.01, xanchor="left", y=1 - 22 / height, yanchor="top", yref="container"),
        legend=dict(orientation="h", x=0.0, xanchor="left", y=1.0 + sub_px / plot_h, yanchor="bottom",
                    font=dict(size=11)),
        margin=dict(t=top, l=left, r=right, b=bottom),
    )


def top_legend(height: float, top: float, bottom: float, gap_px: float = 26) -> dict:
    """A horizontal legend in the top margin, above the subplot titles (paper y > 1)."""
    plot_h = max(float(height) - top - bottom, 50.0)
    return dict(orientation="h", yanchor="bottom", y=1.0 + gap_px / plot_h, xanchor="right", x=1.0,
                font=dict(size=11))


VERDICT_COLORS = {Verdict.TRANSFERS: "#2ca02c", Verdict.DOES_NOT_TRANSFER: "#d62728"}  # others: amber


def verdict_color(v: str | None) -> str:
    return VERDICT_COLORS.get(v or "", "#ff7f0e")



# --------------------------------------------------------------------------- log axes


def tick_label(v: float, sci: bool = False) -> str:
    """A tick value written out in full: 0.2, 0.05, 1, 20, 300; 2e-4 / 5e5 beyond 1e-3..1e4 (or
    always with ``sci``, so one axis uses one notation)."""
    if v == 0 or not np.isfinite(v):
        return fmt_num(v)
    if not sci and 1e-3 <= abs(v) < 1e4:
        return f"{v:.6g}"
    return fmt_lr(v)


def _labels(vals: Sequence[float]) -> list[str]:
    sci = any(not 1e-3 <= abs(v) < 1e4 for v in vals if v)
    return [tick_label(v, sci) for v in vals]


def _nice_linear(lo: float, hi: float, n: int = 4) -> list[float]:
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    vals = [first + k * step for k in range(n + 2) if first + k * step <= hi * (1 + 1e-12)]
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(v, digits) for v in vals if v > 0]


def log_ticks(lo: float, hi: float, max_ticks: int = 8) -> tuple[list[float], list[str]]:
    """Labelled ticks for a log axis showing data values in [lo, hi] (data units, lo > 0).

    Every label is the full value (:func:`tick_label`), so "0.2" can never be misread as "2" sitting
    under "1" (plotly's default minor labels on log axes). Mantissas per decade: 1 when the span
    covers three decades or more (every k-th decade beyond ``max_ticks``), else 1-2-5, else 1..9;
    a span too narrow for three of those gets evenly spaced round values. Returns (tickvals,
    ticktext) in data units, as plotly expects for ``type="log"`` axes.
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0):
        return [], []
    if hi <= lo * (1 + 1e-9):
        return [lo], _labels([lo])
    d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    span = math.log10(hi) - math.log10(lo)
    for mants, min_span in (((1,), 3.0), ((1, 2, 5), 0.9), ((1, 2, 3, 4, 5, 6, 7, 8, 9), 0.0)):
        if span < min_span:
            continue
        vals = [float(f"{m * 10.0 ** d:.6g}") for d in range(d0, d1 + 1) for m in mants]
        vals = [v for v in vals if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
        if mants == (1,) and len(vals) > max_ticks:
            vals = vals[::math.ceil(len(vals) / max_ticks)]
        if len(vals) >= 3:
            return vals, _labels(vals)
    vals = _nice_linear(lo, hi)
    return vals, _labels(vals)


def log_axis(lo: float, hi: float, max_ticks: int = 8, pad: float = 0.05) -> dict:
    """Layout for a log axis over data values [lo, hi]: type, range (log10 units, padded by ``pad``
    of the span) and full-value tick labels (:func:`log_ticks`)."""
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > 0):
        return dict(type="log")
    llo, lhi = math.log10(min(lo, hi)), math.log10(max(lo, hi))
    width = max(lhi - llo, 0.1)
    tv, tt = log_ticks(10 ** (llo - pad * width), 10 ** (lhi + pad * width), max_ticks)
    return dict(type="log", range=[llo - pad * width, lhi + pad * width], tickvals=tv, ticktext=tt)


def positive_range(values: Iterable[Any]) -> tuple[float, float]:
    """(min, max) of the finite positive values, (NaN, NaN) when there are none."""
    v = np.asarray([x for x in values], dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    return (float(v.min()), float(v.max())) if v.size else (math.nan, math.nan)
