"""The index page (``/``): every sweep with its status, progress, verdicts and links to its views,
a picker to compare two sweeps, and a form that submits a spec.

The form POSTs the textarea to the API (``application/json`` when it parses as JSON, else
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
    RUNNING_STATUSES, SWEEP_TABS, age, badge, document, esc_html, is_running, js, links_html, progress,
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
    name_html = (f'<a href="{esc_html(sweep_url(sid, "contours"))}">{esc_html(name)}</a>' if sid
                 else esc_html(name))
    cancel = ""
    if is_running(s) and sid:
        cancel = (f' <button class="secondary" data-cancel="{esc_html(submit_url.rstrip("/") + "/" + quote(sid, safe=""))}"'
                  f' onclick="cancelSweep(this)">cancel</button>')
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
            f'<td class="l"><code>{esc_html(sid)}</code></td><td class="l">{badge(s.get("status"))}{cancel}</td>'
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
    script = f"""
const SUBMIT_URL = {js(submit_url)};
const REFRESH_MS = {js(int((refresh_s or 0) * 1000))};
const RUNNING = {js(sorted(RUNNING_STATUSES))};
function authHeaders(h) {{
  const tok = document.getElementById('token').value.trim();
  if (tok) h['Authorization'] = 'Bearer ' + tok;
  return h;
}}
function esc(s) {{
  return String(s).replace(/[&<>"']/g, c => ({{'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}}[c]));
}}
// The line of the textarea holding a spec field such as 'training.epochs' or 'widths[0]' (1-based), or 0.
function lineOf(text, field) {{
  const keys = String(field || '').replace(/\\[\\d+\\]/g, '').split('.').filter(k => k && k !== 'body');
  const lines = text.split('\\n');
  let from = 0, found = 0;
  for (const k of keys) {{
    const re = new RegExp('(^|[\\\\s{{,])' + k.replace(/[^\\w-]/g, '') + '\\\\s*:');
    let hit = -1;
    for (let i = from; i < lines.length; i++) {{ if (re.test(lines[i])) {{ hit = i; break; }} }}
    if (hit < 0) break;
    found = hit + 1; from = hit;
  }}
  return found;
}}
function selectLine(n) {{
  const ta = document.getElementById('spec'), lines = ta.value.split('\\n');
  let start = 0;
  for (let i = 0; i < n - 1; i++) start += lines[i].length + 1;
  ta.focus(); ta.setSelectionRange(start, start + (lines[n - 1] || '').length);
}}
// Errors of a refused request as (field, message) pairs, whatever the shape of its JSON body.
function errorsOf(status, body) {{
  let d = body && body.detail !== undefined ? body.detail : body;
  if (!Array.isArray(d)) d = [{{msg: (d && (d.message || d.msg)) || (typeof d === 'string' ? d : JSON.stringify(d))}}];
  return d.map(e => {{
    if (typeof e !== 'object' || e === null) return {{field: '', msg: String(e)}};
    const loc = (e.loc || []).filter(p => p !== 'body');
    let field = e.field || loc.map((p, i) => typeof p === 'number' ? '[' + p + ']' : (i ? '.' : '') + p).join('');
    return {{field: field, msg: e.msg || e.message || JSON.stringify(e)}};
  }});
}}
function showErrors(status, body) {{
  const spec = document.getElementById('spec-errors'), tok = document.getElementById('token-errors');
  spec.innerHTML = ''; tok.innerHTML = '';
  const text = document.getElementById('spec').value;
  for (const e of errorsOf(status, body)) {{
    const auth = status === 401 || status === 403;
    const box = auth ? tok : spec;
    const line = auth ? 0 : lineOf(text, e.field);
    const where = line ? ' <a href="#spec" class="line" data-line="' + line + '">line ' + line + '</a>' : '';
    box.insertAdjacentHTML('beforeend', '<div class="field-error" data-field="' + esc(e.field) + '">' +
      (e.field ? '<code>' + esc(e.field) + '</code>: ' : '') + esc(e.msg) + where + '</div>');
  }}
}}
document.addEventListener('click', ev => {{
  const a = ev.target.closest('a.line');
  if (a) {{ ev.preventDefault(); selectLine(+a.dataset.line); }}
}});
async function submitSpec(ev) {{
  ev.preventDefault();
  const text = document.getElementById('spec').value;
  let ct = 'application/yaml';
  try {{ JSON.parse(text); ct = 'application/json'; }} catch (e) {{}}
  const out = document.getElementById('response');
  document.getElementById('spec-errors').innerHTML = ''; document.getElementById('token-errors').innerHTML = '';
  out.className = 'muted'; out.textContent = 'submitting…';
  try {{
    const r = await fetch(SUBMIT_URL, {{method: 'POST', headers: authHeaders({{'Content-Type': ct, 'Accept': 'application/json'}}), body: text}});
    const raw = await r.text();
    let body = null;
    try {{ body = JSON.parse(raw); }} catch (e) {{}}
    if (r.ok && body && body.id) {{
      out.className = 'ok'; out.textContent = r.status + ' ' + (body.status || '') + ': opening ' + body.id + '…';
      window.location.assign('/sweeps/' + encodeURIComponent(body.id) + '/contours');
      return false;
    }}
    out.textContent = r.status + ' ' + r.statusText + (body && body.message ? ': ' + body.message : '');
    out.className = r.ok ? 'ok' : 'err';
    if (!r.ok) showErrors(r.status, body !== null ? body : raw);
  }} catch (e) {{
    out.className = 'err'; out.textContent = 'request failed: ' + e;
  }}
  return false;
}}
async function cancelSweep(btn) {{
  if (!confirm('Cancel this sweep?')) return;
  const out = document.getElementById('response');
  try {{
    const r = await fetch(btn.dataset.cancel, {{method: 'DELETE', headers: authHeaders({{'Accept': 'application/json'}})}});
    out.textContent = 'cancel: ' + r.status + ' ' + r.statusText + '\\n' + await r.text();
    out.className = r.ok ? 'ok' : 'err';
  }} catch (e) {{ out.className = 'err'; out.textContent = 'cancel failed: ' + e; }}
  setTimeout(refreshTable, 500);
}}
function anyRunning() {{
  return Array.from(document.querySelectorAll('#sweeps-body tr')).some(tr => RUNNING.includes(tr.dataset.status));
}}
async function refreshTable() {{
  try {{
    const r = await fetch(window.location.href, {{headers: {{'Accept': 'text/html'}}, cache: 'no-store'}});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    const fresh = doc.getElementById('sweeps-body');
    if (fresh) document.getElementById('sweeps-body').replaceWith(fresh);
  }} catch (e) {{}}
}}
if (REFRESH_MS > 0) setInterval(() => {{ if (anyRunning()) refreshTable(); }}, REFRESH_MS);
"""
    body = "<h1>Sweeps</h1>" + table + picker + form
    return document("mutransfer — sweeps", body, script=script)
