"""The verdict of one analysis (group × size axis): the one table-driven place for the rules and the
reason codes (docs/reference/transfer-analysis.md#verdict).

For every size s other than the base, three criteria are checked, each on its point value *and* its
seed-bootstrap confidence interval (:data:`CRITERIA`):

* ``regret``      — regret of using the base optimum at s ≤ ``regret_tol`` (loss: 5 % relative,
                    accuracy: 1 percentage point; see :mod:`.metrics`);
* ``weight_lr``   — the grid argmin η*_s within ``steps_tol`` (1) grid steps of the base's η*;
* ``activity_lr`` — the same for β* (when the algorithm has an activity lr).

A criterion *passes* when the point value and the whole CI are within tolerance, *fails* when the
point value and the whole CI are beyond it, and is *uncertain* when the CI straddles it (without a CI
— one seed, or ``n_bootstrap=0`` — the point value decides). Drift is judged in grid steps of the
sweep's own grid because that is what the grid resolves; the sub-grid fit's drift slope (octaves
per doubling, with its CI) is reported beside it but does not decide
(docs/reference/transfer-analysis.md#which-criterion-decides).

The verdict (:func:`decide`), from the reasons collected:

* ``does not transfer`` — some criterion clearly fails (or a size has no finite optimum) at a size
  whose grid is complete, with the base's grid complete too;
* ``inconclusive``      — otherwise, when anything blocks a positive answer: a CI straddles a
  tolerance (``uncertain``), an optimum on the grid edge at any size (``optimum_on_edge``: the true
  optimum may lie outside the grid, so "transfers" would be an artefact of a narrow grid), missing
  sizes/points/seeds (``partial``), fewer than 2 seeds at some size (``too_few_seeds``: no CI), the
  base optimum not run at some size (``not_run``), no finite optimum at the base (``no_optimum``);
* ``transfers``         — every criterion passes at every size and nothing blocks.

With one seed a clear failure of the point values still gives ``does not transfer`` (the reason
``too_few_seeds`` is attached), but never ``transfers``. Verdict texts carry measured numbers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .encoding import fmt_lr, fmt_num, fmt_regret, fmt_regret_ci, signed
from .metrics import BETA_COL, ETA_COL

VERDICTS: tuple[str, ...] = ("transfers", "does not transfer", "inconclusive")

# reason code -> (effect, meaning). effect "fails": decides "does not transfer" (on complete data);
# "blocks": rules out "transfers" (-> "inconclusive").
REASONS: dict[str, tuple[str, str]] = {
    "regret": ("fails", "the base optimum's regret exceeds the tolerance at some size, CI included"),
    "drift": ("fails", "the grid argmin moves more than the allowed grid steps from the base optimum, CI included"),
    "no_optimum": ("fails", "every run at a size diverged (at the base size: blocks)"),
    "uncertain": ("blocks", "a confidence interval straddles a tolerance"),
    "optimum_on_edge": ("blocks", "the grid argmin sits on the grid's edge at some size"),
    "partial": ("blocks", "sizes, grid points or seeds are missing"),
    "too_few_seeds": ("blocks", "fewer than 2 seeds at some size: no confidence interval"),
    "not_run": ("blocks", "the base optimum was not run at some size"),
}


@dataclass(frozen=True)
class Criterion:
    """One per-size check: the size-entry fields it reads — the signed ``value``, its CI ``ci``, the
    CI of the judged magnitude ``abs_ci`` (|grid steps|; the regret itself), the move in octaves
    ``octaves`` — the ``Options`` attribute with its tolerance, and the reason ``code`` it raises."""

    name: str
    code: str
    value: str
    ci: str
    abs_ci: str
    tol: str
    octaves: str | None = None


CRITERIA: tuple[Criterion, ...] = (
    Criterion("regret", "regret", "regret", "regret_ci", "_abs_regret_ci", "regret_tol"),
    Criterion(ETA_COL, "drift", "grid_steps_eta", "grid_steps_eta_ci", "_abs_grid_steps_eta_ci", "steps_tol",
              "dlog2_eta"),
    Criterion(BETA_COL, "drift", "grid_steps_beta", "grid_steps_beta_ci", "_abs_grid_steps_beta_ci", "steps_tol",
              "dlog2_beta"),
)
_SYM = {ETA_COL: "η*", BETA_COL: "β*"}


def judge(value: float | None, ci: Sequence[float] | None, tol: float) -> str:
    """'pass' / 'fail' / 'uncertain' / 'unknown' for a magnitude (≥ 0) against a tolerance."""
    if value is None or math.isnan(value):
        return "unknown"
    lo, hi = (value, value) if not ci else (min(ci[0], value), max(ci[1], value))
    if hi <= tol:
        return "pass"
    if lo > tol:
        return "fail"
    return "uncertain"


def _steps(v: Any) -> str:
    return f"{int(v):+d} grid step{'s' if abs(int(v)) != 1 else ''}"


def _ci_steps(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [{int(ci[0]):+d}, {int(ci[1]):+d}]"


def _detail(c: Criterion, e: dict, axis: str, unit: str) -> str:
    where = f"{axis}={e['size']}"
    if c.name == "regret":
        tag = " (base optimum diverged)" if e["regret"] == math.inf else ""
        ci = fmt_regret_ci(e.get("regret_ci"), unit)
        return f"regret {fmt_regret(e['regret'], unit)}{' ' + ci if ci else ''}{tag} at {where}"
    return (f"{_SYM[c.name]} moves {_steps(e[c.value])}{_ci_steps(e.get(c.ci))} "
            f"({fmt_num(e.get(c.octaves), '+.1f')} octaves) at {where}")


def reasons_for(axis: str, entries: list[dict], base_k: int, opts: Any, unit: str,
                missing_sizes: Sequence[int] = ()) -> list[dict]:
    """The reasons of one analysis, failures first. ``entries``: per size (ascending) with
    ``size``, ``has_opt``, ``complete``, ``n_seeds``, ``edge`` and, for sizes other than the base,
    the criteria values and CIs (see :data:`CRITERIA`) and ``base_pt_run``."""
    fails: list[dict] = []
    blocks: list[dict] = []
    base = entries[base_k]
    base_where = f"{axis}={base['size']}"
    if not base["has_opt"]:
        blocks.append({"code": "no_optimum", "size": base["size"], "decisive": False,
                       "detail": f"no finite optimum at the base size {base_where} (all runs diverged or missing)"})
    else:
        for k, e in enumerate(entries):
            if k == base_k:
                continue
            where = f"{axis}={e['size']}"
            decisive = e["complete"] and base["complete"]
            if not e["has_opt"]:
                fails.append({"code": "no_optimum", "size": e["size"], "decisive": decisive,
                              "detail": f"no finite optimum at {where} (all runs diverged)"})
                continue
            if not e["base_pt_run"]:
                blocks.append({"code": "not_run", "size": e["size"],
                               "detail": f"regret unknown at {where} (base optimum not run there)"})
                continue  # its argmin is over an incomplete grid: its drift says nothing yet
            for c in CRITERIA:
                v = e.get(c.value)
                if v is None:
                    continue  # no activity lr
                if c.name == "regret" and v == math.inf:
                    state = "fail"  # the base optimum diverged here: unusable, whatever the resamples say
                else:
                    state = judge(abs(v) if c.name != "regret" else v, e.get(c.abs_ci),
                                  getattr(opts, c.tol))
                if state == "fail":
                    r = {"code": c.code, "size": e["size"], "criterion": c.name, "value": v,
                         "ci": e.get(c.ci), "decisive": decisive, "detail": _detail(c, e, axis, unit)}
                    if c.name == "regret":
                        r["unit"] = unit
                    else:
                        r["lr"] = c.name
                    fails.append(r)
                elif state == "uncertain":
                    blocks.append({"code": "uncertain", "size": e["size"], "criterion": c.name, "value": v,
                                   "ci": e.get(c.ci),
                                   "detail": _detail(c, e, axis, unit) + ": its CI straddles the tolerance"})
    edges: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for e in entries:
        for f in e.get("edge") or []:
            edges.setdefault((f["lr"], f["side"]), []).append((e["size"], f["value"]))
    for (lr, side), hits in edges.items():
        word, way = ("lowest", "below") if side == "low" else ("highest", "above")
        values = sorted({v for _, v in hits})
        blocks.append({"code": "optimum_on_edge", "lr": lr, "side": side, "sizes": [s for s, _ in hits],
                       "values": values, "extend": way,
                       "detail": f"{lr} optimum at the {word} grid value ({', '.join(map(fmt_lr, values))}) at "
                                 f"{axis}={', '.join(str(s) for s, _ in hits)}: extend the grid {way}"})
    incomplete = [e["size"] for e in entries if not e["complete"]]
    if missing_sizes or incomplete:
        total = len(entries) + len(missing_sizes)
        done = len(entries) - len(incomplete)
        parts = []
        if missing_sizes:
            parts.append(f"no runs at {axis}={', '.join(map(str, missing_sizes))}")
        if incomplete:
            parts.append(f"grid points or seeds missing at {axis}={', '.join(map(str, incomplete))}")
        blocks.append({"code": "partial", "cells_done": done, "cells_total": total,
                       "missing_sizes": list(missing_sizes), "incomplete_sizes": incomplete,
                       "detail": f"{done} of {total} {axis}s complete ({'; '.join(parts)})"})
    few = [e for e in entries if e["n_seeds"] < 2]
    if few:
        blocks.append({"code": "too_few_seeds", "sizes": [e["size"] for e in few],
                       "n_seeds": min(e["n_seeds"] for e in few),
                       "detail": f"{min(e['n_seeds'] for e in few)} seed at {axis}="
                                 f"{', '.join(str(e['size']) for e in few)}: no confidence interval"})
    fails.sort(key=lambda r: (not r["decisive"], r["size"]))
    return fails + blocks


def decide(reasons: list[dict]) -> str:
    """The verdict from the reasons (module docstring)."""
    if any(REASONS[r["code"]][0] == "fails" and r.get("decisive") for r in reasons):
        return "does not transfer"
    if reasons:
        return "inconclusive"
    return "transfers"


def verdict_text(verdict: str, reasons: list[dict], axis: str, entries: list[dict], base_k: int,
                 unit: str, slopes: dict[str, Any] | None = None) -> str:
    """One line of measured numbers: the failures (does not transfer), the blocking reasons
    (inconclusive) or the largest regret and argmin moves (transfers); then the fitted drift slopes."""
    if verdict == "does not transfer":
        fails = [r for r in reasons if REASONS[r["code"]][0] == "fails" and r.get("decisive")]
        first = fails[0]["size"]
        text = "; ".join(r["detail"] for r in fails if r["size"] == first)
        later = sorted({r["size"] for r in fails if r["size"] != first})
        if later:
            text += f"; fails also at {axis}={', '.join(map(str, later))}"
    elif verdict == "inconclusive":
        text = "; ".join(r["detail"] for r in reasons)
    elif len(entries) < 2:  # one size (the report's single-size case): nothing was compared
        text = f"only {axis}={entries[0]['size']}: nothing to compare"
    else:
        others = [e for k, e in enumerate(entries) if k != base_k]
        worst = max(others, key=lambda e: e["regret"])
        hi = max((e["regret_ci"][1] for e in others if e.get("regret_ci")), default=None)
        text = f"largest regret {fmt_regret(worst['regret'], unit)} (at {axis}={worst['size']}"
        text += f", CI up to {fmt_regret(hi, unit)})" if hi is not None else ")"
        for key, sym in (("grid_steps_eta", "η*"), ("grid_steps_beta", "β*")):
            moves = [abs(e[key]) for e in others if e.get(key) is not None]
            if moves:
                text += f"; {sym} at most {max(moves)} grid step{'s' if max(moves) != 1 else ''} from the base optimum"
        text += f" at every {axis} ({', '.join(str(e['size']) for e in entries)})"
    slopes = slopes or {}
    for keys, sym in ((("drift_slope_eta", "drift_slope_eta_ci", "drift_slope_eta_state"), "η*"),
                      (("drift_slope_beta", "drift_slope_beta_ci", "drift_slope_beta_state"), "β*")):
        s, ci, state = (slopes.get(k) for k in keys)
        if s is not None and not (isinstance(s, float) and math.isnan(s)):
            ci_txt = f" [{signed(ci[0])}, {signed(ci[1])}]" if ci else ""
            text += f"; fitted drift {sym} {signed(s)}{ci_txt} octave/doubling" + (
                " (uncertain)" if state == "uncertain" else "")
    return text
