"""The compare page (``/compare?a=ID&b=ID``): two sweeps — or two settings of one sweep — side by
side. Every analysis of A is drawn against its counterpart in B (same group and size axis when B
has it, else the closest one), and every analysis of B left over against its closest in A: rows of
surfaces on one shared colour scale, then η*, β* and regret vs size for both.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mutransfer.report import Analysis

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import (
    FIXED_SETTINGS, EMPTY_TEXT, PAIR_COLORS, SIZE_AXES, TEMPLATE, Legend, Scale, analyses_of, empty_figure, esc,
    finite_range, group_title, head_layout, hide_unused, is_2d, no_analysis_text, panel_note, report_of,
    select_analysis, size_ticks, size_title, verdict_color,
)
from .contours import draw_surface_row, panel_sizes, surface_zarrays
from .html import (
    DEFAULT_PLOTLY_URL, document, esc_html, figure_html, is_running, metric_of, metric_picker, sid_of, sweep_header,
)
from .shift import draw_shift
from .verdicts import provisional_of, tolerances, verdict_line

# --------------------------------------------------------------------------- comparison


def _reports(report_a: Any, report_b: Any) -> tuple[Any, Any]:
    """Both reports typed; the same report passed twice stays one object (one sweep's settings)."""
    ra = report_of(report_a)
    return ra, (ra if report_b is report_a else report_of(report_b))


def _pick_pair(report_a: Any, report_b: Any, axis: str | None,
               index_a: int | None, index_b: int | None, same: bool = False) -> tuple[int | None, int | None]:
    aa, bb = analyses_of(report_a), analyses_of(report_b)
    if index_a is not None and not 0 <= index_a < len(aa):
        raise IndexError(f"index_a={index_a} out of range ({len(aa)} analyses)")
    if index_b is not None and not 0 <= index_b < len(bb):
        raise IndexError(f"index_b={index_b} out of range ({len(bb)} analyses)")
    ia = index_a if index_a is not None else (select_analysis(report_a, axis=axis) if aa else None)
    if index_b is not None or not bb:
        return ia, index_b
    a = aa[ia] if ia is not None else None
    ax = a.axis if a is not None else axis
    ga = a.group if a is not None else {}
    same = same or report_a is report_b

    def score(j: int) -> tuple:
        b = bb[j]
        gb = b.group
        differs = any(gb.get(k) != ga.get(k) for k in FIXED_SETTINGS)
        held = [k for k in SIZE_AXES if k != ax]
        return (
            b.axis == ax,                                         # same size axis
            (j != ia) if same else True,                          # not the very same analysis
            differs if same else True,                            # two settings of one sweep
            all(gb.get(k) == ga.get(k) for k in held),            # same held size
            gb.get("algorithm") == ga.get("algorithm"),           # e.g. pc mupc vs pc sp
            is_2d(b) == is_2d(a) if a else True,
            -j,
        )

    return ia, max(range(len(bb)), key=score)


def comparison(
    report_a: Any,
    report_b: Any,
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
    report_a, report_b = _reports(report_a, report_b)
    ia, ib = _pick_pair(report_a, report_b, axis, index_a, index_b)
    if ia is None and ib is None:
        return empty_figure(EMPTY_TEXT if not getattr(report_a, "n_runs", 0) and not getattr(report_b, "n_runs", 0)
                            else "nothing to compare yet", title=f"{la} vs {lb}")
    sides = []
    for rep, i, lab in ((report_a, ia, la), (report_b, ib, lb)):
        sides.append((rep, None if i is None else analyses_of(rep)[i], lab))
    metric_a = getattr(report_a, "metric", None) or getattr(report_b, "metric", None)
    metric_b = getattr(report_b, "metric", None) or metric_a
    scale = Scale(metric_a, getattr(report_a, "direction", None))
    zrange = finite_range(surface_zarrays([s[1] for s in sides if s[1] is not None], scale))
    panels = [(panel_sizes(a) if a is not None else []) for _, a, _ in sides]
    ncols = max(3, max(len(p) for p in panels))
    spans = [ncols // 3 + (1 if k < ncols % 3 else 0) for k in range(3)]
    row3: list[dict | None] = []
    for sp in spans:
        row3 += [{"colspan": sp}] + [None] * (sp - 1)
    titles = []
    for (_, a, lab), p in zip(sides, panels):
        t = [f"{esc(lab)}: {size_title(a.axis, s)}" for s, _, _ in p] if a is not None else [f"{esc(lab)}: no analysis"]
        titles += t + [""] * (ncols - len(t))
    titles += ["η* vs size", "β* vs size", "regret of transfer"]
    fig = make_subplots(rows=3, cols=ncols, specs=[[{}] * ncols, [{}] * ncols, row3],
                        subplot_titles=titles, vertical_spacing=0.12,
                        horizontal_spacing=min(0.06, 0.6 / ncols), row_heights=[0.34, 0.34, 0.32])
    legend = Legend()
    used: set[tuple[int, int]] = set()
    first = True
    for r, ((rep, a, lab), p) in enumerate(zip(sides, panels), start=1):
        if a is None:
            panel_note(fig, r, 1, f"{lab}: {no_analysis_text(rep)}")
            used.add((r, 1))
            continue
        first = draw_surface_row(fig, r, a, p, scale, zrange, legend, kind, first, used)
    hide_unused(fig, used, 2, ncols)
    c_eta, c_beta, c_reg = 1, 1 + spans[0], 1 + spans[0] + spans[1]
    all_sizes: list[Any] = []
    n_sides = sum(a is not None for _, a, _ in sides)
    for k, ((rep, a, lab), color) in enumerate(zip(sides, PAIR_COLORS)):
        if a is None:
            continue
        off = (k - 0.5) * 0.2 if n_sides == 2 else 0.0
        draw_shift(fig, a, eta_cell=(3, c_eta), beta_cell=(3, c_beta), regret_cell=(3, c_reg), color=color,
                    label=lab, tol=tolerances(rep), legend=legend, offset=off, bar_width=0.2)
        all_sizes += [e.size for e in a.sizes]
    ax_name = next((a.axis for _, a, _ in sides if a is not None), "")
    size_ticks(fig, all_sizes, [(3, c_eta), (3, c_beta), (3, c_reg)], ax_name)
    heads = []
    for _, a, lab in sides:
        if a is None:
            heads.append(f"{esc(lab)}: no analysis")
        else:
            v = str(a.verdict)
            heads.append(f"<b>{esc(lab)}</b> ({esc(group_title(a.group))} — {esc(a.axis)}): "
                         f"<span style='color:{verdict_color(v)}'><b>{esc(v)}</b></span>")
    sub = f"{esc(scale.label)}, one colour scale for both"
    if metric_a != metric_b:
        sub += f" — WARNING: metrics differ ({esc(metric_a)} vs {esc(metric_b)})"
    fig.update_layout(template=TEMPLATE, barmode="overlay",
                      meta={"kind": "comparison", "analyses": [ia, ib], "labels": [la, lb]})
    head_layout(fig, "<br>".join(heads) + f"<br><sup>{sub}</sup>", 1040)
    return fig


def _same_group(a: Analysis, b: Analysis) -> bool:
    return a.axis == b.axis and dict(a.group) == dict(b.group)


def comparison_pairs(report_a: Any, report_b: Any, same_sweep: bool = False) -> list[tuple[int, int]]:
    """(index in A, index in B) covering every analysis of both reports: A's analyses against the
    same group of B (else B's closest), then B's leftovers against their closest in A. Within one
    sweep (``same_sweep``) an analysis is paired with another setting, never with itself."""
    report_a, report_b = _reports(report_a, report_b)
    aa, bb = analyses_of(report_a), analyses_of(report_b)
    if not aa or not bb:
        return []
    same = same_sweep or report_a is report_b
    pairs: list[tuple[int, int]] = []
    for i, a in enumerate(aa):
        j = None if same else next((j for j, b in enumerate(bb) if _same_group(a, b)), None)
        if j is None:
            j = _pick_pair(report_a, report_b, None, i, None, same)[1]
        pairs.append((i, j))
    used_b = {j for _, j in pairs}
    for j in range(len(bb)):
        if j not in used_b:
            pairs.append((_pick_pair(report_b, report_a, None, j, None, same)[1], j))
    out: list[tuple[int, int]] = []
    for p in pairs:
        if p[0] is None or p[1] is None or p in out or (same and (p[1], p[0]) in out) or (same and p[0] == p[1]):
            continue
        out.append(p)
    return out


def compare_page(
    report_a: Any,
    report_b: Any,
    meta_a: Mapping[str, Any] | None,
    meta_b: Mapping[str, Any] | None,
    *,
    labels: Sequence[str] | None = None,
    choices: Sequence[Mapping[str, Any]] = (),
    plotly_url: str = DEFAULT_PLOTLY_URL,
    refresh_s: float | None = 5,
    picked: tuple[str | None, str | None] = (None, None),
) -> str:
    """Two sweeps side by side: one comparison figure per pair of analyses
    (:func:`comparison_pairs`), each side labelled by what tells it apart (its parameterisation,
    say; :func:`pair_labels`) with a warning when the pair differs in more than that (dataset,
    depth, ...), the verdicts of both, and a picker (``choices``: sweep metas) to compare other
    sweeps or switch the metric. Without sweeps (``meta_a`` and ``meta_b`` empty) it is the picker
    alone, preset to ``picked``."""
    ma, mb = meta_a or {}, meta_b or {}
    if not sid_of(ma) and not sid_of(mb):
        picker = compare_picker(choices, picked[0] or "", picked[1] or "") or (
            '<p class="muted">no sweeps yet: submit one from the <a href="/">index</a>.</p>')
        return document("compare sweeps", '<h1>Compare</h1><div class="card"><p>Pick two sweeps — or the same '
                        "sweep twice to compare its settings (e.g. μPC vs SP) with each other.</p></div>" + picker)
    la = (labels or [None, None])[0] or ma.get("name") or sid_of(ma) or "A"
    lb = (labels or [None, None])[1] or mb.get("name") or sid_of(mb) or "B"
    same = bool(sid_of(ma)) and sid_of(ma) == sid_of(mb)
    if same and la == lb:
        la, lb = f"{la} (A)", f"{lb} (B)"
    report_a, report_b = _reports(report_a, report_b)
    metric = metric_of(report_a)
    body = [compare_picker(choices, sid_of(ma), sid_of(mb), metric),
            '<div class="cols">', sweep_header(ma, f"A: {la}", refresh_s, active="compare", metric=metric),
            sweep_header(mb, f"B: {lb}", refresh_s, active="compare", metric=metric), "</div>"]
    pairs = comparison_pairs(report_a, report_b, same)
    aa, bb = analyses_of(report_a), analyses_of(report_b)
    if not pairs:
        body.append(figure_html(comparison(report_a, report_b, labels=(str(la), str(lb))), "compare"))
    else:
        toc = "".join(f'<li><a href="#pair-{k}">{esc_html(group_title(aa[i].group))} — {esc_html(aa[i].axis)}'
                      f' vs {esc_html(group_title(bb[j].group))} — {esc_html(bb[j].axis)}</a></li>'
                      for k, (i, j) in enumerate(pairs))
        body.append(f'<div class="card"><b>{len(pairs)} comparison(s)</b><ul>{toc}</ul></div>')
    for k, (i, j) in enumerate(pairs):
        body.append(f'<h2 id="pair-{k}">{esc_html(group_title(aa[i].group))} — {esc_html(aa[i].axis)}'
                    f' <span class="muted">vs</span> {esc_html(group_title(bb[j].group))} — '
                    f'{esc_html(bb[j].axis)}</h2>')
        pla, plb = pair_labels(aa[i], bb[j], str(la), str(lb), same)
        differ = pair_differences(aa[i], bb[j], ma, mb)
        if differ:
            body.append('<div class="card warn-box compare-warning"><b>Not like for like:</b> besides '
                        f"{esc_html(pla)} vs {esc_html(plb)}, the two sides differ in "
                        + "; ".join(f"{esc_html(k)} ({esc_html(x)} vs {esc_html(y)})" for k, x, y in differ)
                        + ". Differences in the optima may come from these too.</div>")
        fig = comparison(report_a, report_b, labels=(pla, plb), index_a=i, index_b=j)
        body.append(figure_html(fig, f"compare-{k}"))
    pa, pb = provisional_of(report_a, ma), provisional_of(report_b, mb)
    body.append('<div class="cols"><div>')
    body.append(f"<h3>{esc_html(la)}</h3><ul>" + "".join(verdict_line(a, None, pa) for a in aa) + "</ul>")
    body.append("</div><div>")
    body.append(f"<h3>{esc_html(lb)}</h3><ul>" + "".join(verdict_line(a, None, pb) for a in bb) + "</ul>")
    body.append("</div></div>")
    running = is_running(ma) or is_running(mb)
    return document(f"{la} vs {lb}", "".join(body), plotly_url=plotly_url,
                    refresh_s=refresh_s if running else None)


DISTINGUISHING = FIXED_SETTINGS  # the settings that tell two analyses apart: the report's fixed settings


def pair_labels(a: Analysis, b: Analysis, sweep_a: str, sweep_b: str, same: bool
                ) -> tuple[str, str]:
    """Labels for the two sides of one comparison: the settings that differ between the two
    analyses (e.g. "mupc" vs "sp"), prefixed with the sweep's name when the sweeps differ; the
    sweep names alone when the settings agree."""
    ga, gb = a.group, b.group
    keys = [k for k in DISTINGUISHING if str(ga.get(k)) != str(gb.get(k))]
    keys += [k for k in SIZE_AXES if k in ga and k in gb and str(ga.get(k)) != str(gb.get(k))]
    if not keys:
        return (f"{sweep_a} (A)", f"{sweep_b} (B)") if same or sweep_a == sweep_b else (sweep_a, sweep_b)

    def text(g: Mapping[str, Any]) -> str:
        return " ".join(size_title(k, g.get(k)) if k in SIZE_AXES else str(g.get(k)) for k in keys)
    la, lb = text(ga), text(gb)
    if not same and sweep_a != sweep_b:
        la, lb = f"{sweep_a}: {la}", f"{sweep_b}: {lb}"
    return la, lb


def pair_differences(a: Analysis, b: Analysis, meta_a: Mapping[str, Any] | None = None,
                     meta_b: Mapping[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(setting, A's value, B's value) for what differs between two compared analyses beyond the
    parameterisation / algorithm they are meant to compare: dataset, activation, the held size
    (depth of a width sweep, ...), the size axis itself, and the metric."""
    ga, gb = a.group, b.group
    out = []
    for k in ("dataset", "activation", *SIZE_AXES):
        if (k in ga or k in gb) and str(ga.get(k, "-")) != str(gb.get(k, "-")):
            out.append((k, str(ga.get(k, "-")), str(gb.get(k, "-"))))
    if a.axis != b.axis:
        out.append(("size axis", str(a.axis), str(b.axis)))
    sa = [e.size for e in a.sizes]
    sb = [e.size for e in b.sizes]
    if sa and sb and sa != sb and a.axis == b.axis:
        out.append((f"{a.axis}s", ", ".join(map(str, sa)), ", ".join(map(str, sb))))
    return out


def compare_picker(choices: Sequence[Mapping[str, Any]], a: str = "", b: str = "", metric: str | None = None,
                   action: str = "/compare") -> str:
    """A GET form choosing sweeps A and B (and the metric) for ``/compare``; the same sweep twice
    compares its settings (e.g. μPC vs SP) with each other."""
    ids = [sid_of(c) for c in choices if sid_of(c)]
    if not ids:
        return ""

    def options(selected: str) -> str:
        return "".join(f'<option value="{esc_html(sid_of(c))}"{" selected" if sid_of(c) == selected else ""}>'
                       f'{esc_html(c.get("name") or sid_of(c))} ({esc_html(sid_of(c))})</option>'
                       for c in choices if sid_of(c))
    a = a or ids[0]
    b = b or (ids[1] if len(ids) > 1 else ids[0])
    return (f'<form id="compare" class="card" method="get" action="{esc_html(action)}"><b>Compare</b> '
            f'<label>A <select name="a" id="compare-a">{options(a)}</select></label> '
            f'<label>B <select name="b" id="compare-b">{options(b)}</select></label> '
            f'{metric_picker(metric, submit=False)} <button type="submit">compare</button>'
            '<span class="muted"> — the same sweep twice compares its settings with each other</span></form>')
