"""The index page (``/``): every sweep with its status, progress, verdicts and links to its views,
a picker to compare two sweeps, and a form that submits a spec.

The page's script is the static file ``dashboards/static/index.js``. The form POSTs the textarea to the API (``application/json`` when it parses as JSON, else
``application/yaml``), with ``Authorization: Bearer <token>`` when a token is given. On success it
goes to the new sweep's page; on a refusal it lists each error next to the field it names (the spec
textarea, with the line of the offending key, or the token field for a 401). While any sweep is
queued/running, the table (only) refreshes every ``refresh_s`` seconds, so a spec being typed in
the form is never lost.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import quote

from .compare import compare_picker
from .html import (
    RUNNING_STATUSES, SWEEP_TABS, age, badge, document, esc_html, is_running, links_html, overview_url, progress,
    sid_of, status_of, sweep_links, sweep_url, when,
)
from .verdicts import verdict_summary

EXAMPLE_SPEC = """\
name: my-sweep
algorithms: [pc]
parametrizations: [mupc, sp]
architecture: {kind: residual_mlp, activation: tanh}
widths: [32, 64, 128]
depths: [4]
weight_lrs: [1.0e-3, 1.0e-2, 1.0e-1]
activity_lrs: [1.0e-1, 1.0, 1.0e+1]
seeds: 2
dataset: {name: fashion_mnist, train_examples: 6400, test_examples: 1000}
training: {epochs: 1, batch_size: 64}
"""


def _views(sid: str) -> str:
    return '<nav class="links">' + "".join(
        f'<a href="{esc_html(sweep_url(sid, key))}" data-view="{key}">{esc_html(label)}</a>'
        for key, (label, _, _) in SWEEP_TABS.items()) + "</nav>"


def _row(s: Mapping[str, Any], report: Mapping[str, Any] | None, submit_url: str) -> str:
    sid = sid_of(s)
    name = s.get("name") or sid
    name_html = (f'<a class="overview" href="{esc_html(overview_url(sid))}">{esc_html(name)}</a>' if sid
                 else esc_html(name))
    cancel = ""
    if is_running(s) and sid:
        cancel = (f' <button class="secondary" data-cancel="{esc_html(submit_url.rstrip("/") + "/" + quote(sid, safe=""))}"'
                  f' onclick="cancelSweep(this)">cancel</button>')
    n = s.get("restarts") or 0
    restarts = (f' <span class="badge restarted" title="its driver (and embedded Ray) stopped and was relaunched">'
                f"restarted {int(n)}×</span>") if isinstance(n, (int, float)) and n > 0 else ""
    desc = f'<div class="muted">{esc_html(s.get("description"))}</div>' if s.get("description") else ""
    err = ""
    if s.get("error"):
        first = str(s.get("error")).strip().splitlines()[0] if str(s.get("error")).strip() else ""
        err = (f'<details class="bad"><summary>{esc_html(first[:160])}</summary>'
               f'<pre class="err">{esc_html(s.get("error"))}</pre></details>')
    views = _views(sid) if sid else ""
    data = links_html(sweep_links(s)) if s.get("links") else ""
    return (f'<tr data-status="{esc_html(status_of(s))}" data-id="{esc_html(sid)}">'
            f'<td class="l">{name_html}{desc}{err}</td>'
            f'<td class="l"><code>{esc_html(sid)}</code></td><td class="l">{badge(s.get("status"))}{restarts}{cancel}</td>'
            f'<td class="l">{progress(s)}</td><td class="l verdicts">{verdict_summary(report, s)}</td>'
            f'<td title="{when(s.get("created_at"))}">{esc_html(age(s.get("created_at")))}</td>'
            f'<td class="l">{views}{data}</td></tr>')


def index_page(
    sweeps: Iterable[Mapping[str, Any]] | None,
    *,
    reports: Mapping[str, Mapping[str, Any]] | None = None,
    submit_url: str = "/sweeps",
    example_spec: str = EXAMPLE_SPEC,
    refresh_s: float | None = 5,
) -> str:
    """The sweep list and the submit form; ``reports``: sweep id -> its optimum-shift report (for
    the verdicts column; sweeps without one show "-")."""
    sweeps = list(sweeps or [])
    rows = [_row(s, (reports or {}).get(sid_of(s)), submit_url) for s in sweeps]
    if not rows:
        rows.append('<tr><td class="l" colspan="7"><span class="muted">no sweeps yet — submit one below'
                    "</span></td></tr>")
    table = ('<table id="sweeps"><thead><tr><th class="l">sweep</th><th class="l">id</th><th class="l">status</th>'
             '<th class="l">progress</th><th class="l">verdicts</th><th>created</th><th class="l">views</th></tr>'
             f'</thead><tbody id="sweeps-body">{"".join(rows)}</tbody></table>')
    picker = compare_picker(sweeps)
    form = f"""
<h2>Submit a sweep</h2>
<form id="submit-form" class="card" onsubmit="return submitSpec(event)">
  <p class="muted">Spec as YAML or JSON (see the README for every field). POSTed to
  <code>{esc_html(submit_url)}</code>; on success this page opens the new sweep.</p>
  <label for="spec"><b>spec</b></label>
  <textarea id="spec" name="spec" spellcheck="false" aria-describedby="spec-errors">{esc_html(example_spec)}</textarea>
  <div id="spec-errors" class="field-errors" role="alert"></div>
  <p><label>Bearer token (optional): <input type="password" id="token" name="token" autocomplete="off"
     aria-describedby="token-errors"></label> <button type="submit" id="submit">Submit</button></p>
  <div id="token-errors" class="field-errors" role="alert"></div>
  <pre id="response" class="muted">no request sent yet</pre>
</form>"""
    data = {"submit_url": submit_url, "refresh_ms": int((refresh_s or 0) * 1000),
            "running": sorted(RUNNING_STATUSES)}
    body = "<h1>Sweeps</h1>" + table + picker + form
    return document("mutransfer — sweeps", body, data=data, scripts=("index.js",))
