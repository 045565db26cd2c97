"""The optimum-shift report as plain text (``mutransfer report``, the HTML report's text block)."""

from __future__ import annotations

from typing import Any

from .build import _title
from .encoding import fmt_lr, fmt_num, fmt_pct, fmt_regret, fmt_regret_ci, signed


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return [" | ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]


def _steps(v: Any, ci: Any) -> str:
    if v is None:
        return "-"
    return f"{int(v):+d}" + (f" [{int(ci[0]):+d},{int(ci[1]):+d}]" if ci else "")


def provisional_line(report: dict[str, Any]) -> str | None:
    p = report.get("provisional")
    if not p:
        return None
    return (f"PROVISIONAL ({p.get('cells_done')}/{p.get('cells_total')} cells finished): "
            "the sweep is not finished, verdicts may change")


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text of an :func:`optimum_shift_report` result.

    First a PROVISIONAL line when the sweep is unfinished; per analysis: a table (size | η* | β* |
    fitted η*, β* | metric | regret [CI] | grid steps of η*, β* [CI] | Δlog2 | seed mode), the
    fitted drift slopes with CIs, warnings, the verdict line with its reason codes, and the
    by_base / by_budget views. Learning rates print like 1e-1, 5e-2; shifts in octaves.
    """
    unit = report.get("regret_unit", "relative")
    direction = "lower" if report.get("direction") == "min" else "higher"
    lines = []
    prov = provisional_line(report)
    if prov:
        lines.append(prov)
    lines.append(f"Optimum-shift report — metric {report.get('metric')} ({direction} is better); "
                 f"diverged runs: {report.get('diverged', 'inf')}; regret "
                 f"{'relative' if unit == 'relative' else 'in accuracy points (pp)'}")
    by_reason = report.get("n_diverged_by_reason")
    if by_reason and any(by_reason.values()):
        lines.append(f"diverged runs by reason: loss {by_reason.get('loss', 0)}, "
                     f"inference {by_reason.get('inference', 0)}")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    if not report.get("analyses"):
        lines.append("no analyses")
        return "\n".join(lines)
    level = report.get("ci_level") or 0.95
    for a in report["analyses"]:
        axis = a["axis"]
        lines += ["", f"== {_title(a['group'])} — axis: {axis} (base {axis}={a['base_size']}) =="]
        header = [axis, "η*", "β*", "fit η*", "fit β*", "fit", "metric", "regret", f"regret {level:.0%} CI",
                  "steps η*", "steps β*", "Δlog2η", "Δlog2β", "seed mode"]
        rows = [header]
        for e in a["sizes"]:
            mode = "n/a (1 seed)" if e.get("seed_mode") is None else (
                f"{fmt_lr(e['seed_mode']['weight_lr'])},{fmt_lr(e['seed_mode']['activity_lr'])} "
                f"{fmt_pct(e['seed_mode_freq'])}")
            rows.append([
                str(e["size"]), fmt_lr(e["eta_star"]), fmt_lr(e["beta_star"]), fmt_lr(e["eta_star_fit"]),
                fmt_lr(e["beta_star_fit"]), e["fit"], fmt_num(e["metric_at_opt"]), fmt_regret(e["regret"], unit),
                fmt_regret_ci(e.get("regret_ci"), unit) or "-",
                _steps(e.get("grid_steps_eta"), e.get("grid_steps_eta_ci")),
                _steps(e.get("grid_steps_beta"), e.get("grid_steps_beta_ci")),
                fmt_num(e["dlog2_eta"], "+.2f"), fmt_num(e["dlog2_beta"], "+.2f"), mode,
            ])
        lines += _table(rows)
        slope = []
        for lr, sym in (("eta", "η*"), ("beta", "β*")):
            ci = a.get(f"drift_slope_{lr}_ci")
            slope.append(f"{sym} {fmt_num(a.get(f'drift_slope_{lr}'), '+.2f')}"
                         + (f" [{signed(ci[0])}, {signed(ci[1])}]" if ci else ""))
        lines.append(f"drift slope of the sub-grid fit (octaves per doubling of {axis}): {', '.join(slope)}")
        if a["warnings"]:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in a["warnings"]]
        codes = sorted({r["code"] for r in a.get("reasons") or []})
        lines.append(f"verdict: {a['verdict']} — {a['verdict_text']}")
        if codes:
            lines.append(f"reasons: {', '.join(codes)}")
        if a.get("by_base"):
            lines.append(f"by base size (regret at every {axis} with each size as the base):")
            rows = [["base"] + [str(e["size"]) for e in a["sizes"]] + ["verdict", "reasons"]]
            for v in a["by_base"]:
                rows.append([str(v["base_size"])] + [fmt_regret(r["regret"], unit) for r in v["regret"]]
                            + [v["verdict"], ", ".join(v["reason_codes"]) or "-"])
            lines += ["  " + s for s in _table(rows)]
        if a.get("by_budget"):
            lines.append("by budget (grid argmin η*,β* / regret at each fraction of the training steps):")
            rows = [["budget"] + [str(e["size"]) for e in a["sizes"]] + ["verdict", "reasons"]]
            for v in a["by_budget"]:
                cells = [f"{fmt_lr(s['eta_star'])},{fmt_lr(s['beta_star'])} / {fmt_regret(s['regret'], unit)}"
                         for s in v["sizes"]]
                rows.append([f"{v['fraction']:.0%}"] + cells + [v["verdict"], ", ".join(v["reason_codes"]) or "-"])
            lines += ["  " + s for s in _table(rows)]
        elif a.get("by_budget_note"):
            lines.append(f"by budget: {a['by_budget_note']}")
    return "\n".join(lines)
