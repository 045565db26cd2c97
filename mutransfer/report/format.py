"""The optimum-shift report as plain text (``mutransfer report``, the HTML report's text block)."""

from __future__ import annotations

from typing import Any, Mapping

from .build import _title
from .model import Report
from .encoding import fmt_lr, fmt_num, fmt_pct, fmt_regret, fmt_regret_ci, signed


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return [" | ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]


def _steps(v: Any, ci: Any) -> str:
    if v is None:
        return "-"
    return f"{int(v):+d}" + (f" [{int(ci[0]):+d},{int(ci[1]):+d}]" if ci else "")


def provisional_line(report: Report | Mapping[str, Any]) -> str | None:
    p = Report.coerce(report).provisional
    if not p:
        return None
    return (f"PROVISIONAL ({p.cells_done}/{p.cells_total} cells finished): "
            "the sweep is not finished, verdicts may change")


def format_report(report: Report | Mapping[str, Any]) -> str:
    """Human-readable text of a report (a :class:`Report` or its JSON).

    First a PROVISIONAL line when the sweep is unfinished; per analysis: a table (size | η* | β* |
    fitted η*, β* | metric | regret [CI] | grid steps of η*, β* [CI] | Δlog2 | seed mode), the
    fitted drift slopes with CIs, warnings, the verdict line with its reason codes, and the
    by_base / by_budget views. Learning rates print like 1e-1, 5e-2; shifts in octaves.
    """
    report = Report.coerce(report)
    unit = report.regret_unit
    direction = "lower" if report.direction == "min" else "higher"
    lines = []
    prov = provisional_line(report)
    if prov:
        lines.append(prov)
    lines.append(f"Optimum-shift report — metric {report.metric} ({direction} is better); "
                 f"diverged runs: {report.diverged}; regret "
                 f"{'relative' if unit == 'relative' else 'in accuracy points (pp)'}")
    if report.n_diverged_loss or report.n_diverged_inference:
        lines.append(f"diverged runs by reason: loss {report.n_diverged_loss}, "
                     f"inference {report.n_diverged_inference}")
    for note in report.notes:
        lines.append(f"note: {note}")
    if not report.analyses:
        lines.append("no analyses")
        return "\n".join(lines)
    level = report.ci_level or 0.95
    for a in report.analyses:
        axis = a.axis
        lines += ["", f"== {_title(a.group)} — axis: {axis} (base {axis}={a.base_size}) =="]
        header = [axis, "η*", "β*", "fit η*", "fit β*", "fit", "metric", "regret", f"regret {level:.0%} CI",
                  "steps η*", "steps β*", "Δlog2η", "Δlog2β", "seed mode"]
        rows = [header]
        for e in a.sizes:
            mode = "n/a (1 seed)" if e.seed_mode is None else (
                f"{fmt_lr(e.seed_mode.weight_lr)},{fmt_lr(e.seed_mode.activity_lr)} {fmt_pct(e.seed_mode_freq)}")
            rows.append([
                str(e.size) + (" (local)" if e.local else ""), fmt_lr(e.eta_star), fmt_lr(e.beta_star), fmt_lr(e.eta_star_fit),
                fmt_lr(e.beta_star_fit), e.fit, fmt_num(e.metric_at_opt), fmt_regret(e.regret, unit),
                fmt_regret_ci(e.regret_ci, unit) or "-",
                _steps(e.grid_steps_eta, e.grid_steps_eta_ci), _steps(e.grid_steps_beta, e.grid_steps_beta_ci),
                fmt_num(e.dlog2_eta, "+.2f"), fmt_num(e.dlog2_beta, "+.2f"), mode,
            ])
        lines += _table(rows)
        if any(e.local for e in a.sizes):
            lines.append(f"(local): a local lr grid around the base optimum; regret there is against the best point "
                         "of the neighbourhood")
        slope = []
        for lr, sym in (("eta", "η*"), ("beta", "β*")):
            d = a.drift_slope(lr)
            slope.append(f"{sym} {fmt_num(d.value, '+.2f')}" + (f" [{signed(d.ci[0])}, {signed(d.ci[1])}]" if d.ci else ""))
        lines.append(f"drift slope of the sub-grid fit (octaves per doubling of {axis}): {', '.join(slope)}")
        if a.warnings:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in a.warnings]
        lines.append(f"verdict: {a.verdict.value} — {a.verdict_text}")
        if a.reasons:
            lines.append(f"reasons: {', '.join(c.value for c in a.reason_codes)}")
        if a.by_base:
            lines.append(f"by base size (regret at every {axis} with each size as the base):")
            rows = [["base"] + [str(e.size) for e in a.sizes] + ["verdict", "reasons"]]
            for v in a.by_base:
                rows.append([str(v.base_size)] + [fmt_regret(r.regret, unit) for r in v.regret]
                            + [v.verdict.value, ", ".join(c.value for c in v.reason_codes) or "-"])
            lines += ["  " + s for s in _table(rows)]
        if a.by_budget:
            lines.append("by budget (grid argmin η*,β* / regret at each fraction of the training steps):")
            rows = [["budget"] + [str(e.size) for e in a.sizes] + ["verdict", "reasons"]]
            for v in a.by_budget:
                cells = [f"{fmt_lr(s.eta_star)},{fmt_lr(s.beta_star)} / {fmt_regret(s.regret, unit)}" for s in v.sizes]
                rows.append([f"{v.fraction:.0%}"] + cells + [v.verdict.value,
                                                           ", ".join(c.value for c in v.reason_codes) or "-"])
            lines += ["  " + s for s in _table(rows)]
        elif a.by_budget_note:
            lines.append(f"by budget: {a.by_budget_note}")
    return "\n".join(lines)
