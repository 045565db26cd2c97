"""Page chrome shared by every dashboard page: the HTML document, CSS, the sweep header with its
tabs (contours, optimum shift, diagnostics, runs table, report) and metric selector, badges, and
how a plotly figure is embedded (with PNG / SVG export buttons).

Pages never load anything from a CDN: figures are embedded with
``fig.to_html(full_html=False, include_plotlyjs=False)`` and plotly.js is loaded from a local URL
(``plotly_url``, default ``/static/plotly.min.js``) that the app serves with :func:`plotly_js`.

Every user-provided string (sweep names, descriptions, errors, group values) is escaped with
:func:`esc_html`; JSON put inside ``<script>`` goes through :func:`js`. Pages of a sweep that is
still running reload themselves every ``refresh_s`` seconds (``<meta http-equiv="refresh">``).

``sweep_meta`` is a plain dict as the registry / HTTP API returns it; the keys used (all
optional) are ``sweep_id`` (or ``id``), ``name``, ``description``, ``status``, ``runs_done``,
``runs_total``, ``error``, ``cells`` (each with ``status`` and ``error``), ``created_at`` /
``updated_at`` (epoch seconds or text) and ``links`` (label -> URL, replacing the default data links).
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, urlencode

import numpy as np
import plotly.graph_objects as go
import plotly.offline

from mutransfer.report import METRICS
from mutransfer.report.metrics import DEFAULT_METRIC

from .common import num, report_of

DEFAULT_PLOTLY_URL = "/static/plotly.min.js"
# Sweep statuses during which results still change (pages refresh themselves). The service's
# status vocabulary is the reference; the extra names keep older registries' rows working.
RUNNING_STATUSES = frozenset({"queued", "pending", "running", "submitted", "starting", "cancelling"})

# The tabs of a sweep: key -> (label, path under /sweeps/{id}, whether the metric applies).
SWEEP_TABS: dict[str, tuple[str, str, bool]] = {
    "overview": ("Overview", "", False),
    "contours": ("Contours", "/contours", True),
    "shift": ("Optimum shift", "/shift", True),
    "diagnostics": ("Diagnostics", "/diagnostics", False),
    "table": ("Runs table", "/table", True),
    "report": ("Report", "/report?format=html", True),
}

STATIC_DIR = Path(__file__).with_name("static")  # the pages' CSS and JavaScript, served by the app
STATIC_URL = "/static/dashboards/"


@functools.lru_cache(maxsize=None)
def static_file(name: str) -> bytes:
    """The bytes of ``dashboards/static/<name>`` (KeyError for anything else: no path games)."""
    files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
    return files[name].read_bytes()


def static_url(name: str) -> str:
    """URL of a static file, versioned by its content so a browser never keeps a stale copy."""
    return f"{STATIC_URL}{name}?v={hashlib.sha256(static_file(name)).hexdigest()[:10]}"



# --------------------------------------------------------------------------- escaping / values


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (serve it at ``plotly_url``)."""
    return plotly.offline.get_plotlyjs()


def esc_html(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def js(value: Any) -> str:
    """A JSON literal safe to put inside a <script> element."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def safe_href(url: Any) -> str:
    u = str(url or "").strip()
    low = u.lower()
    if low.startswith(("/", "./", "../", "?", "#", "http://", "https://")) or ("://" not in low and ":" not in low):
        return esc_html(u)
    return "#"


def sid_of(meta: Mapping[str, Any] | None) -> str:
    m = meta or {}
    return str(m.get("sweep_id") or m.get("id") or "")


def status_of(meta: Mapping[str, Any] | None) -> str:
    return str((meta or {}).get("status") or "").lower()


def is_running(meta: Mapping[str, Any] | None) -> bool:
    return status_of(meta) in RUNNING_STATUSES


def metric_of(report: Any) -> str:
    """The report's metric (the default metric without a report)."""
    m = getattr(report_of(report), "metric", None)
    return m if m in METRICS else DEFAULT_METRIC


def slug(text: Any) -> str:
    """A file-name / CSS-class friendly version of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", str(text or "").lower()).strip("-") or "x"


# --------------------------------------------------------------------------- links and navigation


def sweep_url(sid: str, tab: str, metric: str | None = None) -> str:
    """URL of a sweep's tab (see :data:`SWEEP_TABS`), carrying ``metric`` when it applies."""
    label, path, metric_applies = SWEEP_TABS[tab]
    url = f"/sweeps/{quote(sid, safe='')}{path}"
    if metric and metric_applies and metric != DEFAULT_METRIC:
        url += ("&" if "?" in url else "?") + urlencode({"metric": metric})
    return url


def overview_url(sid: str) -> str:
    """The sweep's overview page (``/sweeps/{id}`` asked for by a browser)."""
    return f"/sweeps/{quote(sid, safe='')}"


def run_url(sid: str, run_id: Any) -> str:
    return f"/sweeps/{quote(sid, safe='')}/runs/{quote(str(run_id), safe='')}"


def sweep_links(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """Label -> URL of a sweep's data in machine formats (``meta['links']`` when given)."""
    m = meta or {}
    if isinstance(m.get("links"), Mapping):
        return {str(k): str(v) for k, v in m["links"].items()}
    sid = sid_of(m)
    if not sid:
        return {}
    q = quote(sid, safe="")
    return {
        "status (JSON)": f"/sweeps/{q}?format=json",
        "report (JSON)": f"/sweeps/{q}/report?format=json",
        "runs (CSV)": f"/sweeps/{q}/runs?format=csv",
        "runs (Parquet)": f"/sweeps/{q}/runs?format=parquet",
        "curves (CSV)": f"/sweeps/{q}/curves?format=csv",
    }


def links_html(links: Mapping[str, str]) -> str:
    if not links:
        return ""
    return '<nav class="links">' + "".join(
        f'<a href="{safe_href(u)}">{esc_html(k)}</a>' for k, u in links.items()) + "</nav>"


def metric_picker(metric: str | None, submit: bool = True) -> str:
    """A select of every metric of the runs table, named ``metric``; with ``submit`` it is its own
    GET form that reloads the page with ``?metric=`` on change."""
    current = metric if metric in METRICS else DEFAULT_METRIC
    opts = "".join(
        f'<option value="{esc_html(k)}"{" selected" if k == current else ""}>{esc_html(k)} '
        f'({"lower" if info.direction == "min" else "higher"} is better)</option>'
        for k, info in METRICS.items())
    if not submit:
        return f'<label>metric <select name="metric" id="metric">{opts}</select></label>'
    return ('<form class="metric" method="get"><label>metric <select name="metric" id="metric" '
            f'onchange="this.form.submit()">{opts}</select></label>'
            '<noscript><button type="submit">show</button></noscript></form>')


def _active(on: bool) -> str:
    return ' class="active"' if on else ""


def sweep_tabs(sid: str, active: str | None, metric: str | None = None) -> str:
    """The sweep's tab bar; the metric selector sits on the right where the metric applies."""
    if not sid:
        return ""
    tabs = "".join(
        f'<a href="{esc_html(sweep_url(sid, key, metric))}" data-tab="{key}"{_active(key == active)}>'
        f"{esc_html(label)}</a>" for key, (label, _, _) in SWEEP_TABS.items())
    picker = metric_picker(metric) if metric and active in SWEEP_TABS and SWEEP_TABS[active][2] else ""
    return f'<nav class="tabs">{tabs}{picker}</nav>'


# --------------------------------------------------------------------------- small widgets


def badge(text: Any, cls: str | None = None, title: str | None = None) -> str:
    t = str(text or "unknown")
    c = cls if cls is not None else slug(t)
    tip = f' title="{esc_html(title)}"' if title else ""
    return f'<span class="badge {esc_html(c)}"{tip}>{esc_html(t)}</span>'


def when(x: Any) -> str:
    v = num(x) if not isinstance(x, str) else math.nan
    if np.isfinite(v) and v > 1e8:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    return esc_html(x) if x not in (None, "") else "-"


def age(x: Any, now: float | None = None) -> str:
    """'3 min ago' style text for an epoch time."""
    v = num(x)
    if not np.isfinite(v):
        return "-"
    s = max(0.0, (time.time() if now is None else now) - v)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def progress(meta: Mapping[str, Any]) -> str:
    done, total = num(meta.get("runs_done")), num(meta.get("runs_total"))
    if not (np.isfinite(total) and total > 0):
        return "-"
    d = done if np.isfinite(done) else 0.0
    return (f'<progress max="{total:g}" value="{min(d, total):g}"></progress> '
            f'<span class="muted">{d:g} / {total:g} runs ({100 * d / total:.0f}%)</span>')


# --------------------------------------------------------------------------- figures


def figure_html(fig: go.Figure, name: str = "figure") -> str:
    """A figure as an HTML fragment that uses the page's plotly.js (no script of its own), with
    PNG and SVG export buttons (client-side ``Plotly.downloadImage``; ``name`` is the file name)."""
    height = fig.layout.height
    fname = slug(name)
    return (f'<div class="fig" data-name="{esc_html(fname)}">' + fig.to_html(
        full_html=False, include_plotlyjs=False, default_height=f"{int(height)}px" if height else "480px",
        default_width="100%", config={"displaylogo": False, "responsive": True,
                                      "toImageButtonOptions": {"filename": fname, "scale": 2}},
    ) + '<div class="export"><button type="button" class="secondary" data-export="png">PNG</button>'
        '<button type="button" class="secondary" data-export="svg">SVG</button></div></div>')





# --------------------------------------------------------------------------- the document


def document(title: str, body: str, *, plotly_url: str | None = None, refresh_s: float | None = None,
             data: Any = None, scripts: tuple[str, ...] = (), styles: tuple[str, ...] = ()) -> str:
    """A page: the shared stylesheet (``static/pages.css``) plus ``styles``; ``data`` as JSON in
    ``<script id="page-data" type="application/json">`` for the page's ``scripts`` (static files);
    with ``plotly_url``, plotly.js and ``static/figures.js`` (export buttons, click-to-open-runs)."""
    head = ['<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc_html(title)}</title>"]
    head += [f'<link rel="stylesheet" href="{esc_html(static_url(n))}">' for n in ("pages.css", *styles)]
    if refresh_s:
        head.append(f'<meta http-equiv="refresh" content="{max(1, int(refresh_s))}">')
    if plotly_url:
        head.append(f'<script src="{safe_href(plotly_url)}"></script>')
        scripts = ("figures.js", *scripts)
    nav = ('<header class="top"><a class="brand" href="/">mutransfer</a>'
           '<span class="muted">hyperparameter-transfer sweeps</span>'
           '<a href="/">sweeps</a><a href="/compare">compare</a><a href="/docs">API</a></header>')
    tail = f'<script id="page-data" type="application/json">{js(data)}</script>' if data is not None else ""
    tail += "".join(f'<script src="{esc_html(static_url(n))}"></script>' for n in scripts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head>" + "".join(head) + "</head><body>" + nav
            + f"<main>{body}</main>{tail}</body></html>\n")


def _cell_errors(meta: Mapping[str, Any]) -> str:
    bad = [c for c in meta.get("cells") or [] if isinstance(c, Mapping) and c.get("error")]
    if not bad:
        return ""
    items = "".join(f'<li><code>{esc_html(c.get("cell_id") or c.get("part"))}</code> '
                    f'{esc_html(c.get("status"))}<pre class="err">{esc_html(c.get("error"))}</pre></li>'
                    for c in bad[:20])
    more = f"<li>… and {len(bad) - 20} more</li>" if len(bad) > 20 else ""
    return f'<details><summary class="bad">{len(bad)} cell(s) reported an error</summary><ul>{items}{more}</ul></details>'


def sweep_header(meta: Mapping[str, Any] | None, what: str, refresh_s: float | None, *,
                 active: str | None = None, metric: str | None = None) -> str:
    """Name, id, status, progress, description and errors of a sweep, then its tab bar (``active``
    is the current tab; the metric selector is shown on tabs where the metric applies)."""
    m = meta or {}
    sid = sid_of(m)
    name = m.get("name") or sid or "sweep"
    parts = [f"<h1>{esc_html(name)} <span class=\"muted\" style=\"font-size:15px\">— {esc_html(what)}</span></h1>"]
    info = []
    if sid:
        info.append(f"id <code>{esc_html(sid)}</code>")
    if m.get("status"):
        info.append(badge(m.get("status")))
    restarts = int(num(m.get("restarts")) if np.isfinite(num(m.get("restarts"))) else 0)
    if restarts:
        info.append(badge(f"restarted {restarts}×", "restarted",
                          f"the sweep's driver (and its embedded Ray) stopped and was relaunched {restarts} "
                          "time(s); finished cells were kept"))
    prog = progress(m)
    if prog != "-":
        info.append(prog)
    if m.get("updated_at") is not None:
        info.append(f'<span class="muted">updated {when(m.get("updated_at"))}</span>')
    if info:
        parts.append("<div>" + " &nbsp; ".join(info) + "</div>")
    if m.get("description"):
        parts.append(f'<p class="muted">{esc_html(m.get("description"))}</p>')
    if m.get("note"):
        parts.append(f'<p class="note unsure">{esc_html(m.get("note"))}</p>')
    if m.get("error"):
        parts.append(f'<pre class="err">{esc_html(m.get("error"))}</pre>')
    parts.append(_cell_errors(m))
    if refresh_s and is_running(m):
        parts.append(f'<p class="muted">The sweep is still running: this page reloads every '
                     f"{int(refresh_s)} s; points not run yet are blank.</p>")
    parts.append(links_html(sweep_links(m)))
    parts.append(sweep_tabs(sid, active, metric))
    return '<div class="card">' + "".join(parts) + "</div>"
