"""The report page (``/sweeps/{id}/report?format=html``): the optimum-shift report as HTML — per
analysis its verdict badge(s) and reasons, the per-size numbers and the warnings, then the plain-text
report — inside the sweep's tabs, so it links back to the dashboards."""

from __future__ import annotations

from typing import Any, Mapping


from .common import analyses_of, group_title, no_analysis_text, pct, report_of, size_symbol
from .html import document, esc_html, is_running, metric_of, sid_of, sweep_header
from .verdicts import (analysis_table, provisional_banner, provisional_of, reasons_html, regret_text, tolerances,
                       verdict_badge, verdict_line, views_html, warnings_html)


def report_page(
    report: Any,
    text: str | None = None,
    *,
    sweep_meta: Mapping[str, Any] | None = None,
    refresh_s: float | None = 5,
) -> str:
    """The optimum-shift report (typed, or its JSON) as HTML; ``text`` (e.g.
    :func:`mutransfer.report.format_report`) is shown verbatim at the end."""
    rep = report_of(report)
    meta = sweep_meta or {}
    body = []
    if meta:
        body.append(sweep_header(meta, "optimum-shift report", refresh_s, active="report", metric=metric_of(rep)))
    else:
        body.append("<h1>Optimum-shift report</h1>")
    th = tolerances(rep)
    unit = th.regret_unit
    prov = provisional_of(rep, meta)
    if prov:
        body.append(provisional_banner(prov))
    if rep is not None:
        steps = th.steps_tol
        rule = (f"regret of the base optimum ≤ {regret_text(th.regret_tol, unit)} and its grid argmin within "
                f"{steps} grid step{'s' if steps != 1 else ''} of the base's at every size, the "
                f"{pct(rep.ci_level)} bootstrap CIs included, no optimum on the grid's edge")
        direction = "lower" if rep.direction == "min" else "higher"
        body.append(
            f'<div class="card"><b>Metric:</b> {esc_html(rep.metric)} ({direction} is better) &nbsp; '
            f'<b>runs:</b> {esc_html(rep.n_runs)} &nbsp; <b>diverged runs:</b> '
            f'{esc_html(rep.diverged)} &nbsp; <b>transfers when</b> {esc_html(rule)}.<br>'
            '<span class="muted">Regret = '
            + ("A(own optimum) − A(base optimum) in accuracy points" if unit != "relative"
               else "M(base optimum) / M(own optimum) − 1")
            + " at each size; Δlog2 in octaves (factor 2 in the lr); steps in grid steps of the sweep's grid.</span>"
            + "".join(f'<p class="muted">note: {esc_html(n)}</p>' for n in rep.notes) + "</div>"
        )
    analyses = analyses_of(rep)
    if not analyses:
        body.append(f'<div class="card"><p>{esc_html(no_analysis_text(rep))}.</p></div>')
    else:
        body.append("<ul>" + "".join(verdict_line(a, f"a-{i}", prov) for i, a in enumerate(analyses)) + "</ul>")
    for i, a in enumerate(analyses):
        body.append(f'<h2 id="a-{i}">{esc_html(group_title(a.group))} — {esc_html(a.axis)} '
                    f"(base {esc_html(size_symbol(a.axis))} = {esc_html(a.base_size)})</h2>")
        body.append(f"<p>{verdict_badge(a.verdict, prov)} {reasons_html(a)} {esc_html(a.verdict_text)}</p>")
        body.append(analysis_table(a, th))
        body.append(views_html(a, th))
        body.append(warnings_html(a))
    if text:
        body.append(f"<h2>Plain text</h2><pre>{esc_html(text)}</pre>")
    title = f"{meta.get('name') or sid_of(meta) or 'sweep'} — report" if meta else "optimum-shift report"
    return document(title, "".join(body), refresh_s=refresh_s if is_running(meta) else None)
