"""The "decide" panel of a sweep's optimum-shift page (issue 20): for every undecided analysis, a
button that resubmits the sweep with the ``decide:`` field (sweeps/decide.py), its limits, the runs
it may add and the time that would take; and the decide loop's rounds once it ran.

Self-contained: :func:`decide_panel` renders the panel from the report (its ``decide`` record,
when present) and an ``offer`` the service computes (limits, most runs, estimated seconds);
:func:`inject` places it at the end of a rendered page's ``<main>``. The button POSTs
``{max_runs, max_seeds, max_rounds}`` as JSON to ``POST /sweeps/{id}/decide``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import quote

from mutransfer.report import Analysis, Report, Verdict

from .html import esc_html

STOPPED = {"decided": "every analysis is decided", "max_rounds": "limit hit: max_rounds",
           "max_runs": "limit hit: max_runs", "max_seeds": "limit hit: max_seeds", "lr_bound": "limit hit: lr bound",
           "stuck": "open reasons with no action left", "failed": "a part failed to train", None: "running"}


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no finished runs to time yet)"
    return f"≈ {seconds:.0f} s" if seconds < 90 else f"≈ {seconds / 60:.0f} min"


def _title(a: Analysis) -> str:
    g = a.group or {}
    return " / ".join(str(g[k]) for k in ("algorithm", "parametrization") if g.get(k) is not None) + \
        f" over {a.axis}"


def rounds_html(record: Mapping[str, Any] | None) -> str:
    """The decide loop's rounds (what each added and why) and why it stopped."""
    if not record:
        return ""
    items = []
    for r in record.get("rounds") or []:
        adds = "".join(f"<li><code>{esc_html(a.get('cell'))}</code> +{int(a.get('runs') or 0)} "
                       f"({esc_html(a.get('code'))}): {esc_html(a.get('why'))}</li>" for a in r.get("additions") or [])
        items.append(f"<li>round {int(r.get('number', 0))}: +{int(r.get('runs') or 0)} runs<ul>{adds}</ul></li>")
    stopped = record.get("stopped")
    open_ = "".join(f"<li>{esc_html(o.get('analysis'))}: {esc_html(o.get('outcome'))} "
                    f"({esc_html(', '.join(o.get('codes') or []))})</li>" for o in record.get("open") or [])
    return (f'<div class="card" id="decide-rounds"><h3>Decide: {len(record.get("rounds") or [])} round(s), '
            f'{int(record.get("runs_added") or 0)} runs added</h3><ol>{"".join(items)}</ol>'
            f'<p>stopped: <b>{esc_html(STOPPED.get(stopped, stopped))}</b>'
            + (f' — {esc_html(record.get("detail"))}' if record.get("detail") and stopped != "decided" else "")
            + "</p>" + (f"<p>still open:</p><ul>{open_}</ul>" if open_ else "") + "</div>")


def decide_panel(report: Report | Mapping[str, Any] | None, sweep_id: str, offer: Mapping[str, Any] | None) -> str:
    """The panel: the rounds (when the loop ran) and, per undecided analysis, the decide button
    with ``offer`` = {max_runs, max_seeds, max_rounds, runs_now, seconds} (None: no button)."""
    report = Report.coerce(report)
    if report is None:
        return ""
    parts = [rounds_html(report.decide)]
    undecided = [a for a in report.analyses if a.verdict == Verdict.INCONCLUSIVE]
    if offer and undecided and not report.provisional:
        url = f"/sweeps/{quote(sweep_id, safe='')}/decide"
        body = json.dumps({k: offer[k] for k in ("max_runs", "max_seeds", "max_rounds")})
        for a in undecided:
            codes = ", ".join(c.value for c in a.reason_codes)
            parts.append(
                f'<div class="card decide-offer"><p><b>{esc_html(_title(a))}</b> is inconclusive ({esc_html(codes)}). '
                f'Decide trains what its reasons ask for, round after round, until every verdict of this sweep is '
                f'decided or a limit is hit: at most <b>{int(offer["max_runs"])}</b> runs added (now '
                f'{int(offer["runs_now"])}), {int(offer["max_seeds"])} seeds at a point, {int(offer["max_rounds"])} '
                f'rounds; time at this sweep\'s pace {esc_html(_clock(offer.get("seconds")))}.</p>'
                f'<p><button class="decide" data-url="{esc_html(url)}" data-body="{esc_html(body)}" '
                f'onclick="return decideSweep(this)">decide</button> '
                f'<label>token (optional) <input type="password" class="decide-token" autocomplete="off"></label> '
                f'<span class="decide-out muted" role="status"></span></p></div>')
        parts.append(_SCRIPT)
    html = "".join(p for p in parts if p)
    return f'<section id="decide"><h2>Decide</h2>{html}</section>' if html else ""


_SCRIPT = """<script>
async function decideSweep(btn) {
  const box = btn.closest('.decide-offer'), out = box.querySelector('.decide-out');
  const tok = box.querySelector('.decide-token').value.trim();
  const h = {'Content-Type': 'application/json', 'Accept': 'application/json'};
  if (tok) h['Authorization'] = 'Bearer ' + tok;
  btn.disabled = true; out.textContent = 'submitting…';
  try {
    const r = await fetch(btn.dataset.url, {method: 'POST', headers: h, body: btn.dataset.body});
    out.textContent = r.status + ' ' + r.statusText + ': ' + (await r.text()).slice(0, 300);
    if (r.ok) setTimeout(() => window.location.reload(), 1000);
    else btn.disabled = false;
  } catch (e) { out.textContent = 'request failed: ' + e; btn.disabled = false; }
  return false;
}
</script>"""


def inject(page: str, panel: str) -> str:
    """``page`` with ``panel`` at the end of its ``<main>`` (unchanged without one)."""
    if not panel or "</main>" not in page:
        return page
    k = page.rindex("</main>")
    return page[:k] + panel + page[k:]
