"""The runs table page (``/sweeps/{id}/table``): every run with its settings, status and metrics,
sorted, filtered and paged in the browser (no server round trip per click), each run linking to its
curves (``/sweeps/{id}/runs/{run_id}``).

The page embeds the table once, column-wise (:func:`table_payload`): strings dictionary-encoded,
numbers rounded to 5 significant digits, run ids stored as their suffix after the cell id when they
have that form, and columns that are constant over the sweep moved to a one-line summary. The
script renders one page of rows at a time (100 by default), so 10k+ runs stay fast to sort, filter
and scroll; the view (sort, filters, page) lives in the URL's hash, so a link or the back button
restores it.

Filters, per column: text matches a substring (``mupc``), ``a|b`` either, ``!x`` anything but;
numbers take ``>0.1``, ``<=32``, ``=128``, ``1e-3..1e-1`` (a closed range) or a plain value.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from mutransfer.report import METRICS

from .curves import HIDDEN_COLUMNS
from .html import DEFAULT_METRIC, document, esc_html, js, run_url, sid_of, sweep_header

# Column order: settings first, then status and results; others (new schema columns) at the end.
ORDER = ("run_id", "algorithm", "parametrization", "activation", "dataset", "width", "depth", "weight_lr",
         "activity_lr", "seed", "status", "min_train_loss", "final_train_loss", "best_test_acc", "final_test_acc",
         "steps", "diverged_step", "wall_s", "cell_id")
LR_COLUMNS = ("weight_lr", "activity_lr")
PAGE_SIZES = (50, 100, 500)


def _round(v: float) -> float | None:
    if not math.isfinite(v):
        return None
    return float(f"{v:.5g}")


def _column(name: str, s: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_bool_dtype(s):
        s = s.astype(str)
    if pd.api.types.is_numeric_dtype(s):
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        ints = pd.api.types.is_integer_dtype(s)
        vals = [None if not math.isfinite(x) else (int(x) if ints else _round(x)) for x in v]
        kind = "lr" if name in LR_COLUMNS else ("int" if ints else "num")
        return {"name": name, "kind": kind, "values": vals}
    codes, uniques = pd.factorize(s.astype(object).where(s.notna(), ""), sort=True)
    return {"name": name, "kind": "str", "dict": [str(u) for u in uniques], "codes": codes.tolist()}


def table_payload(runs: pd.DataFrame | None, metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """The runs table as compact JSON for the page's script (see the module docstring)."""
    if runs is None or len(runs) == 0:
        return {"n": 0, "columns": [], "fixed": {}, "metric": metric}
    df = runs.drop(columns=[c for c in HIDDEN_COLUMNS if c in runs.columns]).reset_index(drop=True)
    cols = [c for c in ORDER if c in df.columns] + [c for c in df.columns if c not in ORDER]
    fixed: dict[str, Any] = {}
    shown = []
    for c in cols:
        if c in ("run_id", "status") or c in METRICS:
            shown.append(c)
            continue
        vals = df[c]
        if vals.nunique(dropna=False) <= 1 and len(df) > 1:
            v = vals.iloc[0]
            fixed[c] = None if (isinstance(v, float) and not math.isfinite(v)) else (
                v.item() if hasattr(v, "item") else v)
        else:
            shown.append(c)
    columns = []
    for c in shown:
        if c == "run_id":
            rid = df["run_id"].astype(str)
            cell = df["cell_id"].astype(str) if "cell_id" in df.columns else pd.Series("", index=df.index)
            prefixed = np.array([r.startswith(k + "-") and k != "" for r, k in zip(rid, cell)])
            if "cell_id" in df.columns and prefixed.all():
                codes, uniques = pd.factorize(cell, sort=True)
                columns.append({"name": "run_id", "kind": "run", "cells": [str(u) for u in uniques],
                                "cell_codes": codes.tolist(),
                                "suffix": [r[len(k) + 1:] for r, k in zip(rid, cell)]})
            else:
                columns.append({"name": "run_id", "kind": "run", "ids": rid.tolist()})
            continue
        columns.append(_column(c, df[c]))
    return {"n": int(len(df)), "columns": columns, "fixed": fixed, "metric": metric}


def runs_table_page(
    runs: pd.DataFrame | None,
    sweep_meta: Mapping[str, Any] | None,
    *,
    metric: str = DEFAULT_METRIC,
    page_size: int = 100,
) -> str:
    """The runs table of a sweep (see the module docstring); ``metric`` is highlighted and is the
    default sort (best first)."""
    meta = sweep_meta or {}
    sid = sid_of(meta)
    metric = metric if metric in METRICS else DEFAULT_METRIC
    payload = table_payload(runs, metric)
    direction = METRICS[metric].direction
    fixed = payload["fixed"]
    fixed_html = ("<p class=\"muted\" id=\"fixed\">same for every run: "
                  + ", ".join(f"{esc_html(k)} = <b>{esc_html(v)}</b>" for k, v in fixed.items()) + "</p>") if fixed else ""
    sizes = "".join(f'<option value="{n}"{" selected" if n == page_size else ""}>{n}</option>' for n in PAGE_SIZES)
    body = [sweep_header(meta, "runs table", None, active="table", metric=metric), f"""
<div class="card" id="table-tools">
  <b id="count">{payload['n']} runs</b> {fixed_html}
  <div class="tools">
    <input type="search" id="q" placeholder="search run id / any text" aria-label="search">
    <span id="status-chips"></span>
    <button type="button" class="secondary" id="clear">clear filters</button>
    <button type="button" class="secondary" id="csv">download CSV (filtered)</button>
    <button type="button" id="plot-selected" disabled>plot selected</button>
    <label>rows per page <select id="page-size">{sizes}</select></label>
  </div>
  <p class="muted">Click a header to sort (again: reverse). Filters: text <code>mupc</code>, <code>a|b</code>,
  <code>!x</code>; numbers <code>&gt;0.1</code>, <code>&lt;=32</code>, <code>=128</code>, <code>1e-3..1e-1</code>.</p>
</div>
<div class="card" style="overflow-x:auto"><table id="runs"><thead></thead><tbody></tbody></table>
<div class="pager"><button type="button" class="secondary" id="first">«</button>
<button type="button" class="secondary" id="prev">‹ prev</button> <span id="pageinfo"></span>
<button type="button" class="secondary" id="next">next ›</button>
<button type="button" class="secondary" id="last">»</button></div></div>
"""]
    style = """
<style>
#runs th { cursor: pointer; user-select: none; } #runs th.sorted { color: var(--accent); }
#runs td, #runs th { white-space: nowrap; }
#runs th.metric, #runs td.metric { background: #f4f8ff; }
#runs tr.filters th { cursor: default; background: #fff; padding: 2px 4px; }
#runs tr.filters input { width: 100%; min-width: 60px; padding: 2px 4px; font-size: 12px; }
#runs td.bad { color: var(--bad); }
.tools { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.tools input[type=search] { width: 280px; }
.chip { border: 1px solid var(--line); border-radius: 12px; padding: 1px 10px; background: #fff; cursor: pointer;
        font-size: 12px; color: var(--fg); }
.chip.on { background: var(--accent); color: #fff; border-color: var(--accent); }
.pager { margin-top: 8px; display: flex; gap: 6px; align-items: center; }
</style>"""
    script = f"""
const T = {js(payload)};
const SWEEP = {js(sid)};
const RUN_BASE = {js(run_url(sid, "") if sid else "")};
const METRIC = {js(metric)}, METRIC_DIR = {js(direction)};
""" + TABLE_JS
    return document(f"{meta.get('name') or sid or 'sweep'} — runs table", style + "".join(body), script=script)


TABLE_JS = r"""
(function () {
  const t0 = performance.now();
  const N = T.n, cols = T.columns;
  // Decode the columns once: every cell value by column index; strings stay codes + dictionary.
  const runCol = cols.find(c => c.kind === 'run');
  const runIds = !runCol ? [] : runCol.ids ? runCol.ids :
    runCol.suffix.map((s, i) => runCol.cells[runCol.cell_codes[i]] + '-' + s);
  const view = {sort: null, dir: 1, filters: {}, q: '', page: 0, size: +document.getElementById('page-size').value,
                status: []};
  const selected = new Set();
  const lrFmt = v => { if (v === null) return '–'; const [m, e] = v.toExponential(2).split('e');
    return m.replace(/\.?0+$/, '') + 'e' + (+e); };
  const numFmt = v => v === null ? '–' : (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)) ?
    v.toExponential(3) : String(+v.toPrecision(4));
  function text(c, i) {
    if (c.kind === 'run') return runIds[i];
    if (c.kind === 'str') return c.dict[c.codes[i]];
    const v = c.values[i];
    return c.kind === 'lr' ? lrFmt(v) : c.kind === 'int' ? (v === null ? '–' : String(v)) : numFmt(v);
  }
  function raw(c, i) { return c.kind === 'run' ? runIds[i] : c.kind === 'str' ? c.dict[c.codes[i]] : c.values[i]; }
  const statusCol = cols.findIndex(c => c.name === 'status');

  // ---- filters: one predicate per column, compiled when its input changes
  function numPred(s) {
    s = s.trim(); let m;
    if ((m = s.match(/^(-?[\d.e+-]+)\s*\.\.\s*(-?[\d.e+-]+)$/i))) { const a = +m[1], b = +m[2];
      return v => v !== null && v >= a * (1 - 1e-9) && v <= b * (1 + 1e-9); }
    if ((m = s.match(/^(<=|>=|<|>|=|!=)\s*(-?[\d.e+-]+)$/i))) { const x = +m[2], op = m[1];
      return v => v !== null && (op === '<' ? v < x : op === '>' ? v > x : op === '<=' ? v <= x * (1 + 1e-9) :
        op === '>=' ? v >= x * (1 - 1e-9) : op === '!=' ? Math.abs(v - x) > 1e-9 * Math.abs(x) :
        Math.abs(v - x) <= 1e-9 * Math.max(1, Math.abs(x))); }
    if (!isNaN(+s) && s !== '') { const x = +s; return v => v !== null && Math.abs(v - x) <= 1e-9 * Math.max(1, Math.abs(x)); }
    return null;
  }
  function strPred(s) {
    s = s.trim().toLowerCase(); const neg = s.startsWith('!'); if (neg) s = s.slice(1);
    const alts = s.split('|').map(x => x.trim()).filter(Boolean);
    if (!alts.length) return null;
    return v => { const l = String(v).toLowerCase(); const hit = alts.some(a => l.includes(a)); return neg ? !hit : hit; };
  }
  function predicates() {
    const out = [];
    cols.forEach((c, j) => {
      const f = (view.filters[c.name] || '').trim(); if (!f) return;
      if (c.kind === 'str' || c.kind === 'run') {
        const p = strPred(f); if (!p) return;
        if (c.kind === 'str') { const ok = c.dict.map(p); out.push(i => ok[c.codes[i]]); }
        else out.push(i => p(runIds[i]));
      } else {
        const p = numPred(f);  // an unparsable number filter matches nothing
        out.push(p ? (i => p(c.values[i])) : (() => false));
      }
    });
    if (view.status.length && statusCol >= 0) {
      const c = cols[statusCol]; const ok = c.dict.map(s => view.status.includes(s));
      out.push(i => ok[c.codes[i]]);
    }
    if (view.q.trim()) {
      const q = view.q.trim().toLowerCase();
      const strs = cols.filter(c => c.kind === 'str').map(c => ({c, ok: c.dict.map(d => d.toLowerCase().includes(q))}));
      out.push(i => runIds.length && runIds[i].toLowerCase().includes(q) || strs.some(s => s.ok[s.c.codes[i]]));
    }
    return out;
  }
  let rows = null;  // indices after filter + sort
  function compute() {
    const preds = predicates();
    const idx = [];
    for (let i = 0; i < N; i++) { let ok = true; for (const p of preds) { if (!p(i)) { ok = false; break; } } if (ok) idx.push(i); }
    if (view.sort !== null) {
      const c = cols.find(x => x.name === view.sort), d = view.dir;
      if (c) {
        if (c.kind === 'str') { const rank = c.dict.map((_, k) => k); idx.sort((a, b) => d * (rank[c.codes[a]] - rank[c.codes[b]]) || a - b); }
        else if (c.kind === 'run') idx.sort((a, b) => d * (runIds[a] < runIds[b] ? -1 : runIds[a] > runIds[b] ? 1 : 0));
        else { const v = c.values; idx.sort((a, b) => { const x = v[a], y = v[b];
          if (x === null || y === null) return (x === null) - (y === null) || a - b;  // missing last
          return d * (x - y) || a - b; }); }
      }
    }
    rows = idx;
  }
  // ---- rendering
  const thead = document.querySelector('#runs thead'), tbody = document.querySelector('#runs tbody');
  function esc(s) { return String(s).replace(/[&<>"']/g, ch => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[ch])); }
  function header() {
    const names = ['<th class="l"><input type="checkbox" id="select-page" title="select this page"></th>']
      .concat(cols.map(c => '<th data-col="' + esc(c.name) + '" class="' + (c.kind === 'str' || c.kind === 'run' ? 'l' : '') +
        (c.name === METRIC ? ' metric' : '') + '">' + esc(c.name) + '<span class="arrow"></span></th>'));
    const filt = ['<th></th>'].concat(cols.map(c => '<th><input data-filter="' + esc(c.name) + '" placeholder="' +
      (c.kind === 'str' || c.kind === 'run' ? 'text' : '>, <, a..b') + '" aria-label="filter ' + esc(c.name) + '"></th>'));
    thead.innerHTML = '<tr class="names">' + names.join('') + '</tr><tr class="filters">' + filt.join('') + '</tr>';
  }
  function render() {
    const pages = Math.max(1, Math.ceil(rows.length / view.size));
    view.page = Math.min(Math.max(0, view.page), pages - 1);
    const start = view.page * view.size, end = Math.min(rows.length, start + view.size);
    const html = [];
    for (let k = start; k < end; k++) {
      const i = rows[k];
      let tr = '<tr data-row="' + i + '"><td class="l"><input type="checkbox" data-sel="' + i + '"' + (selected.has(i) ? ' checked' : '') + '></td>';
      for (const c of cols) {
        const s = text(c, i);
        if (c.kind === 'run') tr += '<td class="l"><a class="run" href="' + esc(RUN_BASE + encodeURIComponent(s)) + '">' + esc(s) + '</a></td>';
        else if (c.name === 'status') tr += '<td class="l"><span class="badge ' + esc(s) + '">' + esc(s) + '</span></td>';
        else tr += '<td class="' + (c.kind === 'str' ? 'l' : '') + (c.name === METRIC ? ' metric' : '') + '">' + esc(s) + '</td>';
      }
      html.push(tr + '</tr>');
    }
    tbody.innerHTML = html.join('') || '<tr><td class="l" colspan="' + (cols.length + 1) + '"><span class="muted">no run matches</span></td></tr>';
    document.getElementById('count').textContent = rows.length === N ? N + ' runs' :
      rows.length + ' of ' + N + ' runs match';
    document.getElementById('pageinfo').textContent = rows.length ? (start + 1) + '–' + end + ' of ' + rows.length +
      ' (page ' + (view.page + 1) + ' of ' + pages + ')' : '';
    thead.querySelectorAll('th[data-col]').forEach(th => {
      const on = th.dataset.col === view.sort;
      th.classList.toggle('sorted', on);
      th.querySelector('.arrow').textContent = on ? (view.dir > 0 ? ' ▲' : ' ▼') : '';
    });
    document.getElementById('plot-selected').disabled = selected.size === 0;
    document.getElementById('plot-selected').textContent = 'plot selected (' + selected.size + ')';
    saveHash();
  }
  function update(recompute) { if (recompute) compute(); render(); }
  // ---- state in the URL hash
  function saveHash() {
    const s = {};
    if (view.sort !== null) s.sort = (view.dir < 0 ? '-' : '') + view.sort;
    for (const [k, v] of Object.entries(view.filters)) if (v) s['f.' + k] = v;
    if (view.q) s.q = view.q; if (view.status.length) s.status = view.status.join('|');
    if (view.page) s.page = view.page + 1; if (view.size !== 100) s.size = view.size;
    const h = new URLSearchParams(s).toString();
    history.replaceState(null, '', h ? '#' + h : location.pathname + location.search);
  }
  function loadHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    for (const [k, v] of p) {
      if (k === 'sort') { view.dir = v.startsWith('-') ? -1 : 1; view.sort = v.replace(/^-/, ''); }
      else if (k.startsWith('f.')) view.filters[k.slice(2)] = v;
      else if (k === 'q') view.q = v; else if (k === 'status') view.status = v.split('|');
      else if (k === 'page') view.page = (+v || 1) - 1; else if (k === 'size') view.size = +v || 100;
    }
  }
  // ---- wiring
  header();
  const hasMetric = cols.some(c => c.name === METRIC);
  if (hasMetric) { view.sort = METRIC; view.dir = METRIC_DIR === 'max' ? -1 : 1; }
  loadHash();
  thead.querySelectorAll('input[data-filter]').forEach(inp => { inp.value = view.filters[inp.dataset.filter] || ''; });
  document.getElementById('q').value = view.q;
  document.getElementById('page-size').value = String(view.size);
  if (statusCol >= 0) {
    const c = cols[statusCol], counts = c.dict.map(() => 0);
    for (const k of c.codes) counts[k]++;
    document.getElementById('status-chips').innerHTML = c.dict.map((s, k) => '<button type="button" class="chip' +
      (view.status.includes(s) ? ' on' : '') + '" data-status="' + esc(s) + '">' + esc(s) + ' ' + counts[k] + '</button>').join(' ');
  }
  let timer = null;
  function later(fn) { clearTimeout(timer); timer = setTimeout(fn, 120); }
  thead.addEventListener('click', ev => {
    const th = ev.target.closest('th[data-col]'); if (!th) return;
    if (view.sort === th.dataset.col) view.dir = -view.dir; else { view.sort = th.dataset.col; view.dir = 1; }
    view.page = 0; update(true);
  });
  thead.addEventListener('input', ev => {
    const inp = ev.target.closest('input[data-filter]'); if (!inp) return;
    view.filters[inp.dataset.filter] = inp.value; view.page = 0; later(() => update(true));
  });
  thead.addEventListener('change', ev => {
    if (ev.target.id !== 'select-page') return;
    const start = view.page * view.size;
    for (const i of rows.slice(start, start + view.size)) ev.target.checked ? selected.add(i) : selected.delete(i);
    render();
  });
  tbody.addEventListener('change', ev => {
    const cb = ev.target.closest('input[data-sel]'); if (!cb) return;
    cb.checked ? selected.add(+cb.dataset.sel) : selected.delete(+cb.dataset.sel); render();
  });
  document.getElementById('q').addEventListener('input', ev => { view.q = ev.target.value; view.page = 0; later(() => update(true)); });
  document.getElementById('status-chips').addEventListener('click', ev => {
    const b = ev.target.closest('[data-status]'); if (!b) return;
    const s = b.dataset.status, k = view.status.indexOf(s);
    k >= 0 ? view.status.splice(k, 1) : view.status.push(s); b.classList.toggle('on', k < 0);
    view.page = 0; update(true);
  });
  document.getElementById('clear').addEventListener('click', () => {
    view.filters = {}; view.q = ''; view.status = []; view.page = 0;
    thead.querySelectorAll('input[data-filter]').forEach(i => { i.value = ''; });
    document.getElementById('q').value = '';
    document.querySelectorAll('#status-chips .chip').forEach(b => b.classList.remove('on'));
    update(true);
  });
  document.getElementById('page-size').addEventListener('change', ev => { view.size = +ev.target.value; view.page = 0; render(); });
  document.getElementById('first').addEventListener('click', () => { view.page = 0; render(); });
  document.getElementById('prev').addEventListener('click', () => { view.page--; render(); });
  document.getElementById('next').addEventListener('click', () => { view.page++; render(); });
  document.getElementById('last').addEventListener('click', () => { view.page = 1e9; render(); });
  document.getElementById('plot-selected').addEventListener('click', () => {
    const ids = Array.from(selected).slice(0, 12).map(i => runIds[i]);
    if (!ids.length) return;
    location.assign(RUN_BASE + encodeURIComponent(ids[0]) + (ids.length > 1 ? '?' +
      ids.slice(1).map(r => 'also=' + encodeURIComponent(r)).join('&') : ''));
  });
  document.getElementById('csv').addEventListener('click', () => {
    const q = v => { const s = String(v === null ? '' : v); return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; };
    const lines = [cols.map(c => c.name).concat(Object.keys(T.fixed)).join(',')];
    const fixed = Object.values(T.fixed).map(q);
    for (const i of rows) lines.push(cols.map(c => q(raw(c, i))).concat(fixed).join(','));
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], {type: 'text/csv'}));
    a.download = (SWEEP || 'runs') + '-runs.csv'; document.body.appendChild(a); a.click(); a.remove();
  });
  update(true);
  // Hooks for tests and benchmarks/runs_table.py: state, and timed synchronous operations.
  const timed = fn => { const s = performance.now(); fn(); return performance.now() - s; };
  window.__table = {ready: true, ms: performance.now() - t0, readyAt: performance.now(), view,
                    rows: () => rows.length, time: timed,
                    sort: (name, dir) => timed(() => { view.sort = name; view.dir = dir || 1; view.page = 0; update(true); }),
                    filter: (name, text) => timed(() => { view.filters[name] = text; view.page = 0; update(true); }),
                    page: k => timed(() => { view.page = k; render(); })};
})();
"""
