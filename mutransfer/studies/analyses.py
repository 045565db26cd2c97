"""What each study computes from the runs on disk: its verdict line(s), the Markdown body of its page
and the figures it draws. One function per kind of evidence (:data:`ANALYSES`), each taking the
study's :class:`Evidence` (runs and curves per spec label) and returning a :class:`Finding`.

Verdicts are never written by hand: a transfer study's verdict is the optimum-shift report's
``verdict — verdict_text``, verbatim (mutransfer.report); the 128-layer study's is a rule over its
accuracy curves and divergence columns (:func:`depth128_training`'s docstring states it).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd

from mutransfer.inference_health import RTOL
from mutransfer.report import build_report, fmt_lr, format_report

CHANCE = 0.10  # 10-class accuracy of a constant prediction
COLLAPSE_ACC = 0.11  # final accuracy at or below this: "collapsed to chance"
DECLINE_PP = 0.05  # final accuracy this far (5 points) below the run's best: "declined"


class Evidence(NamedTuple):
    """Runs and curves of a study, per spec label (labels with no sweep on disk are absent).

    ``designs``: per label, the report's design keywords read from its spec file (``expected_seeds``;
    ``local_cells`` under ``grid: {larger_sizes: local}``), so sizes that ran a local lr neighbourhood
    are reported as such. ``decide``: per label, the decide loop's records (the JSON that
    ``mutransfer run --decide`` writes beside the results, ``specs/<sweep_id>.decide.json``)."""

    runs: dict[str, pd.DataFrame]
    curves: dict[str, pd.DataFrame]
    sweep_ids: dict[str, list[str]]
    key: str = "study"  # the study's key: its figures are named <key>-<label>-<kind>.png
    designs: dict[str, dict] | None = None
    decide: dict[str, list[dict]] | None = None


class Finding(NamedTuple):
    verdict: str  # the index's verdict column ("" when there is nothing to judge)
    body: list[str]  # Markdown lines
    figures: dict[str, Callable[[Any], None]]  # file name → draw(figure)


def _pct(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def _md_table(df: pd.DataFrame, floatfmt: Callable[[Any], str] | None = None) -> list[str]:
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        out.append("| " + " | ".join(floatfmt(v) if floatfmt else str(v) for v in row) + " |")
    return out


# ----------------------------------------------------------------------------------------------
# transfer studies (claims 1 and 2): the optimum-shift report, verbatim


def decide_lines(record: dict) -> list[str]:
    """The decide loop's rounds as text, from its record's JSON (the lines `mutransfer report` prints
    after the report: what each round added to which cell and why, why the loop stopped)."""
    rounds = record.get("rounds") or []
    added = sum(int(r.get("runs", 0)) for r in rounds)
    lines = [f"Decide ({record.get('sweep_id', '?')}): {len(rounds)} round(s), {added} runs added"]
    for r in rounds:
        lines.append(f"  round {r['number']}: +{r['runs']} runs")
        lines += [f"    {a['cell']}: +{a.get('runs', 0)} ({a['code']}) — {a['why']}" for a in r.get("additions", [])]
    stopped = record.get("stopped")
    lines.append("  stopped: " + (stopped or "not finished (the loop is still running, or was stopped)")
                 + (f" — {record['detail']}" if record.get("detail") else ""))
    for o in record.get("open") or []:
        lines.append(f"  open: {o.get('analysis', '?')}: {o.get('outcome', '?')} ({', '.join(o.get('codes', []))})")
    return lines


def divergence_line(runs: pd.DataFrame) -> str:
    """How many runs were flagged diverged, by reason (mutransfer/inference_health.py), and from which steps."""
    div = runs[runs["status"].astype(str) == "diverged"]
    reasons = div["diverge_reason"].astype(str) if "diverge_reason" in div.columns else pd.Series("loss", index=div.index)
    parts = []
    for reason in ("loss", "inference"):
        sel = div[reasons == reason]
        if len(sel):
            steps = sel["diverge_step"] if "diverge_step" in sel.columns else pd.Series(dtype=float)
            at = f", from step {int(steps.min())} to {int(steps.max())}" if len(steps.dropna()) else ""
            parts.append(f"{len(sel)} diverged ({reason}){at}")
    other = len(div) - sum(reasons.isin(["loss", "inference"]))
    if other:
        parts.append(f"{other} diverged (reason not recorded)")
    line = (f"Divergence flags: {len(runs)} runs, " + ("; ".join(parts) if parts else "none flagged diverged")
            + " (`diverged (inference)`: energy rising through inference over an eval block, or a non-finite "
              "activity; `diverged (loss)`: a non-finite or exploding training loss).")
    if not len(div) or "diverge_step" not in div.columns:
        return line
    size = "width" if "width" in div.columns and div["width"].nunique() > 1 else "depth"
    where = []
    for n, at in div.assign(reason=reasons).groupby(size):
        points = at.groupby(["weight_lr", "activity_lr"]).agg(first=("diverge_step", "min"), last=("diverge_step", "max"),
                                                            seeds=("diverge_step", "size"),
                                                            why=("reason", lambda x: "/".join(sorted(set(x)))))
        at_start = points[points["last"] == 0]
        clauses = []
        if len(at_start):
            betas = sorted({float(b) for _, b in at_start.index})
            clauses.append(f"{len(at_start)} point(s) from step 0 (β ∈ {{{', '.join(fmt_lr(b) for b in betas)}}}, "
                           f"{int(at_start['seeds'].sum())} runs, {'/'.join(sorted(set(at_start['why'])))})")
        for (eta, beta), r in points[points["last"] > 0].iterrows():
            span = f"step {int(r['first'])}" if r["first"] == r["last"] else f"steps {int(r['first'])}–{int(r['last'])}"
            clauses.append(f"η={fmt_lr(float(eta))} β={fmt_lr(float(beta))} from {span} ({int(r['seeds'])} × {r['why']})")
        where.append(f"{size} {int(n)}: " + ", ".join(clauses))
    return line + " Where: " + "; ".join(where) + "."


def cost_line(runs: pd.DataFrame, axis: str) -> str:
    """Runs, steps and wall time (compile + train, the sum of the runs' shares of their parts) per size."""
    if "wall_s" not in runs.columns:
        return ""
    parts = []
    for size, g in runs.groupby(axis):
        steps = int(g["steps"].max()) if "steps" in g.columns and len(g["steps"].dropna()) else -1
        parts.append(f"{axis} {int(size)}: {len(g)} runs × {steps} steps, {float(g['wall_s'].sum()) / 60:.1f} min")
    return "Trained here (wall time, compile + train, as recorded in the runs' `wall_s`): " + "; ".join(parts) + "."


def _transfer(evidence: Evidence, axis: str) -> Finding:
    figure_prefix = evidence.key
    verdicts, body, figures = [], [], {}
    for label, runs in evidence.runs.items():
        metric = "min_train_loss"
        design = (evidence.designs or {}).get(label, {})
        report = build_report(runs, metric=metric, n_bootstrap=200, rng_seed=0, **design)
        found = [a for a in report.analyses if a.axis == axis]
        body += [f"### {label}", "", f"Sweeps: {', '.join(evidence.sweep_ids[label])}; {len(runs)} runs.", "",
                 divergence_line(runs), "", cost_line(runs, axis), ""]
        records = (evidence.decide or {}).get(label, [])
        if records:
            body += ["The decide loop's rounds (what each added and why; why it stopped):", "", "```"]
            body += [line for rec in records for line in decide_lines(rec)] + ["```", ""]
        if not found:
            body += ["The report found nothing to compare along this axis:", ""]
            body += [f"- {n}" for n in report.notes] + [""]
            continue
        for a in found:
            who = a.group.get("parametrization", "?")
            verdicts.append(f"{label} — {who}: {a.verdict} — {a.verdict_text}")
        body += ["```", format_report(report), "```", ""]
        safe = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in label).strip("-")
        figures[f"{figure_prefix}-{safe}-contours.png"] = _contours_drawer(runs, axis, metric)
        figures[f"{figure_prefix}-{safe}-optimum.png"] = _optimum_drawer(found, axis)
        body += [f"![contours: {label}](figures/{figure_prefix}-{safe}-contours.png)", "",
                 f"![optimum vs {axis}: {label}](figures/{figure_prefix}-{safe}-optimum.png)", ""]
    return Finding("; ".join(verdicts), body, figures)


def _contours_drawer(runs: pd.DataFrame, axis: str, metric: str):
    """Seed-mean log10(metric) over (η, β) per parametrisation (rows) and size (columns), every panel
    on its parametrisation's union of lr values (so a local grid sits where it is in the full grid);
    the seed-mean argmin marked ★. Grey: not run at that size; ×: a seed flagged diverged there
    (the report counts it +inf, as its default)."""
    df = runs.copy()
    bad = df["status"].astype(str) != "ok"
    df.loc[bad, metric] = np.inf
    mean = df.groupby(["parametrization", axis, "weight_lr", "activity_lr"])[metric].mean().reset_index()
    params = sorted(mean["parametrization"].unique())
    sizes = sorted(mean[axis].unique())

    def draw(fig):
        axes = fig.subplots(len(params), len(sizes), squeeze=False)
        for i, p in enumerate(params):
            mine = mean[mean["parametrization"] == p]
            etas, betas = sorted(mine["weight_lr"].unique()), sorted(mine["activity_lr"].unique())
            finite = mine[metric][np.isfinite(mine[metric])]
            lo, hi = (np.log10(finite.min()), np.log10(finite.max())) if len(finite) else (0.0, 1.0)
            for j, s in enumerate(sizes):
                ax = axes[i][j]
                sub = mine[mine[axis] == s]
                grid = sub.pivot(index="activity_lr", columns="weight_lr", values=metric).reindex(
                    index=betas, columns=etas)
                vals = grid.values.astype(float)
                z = np.log10(np.where(np.isfinite(vals), vals, np.nan))
                ax.set_facecolor("0.85")
                ax.imshow(z, origin="lower", aspect="auto", cmap="viridis", vmin=lo, vmax=hi)
                yi, xi = np.nonzero(np.isinf(vals))
                ax.plot(xi, yi, "kx", ms=5)
                ax.set_xticks(range(len(etas)), [fmt_lr(v) for v in etas], rotation=90, fontsize=6)
                ax.set_yticks(range(len(betas)), [fmt_lr(v) for v in betas], fontsize=6)
                if np.isfinite(z).any():
                    bi, bj = np.unravel_index(np.nanargmin(z), z.shape)
                    ax.plot(bj, bi, "r*", ms=10)
                ax.set_title(f"{p}, {axis} = {s}", fontsize=8)
                if j == 0:
                    ax.set_ylabel("β (activity lr)")
                if i == len(params) - 1:
                    ax.set_xlabel("η (weight lr)")
        fig.suptitle(f"log10 seed-mean {metric} (one colour scale per row; ★ argmin; grey: not run; "
                     "×: a seed flagged diverged)", fontsize=8)
        fig.set_size_inches(2.6 * len(sizes) + 1, 2.6 * len(params) + 1)
        fig.tight_layout()
    return draw


def _optimum_drawer(analyses: list, axis: str):
    def draw(fig):
        ax_eta, ax_beta = fig.subplots(1, 2)
        for a in analyses:
            who = a.group.get("parametrization", "?")
            sizes = [e.size for e in a.sizes]
            for ax, lr in ((ax_eta, "eta"), (ax_beta, "beta")):
                vals = [np.nan if e.star(lr) is None else e.star(lr) for e in a.sizes]
                ax.plot(sizes, vals, "o-", label=who)
        for ax, name in ((ax_eta, "η* (weight lr)"), (ax_beta, "β* (activity lr)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(axis)
            ax.set_ylabel(name)
            ax.legend(fontsize=7)
        fig.suptitle(f"grid optimum of the seed mean vs {axis}", fontsize=9)
        fig.set_size_inches(8, 3.2)
        fig.tight_layout()
    return draw


def width_transfer(evidence: Evidence) -> Finding:
    return _transfer(evidence, "width")


def depth_transfer(evidence: Evidence) -> Finding:
    merged = Evidence({"all depth sweeps": pd.concat(list(evidence.runs.values()), ignore_index=True)},
                      {}, {"all depth sweeps": sorted(s for v in evidence.sweep_ids.values() for s in v)},
                      evidence.key)
    return _transfer(merged, "depth")


# ----------------------------------------------------------------------------------------------
# claim 3: 128-layer training curves


def _run_name(r) -> str:
    return f"η={fmt_lr(float(r['weight_lr']))} β={fmt_lr(float(r['activity_lr']))}"


def depth128_training(evidence: Evidence) -> Finding:
    """Per run: best test accuracy (and its step), the last measured accuracy, the divergence columns
    (with the test accuracy on either side of an inference flag), and its cell's wall seconds per step.

    Rule for the verdict line, per run: *collapsed* if its last accuracy ≤ :data:`COLLAPSE_ACC`
    (chance is 10 %); *declined* if its last accuracy is more than :data:`DECLINE_PP` below its best;
    else *holding*. The line lists every run with best → last, its state, and the inference flag.
    """
    verdicts, figures = [], {}
    body = ["How a run is flagged (mutransfer/inference_health.py): *diverged (loss)* when its training loss "
            "is non-finite or 1e3 × its step-0 loss (the trainer then freezes it); *diverged (inference)* when, "
            "over an eval block, the energy after inference summed over the block exceeds the energy before it "
            f"by more than {RTOL:.0%}, or an activity is non-finite — the step where it began is recorded. "
            f"State rule: *collapsed* if the last test accuracy ≤ {COLLAPSE_ACC:.0%}, *declined* if it is more "
            f"than {100 * DECLINE_PP:.0f} points below the run's best, else *holding*.", ""]
    for label, runs in evidence.runs.items():
        curves = evidence.curves.get(label, pd.DataFrame())
        body += [f"### {label}", "", f"Sweep: {', '.join(evidence.sweep_ids[label])}.", ""]
        acc = curves.dropna(subset=["test_acc"]) if len(curves) else curves
        rows, states = [], []
        runs = runs.sort_values(["weight_lr", "activity_lr"])
        cell_wall = runs.groupby("cell_id")["wall_s"].sum().to_dict()
        for r in runs.to_dict("records"):
            c = acc[acc["run_id"] == r["run_id"]].sort_values("step") if len(acc) else acc
            best_i = c["test_acc"].idxmax() if len(c) else None
            best = float(c.loc[best_i, "test_acc"]) if best_i is not None else math.nan
            best_step = int(c.loc[best_i, "step"]) if best_i is not None else -1
            last = float(c["test_acc"].iloc[-1]) if len(c) else math.nan
            last_step = int(c["step"].iloc[-1]) if len(c) else -1
            state = ("collapsed" if last <= COLLAPSE_ACC else "declined" if best - last > DECLINE_PP
                     else "holding")
            reason = str(r.get("diverge_reason") or "")
            flag_step = int(r.get("diverge_step", -1)) if r["status"] == "diverged" else -1
            flag = (f"diverged ({reason}) from step {flag_step}" if r["status"] == "diverged"
                    else "no divergence flagged")
            around = _around_flag(c, flag_step)
            if around:
                flag += f" (test acc {around})"
            states.append(f"{_run_name(r)}: {_pct(best)} (step {best_step}) → {_pct(last)} (step {last_step}), "
                          f"{state}, {flag}")
            rows.append({"run": _run_name(r), "status": r["status"], "diverge_reason": reason or "–",
                         "diverge_step": int(r.get("diverge_step", -1)), "best test acc": _pct(best),
                         "at step": best_step, "last test acc": _pct(last), "at step ": last_step, "state": state,
                         "test acc around the flag": around or "–",
                         # a run's wall_s is its share of its cell's wall time (the cell's runs train in one
                         # program): their sum over the cell, per step
                         "cell s/step": f"{cell_wall[r['cell_id']] / r['steps']:.2f}" if r["steps"] > 0 else "–"})
        verdicts.append(f"{label}: " + "; ".join(states))
        body += _md_table(pd.DataFrame(rows)) + [""]
        if len(acc):
            body += ["Test accuracy by step (every 100th step and the last):", ""]
            names = {r["run_id"]: _run_name(r) for r in runs.to_dict("records")}
            wide = acc.assign(run=acc["run_id"].map(names)).pivot_table(index="step", columns="run",
                                                                         values="test_acc")
            last_step = int(wide.index.max())
            keep = [s for s in wide.index if s % 100 == 0 or s == last_step]
            table = wide.loc[keep].reset_index()
            body += _md_table(table, _acc_cell) + [""]
            body += _energy_table(curves, names)
            safe = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in label).strip("-")
            name = f"{evidence.key}-{safe}-accuracy.png"
            figures[name] = _accuracy_drawer(acc, curves, names, runs)
            body += [f"![test accuracy over steps: {label}](figures/{name})", ""]
    return Finding("; ".join(verdicts), body, figures)


def _around_flag(acc: pd.DataFrame, step: int) -> str:
    """The test accuracy at the last evaluation at or before a divergence flag's step and at the first
    one after it ("a % (step s) → b % (step t)"); "" when no flag or no evaluation on a side."""
    if step < 0 or not len(acc):
        return ""
    before, after = acc[acc["step"] <= step], acc[acc["step"] > step]
    if not len(before) or not len(after):
        return ""
    b, a = before.iloc[-1], after.iloc[0]
    return (f"{_pct(float(b['test_acc']))} (step {int(b['step'])}) → {_pct(float(a['test_acc']))} "
            f"(step {int(a['step'])})")


def _acc_cell(v) -> str:
    """A step (an integer) as is, an accuracy to 4 decimals, a missing value as "–"."""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return "–" if not math.isfinite(v) else f"{v:.4f}"


def _energy_table(curves: pd.DataFrame, names: dict) -> list[str]:
    """Energy after / before inference (F_T/F_0) over each 250-step window: the median of the logged
    steps (near 1: inference barely lowers the energy) and their maximum (above 1: inference raised
    it at some step; mutransfer.inference_health)."""
    e = curves.dropna(subset=["energy_start", "energy_end"])
    if not len(e):
        return []
    e = e.assign(ratio=e["energy_end"] / e["energy_start"], window=(e["step"] // 250) * 250,
                 run=e["run_id"].map(names))
    stats = e.groupby(["window", "run"])["ratio"].agg(["median", "max"])
    cell = stats.apply(lambda r: f"{r['median']:.3g} (max {r['max']:.3g})", axis=1)
    t = cell.unstack("run").reset_index().rename(columns={"window": "steps from"})
    return (["Energy after inference / before (F_T/F_0) over the logged steps of each 250-step window: median "
             "(max) — a median near 1: inference barely lowers the energy; a max above 1: inference raised it:", ""]
            + _md_table(t, lambda v: str(v)) + [""])


def _accuracy_drawer(acc: pd.DataFrame, curves: pd.DataFrame, names: dict, runs: pd.DataFrame):
    def draw(fig):
        ax, ax2 = fig.subplots(2, 1, sharex=True)
        for rid, name in names.items():
            c = acc[acc["run_id"] == rid].sort_values("step")
            (line,) = ax.plot(c["step"], c["test_acc"], "o-", ms=3, label=name)
            e = curves[(curves["run_id"] == rid)].dropna(subset=["energy_start", "energy_end"]).sort_values("step")
            ax2.plot(e["step"], e["energy_end"] / e["energy_start"], lw=0.8, color=line.get_color(), label=name)
            r = runs[runs["run_id"] == rid].iloc[0]
            if r["status"] == "diverged" and int(r.get("diverge_step", -1)) >= 0:
                ax.axvline(int(r["diverge_step"]), color=line.get_color(), ls=":", lw=1)
        ax.axhline(CHANCE, color="grey", lw=0.5)
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7)
        ax2.axhline(1.0, color="grey", lw=0.5)
        ax2.set_yscale("log")
        ax2.set_ylabel("F_T / F_0")
        ax2.set_xlabel("step (weight updates)")
        widths = ", ".join(str(int(w)) for w in sorted(runs["width"].unique()))
        fig.suptitle(f"128-layer ReLU ResNet, μPC, N = {widths}, T = 128 (dotted: inference divergence flagged)",
                     fontsize=9)
        fig.set_size_inches(8, 6)
        fig.tight_layout()
    return draw


# ----------------------------------------------------------------------------------------------
# claim 4: T = 1 against T = H


def t1_vs_tH(evidence: Evidence) -> Finding:
    """Best seed-mean ``min_train_loss`` over the lr grid per (parametrization, depth), for T = 1 and
    T = H; the ratio T = 1 / T = H (> 1: one inference step is worse). No verdict rule: the claim has
    two halves (worse; increasingly with depth) and the table shows both."""
    best: dict[str, pd.Series] = {}
    for label, runs in evidence.runs.items():
        kind = "T = 1" if label.startswith("T = 1") else "T = H"
        ok = runs[runs["status"] == "ok"]
        m = ok.groupby(["parametrization", "depth", "weight_lr", "activity_lr"])["min_train_loss"].mean()
        b = m.groupby(level=["parametrization", "depth"]).min()
        best[kind] = b if kind not in best else pd.concat([best[kind], b]).groupby(level=[0, 1]).min()
    if len(best) < 2:
        return Finding("", ["Only one of T = 1 / T = H has runs on disk: nothing to compare."], {})
    t = pd.DataFrame({"best loss, T = 1": best["T = 1"], "best loss, T = H": best["T = H"]}).dropna()
    t["T = 1 / T = H"] = t["best loss, T = 1"] / t["best loss, T = H"]
    t = t.reset_index()
    ratios = "; ".join(f"{p}: " + ", ".join(f"H={int(d)} {r:.2f}" for d, r in zip(g["depth"], g["T = 1 / T = H"]))
                       for p, g in t.groupby("parametrization"))
    return Finding(f"best-loss ratio T = 1 / T = H by depth — {ratios}",
                   _md_table(t, lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)) + [""], {})


def not_a_sweep(evidence: Evidence) -> Finding:
    return Finding("", [], {})


ANALYSES: dict[str, Callable[[Evidence], Finding]] = {
    "width_transfer": width_transfer,
    "depth_transfer": depth_transfer,
    "depth128_training": depth128_training,
    "t1_vs_tH": t1_vs_tH,
    "not_a_sweep": not_a_sweep,
}
