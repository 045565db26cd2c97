"""The report's verdict states and reasons, confidence intervals, provisional reports and the
by_base / by_budget views, each from a small synthetic runs table (mutransfer/report/verdict.py).

Grids are powers of two, so one grid step = one octave and argmin moves are easy to read.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mutransfer.report import format_report, optimum_shift_report


def table(cost, widths=(32, 64, 128), seeds=3, eta_exp=range(-8, -1), beta_exp=range(-5, 0), noise=0.0,
          rng=0, **extra) -> pd.DataFrame:
    """Runs table with min_train_loss = cost(width, log2 eta, log2 beta, seed) · (1 + noise·N(0,1))."""
    g = np.random.default_rng(rng)
    rows = []
    for w in widths:
        for ke in eta_exp:
            for kb in ([None] if beta_exp is None else beta_exp):
                for s in range(seeds):
                    m = cost(w, ke, kb, s) * (1.0 + noise * g.standard_normal())
                    rows.append(dict(algorithm="pc", parametrization="mupc", activation="tanh", dataset="mnist",
                                     cell_id=f"pc-mupc-w{w}-d2", width=w, depth=2, weight_lr=2.0**ke,
                                     activity_lr=np.nan if kb is None else 2.0**kb, seed=s, status="ok",
                                     min_train_loss=m, steps=100, diverged_step=-1, **extra))
    return pd.DataFrame(rows)


def bowl(a, b=-3.0, c=1.0):
    """A quadratic bowl in (log2 eta, log2 beta) with its optimum at eta = 2^a(w), beta = 2^b."""
    return lambda w, ke, kb, s: 1.0 + c * ((ke - a(w)) ** 2 + (0 if kb is None else (kb - b) ** 2))


def analysis(rep):
    (a,) = [x for x in rep["analyses"] if x["axis"] == "width"]
    return a


def codes(a):
    return {r["code"] for r in a["reasons"]}


def test_transfers_with_ci_inside_tolerances():
    a = analysis(optimum_shift_report(table(bowl(lambda w: -5), noise=0.002), n_bootstrap=50))
    assert a["verdict"] == "transfers" and a["reasons"] == []
    assert "largest regret 0.0%" in a["verdict_text"] and "at most 0 grid steps" in a["verdict_text"]
    assert "≤" not in a["verdict_text"]  # measured numbers, never the thresholds
    for e in a["sizes"][1:]:
        assert e["regret_ci"][1] <= 0.05 and e["grid_steps_eta_ci"] == [0, 0]


def test_noiseless_table_gives_zero_width_intervals():
    # identical seeds: every resample is the same table, so every interval has zero width
    a = analysis(optimum_shift_report(table(bowl(lambda w: -6.3 + 0.4 * math.log2(w / 32))), n_bootstrap=30))
    for e in a["sizes"]:
        for key in ("eta_star_fit_ci", "beta_star_fit_ci"):
            lo, hi = e[key]
            assert lo == hi
        if e["size"] != 32:
            assert e["regret_ci"][0] == e["regret_ci"][1] == e["regret"]
            assert e["grid_steps_eta_ci"] == [e["grid_steps_eta"]] * 2
    for key in ("drift_slope_eta_ci", "drift_slope_beta_ci"):
        assert a[key][0] == a[key][1]
    assert a["drift_slope_eta_ci"][0] == pytest.approx(a["drift_slope_eta"])
    assert a["drift_slope_eta"] == pytest.approx(0.4, abs=0.05) and a["drift_slope_eta_state"] == "within"


def test_fitted_drift_state_is_reported_not_deciding():
    from mutransfer.report.analysis import fit_drift_state

    assert fit_drift_state(0.2, [0.1, 0.3], 0.5) == "within"
    assert fit_drift_state(-0.8, [-1.0, -0.6], 0.5) == "beyond"
    assert fit_drift_state(0.4, [-0.1, 0.7], 0.5) == "uncertain"
    assert fit_drift_state(0.7, None, 0.5) == "beyond"
    # a steady 0.6 octave/doubling that the 1-octave grid follows by one step: the grid rule passes,
    # the fit says "beyond" and a warning says the grid may be too coarse
    a = analysis(optimum_shift_report(table(bowl(lambda w: -5.3 + 0.6 * math.log2(w / 32), c=0.01)), n_bootstrap=20))
    assert [e["grid_steps_eta"] for e in a["sizes"]] == [0, 0, 1]
    assert a["verdict"] == "transfers" and a["drift_slope_eta_state"] == "beyond"
    assert any("too coarse" in w for w in a["warnings"])


def test_regret_failure_is_does_not_transfer():
    a = analysis(optimum_shift_report(table(bowl(lambda w: -5 + math.log2(w / 32))), n_bootstrap=20))
    assert a["verdict"] == "does not transfer"
    r = next(r for r in a["reasons"] if r["code"] == "regret")
    assert r["size"] == 64 and r["value"] == pytest.approx(1.0) and r["decisive"]
    assert a["verdict_text"].startswith("regret 100.0% [100.0%, 100.0%] at width=64")


def test_drift_in_grid_steps_fails_even_with_small_regret():
    # a very flat bowl: the argmin moves 2 grid steps by width 128 while the regret stays < 1 %
    a = analysis(optimum_shift_report(table(bowl(lambda w: -5 + math.log2(w / 32), c=1e-3)), n_bootstrap=20))
    assert a["verdict"] == "does not transfer"
    (d,) = [r for r in a["reasons"] if r["code"] == "drift"]
    assert (d["size"], d["lr"], d["value"]) == (128, "weight_lr", 2)
    assert "η* moves +2 grid steps [+2, +2] (+2.0 octaves) at width=128" in a["verdict_text"]
    assert "regret" not in codes(a)
    # one step is within tolerance: the same flat bowl with widths 32, 64 transfers
    a2 = analysis(optimum_shift_report(table(bowl(lambda w: -5 + math.log2(w / 32), c=1e-3), widths=(32, 64)),
                                       n_bootstrap=20))
    assert a2["verdict"] == "transfers" and "at most 1 grid step" in a2["verdict_text"]


def test_ci_straddling_the_regret_tolerance_is_uncertain():
    # the base optimum is one step off at width 64 with a 5 % penalty, and seed noise of the same size
    a = analysis(optimum_shift_report(table(bowl(lambda w: -5 + (w > 32), c=0.05), widths=(32, 64), seeds=4,
                                            noise=0.03, rng=1), n_bootstrap=200))
    (u,) = [r for r in a["reasons"] if r["code"] == "uncertain"]
    assert u["criterion"] == "regret" and u["ci"][0] <= 0.05 < u["ci"][1]
    assert a["verdict"] == "inconclusive"
    assert "CI straddles" in a["verdict_text"]


def test_too_few_seeds():
    one = table(bowl(lambda w: -5), seeds=1)
    a = analysis(optimum_shift_report(one))
    assert a["verdict"] == "inconclusive" and codes(a) == {"too_few_seeds"}
    (r,) = a["reasons"]
    assert r["sizes"] == [32, 64, 128] and r["n_seeds"] == 1
    assert all(e["regret_ci"] is None for e in a["sizes"])
    # a clear failure still says so with one seed, the missing CI noted
    bad = analysis(optimum_shift_report(table(bowl(lambda w: -5 + math.log2(w / 32)), seeds=1)))
    assert bad["verdict"] == "does not transfer" and {"regret", "too_few_seeds"} <= codes(bad)


def test_corner_optimum_at_every_width_is_not_transfers():
    # the web form's 3 x 3 grid with the optimum beyond its lowest eta and highest beta at every width
    a = analysis(optimum_shift_report(table(bowl(lambda w: -9, b=2), eta_exp=(-6, -4, -2), beta_exp=(-3, -1, 1)),
                                      n_bootstrap=20))
    assert a["verdict"] == "inconclusive"
    edge = {(r["lr"], r["side"]): r for r in a["reasons"] if r["code"] == "optimum_on_edge"}
    assert edge[("weight_lr", "low")]["sizes"] == [32, 64, 128]
    assert edge[("activity_lr", "high")]["values"] == [2.0]
    # per-size edge flags exactly as before (the grid refinement reads them)
    assert a["sizes"][0]["edge"] == [{"lr": "weight_lr", "side": "low", "value": 2.0**-6},
                                     {"lr": "activity_lr", "side": "high", "value": 2.0}]


def test_base_optimum_diverged_at_larger_size_fails_despite_resamples():
    runs = table(bowl(lambda w: -5), noise=0.002)
    hit = (runs.width == 128) & (runs.weight_lr == 2.0**-5) & (runs.activity_lr == 2.0**-3) & (runs.seed == 0)
    runs.loc[hit, "status"] = "diverged"
    a = analysis(optimum_shift_report(runs, n_bootstrap=50))
    assert a["verdict"] == "does not transfer"
    assert "regret inf" in a["verdict_text"] and "(base optimum diverged)" in a["verdict_text"]


def test_diverged_policy_best_before():
    runs = table(bowl(lambda w: -5), noise=0.002)
    # at width 128 one seed of the optimum blew up late; its loss before that was as good as the others'
    hit = (runs.width == 128) & (runs.weight_lr == 2.0**-5) & (runs.activity_lr == 2.0**-3) & (runs.seed == 0)
    runs.loc[hit, ["status", "diverged_step"]] = ["diverged", 90]
    inf = analysis(optimum_shift_report(runs, n_bootstrap=20))
    best = optimum_shift_report(runs, n_bootstrap=20, diverged="best_before")
    assert best["diverged"] == "best_before"
    e_inf, e_best = inf["sizes"][2], analysis(best)["sizes"][2]
    assert e_inf["eta_star"] != 2.0**-5 and e_inf["regret"] == "inf"
    assert e_best["eta_star"] == 2.0**-5 and e_best["regret"] == 0.0 and e_best["n_diverged"] == 1
    assert analysis(best)["verdict"] == "transfers"
    # a diverged run with no finite value is +inf under either policy
    runs.loc[hit, "min_train_loss"] = np.nan
    assert analysis(optimum_shift_report(runs, n_bootstrap=0, diverged="best_before"))["sizes"][2]["regret"] == "inf"
    with pytest.raises(ValueError, match="diverged='nan'.*best_before"):
        optimum_shift_report(runs, diverged="nan")


def test_accuracy_regret_in_percentage_points():
    runs = table(bowl(lambda w: -5 + (w > 32), c=0.004), widths=(32, 64))
    runs["best_test_acc"] = 1.0 - runs["min_train_loss"] / 10  # 90 % at the optimum, 0.04 pp per step² off
    runs.loc[runs.weight_lr == 2.0**-5, "best_test_acc"] -= 0.02  # the base optimum is 2 pp worse at width 64
    runs.loc[(runs.width == 32) & (runs.weight_lr == 2.0**-5), "best_test_acc"] += 0.02
    a = analysis(optimum_shift_report(runs, metric="best_test_acc", n_bootstrap=0))
    e = a["sizes"][1]
    assert e["regret"] == pytest.approx(0.0204, abs=1e-4)  # accuracy points, as a fraction
    assert a["verdict"] == "does not transfer" and "regret 2.0 pp" in a["verdict_text"]


def test_provisional_report_and_single_size_group_note():
    runs = table(bowl(lambda w: -5), noise=0.002)
    rep = optimum_shift_report(runs, n_bootstrap=10, cells_total=5)
    assert rep["provisional"] == {"cells_done": 3, "cells_total": 5}
    text = format_report(rep)
    assert text.splitlines()[0] == "PROVISIONAL (3/5 cells finished): the sweep is not finished, verdicts may change"
    assert optimum_shift_report(runs, n_bootstrap=0, cells_total=3)["provisional"] is None
    assert optimum_shift_report(runs, n_bootstrap=0, cells_total=5, cells_done=4)["provisional"]["cells_done"] == 4
    # sizes the plan expects but no run has reached: partial, named
    a = analysis(optimum_shift_report(runs, n_bootstrap=10, expected_sizes={"width": [32, 64, 128, 256]}))
    (p,) = [r for r in a["reasons"] if r["code"] == "partial"]
    assert (p["cells_done"], p["cells_total"], p["missing_sizes"]) == (3, 4, [256]) and a["verdict"] == "inconclusive"
    # a group with one finished size: a note, not silence
    one = optimum_shift_report(runs[runs.width == 32], n_bootstrap=0, expected_sizes={"width": [32, 64]})
    assert one["analyses"] == []
    assert any("only width=32 has results so far (of 32, 64)" in n for n in one["notes"])
    json.dumps(rep, allow_nan=False)


def test_by_base_regret_with_every_size_as_base():
    # width 32 is the odd one out: the optimum sits one octave higher there
    rep = optimum_shift_report(table(bowl(lambda w: -4 if w == 32 else -5), widths=(32, 64, 128, 256)),
                               n_bootstrap=10)
    a = analysis(rep)
    assert a["verdict"] == "does not transfer"
    views = {v["base_size"]: v for v in a["by_base"]}
    assert sorted(views) == [32, 64, 128, 256]
    assert views[32]["verdict"] == a["verdict"]
    r64 = {r["size"]: r["regret"] for r in views[64]["regret"]}
    assert r64[64] == 0.0 and r64[128] == 0.0 and r64[256] == 0.0 and r64[32] == pytest.approx(1.0)
    assert views[64]["max_regret"] == pytest.approx(1.0)
    assert "by base size" in format_report(rep)


def test_by_budget_reads_checkpoint_columns():
    runs = table(bowl(lambda w: -5), noise=0.0)
    # early in training a larger lr is best; a run diverged at step 60 of 100 counts only at 100 %
    runs["min_train_loss_25pct"] = runs.apply(lambda r: 2 + (math.log2(r.weight_lr) + 3) ** 2, axis=1)
    runs["min_train_loss_50pct"] = runs["min_train_loss"] + 0.5
    late = (runs.weight_lr == 2.0**-5) & (runs.activity_lr == 2.0**-3) & (runs.width == 64)
    runs.loc[late, ["status", "diverged_step"]] = ["diverged", 60]
    rep = optimum_shift_report(runs, n_bootstrap=10)
    a = analysis(rep)
    views = {v["fraction"]: v for v in a["by_budget"]}
    assert sorted(views) == [0.25, 0.5, 1.0]
    assert views[0.25]["column"] == "min_train_loss_25pct"
    assert {s["eta_star"] for s in views[0.25]["sizes"]} == {2.0**-3}
    assert [s["eta_star"] for s in views[0.5]["sizes"]] == [2.0**-5] * 3  # not diverged yet at step 50
    assert views[0.5]["verdict"] == "transfers"
    assert views[1.0]["sizes"][1]["regret"] == "inf" and views[1.0]["verdict"] == "does not transfer"
    assert "by budget" in format_report(rep)


def test_by_budget_absent_for_older_sweeps_and_other_metrics():
    runs = table(bowl(lambda w: -5))
    rep = optimum_shift_report(runs, n_bootstrap=0)
    a = analysis(rep)
    assert a["by_budget"] is None and "min_train_loss_25pct" in a["by_budget_note"]
    assert any("by_budget view absent" in n for n in rep["notes"])
    runs["best_test_acc"] = 0.9
    acc = analysis(optimum_shift_report(runs, metric="best_test_acc", n_bootstrap=0))
    assert acc["by_budget"] is None and "only available for metric min_train_loss" in acc["by_budget_note"]


def test_by_budget_absent_for_a_mix_of_older_and_newer_sweeps():
    """pd.concat of a sweep without the checkpoint columns and one with them: a note, not a view
    that silently drops the older sweep's sizes (and not a crash in the text report)."""
    runs = table(bowl(lambda w: -5), noise=0.0)
    runs["min_train_loss_25pct"] = np.where(runs.width == 32, np.nan, runs["min_train_loss"] + 1)
    runs["min_train_loss_50pct"] = np.where(runs.width == 32, np.nan, runs["min_train_loss"] + 0.5)
    rep = optimum_shift_report(runs, n_bootstrap=0)
    a = analysis(rep)
    assert a["by_budget"] is None and "have no min_train_loss_25pct" in a["by_budget_note"]
    assert "by budget: by_budget view absent" in format_report(rep)


@pytest.mark.parametrize("bad", [{"steps_tol": 0.5}, {"ci_level": 1.0}, {"regret_tol": -0.1}, {"n_bootstrap": -1}])
def test_bad_options_are_refused_naming_them(bad):
    (name,) = bad
    with pytest.raises(ValueError, match=f"^{name}="):
        optimum_shift_report(table(bowl(lambda w: -5), seeds=1), **bad)


def test_no_optimum_and_not_run():
    runs = table(bowl(lambda w: -5), noise=0.002)
    # every run at the base size failed: nothing to transfer, inconclusive
    base_dead = runs.assign(status=np.where(runs.width == 32, "failed", runs.status))
    a = analysis(optimum_shift_report(base_dead, n_bootstrap=10))
    assert a["verdict"] == "inconclusive" and codes(a) == {"no_optimum"} and a["reasons"][0]["size"] == 32
    # every run at a larger size diverged: does not transfer
    big_dead = runs.assign(status=np.where(runs.width == 128, "diverged", runs.status))
    a = analysis(optimum_shift_report(big_dead, n_bootstrap=10))
    assert a["verdict"] == "does not transfer" and ("no_optimum", 128) in {(r["code"], r.get("size")) for r in a["reasons"]}
    # the base optimum never run at width 64: regret unknown there
    gone = (runs.width == 64) & (runs.weight_lr == 2.0**-5) & (runs.activity_lr == 2.0**-3)
    a = analysis(optimum_shift_report(runs[~gone], n_bootstrap=10))
    assert a["verdict"] == "inconclusive" and {"not_run", "partial"} <= codes(a)
