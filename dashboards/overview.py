"""The sweep overview page (``/sweeps/{id}`` in a browser; the same address answers JSON to any
other client): where a researcher lands from the index.

One screen says what the sweep found and where to go next: the verdict of every analysis with its
reasons (each linking to its contours), progress with each cell's status, attempts, notes and
errors, the driver's restarts and the sweep's notes, links to every view and data table, the exact
spec it ran (YAML), and the pandas one-liners that load this sweep's tables.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from .common import analyses_of, report_of
from .html import (
    SWEEP_TABS, badge, document, esc_html, is_running, links_html, progress, sid_of, sweep_header,
    sweep_links, sweep_url,
)
from .verdicts import provisional_banner, provisional_of, verdict_line


def _cells_table(meta: Mapping[str, Any]) -> str:
    cells = [c for c in meta.get("cells") or [] if isinstance(c, Mapping)]
    if not cells:
        return '<p class="muted">no cells recorded (results without a registry row)</p>'
    counts: dict[str, int] = {}
    for c in cells:
        counts[str(c.get("status"))] = counts.get(str(c.get("status")), 0) + 1
    head = " ".join(f"{badge(k)} {n}" for k, n in sorted(counts.items()))
    rows = []
    for c in cells:
        p = c.get("progress")
        pct = f"{100 * float(p):.0f}%" if isinstance(p, (int, float)) else "-"
        note = " ".join(str(x) for x in (c.get("note"), c.get("error")) if x)
        rows.append(f'<tr><td class="l"><code>{esc_html(c.get("cell_id") or c.get("part"))}</code></td>'
                    f'<td class="l">{badge(c.get("status"))}</td><td>{esc_html(c.get("runs"))}</td><td>{pct}</td>'
                    f'<td>{esc_html(c.get("attempts"))}</td><td class="l note">{esc_html(note)}</td></tr>')
    return (f"<p>{head}</p><details{' open' if len(cells) <= 12 else ''}><summary>{len(cells)} cells</summary>"
            '<table id="cells"><thead><tr><th class="l">cell</th><th class="l">status</th><th>runs</th>'
            '<th>progress</th><th>attempts</th><th class="l">note / error</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></details>")


def _restarts(meta: Mapping[str, Any]) -> str:
    n = int(meta.get("restarts") or 0)
    notes = [str(meta["note"])] if meta.get("note") else []
    retried = [c for c in meta.get("cells") or [] if isinstance(c, Mapping) and (c.get("attempts") or 0) > 1]
    if not n and not notes and not retried:
        return '<p class="muted" id="restarts">no restarts, no notes</p>'
    out = []
    if n:
        out.append(f'<p id="restarts" class="unsure"><b>The sweep\'s driver was restarted {n} time'
                   f'{"s" * (n != 1)}</b> (its embedded Ray stopped or the process died); finished cells were '
                   "kept and the others rerun.</p>")
    else:
        out.append('<p id="restarts" class="muted">no driver restarts</p>')
    if retried:
        out.append(f"<p>{len(retried)} cell(s) needed more than one attempt: "
                   + ", ".join(f"<code>{esc_html(c.get('cell_id') or c.get('part'))}</code> ×{c.get('attempts')}"
                               for c in retried[:12]) + "</p>")
    out += [f'<p class="note">{esc_html(x)}</p>' for x in notes]
    return "".join(out)


def pandas_snippets(sid: str, base_url: str = "http://127.0.0.1:8000") -> str:
    """Python lines that load this sweep's tables (over HTTP, and from the results root)."""
    b = base_url.rstrip("/")
    return "\n".join([
        "import pandas as pd",
        f'runs = pd.read_parquet("{b}/sweeps/{sid}/runs")      # one row per run',
        f'curves = pd.read_parquet("{b}/sweeps/{sid}/curves")  # one row per run per logged step, '
        "with the run's settings",
        f'report = pd.read_json("{b}/sweeps/{sid}/report?format=json", typ="series")  # optimum-shift report',
        "# or from the results root ($MUTRANSFER_RESULTS, default ./results), no server needed:",
        "from mutransfer.results import load",
        f'runs = load("{sid}"); curves = load("{sid}", table="curves")',
        'runs.groupby(["parametrization", "width", "weight_lr", "activity_lr"]).min_train_loss.mean()',
    ])


def overview_page(
    report: Any,
    sweep_meta: Mapping[str, Any] | None,
    *,
    spec: Mapping[str, Any] | None = None,
    base_url: str = "http://127.0.0.1:8000",
    refresh_s: float | None = 5,
) -> str:
    """The overview of one sweep (see the module docstring); ``spec``: the spec it ran (a plain
    mapping), ``base_url``: this server's address, for the pandas snippets."""
    report = report_of(report)
    meta = sweep_meta or {}
    sid = sid_of(meta)
    metric = (report.metric if report is not None else None) or meta.get("metric")
    body = [sweep_header(meta, "overview", refresh_s, active="overview", metric=metric)]
    prov = provisional_of(report, meta)
    if prov:
        body.append(provisional_banner(prov))
    analyses = analyses_of(report)
    if analyses:
        items = "".join(verdict_line(a, None, prov).replace(
            "<li>", f'<li><a class="view" href="{esc_html(sweep_url(sid, "contours", metric))}">contours</a> · ', 1)
            for a in analyses)
        body.append(f'<div class="card" id="verdicts"><h3>Verdicts ({esc_html(metric)})</h3><ul>{items}</ul>'
                    f'<p><a href="{esc_html(sweep_url(sid, "shift", metric))}">optimum shift and regret</a> · '
                    f'<a href="{esc_html(sweep_url(sid, "report", metric))}">full report</a></p></div>')
    else:
        notes = "".join(f"<li>{esc_html(n)}</li>" for n in (report.notes if report is not None else ()))
        body.append('<div class="card" id="verdicts"><h3>Verdicts</h3><p class="muted">no verdict yet: the '
                    "report needs finished runs at two or more sizes.</p>" + (f"<ul>{notes}</ul>" if notes else "")
                    + "</div>")
    body.append(f'<div class="card" id="progress"><h3>Progress</h3><p>{badge(meta.get("status"))} {progress(meta)}'
                + (f' <span class="muted">ETA {esc_html(round(meta["eta_s"]))} s</span>' if meta.get("eta_s") else "")
                + "</p>" + _restarts(meta) + _cells_table(meta) + "</div>")
    views = "".join(f'<a href="{esc_html(sweep_url(sid, key, metric))}" data-view="{key}">{esc_html(label)}</a>'
                    for key, (label, _, _) in SWEEP_TABS.items() if key != "overview")
    body.append(f'<div class="card" id="views"><h3>Views and data</h3><nav class="links">{views}</nav>'
                f"{links_html(sweep_links(meta))}</div>")
    if spec:
        text = yaml.safe_dump(dict(spec), sort_keys=False, default_flow_style=None, width=100)
        body.append(f'<div class="card" id="spec"><h3>Spec</h3><p class="muted">exactly as it ran; resubmit it '
                    f'from the index form or with <code>mutransfer run spec.yaml</code></p>'
                    f"<pre>{esc_html(text)}</pre></div>")
    body.append(f'<div class="card" id="pandas"><h3>In pandas</h3><pre>{esc_html(pandas_snippets(sid, base_url))}'
                "</pre></div>")
    name = meta.get("name") or sid or "sweep"
    return document(f"{name} — overview", "".join(body), refresh_s=refresh_s if is_running(meta) else None,
                    plotly_url=None)

