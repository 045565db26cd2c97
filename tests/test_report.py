"""Tests for mutransfer.report on synthetic runs tables with a known optimum.

Synthetic metric: M = (log2 eta - a_s)^2 + (log2 beta - b_s)^2 + 1, times
(1 + small noise) per seed, on eta = 2^-9..2^-1 and beta = 2^-6..2^0.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mutransfer.report import METRICS, fmt_lr, format_report, optimum_shift_report, surface

ETA_EXP = range(-9, 0)  # log2 weight_lr grid
BETA_EXP = range(-6, 1)  # log2 activity_lr grid


def make_runs(
    optima: dict[tuple[int, int], tuple[float, float | None]],
    *,
    seeds: int = 3,
    noise: float = 1e-3,
    algorithm: str = "pc",
    seed0: int = 0,
    eta_exp=ETA_EXP,
    beta_exp=BETA_EXP,
) -> pd.DataFrame:
    """Runs table; ``optima`` maps (width, depth) -> (a, b); b=None means no activity lr (bp)."""
    rng = np.random.default_rng(seed0)
    rows = []
    for (width, depth), (a, b) in optima.items():
        for ke in eta_exp:
            for kb in ([None] if b is None else beta_exp):
                for seed in range(seeds):
                    m = (ke - a) ** 2 + (0.0 if b is None else (kb - b) ** 2) + 1.0
                    m *= 1.0 + noise * rng.standard_normal()
                    rows.append(
                        dict(
                            sweep_id="sw1",
                            run_id=f"w{width}-d{depth}-e{ke}-b{kb}-s{seed}",
                            algorithm=algorithm,
                            parametrization="mupc",
                            width=width,
                            depth=depth,
                            activation="tanh",
                            dataset="mnist",
                            weight_lr=2.0**ke,
                            activity_lr=np.nan if b is None else 2.0**kb,
                            seed=seed,
                            status="ok",
                            min_train_loss=m,
                            final_train_loss=m * 1.1,
                            best_test_acc=1.0 - 0.05 * m,
                            final_test_acc=1.0 - 0.06 * m,
                            steps=100,
                            wall_s=1.0,
                        )
                    )
    return pd.DataFrame(rows)


def only(report: dict, axis: str = "width") -> dict:
    found = [a for a in report["analyses"] if a["axis"] == axis]
    assert len(found) == 1, [a["axis"] for a in report["analyses"]]
    return found[0]


def by_size(analysis: dict) -> dict[int, dict]:
    return {e["size"]: e for e in analysis["sizes"]}


# --------------------------------------------------------------------------- core behaviour


def test_argmin_exact_and_subgrid_fit_recovers_offgrid_optimum():
    optima = {(32, 4): (-4.3, -2.6), (64, 4): (-5.7, -3.2), (128, 4): (-3.0, -1.0)}
    a = only(optimum_shift_report(make_runs(optima)))
    assert a["base_size"] == 32
    for s, e in by_size(a).items():
        ta, tb = optima[(s, 4)]
        assert math.log2(e["eta_star"]) == round(ta)
        assert math.log2(e["beta_star"]) == round(tb)
        assert e["fit"] == "quadratic"
        assert abs(math.log2(e["eta_star_fit"]) - ta) < 0.1
        assert abs(math.log2(e["beta_star_fit"]) - tb) < 0.1
    e64 = by_size(a)[64]
    assert e64["dlog2_eta"] == -2.0 and e64["grid_steps_eta"] == -2
    assert e64["dlog2_beta"] == 0.0 and e64["grid_steps_beta"] == 0  # -2.6 and -3.2 both round to -3
    assert e64["dlog2_eta_fit"] == pytest.approx(-1.4, abs=0.15)
    assert e64["dlog2_beta_fit"] == pytest.approx(-0.6, abs=0.15)


def test_transfers_when_optimum_fixed():
    optima = {(w, 4): (-4.3, -2.6) for w in (32, 64, 128, 256)}
    a = only(optimum_shift_report(make_runs(optima)))
    assert a["verdict"] == "transfers", a["verdict_text"]
    for e in a["sizes"]:
        assert e["regret"] == pytest.approx(0.0, abs=1e-9)
        assert e["grid_steps_eta"] == 0 and e["grid_steps_beta"] == 0
    assert abs(a["drift_slope_eta"]) < 0.05
    assert abs(a["drift_slope_beta"]) < 0.05
    assert by_size(a)[32]["drift_eta"] is None  # base size: no drift defined


def test_one_octave_per_doubling_does_not_transfer():
    optima = {(w, 4): (-6.0 + math.log2(w / 32), -3.0) for w in (32, 64, 128, 256)}
    a = only(optimum_shift_report(make_runs(optima)))
    assert a["drift_slope_eta"] == pytest.approx(1.0, abs=0.05)
    assert abs(a["drift_slope_beta"]) < 0.05
    assert a["verdict"] == "does not transfer"
    assert "width=64" in a["verdict_text"]
    assert "fitted drift η* +1.00" in a["verdict_text"]  # measured slope, reported
    assert "fails also at width=128, 256" in a["verdict_text"]
    e128 = by_size(a)[128]
    assert e128["grid_steps_eta"] == 2 and e128["grid_steps_eta_ci"] == [2, 2]
    assert {(r["code"], r["size"]) for r in a["reasons"]} >= {("regret", 64), ("drift", 128), ("drift", 256)}
    e = by_size(a)[64]
    assert e["drift_eta"] == pytest.approx(1.0, abs=0.05)
    # base optimum is one octave off at width=64: M = 1 + 1 vs 1 -> regret 100 %
    assert e["regret"] == pytest.approx(1.0, rel=0.01)
    assert "regret 100" in a["verdict_text"]


def test_tolerances_are_keyword_arguments():
    optima = {(w, 4): (-6.0 + math.log2(w / 32), -3.0) for w in (32, 64)}
    runs = make_runs(optima)
    a = only(optimum_shift_report(runs, regret_tol=2.0, drift_tol=1.5))
    assert a["verdict"] == "transfers"


def test_diverged_runs_are_inf_and_move_the_argmin():
    optima = {(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)}
    runs = make_runs(optima)
    # One seed diverges at the true optimum of width 64: that point's mean becomes inf.
    hit = (runs.width == 64) & (runs.weight_lr == 2.0**-4) & (runs.activity_lr == 2.0**-3) & (runs.seed == 1)
    runs.loc[hit, "status"] = "diverged"
    runs.loc[hit, "min_train_loss"] = np.nan
    # A non-finite metric on an 'ok' run also counts as inf.
    hit2 = (runs.width == 64) & (runs.weight_lr == 2.0**-9) & (runs.seed == 0)
    runs.loc[hit2, "min_train_loss"] = np.inf
    report = optimum_shift_report(runs)
    a = only(report)
    e = by_size(a)[64]
    assert (e["eta_star"], e["beta_star"]) != (2.0**-4, 2.0**-3)
    assert e["n_diverged"] == 1 + len(BETA_EXP)
    assert e["regret"] == "inf"  # base optimum diverged at width=64
    assert e["metric_at_base_opt"] == "inf"
    assert a["verdict"] == "does not transfer"
    assert "regret inf" in a["verdict_text"] and "width=64" in a["verdict_text"]
    surf = next(s for s in a["surfaces"] if s["size"] == 64)
    i, j = list(ETA_EXP).index(-4), list(BETA_EXP).index(-3)
    assert surf["values"][i][j] == "inf"


def test_failed_everywhere_gives_no_optimum():
    optima = {(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)}
    runs = make_runs(optima)
    runs.loc[runs.width == 64, "status"] = "failed"
    a = only(optimum_shift_report(runs))
    e = by_size(a)[64]
    assert e["eta_star"] is None and e["fit"] == "none"
    assert a["verdict"] == "does not transfer"
    assert any("no finite optimum at width=64" in w for w in a["warnings"])
    json.dumps(optimum_shift_report(runs), allow_nan=False)


def test_edge_warnings_name_lr_size_and_direction():
    # eta optimum below the grid, beta optimum above it.
    optima = {(32, 4): (-12.0, 3.0), (64, 4): (-12.0, 3.0)}
    a = only(optimum_shift_report(make_runs(optima)))
    e = by_size(a)[64]
    assert e["eta_star"] == 2.0**-9 and e["beta_star"] == 1.0
    assert {"lr": "weight_lr", "side": "low", "value": 2.0**-9} in e["edge"]
    assert {"lr": "activity_lr", "side": "high", "value": 1.0} in e["edge"]
    text = "\n".join(a["warnings"])
    assert "weight_lr optimum at the lowest grid value 1.95e-3 for width=64: extend the grid below 1.95e-3" in text
    assert "activity_lr optimum at the highest grid value 1e0 for width=32: extend the grid above 1e0" in text
    # an optimum in the same grid corner at every width is never "transfers"
    assert a["verdict"] == "inconclusive"
    edges = {(r["lr"], r["side"]): r for r in a["reasons"] if r["code"] == "optimum_on_edge"}
    assert set(edges) == {("weight_lr", "low"), ("activity_lr", "high")}
    assert edges[("weight_lr", "low")]["sizes"] == [32, 64] and edges[("weight_lr", "low")]["extend"] == "below"
    assert "extend the grid below" in a["verdict_text"]
    # sub-grid estimate clipped inside the fit window, never beyond the grid
    assert e["eta_star_fit"] >= 2.0**-9 and e["beta_star_fit"] <= 1.0


def test_no_edge_warning_for_interior_optimum():
    a = only(optimum_shift_report(make_runs({(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)})))
    assert all(e["edge"] == [] for e in a["sizes"])
    assert not any("extend the grid" in w for w in a["warnings"])


def test_bootstrap_frequencies_sum_to_one_and_are_deterministic():
    # Big noise and a flat direction so resamples disagree about the argmin.
    optima = {(32, 4): (-4.5, -3.0), (64, 4): (-4.5, -3.0)}
    runs = make_runs(optima, seeds=4, noise=0.2)
    r1 = optimum_shift_report(runs, n_bootstrap=100, rng_seed=3)
    r2 = optimum_shift_report(runs, n_bootstrap=100, rng_seed=3)
    assert r1 == r2
    for e in only(r1)["sizes"]:
        freqs = [f["freq"] for f in e["seed_argmin_freq"]]
        assert sum(freqs) == pytest.approx(1.0)
        assert e["seed_mode_freq"] == max(freqs)
        assert e["seed_mode"]["weight_lr"] == e["seed_argmin_freq"][0]["weight_lr"]
        assert e["n_seeds"] == 4
    # with this much noise at least one size should see more than one winner
    assert any(len(e["seed_argmin_freq"]) > 1 for e in only(r1)["sizes"])


def test_single_seed_says_uncertainty_unavailable():
    runs = make_runs({(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)}, seeds=1)
    report = optimum_shift_report(runs)
    a = only(report)
    assert all(e["seed_mode"] is None and e["seed_mode_freq"] is None for e in a["sizes"])
    assert any("seed uncertainty unavailable" in w for w in a["warnings"])
    assert "n/a (1 seed)" in format_report(report)


def test_bp_rows_without_activity_lr_use_1d_fit():
    optima = {(32, 4): (-4.3, None), (64, 4): (-5.3, None), (128, 4): (-6.3, None)}
    runs = make_runs(optima, algorithm="bp")
    a = only(optimum_shift_report(runs))
    assert a["beta_grid"] is None
    assert a["drift_slope_beta"] is None
    for s, e in by_size(a).items():
        assert e["beta_star"] is None and e["beta_star_fit"] is None
        assert e["dlog2_beta"] is None and e["grid_steps_beta"] is None
        assert e["fit"] == "quadratic"
        assert abs(math.log2(e["eta_star_fit"]) - optima[(s, 4)][0]) < 0.1
    assert a["drift_slope_eta"] == pytest.approx(-1.0, abs=0.05)
    assert a["verdict"] == "does not transfer"
    assert a["surfaces"][0]["activity_lr"] is None
    assert len(a["surfaces"][0]["values"][0]) == 1


def test_single_beta_value_is_1d_in_eta():
    optima = {(32, 4): (-4.3, -2.0), (64, 4): (-4.3, -2.0)}
    a = only(optimum_shift_report(make_runs(optima, beta_exp=[-2])))
    for e in a["sizes"]:
        assert e["beta_star"] == 0.25 and e["beta_star_fit"] == 0.25
        assert abs(math.log2(e["eta_star_fit"]) + 4.3) < 0.1
        assert e["edge"] == []  # a one-value grid has no edge to extend
    assert a["verdict"] == "transfers"


def test_accuracy_metric_direction_and_regret_on_error_rate():
    optima = {(32, 4): (-4.0, -3.0), (64, 4): (-5.0, -3.0)}
    runs = make_runs(optima, noise=0.0)
    report = optimum_shift_report(runs, metric="best_test_acc")
    assert report["direction"] == "max"
    a = only(report)
    e32, e64 = by_size(a)[32], by_size(a)[64]
    assert math.log2(e32["eta_star"]) == -4 and math.log2(e64["eta_star"]) == -5
    assert e64["metric_at_opt"] == pytest.approx(0.95)  # natural units: accuracy
    assert e64["metric_at_base_opt"] == pytest.approx(0.90)
    # accuracy 0.95 vs 0.90 -> regret 5 percentage points (0.05), not an error-rate ratio
    assert report["regret_unit"] == "accuracy points" and report["thresholds"]["regret_tol"] == 0.01
    assert e64["regret"] == pytest.approx(0.05)
    assert "regret 5.0 pp" in a["verdict_text"] and "5.0 pp" in format_report(report)
    # a diverged accuracy run is the worst: -inf in natural units
    runs.loc[(runs.width == 64) & (runs.weight_lr == 2.0**-5), "status"] = "diverged"
    a2 = only(optimum_shift_report(runs, metric="best_test_acc"))
    assert math.log2(by_size(a2)[64]["eta_star"]) != -5
    s64 = next(s for s in a2["surfaces"] if s["size"] == 64)
    assert s64["values"][list(ETA_EXP).index(-5)][0] == "-inf"


def test_all_metrics_in_table_run():
    runs = make_runs({(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)}, seeds=2)
    for name, info in METRICS.items():
        r = optimum_shift_report(runs, metric=name, n_bootstrap=10)
        assert r["direction"] == info.direction
        assert only(r)["verdict"] == "transfers"


def test_json_round_trip_without_nan():
    runs = make_runs({(32, 4): (-4.0, -3.0), (64, 4): (-5.0, -3.0)})
    runs.loc[runs.index[:5], "status"] = "diverged"
    runs = runs.drop(runs.index[(runs.width == 64) & (runs.weight_lr == 2.0**-1)])  # missing points -> None
    report = optimum_shift_report(runs)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    s64 = next(s for s in only(report)["surfaces"] if s["size"] == 64)
    assert s64["values"][-1][0] is None  # not run: None, unlike diverged ("inf")


def test_format_report_contains_table_and_verdict():
    optima = {(w, 4): (-6.0 + math.log2(w / 32), -3.0) for w in (32, 64)}
    report = optimum_shift_report(make_runs(optima))
    text = format_report(report)
    a = only(report)
    assert f"verdict: {a['verdict']} — {a['verdict_text']}" in text
    assert "drift slope" in text
    assert "1.56e-2" in text  # eta* = 2^-6 printed like 1e-1 / 5e-2
    assert "η*" in text and "regret" in text


def test_fmt_lr():
    assert fmt_lr(0.1) == "1e-1"
    assert fmt_lr(0.05) == "5e-2"
    assert fmt_lr(0.0125) == "1.25e-2"
    assert fmt_lr(1.0) == "1e0"
    assert fmt_lr(None) == "-"
    assert fmt_lr("inf") == "inf"


# --------------------------------------------------------------------------- edge cases


def test_empty_table_gives_note_not_exception():
    report = optimum_shift_report(pd.DataFrame())
    assert report["analyses"] == [] and report["notes"]
    json.dumps(report, allow_nan=False)
    assert "no analyses" in format_report(report)
    cols = ["weight_lr", "activity_lr", "width", "depth", "seed", "status", "min_train_loss"]
    assert optimum_shift_report(pd.DataFrame(columns=cols))["analyses"] == []


def test_no_varying_axis_gives_note():
    report = optimum_shift_report(make_runs({(32, 4): (-4.0, -3.0)}))
    assert report["analyses"] == []
    assert any("nothing to compare" in n for n in report["notes"])


def test_unknown_metric_raises():
    with pytest.raises(ValueError, match="metric") as err:
        optimum_shift_report(make_runs({(32, 4): (-4.0, -3.0)}), metric="nope")
    assert "min_train_loss" in str(err.value)


def test_width_and_depth_axes_both_analysed():
    optima = {(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0), (32, 8): (-5.0, -3.0)}
    report = optimum_shift_report(make_runs(optima))
    aw, ad = only(report, "width"), only(report, "depth")
    assert aw["group"]["depth"] == 4 and "width" not in aw["group"]
    assert ad["group"]["width"] == 32 and "depth" not in ad["group"]
    assert aw["group"]["algorithm"] == "pc"
    assert [e["size"] for e in aw["sizes"]] == [32, 64]
    assert [e["size"] for e in ad["sizes"]] == [4, 8]
    assert aw["verdict"] == "transfers"
    assert ad["verdict"] == "does not transfer" and "depth=8" in ad["verdict_text"]
    assert by_size(ad)[8]["drift_eta"] == pytest.approx(-1.0, abs=0.05)


def test_groups_split_by_algorithm():
    runs = pd.concat(
        [
            make_runs({(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)}, algorithm="pc"),
            make_runs({(32, 4): (-4.0, None), (64, 4): (-5.0, None)}, algorithm="bp"),
        ],
        ignore_index=True,
    )
    report = optimum_shift_report(runs)
    verdicts = {a["group"]["algorithm"]: a["verdict"] for a in report["analyses"]}
    assert verdicts == {"bp": "does not transfer", "pc": "transfers"}


def test_missing_points_and_sizes_listed():
    optima = {(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0), (128, 4): (-4.0, -3.0), (32, 8): (-4.0, -3.0), (64, 8): (-4.0, -3.0)}
    runs = make_runs(optima)
    # a sweep still running: width 128 at depth 8 never started, some points absent at width 64/depth 8,
    # and one 'running' row that must be ignored rather than counted as diverged.
    drop = (runs.width == 64) & (runs.depth == 8) & (runs.weight_lr >= 2.0**-2)
    runs = runs.loc[~drop].copy()
    runs.loc[runs.index[0], "status"] = "running"
    report = optimum_shift_report(runs)
    a8 = next(a for a in report["analyses"] if a["axis"] == "width" and a["group"]["depth"] == 8)
    kinds = {(m["kind"], m["size"]) for m in a8["missing"]}
    assert ("size", 128) in kinds
    pts = [m for m in a8["missing"] if m["kind"] == "point"]
    assert len(pts) == 2 * len(BETA_EXP) and all(m["size"] == 64 for m in pts)
    assert any("no runs for width=128" in w for w in a8["warnings"])
    assert a8["verdict"] == "inconclusive"  # nothing fails, but a size and some points are missing
    partial = [r for r in a8["reasons"] if r["code"] == "partial"]
    assert len(partial) == 1 and (partial[0]["cells_done"], partial[0]["cells_total"]) == (1, 3)
    assert partial[0]["missing_sizes"] == [128] and partial[0]["incomplete_sizes"] == [64]
    assert any("running" in n for n in report["notes"])
    a4 = next(a for a in report["analyses"] if a["axis"] == "width" and a["group"]["depth"] == 4)
    seeds_missing = [m for m in a4["missing"] if m["kind"] == "seeds"]
    assert len(seeds_missing) == 1 and seeds_missing[0]["n_seeds"] == 2


def test_base_optimum_not_run_at_larger_size_is_inconclusive():
    optima = {(32, 4): (-4.0, -3.0), (64, 4): (-4.0, -3.0)}
    runs = make_runs(optima)
    gone = (runs.width == 64) & (runs.weight_lr == 2.0**-4) & (runs.activity_lr == 2.0**-3)
    a = only(optimum_shift_report(runs.loc[~gone]))
    assert by_size(a)[64]["regret"] is None
    assert a["verdict"] == "inconclusive"
    assert "width=64" in a["verdict_text"]


def test_surface_helper():
    runs = make_runs({(32, 4): (-4.0, -3.0), (64, 4): (-5.0, -3.0)}, noise=0.0)
    surf = surface(runs, metric="min_train_loss", width=64, depth=4)
    assert surf.shape == (len(ETA_EXP), len(BETA_EXP))
    assert surf.loc[2.0**-5, 2.0**-3] == pytest.approx(1.0)
    assert surf.stack().idxmin() == (2.0**-5, 2.0**-3)
