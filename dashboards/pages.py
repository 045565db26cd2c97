"""Complete HTML pages for the dashboards, working fully offline.

Pages never load anything from a CDN: figures are embedded with
``fig.to_html(full_html=False, include_plotlyjs=False)`` and plotly.js is loaded from a local URL
(``plotly_url``, default ``/static/plotly.min.js``) that the app serves with :func:`plotly_js`.

Every user-provided string (sweep names, descriptions, errors, group values) is escaped with
:func:`html.escape`. Pages of a sweep that is still running (status queued/running/pending)
reload themselves every ``refresh_s`` seconds (``<meta http-equiv="refresh">``: simple and robust,
no JSON contract needed); the index page refreshes only its table, so a spec being typed in the
submit form is never lost.

``sweep_meta`` is a plain dict as the registry / HTTP API returns it; the keys used (all
optional) are ``sweep_id`` (or ``id``), ``name``, ``description``, ``status``, ``runs_done``,
``runs_total``, ``error``, ``created_at`` / ``updated_at`` (epoch seconds or text) and ``links``
(a dict label -> URL that replaces the default links built from the sweep id).
"""

from __future__ import annotations

import functools
import html
import json
import math
import time
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from mutransfer.report import METRICS, fmt_lr

from . import figures as F

__all__ = [
    "DEFAULT_PLOTLY_URL",
    "RUNNING_STATUSES",
    "plotly_js",
    "contour_page",
    "shift_page",
    "compare_page",
    "index_page",
    "report_page",
    "figure_html",
    "sweep_links",
]

DEFAULT_PLOTLY_URL = "/static/plotly.min.js"
RUNNING_STATUSES = frozenset({"queued", "pending", "running", "submitted", "starting"})

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

CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f8f9fb; --accent:#1f5fbf;
        --ok:#1a7f37; --bad:#c0262d; --warn:#b25e09; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
header.top { background: #fff; border-bottom: 1px solid var(--line); padding: 10px 24px;
             display: flex; gap: 18px; align-items: baseline; }
header.top a.brand { font-weight: 700; color: var(--fg); text-decoration: none; }
main { max-width: 1500px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
a { color: var(--accent); } .muted { color: var(--muted); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
        margin: 12px 0; }
.fig { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 4px; margin: 12px 0; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: right; white-space: nowrap; }
th { background: #f2f4f7; font-weight: 600; position: sticky; top: 0; }
td.l, th.l { text-align: left; white-space: normal; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         background: #eef0f3; color: var(--muted); }
.badge.finished, .badge.transfers, .badge.done, .badge.ok { background: #dcfae6; color: var(--ok); }
.badge.running, .badge.queued, .badge.pending, .badge.inconclusive { background: #fef0c7; color: var(--warn); }
.badge.failed, .badge.cancelled, .badge.does-not-transfer { background: #fee4e2; color: var(--bad); }
.bad { color: var(--bad); font-weight: 600; } .good { color: var(--ok); }
progress { width: 140px; height: 12px; vertical-align: middle; }
ul.warn li { color: var(--warn); }
pre { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-x: auto;
      font-size: 12.5px; }
pre.ok { border-color: var(--ok); } pre.err { border-color: var(--bad); }
textarea { width: 100%; min-height: 220px; font: 12.5px/1.4 ui-monospace, Menlo, Consolas, monospace; }
input[type=password], input[type=text] { width: 340px; padding: 4px 6px; }
button { padding: 5px 14px; border: 1px solid var(--accent); background: var(--accent); color: #fff;
         border-radius: 5px; cursor: pointer; } button.secondary { background: #fff; color: var(--accent); }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
nav.links a { margin-right: 12px; }
.toc a { margin-right: 14px; }
"""


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (serve it at ``plotly_url``)."""
    return plotly.offline.get_plotlyjs()


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _js(value: Any) -> str:
    """A JSON literal safe to put inside a <script> element."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _safe_href(url: Any) -> str:
    u = str(url or "").strip()
    low = u.lower()
    if low.startswith(("/", "./", "../", "?", "#", "http://", "https://")) or ("://" not in low and ":" not in low):
        return _e(u)
    return "#"


def _num(x: Any) -> float:
    return F._num(x)


def _sid(meta: Mapping[str, Any] | None) -> str:
    m = meta or {}
    return str(m.get("sweep_id") or m.get("id") or "")


def _status(meta: Mapping[str, Any] | None) -> str:
    return str((meta or {}).get("status") or "").lower()


def _is_running(meta: Mapping[str, Any] | None) -> bool:
    return _status(meta) in RUNNING_STATUSES


def sweep_links(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """Label -> URL for a sweep (``meta['links']`` when given, else the API's routes by id)."""
    m = meta or {}
    if isinstance(m.get("links"), Mapping):
        return {str(k): str(v) for k, v in m["links"].items()}
    sid = _sid(m)
    if not sid:
        return {}
    q = quote(sid, safe="")
    return {
        "contours": f"/sweeps/{q}/contours",
        "report": f"/sweeps/{q}/report?format=html",
        "report (JSON)": f"/sweeps/{q}/report",
        "status (JSON)": f"/sweeps/{q}",
        "runs (CSV)": f"/sweeps/{q}/runs?format=csv",
        "runs (Parquet)": f"/sweeps/{q}/runs?format=parquet",
        "curves (CSV)": f"/sweeps/{q}/curves?format=csv",
    }


def _links_html(links: Mapping[str, str]) -> str:
    if not links:
        return ""
    return '<nav class="links">' + "".join(
        f'<a href="{_safe_href(u)}">{_e(k)}</a>' for k, u in links.items()) + "</nav>"


def _badge(text: Any) -> str:
    t = str(text or "unknown")
    cls = "".join(ch if ch.isalnum() else "-" for ch in t.lower())
    return f'<span class="badge {_e(cls)}">{_e(t)}</span>'


def _when(x: Any) -> str:
    v = _num(x) if not isinstance(x, str) else math.nan
    if np.isfinite(v) and v > 1e8:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    return _e(x) if x not in (None, "") else "-"


def _progress(meta: Mapping[str, Any]) -> str:
    done, total = _num(meta.get("runs_done")), _num(meta.get("runs_total"))
    if not (np.isfinite(total) and total > 0):
        return "-"
    d = done if np.isfinite(done) else 0.0
    return (f'<progress max="{total:g}" value="{min(d, total):g}"></progress> '
            f'<span class="muted">{d:g} / {total:g} runs ({100 * d / total:.0f}%)</span>')


def figure_html(fig: go.Figure) -> str:
    """A figure as an HTML fragment that uses the page's plotly.js (no script of its own)."""
    h = fig.layout.height
    return '<div class="fig">' + fig.to_html(
        full_html=False, include_plotlyjs=False, default_height=f"{int(h)}px" if h else "480px",
        default_width="100%", config={"displaylogo": False, "responsive": True},
    ) + "</div>"


def _document(title: str, body: str, *, plotly_url: str | None = None, refresh_s: float | None = None,
              script: str = "") -> str:
    head = ['<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>", f"<style>{CSS}</style>"]
    if refresh_s:
        head.append(f'<meta http-equiv="refresh" content="{max(1, int(refresh_s))}">')
    if plotly_url:
        head.append(f'<script src="{_safe_href(plotly_url)}"></script>')
    nav = '<header class="top"><a class="brand" href="/">mutransfer</a><span class="muted">' \
          "hyperparameter-transfer sweeps</span></header>"
    tail = f"<script>{script}</script>" if script else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head>" + "".join(head) + "</head><body>" + nav
            + f"<main>{body}</main>{tail}</body></html>\n")


def _sweep_header(meta: Mapping[str, Any] | None, what: str, refresh_s: float | None) -> str:
    m = meta or {}
    sid = _sid(m)
    name = m.get("name") or sid or "sweep"
    parts = [f"<h1>{_e(name)} <span class=\"muted\" style=\"font-size:15px\">— {_e(what)}</span></h1>"]
    info = []
    if sid:
        info.append(f"id <code>{_e(sid)}</code>")
    if m.get("status"):
        info.append(_badge(m.get("status")))
    prog = _progress(m)
    if prog != "-":
        info.append(prog)
    if m.get("updated_at") is not None:
        info.append(f'<span class="muted">updated {_when(m.get("updated_at"))}</span>')
    if info:
        parts.append("<div>" + " &nbsp; ".join(info) + "</div>")
    if m.get("description"):
        parts.append(f'<p class="muted">{_e(m.get("description"))}</p>')
    if m.get("error"):
        parts.append(f'<pre class="err">{_e(m.get("error"))}</pre>')
    if refresh_s and _is_running(m):
        parts.append(f'<p class="muted">The sweep is still running: this page reloads every '
                     f"{int(refresh_s)} s; points not run yet are blank.</p>")
    parts.append(_links_html(sweep_links(m)))
    return '<div class="card">' + "".join(parts) + "</div>"


def _verdict_line(a: Mapping[str, Any], anchor: str | None = None) -> str:
    title = F._group_title(a.get("group"))
    head = f'<a href="#{_e(anchor)}">{_e(title)}</a>' if anchor else _e(title)
    return (f"<li>{head} — {_e(a.get('axis'))}: {_badge(a.get('verdict'))} "
            f"<span class=\"muted\">{_e(a.get('verdict_text'))}</span></li>")


def _metric_of(report: Mapping[str, Any] | None) -> str:
    m = (report or {}).get("metric")
    return m if m in METRICS else "min_train_loss"


# --------------------------------------------------------------------------- single-size fallback


def _single_size_report(runs: pd.DataFrame | None, metric: str) -> dict[str, Any] | None:
    """Pseudo-report with one 'analysis' per cell, for sweeps that so far have one size only
    (the optimum-shift report then has no analyses, but the surfaces are still worth seeing)."""
    df = F._prepare_runs(runs, metric)
    if df is None:
        return None
    info = METRICS[metric]
    keys = [c for c in F.FIXED_SETTINGS + F.SIZE_AXES if c in df.columns]
    if "width" not in keys and "depth" not in keys:
        return None
    axis = "width" if "width" in keys else "depth"
    analyses = []
    for key, g in (df.groupby(keys, dropna=False, sort=True) if keys else []):
        key = key if isinstance(key, tuple) else (key,)
        group = {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, key) if k != axis}
        size = int(dict(zip(keys, key))[axis])
        has_beta = g[F.BETA].notna().any()
        if has_beta:
            g = g.loc[g[F.BETA].notna()]
        bcol = F.BETA if has_beta else None
        eta = sorted(g[F.ETA].unique())
        beta = sorted(g[F.BETA].unique()) if has_beta else None
        agg_keys = [F.ETA] + ([bcol] if bcol else [])
        agg = g.groupby(agg_keys).agg(bad=("_bad", "any"), val=("_val", "mean"), n=("seed", "nunique"))
        vals, nseeds = [], []
        best, best_cost = None, math.inf
        for e in eta:
            row_v, row_n = [], []
            for b in (beta if beta is not None else [None]):
                k = (e, b) if bcol else e
                if k not in agg.index:
                    row_v.append(None)
                    row_n.append(0)
                    continue
                rec = agg.loc[k]
                if bool(rec["bad"]) or not np.isfinite(rec["val"]):
                    row_v.append("inf" if info.kind == "loss" else "-inf")
                else:
                    v = float(rec["val"])
                    row_v.append(v)
                    c = v if info.kind == "loss" else 1 - v
                    if c < best_cost:
                        best, best_cost = (e, b, v), c
                row_n.append(int(rec["n"]))
            vals.append(row_v)
            nseeds.append(row_n)
        entry = {"size": size, "eta_star": None, "beta_star": None, "eta_star_fit": None,
                 "beta_star_fit": None, "fit": "grid", "metric_at_opt": None}
        if best is not None:
            entry.update(eta_star=best[0], beta_star=best[1], eta_star_fit=best[0], beta_star_fit=best[1],
                         metric_at_opt=best[2])
        analyses.append({
            "group": group, "axis": axis, "base_size": size, "eta_grid": eta, "beta_grid": beta,
            "sizes": [entry], "verdict": "single size",
            "verdict_text": "only one size so far: nothing to compare yet", "warnings": [], "missing": [],
            "surfaces": [{"size": size, F.ETA: eta, F.BETA: beta, "values": vals, "n_seeds": nseeds}],
        })
    if not analyses:
        return None
    return {"metric": metric, "direction": info.direction, "n_runs": int(len(df)), "analyses": analyses,
            "notes": ["single size: surfaces only"]}


def _contour_pairs(report: Mapping[str, Any]) -> list[tuple[int, int | None]]:
    """Cover every analysis once: (primary, companion along the other axis or None)."""
    analyses = F._analyses(report)
    used: set[int] = set()
    pairs: list[tuple[int, int | None]] = []
    order = sorted(range(len(analyses)), key=lambda i: (not F._is_2d(analyses[i]),
                                                         0 if analyses[i].get("axis") == "width" else 1, i))
    for i in order:
        if i in used:
            continue
        used.add(i)
        j = F.companion_analysis(report, i, exclude=used)
        if j is not None:
            used.add(j)
        pairs.append((i, j))
    return pairs


# --------------------------------------------------------------------------- pages


def contour_page(
    report: Mapping[str, Any] | None,
    runs: pd.DataFrame | None,
    sweep_meta: Mapping[str, Any] | None,
    *,
    curves: pd.DataFrame | None = None,
    plotly_url: str = DEFAULT_PLOTLY_URL,
    refresh_s: float | None = 5,
) -> str:
    """The sweep dashboard: transfer contours (width row + depth row per setting), the metric vs
    each lr per size from the runs table, and training curves when ``curves`` is given."""
    meta = sweep_meta or {}
    metric = _metric_of(report)
    refresh = refresh_s if _is_running(meta) else None
    body = [_sweep_header(meta, "contours", refresh_s)]
    rep = report if F._analyses(report) else None
    if rep is None:
        rep = _single_size_report(runs, metric)
    if rep is None:
        body.append(f'<div class="card"><p>{_e(F.EMPTY_TEXT)}.</p>'
                    + "".join(f'<p class="muted">{_e(n)}</p>' for n in (report or {}).get("notes") or [])
                    + "</div>")
    else:
        analyses = F._analyses(rep)
        pairs = _contour_pairs(rep)
        toc = []
        for k, (i, j) in enumerate(pairs):
            toc.append(_verdict_line(analyses[i], f"set-{k}"))
            if j is not None:
                toc.append(_verdict_line(analyses[j], f"set-{k}"))
        body.append(f'<div class="card"><b>Metric:</b> {_e(metric)} '
                    f'({"lower" if METRICS[metric].direction == "min" else "higher"} is better). '
                    "Gold star: optimum at that size; red circle: the base (smallest) size's optimum; "
                    "grey ×: diverged; blank: not run (yet).<ul>" + "".join(toc) + "</ul></div>")
        for k, (i, j) in enumerate(pairs):
            body.append(f'<h2 id="set-{k}">{_e(F._group_title({g: v for g, v in (analyses[i].get("group") or {}).items() if g in F.FIXED_SETTINGS}))}</h2>')
            body.append(figure_html(F.transfer_contours(rep, analysis_index=i, companion=j if j is not None else False)))
            for a in [analyses[i]] + ([analyses[j]] if j is not None else []):
                if runs is None or len(runs) == 0:
                    continue
                where = dict(a.get("group") or {})
                lrs = ["weight_lr", "activity_lr"] if F._is_2d(a) else ["weight_lr"]
                for lr in lrs:
                    body.append(figure_html(F.loss_vs_lr(runs, metric=metric, axis=a.get("axis", "width"),
                                                         lr=lr, where=where)))
    if curves is not None:
        body.append("<h2>Training curves</h2>")
        body.append(figure_html(F.training_curves(curves, runs)))
    name = meta.get("name") or _sid(meta) or "sweep"
    return _document(f"{name} — contours", "".join(body), plotly_url=plotly_url, refresh_s=refresh)


def shift_page(
    report: Mapping[str, Any] | None,
    sweep_meta: Mapping[str, Any] | None,
    *,
    plotly_url: str = DEFAULT_PLOTLY_URL,
    refresh_s: float | None = 5,
) -> str:
    """Optimum vs size and regret per analysis, each with its numbers table and warnings."""
    meta = sweep_meta or {}
    body = [_sweep_header(meta, "optimum shift", refresh_s)]
    analyses = F._analyses(report)
    if not analyses:
        body.append(f'<div class="card"><p>{_e(F._no_analysis_text(report))}.</p></div>')
    for i, a in enumerate(analyses):
        body.append(f'<h2 id="a-{i}">{_e(F._group_title(a.get("group")))} — {_e(a.get("axis"))} '
                    f"{_badge(a.get('verdict'))}</h2>")
        body.append(figure_html(F.optimum_shift(report, analysis_index=i)))
        body.append(_analysis_table(a))
        body.append(_warnings_html(a))
    name = meta.get("name") or _sid(meta) or "sweep"
    return _document(f"{name} — optimum shift", "".join(body), plotly_url=plotly_url,
                     refresh_s=refresh_s if _is_running(meta) else None)


def compare_page(
    report_a: Mapping[str, Any] | None,
    report_b: Mapping[str, Any] | None,
    meta_a: Mapping[str, Any] | None,
    meta_b: Mapping[str, Any] | None,
    *,
    labels: Sequence[str] | None = None,
    plotly_url: str = DEFAULT_PLOTLY_URL,
    refresh_s: float | None = 5,
) -> str:
    """Two sweeps side by side: one comparison figure per size axis present in both reports."""
    la = (labels or [None, None])[0] or (meta_a or {}).get("name") or _sid(meta_a) or "A"
    lb = (labels or [None, None])[1] or (meta_b or {}).get("name") or _sid(meta_b) or "B"
    body = ['<div class="cols">', _sweep_header(meta_a, f"A: {la}", refresh_s),
            _sweep_header(meta_b, f"B: {lb}", refresh_s), "</div>"]
    axes_a = [a.get("axis") for a in F._analyses(report_a)]
    axes_b = [a.get("axis") for a in F._analyses(report_b)]
    axes = [ax for ax in F.SIZE_AXES if ax in axes_a and ax in axes_b] or [None]
    for ax in axes:
        if ax is not None:
            body.append(f"<h2>{_e(ax)} transfer</h2>")
        body.append(figure_html(F.comparison(report_a, report_b, labels=(str(la), str(lb)), axis=ax)))
    body.append('<div class="cols"><div>')
    body.append(f"<h3>{_e(la)}</h3><ul>" + "".join(_verdict_line(a) for a in F._analyses(report_a)) + "</ul>")
    body.append("</div><div>")
    body.append(f"<h3>{_e(lb)}</h3><ul>" + "".join(_verdict_line(a) for a in F._analyses(report_b)) + "</ul>")
    body.append("</div></div>")
    running = _is_running(meta_a) or _is_running(meta_b)
    return _document(f"{la} vs {lb}", "".join(body), plotly_url=plotly_url,
                     refresh_s=refresh_s if running else None)


def index_page(
    sweeps: Iterable[Mapping[str, Any]] | None,
    *,
    submit_url: str = "/sweeps",
    example_spec: str = EXAMPLE_SPEC,
    refresh_s: float | None = 5,
) -> str:
    """The sweep list (status, progress, links, cancel) and a form that POSTs a spec.

    The form sends the textarea as the request body (``application/json`` when it parses as
    JSON, else ``application/yaml``) with ``Authorization: Bearer <token>`` when a token is given,
    and shows the response. While any sweep is queued/running, the table (only) refreshes every
    ``refresh_s`` seconds by re-fetching this page.
    """
    rows = []
    for s in sweeps or []:
        sid = _sid(s)
        links = sweep_links(s)
        name = s.get("name") or sid
        first = next(iter(links.values()), None)
        name_html = f'<a href="{_safe_href(first)}">{_e(name)}</a>' if first else _e(name)
        cancel = ""
        if _is_running(s) and sid:
            cancel = (f' <button class="secondary" data-cancel="{_e(submit_url.rstrip("/") + "/" + quote(sid, safe=""))}"'
                      f' onclick="cancelSweep(this)">cancel</button>')
        desc = f'<div class="muted">{_e(s.get("description"))}</div>' if s.get("description") else ""
        err = f'<div class="bad">{_e(s.get("error"))}</div>' if s.get("error") else ""
        rows.append(
            f'<tr data-status="{_e(_status(s))}"><td class="l">{name_html}{desc}{err}</td>'
            f'<td class="l"><code>{_e(sid)}</code></td><td class="l">{_badge(s.get("status"))}{cancel}</td>'
            f'<td class="l">{_progress(s)}</td><td>{_when(s.get("created_at"))}</td>'
            f'<td class="l">{_links_html({k: v for k, v in links.items() if k != "contours"})}</td></tr>'
        )
    if not rows:
        rows.append('<tr><td class="l" colspan="6"><span class="muted">no sweeps yet — submit one below'
                    "</span></td></tr>")
    table = ('<table id="sweeps"><thead><tr><th class="l">sweep</th><th class="l">id</th><th class="l">status</th>'
             '<th class="l">progress</th><th>created</th><th class="l">data</th></tr></thead>'
             f'<tbody id="sweeps-body">{"".join(rows)}</tbody></table>')
    form = f"""
<h2>Submit a sweep</h2>
<form id="submit-form" class="card" onsubmit="return submitSpec(event)">
  <p class="muted">Spec as YAML or JSON (see the README for every field). POSTed to
  <code>{_e(submit_url)}</code>.</p>
  <textarea id="spec" name="spec" spellcheck="false">{_e(example_spec)}</textarea>
  <p><label>Bearer token (optional): <input type="password" id="token" autocomplete="off"></label>
  <button type="submit">Submit</button></p>
  <pre id="response" class="muted">no request sent yet</pre>
</form>"""
    script = f"""
const SUBMIT_URL = {_js(submit_url)};
const REFRESH_MS = {_js(int((refresh_s or 0) * 1000))};
function authHeaders(h) {{
  const tok = document.getElementById('token').value.trim();
  if (tok) h['Authorization'] = 'Bearer ' + tok;
  return h;
}}
async function submitSpec(ev) {{
  ev.preventDefault();
  const text = document.getElementById('spec').value;
  let ct = 'application/yaml';
  try {{ JSON.parse(text); ct = 'application/json'; }} catch (e) {{}}
  const out = document.getElementById('response');
  out.className = 'muted'; out.textContent = 'submitting…';
  try {{
    const r = await fetch(SUBMIT_URL, {{method: 'POST', headers: authHeaders({{'Content-Type': ct, 'Accept': 'application/json'}}), body: text}});
    const body = await r.text();
    let pretty = body;
    try {{ pretty = JSON.stringify(JSON.parse(body), null, 2); }} catch (e) {{}}
    out.textContent = r.status + ' ' + r.statusText + '\\n' + pretty;
    out.className = r.ok ? 'ok' : 'err';
    if (r.ok) setTimeout(refreshTable, 500);
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
  return Array.from(document.querySelectorAll('#sweeps-body tr')).some(
    tr => ['queued', 'pending', 'running', 'submitted', 'starting'].includes(tr.dataset.status));
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
    body = "<h1>Sweeps</h1>" + table + form
    return _document("mutransfer — sweeps", body, script=script)


# --------------------------------------------------------------------------- report page


def _fmt(x: Any, spec: str = ".4g") -> str:
    return _e(F._fmt(x, spec))


def _regret_cell(x: Any, tol: float) -> str:
    v = _num(x)
    cls = "" if np.isnan(v) else ("bad" if (np.isinf(v) or v > tol) else "good")
    return f'<td class="{cls}">{_e(F._pct(x))}</td>'


def _analysis_table(a: Mapping[str, Any], tol: float = 0.05) -> str:
    sym = F.size_symbol(a.get("axis", ""))
    head = [sym, "η*", "β*", "fit η*", "fit β*", "fit", "metric", "at base opt", "regret", "Δlog2 η",
            "Δlog2 β", "drift η", "drift β", "seed mode", "seeds", "runs", "diverged", "edge"]
    rows = ["<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for e in a.get("sizes") or []:
        mode = e.get("seed_mode")
        if mode:
            mtxt = f"{fmt_lr(mode.get('weight_lr'))}"
            if mode.get("activity_lr") is not None:
                mtxt += f", {fmt_lr(mode.get('activity_lr'))}"
            mtxt += f" ({F._pct(e.get('seed_mode_freq'))})"
        else:
            mtxt = "n/a"
        edge = ", ".join(f"{'η' if f.get('lr') == 'weight_lr' else 'β'} {f.get('side')}"
                         for f in e.get("edge") or [] if isinstance(f, Mapping))
        cells = [
            _e(e.get("size")), _e(fmt_lr(e.get("eta_star"))), _e(fmt_lr(e.get("beta_star"))),
            _e(fmt_lr(e.get("eta_star_fit"))), _e(fmt_lr(e.get("beta_star_fit"))), _e(e.get("fit", "-")),
            _fmt(e.get("metric_at_opt")), _fmt(e.get("metric_at_base_opt")),
        ]
        html_cells = "".join(f"<td>{c}</td>" for c in cells) + _regret_cell(e.get("regret"), tol)
        html_cells += "".join(f"<td>{c}</td>" for c in [
            _fmt(e.get("dlog2_eta"), "+.2f"), _fmt(e.get("dlog2_beta"), "+.2f"),
            _fmt(e.get("drift_eta"), "+.2f"), _fmt(e.get("drift_beta"), "+.2f"), _e(mtxt),
            _e(e.get("n_seeds", "-")), _e(e.get("n_runs", "-")), _e(e.get("n_diverged", "-")), _e(edge or "-"),
        ])
        rows.append(f"<tr>{html_cells}</tr>")
    slopes = (f'<p class="muted">drift slope (octaves per doubling of {_e(a.get("axis"))}): '
              f'η* {_fmt(a.get("drift_slope_eta"), "+.2f")}, β* {_fmt(a.get("drift_slope_beta"), "+.2f")}</p>')
    return '<div class="card" style="overflow-x:auto"><table>' + "".join(rows) + "</table>" + slopes + "</div>"


def _warnings_html(a: Mapping[str, Any]) -> str:
    w = a.get("warnings") or []
    out = ""
    if w:
        out += '<h3>Warnings</h3><ul class="warn">' + "".join(f"<li>{_e(x)}</li>" for x in w) + "</ul>"
    missing = a.get("missing") or []
    if missing:
        kinds: dict[str, int] = {}
        for m in missing:
            k = str(m.get("kind", "?")) if isinstance(m, Mapping) else "?"
            kinds[k] = kinds.get(k, 0) + 1
        out += ('<p class="muted">missing: ' + ", ".join(f"{n} {_e(k)}(s)" for k, n in sorted(kinds.items()))
                + "</p>")
    return out


def report_page(
    report: Mapping[str, Any] | None,
    text: str | None = None,
    *,
    sweep_meta: Mapping[str, Any] | None = None,
    refresh_s: float | None = 5,
) -> str:
    """The optimum-shift report as HTML: per analysis its verdict, a numbers table and warnings;
    ``text`` (e.g. :func:`mutransfer.report.format_report`) is shown verbatim at the end."""
    rep = report or {}
    meta = sweep_meta or {}
    body = []
    if meta:
        body.append(_sweep_header(meta, "optimum-shift report", refresh_s))
    else:
        body.append("<h1>Optimum-shift report</h1>")
    metric = rep.get("metric", "-")
    direction = "lower" if rep.get("direction") == "min" else "higher"
    th = rep.get("thresholds") or {}
    tol = _num(th.get("regret_tol", 0.05))
    tol = tol if np.isfinite(tol) else 0.05
    body.append(
        f'<div class="card"><b>Metric:</b> {_e(metric)} ({direction} is better) &nbsp; '
        f'<b>runs:</b> {_e(rep.get("n_runs", 0))} &nbsp; <b>transfers when</b> regret ≤ '
        f"{_e(F._pct(th.get('regret_tol', 0.05)))} and |drift| ≤ {_e(th.get('drift_tol', 0.5))} "
        "octave/doubling at every size.<br><span class=\"muted\">Regret = M(base optimum) / M(own optimum) − 1 "
        "at each size; Δlog2 in octaves (factor 2 in the lr).</span>"
        + "".join(f'<p class="muted">note: {_e(n)}</p>' for n in rep.get("notes") or []) + "</div>"
    )
    analyses = F._analyses(rep)
    if not analyses:
        body.append(f'<div class="card"><p>{_e(F._no_analysis_text(rep))}.</p></div>')
    else:
        body.append("<ul>" + "".join(_verdict_line(a, f"a-{i}") for i, a in enumerate(analyses)) + "</ul>")
    for i, a in enumerate(analyses):
        body.append(f'<h2 id="a-{i}">{_e(F._group_title(a.get("group")))} — {_e(a.get("axis"))} '
                    f"(base {_e(F.size_symbol(a.get('axis', '')))} = {_e(a.get('base_size'))})</h2>")
        body.append(f"<p>{_badge(a.get('verdict'))} {_e(a.get('verdict_text'))}</p>")
        body.append(_analysis_table(a, tol))
        body.append(_warnings_html(a))
    if text:
        body.append(f"<h2>Plain text</h2><pre>{_e(text)}</pre>")
    title = f"{meta.get('name') or _sid(meta) or 'sweep'} — report" if meta else "optimum-shift report"
    return _document(title, "".join(body), refresh_s=refresh_s if _is_running(meta) else None)


def diagnostics_page(analyses: Mapping[str, pd.DataFrame], sweep_meta: Mapping[str, Any] | None, *,
                     plotly_url: str = DEFAULT_PLOTLY_URL, refresh_s: float | None = 5) -> str:
    """The sweep's diagnostics (``analyses`` in its spec): one paper-style figure per table."""
    from dashboards.diagnostics import diagnostic_figure, kind_of

    meta = sweep_meta or {}
    body = [_sweep_header(meta, "diagnostics", refresh_s)]
    if not analyses:
        body.append('<div class="card"><p>No diagnostics for this sweep (add <code>analyses:</code> to its '
                    "spec, or run <code>mutransfer diagnose</code>).</p></div>")
    for name, df in analyses.items():
        body.append(f"<h2>{_e(name)}</h2>")
        body.append(figure_html(diagnostic_figure(df, kind_of(name))))
    title = f"{meta.get('name') or _sid(meta) or 'sweep'} — diagnostics"
    return _document(title, "".join(body), plotly_url=plotly_url,
                     refresh_s=refresh_s if _is_running(meta) else None)
