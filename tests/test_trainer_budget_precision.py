"""The trainer's budget columns (running minimum over the first ⌈f·S⌉ steps), its float64 mode and
the kaiming_uniform init."""

import math

import jax
import numpy as np
import pytest

from mutransfer.networks import init_weights
from mutransfer.trainer import (BUDGET_FRACTIONS, CellSpec, TrainOptions, _programs, budget_column, budget_steps,
                                precision_context, train_cell)


def cell(param="mupc", **kw):
    return CellSpec("pc", param, 8, 2, "tanh", True, 64, 10, batch_size=16, **kw)  # tiny: compile time rules


def test_budget_steps():
    assert [budget_steps(f, 156) for f in (0.25, 0.5, 1.0)] == [39, 78, 156]
    assert budget_steps(0.25, 10) == 3 and budget_steps(0.5, 10) == 5 and budget_steps(0.25, 1) == 1
    assert [budget_column(f) for f in BUDGET_FRACTIONS] == ["min_train_loss_25pct", "min_train_loss_50pct"]


def test_budget_columns_are_running_minima_over_every_step(digits_on_device):
    # 14 steps: budgets of 4 and 7 steps. The second run diverges (huge η) partway.
    etas, betas, seeds = [3e-2, 1e4, 1e-1], [0.5, 0.5, 1.0], [0, 0, 1]
    every = train_cell(cell(), digits_on_device, etas, betas, seeds, TrainOptions(max_steps=14, log_every=1))
    sparse = train_cell(cell(), digits_on_device, etas, betas, seeds, TrainOptions(max_steps=14, log_every=5))
    loss = every.curves["train_loss"]  # every step logged; NaN from divergence on
    assert every.runs["status"][1] == "diverged" and 0 < every.runs["diverged_step"][1] < 14
    for f in BUDGET_FRACTIONS:
        k = budget_steps(f, 14)
        want = np.nanmin(loss[:, :k], axis=1)
        np.testing.assert_allclose(every.runs[budget_column(f)], want, rtol=0)
        # Not taken from the logged points: logging every 5 steps gives the same numbers.
        np.testing.assert_array_equal(sparse.runs[budget_column(f)], every.runs[budget_column(f)])
    np.testing.assert_allclose(every.runs["min_train_loss"], np.nanmin(loss, axis=1), rtol=0)
    assert np.all(every.runs["min_train_loss_25pct"] >= every.runs["min_train_loss_50pct"])
    assert np.all(every.runs["min_train_loss_50pct"] >= every.runs["min_train_loss"])


def test_float64_cell_computes_in_float64_and_matches_float32(digits_on_device):
    c32, c64 = cell(), cell(precision="float64")
    with precision_context("float64"):
        init = _programs(c64, 1e3)[0]
        state = init(np.array([0], np.uint32))
        assert all(w.dtype == np.float64 for w in state.weights)
        assert state.min_loss.dtype == np.float64
    opts = TrainOptions(max_steps=12, log_every=1)
    r32 = train_cell(c32, digits_on_device, [3e-2, 1e-1], [0.5, 1.0], [0, 1], opts)
    r64 = train_cell(c64, digits_on_device, [3e-2, 1e-1], [0.5, 1.0], [0, 1], opts)
    l32, l64 = r32.curves["train_loss"], r64.curves["train_loss"]
    # Same weights and batches: step 0 (no update yet) agrees to float32 rounding, but not bit for bit.
    np.testing.assert_allclose(l64[:, 0], l32[:, 0], rtol=1e-6)
    assert np.any(l64[:, 0] != l32[:, 0])
    # Adam's per-coordinate normalisation turns float32 rounding of tiny gradient entries into
    # O(η) weight differences, so the trajectories part slowly (~1e-3 relative after 10 steps here).
    np.testing.assert_allclose(l64, l32, rtol=1e-2)
    # Afterwards a float32 process is untouched: x64 was on only inside the cell.
    assert jax.numpy.zeros(1).dtype == np.float32


def test_unknown_precision_and_init_are_refused(digits_on_device):
    with pytest.raises(ValueError, match="precision"):
        train_cell(cell(precision="float16"), digits_on_device, [1e-2], [0.5], [0], TrainOptions(max_steps=2))
    with pytest.raises(ValueError, match="init"):
        train_cell(cell(init="xavier"), digits_on_device, [1e-2], [0.5], [0], TrainOptions(max_steps=2))


def test_kaiming_uniform_init_is_jpc_default_under_sp():
    fan_in = 400
    std = 1 / math.sqrt(fan_in)  # sp's σ_l
    (w,) = init_weights(jax.random.key(0), [(300, fan_in)], [std], init="kaiming_uniform")
    w = np.asarray(w)
    assert np.abs(w).max() <= std and np.abs(w).max() > 0.99 * std  # U(±1/√fan_in)
    assert w.var() == pytest.approx(1 / (3 * fan_in), rel=0.02)  # variance 1/(3·fan_in)
    (g,) = init_weights(jax.random.key(0), [(300, fan_in)], [std])
    assert np.asarray(g).var() == pytest.approx(1 / fan_in, rel=0.02)
