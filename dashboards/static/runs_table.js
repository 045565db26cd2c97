// The runs table page (/sweeps/{id}/table): sort, filter, page, select and export the runs in the
// browser. Data: the page's <script id="page-data" type="application/json"> holds {table, sweep,
// run_base, metric, metric_dir} (dashboards/runs_table.py: table_payload).
'use strict';
const PAGE = JSON.parse(document.getElementById('page-data').textContent);
const MAX_PLOT = 12;  // runs one run page overlays (service/routers/pages.py MAX_OVERLAY)
const T = PAGE.table, SWEEP = PAGE.sweep, RUN_BASE = PAGE.run_base, METRIC = PAGE.metric, METRIC_DIR = PAGE.metric_dir;
(function () {
  const t0 = performance.now();
  const N = T.n, cols = T.columns;
  // A diverged / failed run's metric is "inf" / "-inf" in the payload (as the report counts it).
  for (const c of cols) if (c.values) c.values = c.values.map(v => v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);
  // Decode the columns once: every cell value by column index; strings stay codes + dictionary.
  const runCol = cols.find(c => c.kind === 'run');
  const runIds = !runCol ? [] : runCol.ids ? runCol.ids :
    runCol.suffix.map((s, i) => runCol.cells[runCol.cell_codes[i]] + '-' + s);
  const view = {sort: null, dir: 1, filters: {}, q: '', page: 0, size: +document.getElementById('page-size').value,
                status: []};
  const selected = new Set();
  const lrFmt = v => { if (v === null) return '–'; const [m, e] = v.toExponential(2).split('e');
    return m.replace(/\.?0+$/, '') + 'e' + (+e); };
  const numFmt = v => v === null ? '–' : v === Infinity ? '+∞' : v === -Infinity ? '−∞' : (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)) ?
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
          return d * (x === y ? 0 : x < y ? -1 : 1) || a - b; }); }
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
        else if (c.recorded && (c.values[i] === Infinity || c.values[i] === -Infinity)) {
          const rec = c.recorded[i], st = statusCol >= 0 ? text(cols[statusCol], i) : 'diverged';
          tr += '<td class="diverged' + (c.name === METRIC ? ' metric' : '') + '" title="' + esc(st) +
            ': the report counts it as ' + s + (rec === null || rec === undefined ? '' : '; recorded before: ' + numFmt(rec)) +
            '">' + esc(s) + ' <small>' + esc(st) + '</small></td>';
        }
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
    document.getElementById('plot-selected').textContent = selected.size > MAX_PLOT ?
      'plot the first ' + MAX_PLOT + ' of ' + selected.size + ' selected' : 'plot selected (' + selected.size + ')';
    document.getElementById('plot-selected').title = selected.size > MAX_PLOT ?
      'a run page overlays at most ' + MAX_PLOT + ' runs: the first ' + MAX_PLOT + ' selected (in table order) are plotted' : '';
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
    const order = rows.filter(i => selected.has(i)).concat(Array.from(selected).filter(i => !rows.includes(i)));
    const ids = order.slice(0, MAX_PLOT).map(i => runIds[i]);
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
