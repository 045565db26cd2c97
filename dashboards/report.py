"""The report page (``/sweeps/{id}/report?format=html``): the optimum-shift report as HTML — per
analysis its verdict badge(s) and reasons, the per-size numbers and the warnings, then the plain-text
report — inside the sweep's tabs, so it links back to the dashboards."""

from __future__ import annotations

from typing import Any, Mapping


from .common import analyses_of, group_title, no_analysis_text, pct, size_symbol
from .html import document, esc_html, is_running, metric_of, sid_of, sweep_header
from .verdicts import (analysis_table, provisional_banner, provisional_of, reasons_html, regret_text, tolerances,
                       verdict_badge, verdict_line, views_html, warnings_html)


def report_page(
    report: Mapping[str, Any] | None,
    text: str | None = None,
    *,
    sweep_meta: Mapping[str, Any] | None = None,
    refresh_s: float | None = 5,
) -> str:
    """The optimum-shift report as HTML; ``text`` (e.g. :func:`mutransfer.report.format_report`)
    is shown verbatim at the end."""
    rep = report or {}
    meta = sweep_meta or {}
    body = []
    if meta:
        body.append(sweep_header(meta, "optimum-shift report", refresh_s, active="report", metric=metric_of(rep)))
    else:
        body.append("<h1>Optimum-shift report</h1>")
    metric = rep.get("metric", "-")
    direction = "lower" if rep.get("direction") == "min" else "higher"
    th = tolerances(rep)
    unit = th["regret_unit"]
    prov = provisional_of(rep, meta)
    if prov:
        body.append(provisional_banner(prov))
    steps = th.get("steps_tol")
    rule = (f"regret of the base optimum ≤ {regret_text(th.get('regret_tol'), unit)} and its grid argmin within "
            f"{steps} grid step{'s' if steps != 1 else ''} of the base's at every size, the "
            f"{pct(rep.get('ci_level', 0.95))} bootstrap CIs included, no optimum on the grid's edge"
            if steps is not None else
            f"regret ≤ {pct(th.get('regret_tol', 0.05))} and |drift| ≤ {th.get('drift_tol', 0.5)} octave/doubling "
            "at every size")
    body.append(
        f'<div class="card"><b>Metric:</b> {esc_html(metric)} ({direction} is better) &nbsp; '
        f'<b>runs:</b> {esc_html(rep.get("n_runs", 0))} &nbsp; <b>diverged runs:</b> '
        f'{esc_html(rep.get("diverged", "inf"))} &nbsp; <b>transfers when</b> {esc_html(rule)}.<br>'
        '<span class="muted">Regret = '
        + ("A(own optimum) − A(base optimum) in accuracy points" if unit != "relative"
           else "M(base optimum) / M(own optimum) − 1")
        + " at each size; Δlog2 in octaves (factor 2 in the lr); steps in grid steps of the sweep's grid.</span>"
        + "".join(f'<p class="muted">note: {esc_html(n)}</p>' for n in rep.get("notes") or []) + "</div>"
    )
    analyses = analyses_of(rep)
    if not analyses:
        body.append(f'<div class="card"><p>{esc_html(no_analysis_text(rep))}.</p></div>')
    else:
        body.append("<ul>" + "".join(verdict_line(a, f"a-{i}", prov) for i, a in enumerate(analyses)) + "</ul>")
    for i, a in enumerate(analyses):
        body.append(f'<h2 id="a-{i}">{esc_html(group_title(a.get("group")))} — {esc_html(a.get("axis"))} '
                    f"(base {esc_html(size_symbol(a.get('axis', '')))} = {esc_html(a.get('base_size'))})</h2>")
        body.append(f"<p>{verdict_badge(a.get('verdict'), prov)} {reasons_html(a)} "
                    f"{esc_html(a.get('verdict_text'))}</p>")
        body.append(analysis_table(a, th))
        body.append(views_html(a, th))
        body.append(warnings_html(a))
    if text:
        body.append(f"<h2>Plain text</h2><pre>{esc_html(text)}</pre>")
    title = f"{meta.get('name') or sid_of(meta) or 'sweep'} — report" if meta else "optimum-shift report"
    return document(title, "".join(body), refresh_s=refresh_s if is_running(meta) else None)
