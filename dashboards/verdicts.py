"""How a verdict of the optimum-shift report is shown: badges for the four states (transfers / does
not transfer / inconclusive / provisional), the reasons behind a verdict, the per-size numbers table
and the warnings. Used by every page that shows a verdict (index, contours, shift, compare, report).

Everything here reads the typed report (:class:`mutransfer.report.Report`, its :class:`Analysis`,
:class:`SizeRow`, :class:`Reason`), never keys of its JSON: each analysis' ``verdict`` (one of
:data:`VERDICTS`), ``verdict_text`` and ``reasons``; the report's ``provisional`` (None for a
finished sweep). Without a report (a sweep with no finished runs yet) :func:`provisional_of` reads
the sweep's status and progress instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from mutransfer.report import Analysis, ReasonCode, Verdict, fmt_lr

from .common import analyses_of, fmt, group_title, num, pct, report_of, size_symbol
from .html import badge, esc_html, is_running


def _css(verdict: str) -> str:
    return str(verdict).replace(" ", "-")


# verdict -> (css class, one-line meaning shown as the badge's tooltip)
VERDICTS: dict[str, tuple[str, str]] = {
    Verdict.TRANSFERS: (_css(Verdict.TRANSFERS), "the smallest size's optimum keeps its regret and its grid position "
                        "within tolerance at every size, confidence intervals included, away from the grid's edge"),
    Verdict.DOES_NOT_TRANSFER: (_css(Verdict.DOES_NOT_TRANSFER),
                                "the smallest size's optimum clearly breaks a tolerance at some size"),
    Verdict.INCONCLUSIVE: (_css(Verdict.INCONCLUSIVE), "the data cannot decide yet: see the reasons"),
    "single size": ("single-size", "only one size so far: nothing to compare yet"),  # the pages' own state
}
CELL_DONE = ("finished", "done")  # a finished cell ("done" in registries before one status vocabulary)
PROVISIONAL = ("provisional", "the sweep is not finished: the verdict may still change")

# reason code -> label; the report's ``detail`` becomes the tooltip.
REASONS: dict[str, str] = {
    ReasonCode.OPTIMUM_ON_EDGE: "optimum on the grid edge",
    ReasonCode.PARTIAL: "partial results",
    ReasonCode.UNCERTAIN: "CI straddles a threshold",
    ReasonCode.TOO_FEW_SEEDS: "too few seeds",
    ReasonCode.REGRET: "regret above tolerance",
    ReasonCode.DRIFT: "optimum drifts",
    ReasonCode.NO_OPTIMUM: "no finite optimum",
    ReasonCode.NOT_RUN: "base optimum not run",
}


@dataclass(frozen=True)
class Progress:
    """How far an unfinished sweep is: ``done`` of ``total`` ``unit`` (cells, or runs when the sweep
    has no cell list)."""

    done: int
    total: int
    unit: str = "cells"


@dataclass(frozen=True)
class Tolerances:
    """The report's verdict thresholds (:class:`mutransfer.report.Thresholds`) with its regret unit:
    what the pages draw the regret bars, bands and table colours against (no defaults of their own)."""

    regret_tol: float
    steps_tol: int
    drift_tol: float
    regret_unit: str


# --------------------------------------------------------------------------- reading the report


def provisional_of(report: Any, meta: Mapping[str, Any] | None = None) -> Progress | None:
    """How far the sweep is while it is unfinished, else None: the report's ``provisional`` when
    there is a report (its word wins); without one, the sweep's status: running/queued means
    provisional, counted in cells (``meta['cells']``) or runs."""
    rep = report_of(report)
    if rep is not None:
        p = getattr(rep, "provisional", None)
        return None if p is None else Progress(p.cells_done, p.cells_total)
    m = meta or {}
    if not is_running(m):
        return None
    cells = [c for c in m.get("cells") or [] if isinstance(c, Mapping)]
    if cells:
        return Progress(sum(str(c.get("status")) in CELL_DONE for c in cells), len(cells))
    done, total = num(m.get("runs_done")), num(m.get("runs_total"))
    return Progress(int(done) if np.isfinite(done) else 0, int(total) if np.isfinite(total) else 0, "runs")


def tolerances(report: Any) -> Tolerances | None:
    """The report's thresholds plus its regret unit (None without a report)."""
    rep = report_of(report)
    if rep is None or not hasattr(rep, "thresholds"):
        return None
    th = rep.thresholds
    return Tolerances(th.regret_tol, th.steps_tol, th.drift_tol, rep.regret_unit)


# --------------------------------------------------------------------------- HTML


def verdict_badge(verdict: Any, provisional: Progress | None = None) -> str:
    """The verdict as a badge; while provisional, a 'provisional k/n cells' badge comes first and
    the verdict is drawn dashed (a tentative reading)."""
    v = str(verdict or "unknown")
    cls, tip = VERDICTS.get(v, (None, None))
    if not provisional:
        return badge(v, cls, tip)
    count = f" {provisional.done}/{provisional.total} {provisional.unit}" if provisional.total else ""
    return (badge(f"provisional{count}", PROVISIONAL[0], PROVISIONAL[1]) + " "
            + badge(v, f"{cls or 'x'} tentative", f"current reading; {tip or ''}"))


def reasons_html(analysis: Analysis) -> str:
    """One chip per reason code (in the report's order), its details as the tooltip."""
    details: dict[str, list[str]] = {}
    for r in analysis.reasons:
        details.setdefault(str(r.code), []).append(r.detail)
    chips = []
    for code, ds in details.items():
        label = REASONS.get(code, code.replace("_", " "))
        count = f" ×{len(ds)}" if len(ds) > 1 else ""
        chips.append(f'<span class="reason" data-code="{esc_html(code)}" title="{esc_html("; ".join(ds))}">'
                     f"{esc_html(label + count)}</span>")
    return "".join(chips)


def verdict_line(a: Analysis, anchor: str | None = None, provisional: Progress | None = None) -> str:
    """One analysis as a list item: group — axis: badge(s), reason chips, the verdict text."""
    title = group_title(a.group)
    head = f'<a href="#{esc_html(anchor)}">{esc_html(title)}</a>' if anchor else esc_html(title)
    return (f"<li>{head} — {esc_html(a.axis)}: {verdict_badge(a.verdict, provisional)} "
            f"{reasons_html(a)} <span class=\"muted\">{esc_html(a.verdict_text)}</span></li>")


def regret_text(x: Any, unit: str = "relative") -> str:
    """A regret in its unit: '12.3%' (relative) or '1.2 pp' (accuracy points)."""
    if unit == "relative":
        return pct(x)
    v = num(x)
    return "n/a" if np.isnan(v) else "∞" if np.isinf(v) else f"{100 * v:.1f} pp"


def regret_ci_text(ci: Any, unit: str = "relative") -> str:
    return f"[{regret_text(ci[0], unit)}, {regret_text(ci[1], unit)}]" if ci and len(ci) == 2 else ""


def ci_text(ci: Any, spec: str = "+.2f") -> str:
    return f" [{fmt(ci[0], spec)}, {fmt(ci[1], spec)}]" if ci and len(ci) == 2 else ""


def provisional_banner(prov: Progress) -> str:
    """The banner at the top of a page whose report is provisional."""
    return (f'<div class="card provisional-note">{badge("provisional", PROVISIONAL[0], PROVISIONAL[1])} '
            f"<b>PROVISIONAL ({esc_html(prov.done)}/{esc_html(prov.total)} {prov.unit} finished)</b>: the sweep is "
            "not finished, verdicts may change.</div>")


def _regret_cell(x: Any, tol: float, unit: str = "relative", ci: Any = None) -> str:
    """Green when the regret and its CI are within tolerance, red when both are beyond it (or the
    base optimum diverged), amber when the CI straddles it."""
    v = num(x)
    lo, hi = (v, v) if not ci or len(ci) != 2 else (min(num(ci[0]), v), max(num(ci[1]), v))
    if np.isnan(v):
        cls = ""
    elif np.isinf(v) or lo > tol:
        cls = "bad"
    else:
        cls = "good" if hi <= tol else "unsure"
    txt = regret_text(x, unit) + (f" {regret_ci_text(ci, unit)}" if ci else "")
    return f'<td class="{cls}">{esc_html(txt)}</td>'


def _steps_text(v: Any, ci: Any) -> str:
    if v is None:
        return "-"
    return f"{int(v):+d}" + (f" [{int(ci[0]):+d}, {int(ci[1]):+d}]" if ci and len(ci) == 2 else "")


def analysis_table(a: Analysis, tol: Tolerances,
                   links: Mapping[Any, tuple[str | None, str | None]] | None = None) -> str:
    """Per size: optima (grid and fit), metric at the own and the base optimum, regret with its
    bootstrap CI, argmin moves in grid steps (with CI), shifts and drifts in octaves, the seeds'
    modal optimum, counts and edge flags. ``tol``: the report's :func:`tolerances`.
    ``links``: size -> (URL of the seeds at its optimum, at the base optimum): the size, metric and
    "at base opt" cells then open those runs."""
    unit, regret_tol = tol.regret_unit, num(tol.regret_tol)
    sym = size_symbol(a.axis)
    head = [sym, "η*", "β*", "fit η*", "fit β*", "fit", "metric", "at base opt", "regret [CI]", "steps η",
            "steps β", "Δlog2 η", "Δlog2 β", "drift η", "drift β", "seed mode", "seeds", "runs", "diverged", "edge"]
    rows = ["<tr>" + "".join(f"<th>{esc_html(h)}</th>" for h in head) + "</tr>"]
    for e in a.sizes:
        mode = e.seed_mode
        if mode:
            mtxt = f"{fmt_lr(mode.weight_lr)}"
            if mode.activity_lr is not None:
                mtxt += f", {fmt_lr(mode.activity_lr)}"
            mtxt += f" ({pct(e.seed_mode_freq)})"
        else:
            mtxt = "n/a"
        edge = ", ".join(f"{'η' if f.lr == 'weight_lr' else 'β'} {f.side}" for f in e.edge)
        cells = [e.size, fmt_lr(e.eta_star), fmt_lr(e.beta_star), fmt_lr(e.eta_star_fit),
                 fmt_lr(e.beta_star_fit), e.fit or "-", fmt(e.metric_at_opt), fmt(e.metric_at_base_opt)]
        own, base = (links or {}).get(e.size, (None, None))
        linked = {0: own, 6: own, 7: base}
        html_cells = "".join(
            f'<td><a href="{esc_html(linked[k])}" class="runs">{esc_html(c)}</a></td>' if linked.get(k)
            else f"<td>{esc_html(c)}</td>" for k, c in enumerate(cells)) + _regret_cell(
            e.regret, regret_tol, unit, e.regret_ci)
        html_cells += "".join(f"<td>{esc_html(c)}</td>" for c in [
            _steps_text(e.grid_steps_eta, e.grid_steps_eta_ci), _steps_text(e.grid_steps_beta, e.grid_steps_beta_ci),
            fmt(e.dlog2_eta, "+.2f"), fmt(e.dlog2_beta, "+.2f"), fmt(e.drift_eta, "+.2f"),
            fmt(e.drift_beta, "+.2f"), mtxt, e.n_seeds, e.n_runs, e.n_diverged, edge or "-"])
        rows.append(f"<tr>{html_cells}</tr>")
    slopes = (f'<p class="muted">drift slope of the sub-grid fit (octaves per doubling of {esc_html(a.axis)}): '
              f'η* {esc_html(fmt(a.drift_slope_eta, "+.2f") + ci_text(a.drift_slope_eta_ci))}, '
              f'β* {esc_html(fmt(a.drift_slope_beta, "+.2f") + ci_text(a.drift_slope_beta_ci))}'
              "</p>")
    note = ('<p class="muted">click a size or a metric to open its seeds at that optimum (“at base opt”: at '
            "the base size's optimum)</p>") if links else ""
    return ('<div class="card sizes-card"><table class="sizes">' + "".join(rows) + "</table>" + note + slopes
            + "</div>")


def views_html(a: Analysis, tol: Tolerances) -> str:
    """The robustness views of an analysis: ``by_base`` (regret at every size and the verdict with
    each size as the base) and ``by_budget`` (grid argmin / regret and verdict at 25, 50, 100 % of
    the training steps), or the note saying why a view is absent."""
    unit = tol.regret_unit
    sizes = [e.size for e in a.sizes]
    out = ""
    if a.by_base:
        head = "<tr><th>base</th>" + "".join(f"<th>{esc_html(s)}</th>" for s in sizes) + "<th>verdict</th><th>reasons</th></tr>"
        rows = []
        for v in a.by_base:
            reg = {r.size: r.regret for r in v.regret}
            cells = "".join(f"<td>{esc_html(regret_text(reg.get(s), unit))}</td>" for s in sizes)
            rows.append(f"<tr><td>{esc_html(v.base_size)}</td>{cells}<td>{verdict_badge(v.verdict)}</td>"
                        f"<td>{esc_html(', '.join(map(str, v.reason_codes)) or '-')}</td></tr>")
        out += ('<h3>By base size</h3><p class="muted">regret at every size with each size taken as the base '
                '(rows); the verdict each base would give.</p><div class="card" style="overflow-x:auto"><table '
                f'class="by-base">{head}{"".join(rows)}</table></div>')
    if a.by_budget:
        head = "<tr><th>budget</th>" + "".join(f"<th>{esc_html(s)}</th>" for s in sizes) + "<th>verdict</th><th>reasons</th></tr>"
        rows = []
        for v in a.by_budget:
            per = {x.size: x for x in v.sizes}

            def cell(s: Any) -> str:
                x = per.get(s)
                if x is None:
                    return f"<td>{esc_html(fmt_lr(None))} / {esc_html(regret_text(None, unit))}</td>"
                beta = f", {esc_html(fmt_lr(x.beta_star))}" if x.beta_star is not None else ""
                return f"<td>{esc_html(fmt_lr(x.eta_star))}{beta} / {esc_html(regret_text(x.regret, unit))}</td>"
            rows.append(f"<tr><td>{esc_html(pct(v.fraction))}</td>{''.join(cell(s) for s in sizes)}"
                        f"<td>{verdict_badge(v.verdict)}</td>"
                        f"<td>{esc_html(', '.join(map(str, v.reason_codes)) or '-')}</td></tr>")
        out += ('<h3>By training budget</h3><p class="muted">grid argmin η*, β* / regret of the base optimum at '
                'each fraction of the training steps.</p><div class="card" style="overflow-x:auto"><table '
                f'class="by-budget">{head}{"".join(rows)}</table></div>')
    elif a.by_budget_note:
        out += f'<p class="muted">by budget: {esc_html(a.by_budget_note)}</p>'
    return out


def warnings_html(a: Analysis) -> str:
    out = ""
    if a.warnings:
        out += '<h3>Warnings</h3><ul class="warn">' + "".join(f"<li>{esc_html(x)}</li>" for x in a.warnings) + "</ul>"
    if a.missing:
        kinds: dict[str, int] = {}
        for m in a.missing:
            kinds[m.kind] = kinds.get(m.kind, 0) + 1
        out += ('<p class="muted">missing: ' + ", ".join(f"{n} {esc_html(k)}(s)" for k, n in sorted(kinds.items()))
                + "</p>")
    return out


def verdict_summary(report: Any, meta: Mapping[str, Any] | None = None, max_items: int = 6) -> str:
    """Compact verdicts of a sweep for the index: one badge per analysis, labelled by its group."""
    analyses = analyses_of(report)
    if not analyses:
        return '<span class="muted">-</span>'
    prov = provisional_of(report, meta)
    items = []
    for a in analyses[:max_items]:
        label = f"{group_title({k: v for k, v in a.group.items() if k in ('algorithm', 'parametrization')})} · {a.axis}"
        items.append(f'<div class="verdict"><span class="muted">{esc_html(label)}</span> '
                     f"{verdict_badge(a.verdict, prov)}</div>")
    if len(analyses) > max_items:
        items.append(f'<div class="muted">+{len(analyses) - max_items} more</div>')
    return "".join(items)
