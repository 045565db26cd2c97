"""How a verdict of the optimum-shift report is shown: badges for the four states (transfers / does
not transfer / inconclusive / provisional), the reasons behind a verdict, the per-size numbers table
and the warnings. Used by every page that shows a verdict (index, contours, shift, compare, report).

The report's JSON contract (``mutransfer.report``): each analysis has ``verdict`` (one of
:data:`VERDICTS`), ``verdict_text`` and ``reasons`` (``[{"code", "detail", ...}]``); the report has
``provisional`` (``None`` for a finished sweep, else ``{"cells_done", "cells_total"}``). Reports
written before ``reasons`` / ``provisional`` existed are read through the fallbacks
:func:`reasons_of` (edge flags, missing sizes, one-seed warnings) and :func:`provisional_of` (the
sweep's status and progress), so old and new reports render the same way.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mutransfer.report import fmt_lr

from .common import analyses_of, fmt, group_title, num, pct, size_symbol
from .html import badge, esc_html, is_running

# verdict -> (css class, one-line meaning shown as the badge's tooltip)
VERDICTS: dict[str, tuple[str, str]] = {
    "transfers": ("transfers", "the smallest size's optimum keeps its regret and its grid position within "
                               "tolerance at every size, confidence intervals included, away from the grid's edge"),
    "does not transfer": ("does-not-transfer", "the smallest size's optimum clearly breaks a tolerance at some size"),
    "inconclusive": ("inconclusive", "the data cannot decide yet: see the reasons"),
    "single size": ("single-size", "only one size so far: nothing to compare yet"),
}
CELL_DONE = ("finished", "done")  # a finished cell ("done" in registries before one status vocabulary)
PROVISIONAL = ("provisional", "the sweep is not finished: the verdict may still change")

# reason code -> label; the report's ``detail`` becomes the tooltip.
REASONS: dict[str, str] = {
    "optimum_on_edge": "optimum on the grid edge",
    "partial": "partial results",
    "uncertain": "CI straddles a threshold",
    "too_few_seeds": "too few seeds",
    "regret": "regret above tolerance",
    "drift": "optimum drifts",
    "no_optimum": "no finite optimum",
    "not_run": "base optimum not run",
}


# --------------------------------------------------------------------------- reading the report


def provisional_of(report: Mapping[str, Any] | None, meta: Mapping[str, Any] | None = None) -> dict | None:
    """``{"cells_done", "cells_total"}`` while the sweep is unfinished, else None.

    The report's ``provisional`` when it has the key; otherwise (older reports) derived from the
    sweep's status: running/queued means provisional, counted in cells (``meta['cells']``) or runs."""
    rep = report or {}
    if "provisional" in rep:
        p = rep.get("provisional")
        return dict(p) if isinstance(p, Mapping) else None
    m = meta or {}
    if not is_running(m):
        return None
    cells = [c for c in m.get("cells") or [] if isinstance(c, Mapping)]
    if cells:
        done = sum(str(c.get("status")) in CELL_DONE for c in cells)
        return {"cells_done": done, "cells_total": len(cells)}
    done, total = num(m.get("runs_done")), num(m.get("runs_total"))
    return {"runs_done": int(done) if np.isfinite(done) else 0, "runs_total": int(total) if np.isfinite(total) else 0}


def reasons_of(analysis: Mapping[str, Any]) -> list[dict]:
    """The analysis' ``reasons``; for older reports, reasons derived from its edge flags, missing
    sizes and single-seed sizes (codes ``optimum_on_edge``, ``partial``, ``too_few_seeds``)."""
    if isinstance(analysis.get("reasons"), list):
        return [r for r in analysis["reasons"] if isinstance(r, Mapping)]
    axis = analysis.get("axis", "")
    out: list[dict] = []
    edges: dict[tuple[str, str], list] = {}
    for e in analysis.get("sizes") or []:
        for f in e.get("edge") or []:
            if isinstance(f, Mapping):
                edges.setdefault((str(f.get("lr")), str(f.get("side"))), []).append(e.get("size"))
    for (lr, side), sizes in edges.items():
        sym = "eta" if lr == "weight_lr" else "beta"
        out.append({"code": "optimum_on_edge", "sizes": sizes, "axis_lr": sym, "direction": side,
                    "detail": f"{lr} optimum at the {'lowest' if side == 'low' else 'highest'} grid value "
                              f"for {axis} = {', '.join(map(str, sizes))}"})
    missing = [m for m in analysis.get("missing") or [] if isinstance(m, Mapping)]
    if missing:
        kinds: dict[str, int] = {}
        for m in missing:
            kinds[str(m.get("kind", "?"))] = kinds.get(str(m.get("kind", "?")), 0) + 1
        out.append({"code": "partial", "detail": "missing " + ", ".join(f"{n} {k}(s)" for k, n in sorted(kinds.items()))})
    one_seed = [e.get("size") for e in analysis.get("sizes") or [] if num(e.get("n_seeds")) == 1]
    if one_seed:
        out.append({"code": "too_few_seeds", "n_seeds": 1,
                    "detail": f"one seed at {axis} = {', '.join(map(str, one_seed))}: no seed uncertainty"})
    return out


# --------------------------------------------------------------------------- HTML


def verdict_badge(verdict: Any, provisional: Mapping[str, Any] | None = None) -> str:
    """The verdict as a badge; while provisional, a 'provisional k/n cells' badge comes first and
    the verdict is drawn dashed (a tentative reading)."""
    v = str(verdict or "unknown")
    cls, tip = VERDICTS.get(v, (None, None))
    if not provisional:
        return badge(v, cls, tip)
    done = provisional.get("cells_done", provisional.get("runs_done"))
    total = provisional.get("cells_total", provisional.get("runs_total"))
    unit = "cells" if "cells_total" in provisional else "runs"
    count = f" {done}/{total} {unit}" if done is not None and total else ""
    return (badge(f"provisional{count}", PROVISIONAL[0], PROVISIONAL[1]) + " "
            + badge(v, f"{cls or 'x'} tentative", f"current reading; {tip or ''}"))


def reasons_html(analysis: Mapping[str, Any]) -> str:
    """One chip per reason code (in the report's order), its details as the tooltip."""
    details: dict[str, list[str]] = {}
    for r in reasons_of(analysis):
        details.setdefault(str(r.get("code", "")), []).append(str(r.get("detail", "")))
    chips = []
    for code, ds in details.items():
        label = REASONS.get(code, code.replace("_", " "))
        count = f" ×{len(ds)}" if len(ds) > 1 else ""
        chips.append(f'<span class="reason" data-code="{esc_html(code)}" title="{esc_html("; ".join(ds))}">'
                     f"{esc_html(label + count)}</span>")
    return "".join(chips)


def verdict_line(a: Mapping[str, Any], anchor: str | None = None,
                 provisional: Mapping[str, Any] | None = None) -> str:
    """One analysis as a list item: group — axis: badge(s), reason chips, the verdict text."""
    title = group_title(a.get("group"))
    head = f'<a href="#{esc_html(anchor)}">{esc_html(title)}</a>' if anchor else esc_html(title)
    return (f"<li>{head} — {esc_html(a.get('axis'))}: {verdict_badge(a.get('verdict'), provisional)} "
            f"{reasons_html(a)} <span class=\"muted\">{esc_html(a.get('verdict_text'))}</span></li>")


def tolerances(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The report's thresholds plus its regret unit (defaults for reports written before them)."""
    rep = report or {}
    th = dict(rep.get("thresholds") or {})
    th.setdefault("regret_tol", 0.05)
    th["regret_unit"] = rep.get("regret_unit", "relative")
    return th


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


def provisional_banner(prov: Mapping[str, Any]) -> str:
    """The banner at the top of a page whose report is provisional."""
    done = prov.get("cells_done", prov.get("runs_done"))
    total = prov.get("cells_total", prov.get("runs_total"))
    unit = "cells" if "cells_total" in prov else "runs"
    return (f'<div class="card provisional-note">{badge("provisional", PROVISIONAL[0], PROVISIONAL[1])} '
            f"<b>PROVISIONAL ({esc_html(done)}/{esc_html(total)} {unit} finished)</b>: the sweep is not finished, "
            "verdicts may change.</div>")


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


def analysis_table(a: Mapping[str, Any], tol: float | Mapping[str, Any] = 0.05,
                   links: Mapping[Any, tuple[str | None, str | None]] | None = None) -> str:
    """Per size: optima (grid and fit), metric at the own and the base optimum, regret with its
    bootstrap CI, argmin moves in grid steps (with CI), shifts and drifts in octaves, the seeds'
    modal optimum, counts and edge flags. ``tol``: the regret tolerance, or :func:`tolerances`.
    ``links``: size -> (URL of the seeds at its optimum, at the base optimum): the size, metric and
    "at base opt" cells then open those runs."""
    th = tol if isinstance(tol, Mapping) else {"regret_tol": tol}
    unit = th.get("regret_unit", "relative")
    tol = num(th.get("regret_tol", 0.05))
    tol = tol if np.isfinite(tol) else 0.05
    sym = size_symbol(a.get("axis", ""))
    head = [sym, "η*", "β*", "fit η*", "fit β*", "fit", "metric", "at base opt", "regret [CI]", "steps η",
            "steps β", "Δlog2 η", "Δlog2 β", "drift η", "drift β", "seed mode", "seeds", "runs", "diverged", "edge"]
    rows = ["<tr>" + "".join(f"<th>{esc_html(h)}</th>" for h in head) + "</tr>"]
    for e in a.get("sizes") or []:
        mode = e.get("seed_mode")
        if mode:
            mtxt = f"{fmt_lr(mode.get('weight_lr'))}"
            if mode.get("activity_lr") is not None:
                mtxt += f", {fmt_lr(mode.get('activity_lr'))}"
            mtxt += f" ({pct(e.get('seed_mode_freq'))})"
        else:
            mtxt = "n/a"
        edge = ", ".join(f"{'η' if f.get('lr') == 'weight_lr' else 'β'} {f.get('side')}"
                         for f in e.get("edge") or [] if isinstance(f, Mapping))
        cells = [e.get("size"), fmt_lr(e.get("eta_star")), fmt_lr(e.get("beta_star")), fmt_lr(e.get("eta_star_fit")),
                 fmt_lr(e.get("beta_star_fit")), e.get("fit", "-"), fmt(e.get("metric_at_opt")),
                 fmt(e.get("metric_at_base_opt"))]
        own, base = (links or {}).get(e.get("size"), (None, None))
        linked = {0: own, 6: own, 7: base}
        html_cells = "".join(
            f'<td><a href="{esc_html(linked[k])}" class="runs">{esc_html(c)}</a></td>' if linked.get(k)
            else f"<td>{esc_html(c)}</td>" for k, c in enumerate(cells)) + _regret_cell(
            e.get("regret"), tol, unit, e.get("regret_ci"))
        html_cells += "".join(f"<td>{esc_html(c)}</td>" for c in [
            _steps_text(e.get("grid_steps_eta"), e.get("grid_steps_eta_ci")),
            _steps_text(e.get("grid_steps_beta"), e.get("grid_steps_beta_ci")),
            fmt(e.get("dlog2_eta"), "+.2f"), fmt(e.get("dlog2_beta"), "+.2f"), fmt(e.get("drift_eta"), "+.2f"),
            fmt(e.get("drift_beta"), "+.2f"), mtxt, e.get("n_seeds", "-"), e.get("n_runs", "-"),
            e.get("n_diverged", "-"), edge or "-"])
        rows.append(f"<tr>{html_cells}</tr>")
    slopes = (f'<p class="muted">drift slope of the sub-grid fit (octaves per doubling of {esc_html(a.get("axis"))}): '
              f'η* {esc_html(fmt(a.get("drift_slope_eta"), "+.2f") + ci_text(a.get("drift_slope_eta_ci")))}, '
              f'β* {esc_html(fmt(a.get("drift_slope_beta"), "+.2f") + ci_text(a.get("drift_slope_beta_ci")))}'
              "</p>")
    note = ('<p class="muted">click a size or a metric to open its seeds at that optimum (“at base opt”: at '
            "the base size's optimum)</p>") if links else ""
    return ('<div class="card sizes-card"><table class="sizes">' + "".join(rows) + "</table>" + note + slopes
            + "</div>")


def views_html(a: Mapping[str, Any], tol: Mapping[str, Any] | None = None) -> str:
    """The robustness views of an analysis: ``by_base`` (regret at every size and the verdict with
    each size as the base) and ``by_budget`` (grid argmin / regret and verdict at 25, 50, 100 % of
    the training steps), or the note saying why a view is absent."""
    unit = (tol or {}).get("regret_unit", "relative")
    sizes = [e.get("size") for e in a.get("sizes") or []]
    out = ""
    bb = [v for v in a.get("by_base") or [] if isinstance(v, Mapping)]
    if bb:
        head = "<tr><th>base</th>" + "".join(f"<th>{esc_html(s)}</th>" for s in sizes) + "<th>verdict</th><th>reasons</th></tr>"
        rows = []
        for v in bb:
            reg = {r.get("size"): r for r in v.get("regret") or [] if isinstance(r, Mapping)}
            cells = "".join(f"<td>{esc_html(regret_text(reg.get(s, {}).get('regret'), unit))}</td>" for s in sizes)
            rows.append(f"<tr><td>{esc_html(v.get('base_size'))}</td>{cells}<td>{verdict_badge(v.get('verdict'))}</td>"
                        f"<td>{esc_html(', '.join(v.get('reason_codes') or []) or '-')}</td></tr>")
        out += ('<h3>By base size</h3><p class="muted">regret at every size with each size taken as the base '
                '(rows); the verdict each base would give.</p><div class="card" style="overflow-x:auto"><table '
                f'class="by-base">{head}{"".join(rows)}</table></div>')
    bu = [v for v in a.get("by_budget") or [] if isinstance(v, Mapping)]
    if bu:
        head = "<tr><th>budget</th>" + "".join(f"<th>{esc_html(s)}</th>" for s in sizes) + "<th>verdict</th><th>reasons</th></tr>"
        rows = []
        for v in bu:
            per = {x.get("size"): x for x in v.get("sizes") or [] if isinstance(x, Mapping)}
            cells = "".join(
                f"<td>{esc_html(fmt_lr(per.get(s, {}).get('eta_star')))}"
                + (f", {esc_html(fmt_lr(per.get(s, {}).get('beta_star')))}" if per.get(s, {}).get("beta_star") is not None else "")
                + f" / {esc_html(regret_text(per.get(s, {}).get('regret'), unit))}</td>" for s in sizes)
            rows.append(f"<tr><td>{esc_html(pct(v.get('fraction')))}</td>{cells}<td>{verdict_badge(v.get('verdict'))}</td>"
                        f"<td>{esc_html(', '.join(v.get('reason_codes') or []) or '-')}</td></tr>")
        out += ('<h3>By training budget</h3><p class="muted">grid argmin η*, β* / regret of the base optimum at '
                'each fraction of the training steps.</p><div class="card" style="overflow-x:auto"><table '
                f'class="by-budget">{head}{"".join(rows)}</table></div>')
    elif a.get("by_budget_note"):
        out += f'<p class="muted">by budget: {esc_html(a.get("by_budget_note"))}</p>'
    return out


def warnings_html(a: Mapping[str, Any]) -> str:
    w = a.get("warnings") or []
    out = ""
    if w:
        out += '<h3>Warnings</h3><ul class="warn">' + "".join(f"<li>{esc_html(x)}</li>" for x in w) + "</ul>"
    missing = a.get("missing") or []
    if missing:
        kinds: dict[str, int] = {}
        for m in missing:
            k = str(m.get("kind", "?")) if isinstance(m, Mapping) else "?"
            kinds[k] = kinds.get(k, 0) + 1
        out += ('<p class="muted">missing: ' + ", ".join(f"{n} {esc_html(k)}(s)" for k, n in sorted(kinds.items()))
                + "</p>")
    return out


def verdict_summary(report: Mapping[str, Any] | None, meta: Mapping[str, Any] | None = None,
                    max_items: int = 6) -> str:
    """Compact verdicts of a sweep for the index: one badge per analysis, labelled by its group."""
    analyses = analyses_of(report)
    if not analyses:
        return '<span class="muted">-</span>'
    prov = provisional_of(report, meta)
    items = []
    for a in analyses[:max_items]:
        label = f"{group_title({k: v for k, v in (a.get('group') or {}).items() if k in ('algorithm', 'parametrization')})} · {a.get('axis')}"
        items.append(f'<div class="verdict"><span class="muted">{esc_html(label)}</span> '
                     f"{verdict_badge(a.get('verdict'), prov)}</div>")
    if len(analyses) > max_items:
        items.append(f'<div class="muted">+{len(analyses) - max_items} more</div>')
    return "".join(items)
