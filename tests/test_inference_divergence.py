"""Inference divergence is data: a PC run whose inference raises the energy is recorded as
``diverged`` with reason ``inference`` and the step it began (mutransfer/inference_health.py), in the
trainer's runs, the Parquet runs table and the report's counts."""

import numpy as np
import pandas as pd
import pytest

from mutransfer.data import load_dataset
from mutransfer.inference_health import RTOL, diverge_columns, inference_divergence
from mutransfer.report import build_report, format_report
from mutransfer.results import ResultsStore
from mutransfer.trainer import CellSpec, TrainOptions, to_device, train_cell


def records(ratio: np.ndarray, steps: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy_start, energy_end, loss) with F_T/F_0 = ratio[t, r] and F_0 = 1."""
    e0 = np.ones((steps, ratio.shape[1]))
    return e0, e0 * ratio, e0.copy()


def test_rule_flags_a_block_whose_summed_energy_rose_at_its_first_rising_step():
    ratio = np.full((20, 3), 0.9)
    ratio[13:, 1] = 3.0  # run 1: inference raises the energy from step 13 on (block 10..19)
    ratio[4, 2] = 1.5  # run 2: one rising step in a block that still lowers the energy overall
    e0, e1, loss = records(ratio)
    assert inference_divergence(e0, e1, loss, block_len=10).tolist() == [-1, 13, -1]
    # in blocks of 5, run 2's block 0–4 sums to 4·0.9 + 1.5 = 5.1 ≤ (1 + RTOL)·5: still not flagged
    assert inference_divergence(e0, e1, loss, block_len=5).tolist() == [-1, 13, -1]
    assert inference_divergence(e0, e1, loss, block_len=1).tolist() == [-1, 13, 4]


def test_rule_tolerance_and_non_finite_activities():
    ratio = np.full((10, 3), 1.0 + RTOL / 2)  # a rise within the tolerance: not flagged
    ratio[:, 1] = 1.0 + 2 * RTOL  # past it: flagged at step 0
    e0, e1, loss = records(ratio, 10)
    e1[6, 2] = np.inf  # an activity overflowed at step 6 while the loss was still finite
    assert inference_divergence(e0, e1, loss, block_len=10).tolist() == [-1, 0, 6]
    loss[6:, 2] = np.nan  # steps not applied (the loss diverged first) are not inference's
    e1[6:, 2] = np.nan
    assert inference_divergence(e0, e1, loss, block_len=10).tolist() == [-1, 0, -1]
    with pytest.raises(ValueError, match="block_len"):
        inference_divergence(e0, e1, loss, block_len=0)


def test_reason_is_whichever_divergence_began_first():
    status, reason, step = diverge_columns(alive=[True, False, False, True], diverged_step=[-1, 9, 3, -1],
                                           inference_step=[-1, 4, 5, 7])
    assert status.tolist() == ["ok", "diverged", "diverged", "diverged"]
    assert reason.tolist() == ["", "inference", "loss", "inference"]
    assert step.tolist() == [-1, 4, 3, 7]


@pytest.fixture(scope="module")
def cliff_runs():
    """An 8-layer ReLU residual μPC net (N = 16, T = 8) on digits: β = 10 sits below GD inference's
    stability cliff (end/start ≈ 0.93 per step), β = 30 past it (the energy grows ~3000× through
    inference) while the training loss stays finite, so the loss rule alone never flags it."""
    cell = CellSpec("pc", "mupc", 16, 8, "relu", True, 64, 10, batch_size=32)
    opts = TrainOptions(max_steps=12, log_every=1, eval_every=6)
    return train_cell(cell, to_device(load_dataset("digits")), [1e-2, 1e-2], [10.0, 30.0], [0, 0], opts)


def test_trainer_flags_the_run_past_the_cliff_only(cliff_runs):
    runs, curves = cliff_runs.runs, cliff_runs.curves
    assert runs["status"].tolist() == ["ok", "diverged"]
    assert runs["diverge_reason"].tolist() == ["", "inference"]
    assert runs["diverge_step"].tolist() == [-1, 0]
    assert runs["diverged_step"].tolist() == [-1, -1]  # the loss never blew up: only inference did
    logged = np.isfinite(curves["energy_start"][0])  # the training steps (the last row is a test point)
    assert logged.sum() == 12 and np.all(np.isfinite(curves["train_loss"][1][logged]))  # training went on
    ratio = curves["energy_end"] / curves["energy_start"]
    assert np.all(ratio[0][logged] < 1.0) and np.all(ratio[1][logged] > 1.0 + RTOL)


def test_runs_table_and_report_count_inference_divergence(cliff_runs, tmp_path):
    r = cliff_runs.runs
    n = len(r["status"])
    runs = pd.DataFrame({
        "run_id": [f"c-{i}" for i in range(n)], "cell_id": "c", "algorithm": "pc", "parametrization": "mupc",
        "width": 16, "depth": 8, "activation": "relu", "dataset": "digits", "spec_hash": "h",
        **{k: r[k] for k in ("weight_lr", "activity_lr", "seed", "status", "min_train_loss", "steps",
                             "diverged_step", "diverge_reason", "diverge_step")}})
    store = ResultsStore(tmp_path)
    store.write_part("s", "p0", runs, None)
    back = store.load_runs("s")
    assert back["diverge_reason"].tolist() == ["", "inference"] and back["diverge_step"].tolist() == [-1, 0]
    bad = runs.assign(diverge_reason=["", "energy"])
    with pytest.raises(ValueError, match="diverge_reason"):
        store.write_part("s", "p1", bad, None)
    wide = pd.concat([back, back.assign(width=32, run_id=lambda d: d["run_id"] + "w")], ignore_index=True)
    report = build_report(wide, n_bootstrap=0)
    assert (report.n_diverged_loss, report.n_diverged_inference) == (0, 2)
    assert [e.n_diverged_inference for e in report.analyses[0].sizes] == [1, 1]
    assert "diverged runs by reason: loss 0, inference 2" in format_report(report)


def test_run_page_shows_why_and_from_which_step(cliff_runs):
    from dashboards.curves import run_page

    r = cliff_runs.runs
    row = {k: (v[1].item() if hasattr(v[1], "item") else v[1]) for k, v in r.items()}
    html = run_page({"run_id": "c-1", **row}, None, {"sweep_id": "s", "name": "s"})
    assert "This run diverged at step 0 (its inference" in html
    ok = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in r.items()}
    assert "This run diverged" not in run_page({"run_id": "c-0", **ok}, None, {"sweep_id": "s", "name": "s"})


def test_run_page_step_columns_and_budget_values_as_the_report_counts_them():
    """A run whose inference diverged at step 34 of 40: no "-1" step is shown as a number, and its
    budget-fraction minima read as the by-budget view counts them: alive at ⌈0.25·40⌉ = 10 and
    ⌈0.5·40⌉ = 20 steps (finite, said so); one that diverged at step 5 is +∞ at both."""
    import re

    from dashboards.curves import run_page

    base = {"run_id": "c-1", "status": "diverged", "diverge_reason": "inference", "diverged_step": -1,
            "steps": 40, "min_train_loss": 0.4, "min_train_loss_25pct": 0.9, "min_train_loss_50pct": 0.6}
    runs = pd.DataFrame([{**base, "run_id": "c-0", "status": "ok", "diverge_step": -1}])
    meta = {"sweep_id": "s", "name": "s"}

    def row(html, col):
        return re.search(rf"<th class=\"l\">{col}</th><td class=\"l\">(.*?)</td>", html).group(1)

    late = run_page({**base, "diverge_step": 34}, None, meta, runs=runs)
    assert "— (the loss did not diverge)" in row(late, "diverged_step") and row(late, "diverge_step") == "34"
    assert row(late, "min_train_loss").startswith('<span class="diverged-note">+∞ (diverged')
    assert row(late, "min_train_loss_25pct") == '0.9 <span class="muted">(alive for its first 10 steps)</span>'
    assert row(late, "min_train_loss_50pct") == '0.6 <span class="muted">(alive for its first 20 steps)</span>'
    early = run_page({**base, "diverge_step": 5}, None, meta, runs=runs)
    for col in ("min_train_loss_25pct", "min_train_loss_50pct"):
        assert "+∞ (diverged, recorded" in row(early, col)
