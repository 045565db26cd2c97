// The index page (/): submit form (errors next to their fields, with the spec's line), cancel
// buttons, and a refresh of the sweeps table while any sweep runs. Settings come from the page's
// <script id="page-data" type="application/json"> (submit_url, refresh_ms, running).
'use strict';
const PAGE = JSON.parse(document.getElementById('page-data').textContent);
const SUBMIT_URL = PAGE.submit_url;
const REFRESH_MS = PAGE.refresh_ms;
const RUNNING = PAGE.running;
function authHeaders(h) {
  const tok = document.getElementById('token').value.trim();
  if (tok) h['Authorization'] = 'Bearer ' + tok;
  return h;
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
}
// The line of the textarea holding a spec field such as 'training.epochs' or 'widths[0]' (1-based), or 0.
function lineOf(text, field) {
  const keys = String(field || '').replace(/\[\d+\]/g, '').split('.').filter(k => k && k !== 'body');
  const lines = text.split('\n');
  let from = 0, found = 0;
  for (const k of keys) {
    const re = new RegExp('(^|[\\s{,])' + k.replace(/[^\w-]/g, '') + '\\s*:');
    let hit = -1;
    for (let i = from; i < lines.length; i++) { if (re.test(lines[i])) { hit = i; break; } }
    if (hit < 0) break;
    found = hit + 1; from = hit;
  }
  return found;
}
function selectLine(n) {
  const ta = document.getElementById('spec'), lines = ta.value.split('\n');
  let start = 0;
  for (let i = 0; i < n - 1; i++) start += lines[i].length + 1;
  ta.focus(); ta.setSelectionRange(start, start + (lines[n - 1] || '').length);
}
// Errors of a refused request as (field, message) pairs, whatever the shape of its JSON body.
function errorsOf(status, body) {
  let d = body && body.detail !== undefined ? body.detail : body;
  if (!Array.isArray(d)) d = [{msg: (d && (d.message || d.msg)) || (typeof d === 'string' ? d : JSON.stringify(d))}];
  return d.map(e => {
    if (typeof e !== 'object' || e === null) return {field: '', msg: String(e)};
    const loc = (e.loc || []).filter(p => p !== 'body');
    let field = e.field || loc.map((p, i) => typeof p === 'number' ? '[' + p + ']' : (i ? '.' : '') + p).join('');
    return {field: field, msg: e.msg || e.message || JSON.stringify(e)};
  });
}
function showErrors(status, body) {
  const spec = document.getElementById('spec-errors'), tok = document.getElementById('token-errors');
  spec.innerHTML = ''; tok.innerHTML = '';
  const text = document.getElementById('spec').value;
  for (const e of errorsOf(status, body)) {
    const auth = status === 401 || status === 403;
    const box = auth ? tok : spec;
    // A YAML syntax error names its line in the message; a field error is found by its key.
    const named = /\bline (\d+)\b/.exec(e.msg || '');
    const line = auth ? 0 : named ? +named[1] : lineOf(text, e.field);
    const where = line ? ' <a href="#spec" class="line" data-line="' + line + '">line ' + line + '</a>' : '';
    box.insertAdjacentHTML('beforeend', '<div class="field-error" data-field="' + esc(e.field) + '">' +
      (e.field ? '<code>' + esc(e.field) + '</code>: ' : '') + esc(e.msg) + where + '</div>');
  }
}
document.addEventListener('click', ev => {
  const a = ev.target.closest('a.line');
  if (a) { ev.preventDefault(); selectLine(+a.dataset.line); }
});
async function submitSpec(ev) {
  ev.preventDefault();
  const text = document.getElementById('spec').value;
  let ct = 'application/yaml';
  try { JSON.parse(text); ct = 'application/json'; } catch (e) {}
  const out = document.getElementById('response');
  document.getElementById('spec-errors').innerHTML = ''; document.getElementById('token-errors').innerHTML = '';
  out.className = 'muted'; out.textContent = 'submitting…';
  try {
    const r = await fetch(SUBMIT_URL, {method: 'POST', headers: authHeaders({'Content-Type': ct, 'Accept': 'application/json'}), body: text});
    const raw = await r.text();
    let body = null;
    try { body = JSON.parse(raw); } catch (e) {}
    if (r.ok && body && body.id) {
      out.className = 'ok'; out.textContent = r.status + ' ' + (body.status || '') + ': opening ' + body.id + '…';
      window.location.assign('/sweeps/' + encodeURIComponent(body.id) + '/contours');
      return false;
    }
    out.textContent = r.status + ' ' + r.statusText + (body && body.message ? ': ' + body.message : '');
    out.className = r.ok ? 'ok' : 'err';
    if (!r.ok) showErrors(r.status, body !== null ? body : raw);
  } catch (e) {
    out.className = 'err'; out.textContent = 'request failed: ' + e;
  }
  return false;
}
async function cancelSweep(btn) {
  if (!confirm('Cancel this sweep?')) return;
  const out = document.getElementById('response');
  try {
    const r = await fetch(btn.dataset.cancel, {method: 'DELETE', headers: authHeaders({'Accept': 'application/json'})});
    out.textContent = 'cancel: ' + r.status + ' ' + r.statusText + '\n' + await r.text();
    out.className = r.ok ? 'ok' : 'err';
  } catch (e) { out.className = 'err'; out.textContent = 'cancel failed: ' + e; }
  setTimeout(refreshTable, 500);
}
function anyRunning() {
  return Array.from(document.querySelectorAll('#sweeps-body tr')).some(tr => RUNNING.includes(tr.dataset.status));
}
async function refreshTable() {
  try {
    const r = await fetch(window.location.href, {headers: {'Accept': 'text/html'}, cache: 'no-store'});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    const fresh = doc.getElementById('sweeps-body');
    if (fresh) document.getElementById('sweeps-body').replaceWith(fresh);
  } catch (e) {}
}
if (REFRESH_MS > 0) setInterval(() => { if (anyRunning()) refreshTable(); }, REFRESH_MS);
