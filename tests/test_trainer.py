"""The grid trainer: vmapped runs equal runs trained alone; divergence is isolated; chunking is
invisible; PC and BP actually learn."""

import math

import numpy as np
import pytest

from mutransfer.trainer import CellSpec, TrainOptions, chunk_sizes, train_cell


def cell(algorithm="pc", param="mupc", width=16, depth=3, **kw):
    return CellSpec(algorithm, param, width, depth, "tanh", True, 64, 10, batch_size=32, **kw)


OPTS = TrainOptions(epochs=1, max_steps=12, log_every=1, eval_every=6)


def test_grid_equals_runs_trained_one_at_a_time(digits_on_device):
    etas, betas, seeds = [1e-2, 1e-1, 3e-2], [0.5, 0.1, 1.0], [0, 1, 0]
    together = train_cell(cell(), digits_on_device, etas, betas, seeds, OPTS)
    for i in range(3):
        alone = train_cell(cell(), digits_on_device, [etas[i]], [betas[i]], [seeds[i]], OPTS)
        np.testing.assert_allclose(together.curves["train_loss"][i], alone.curves["train_loss"][0],
                                   rtol=1e-4, atol=1e-6)  # float32 summation order differs by batch shape
        np.testing.assert_allclose(together.curves["test_acc"][i], alone.curves["test_acc"][0], atol=1e-6)
        assert together.runs["min_train_loss"][i] == pytest.approx(alone.runs["min_train_loss"][0], rel=1e-4)


def test_same_seed_same_init_and_batches(digits_on_device):
    res = train_cell(cell(), digits_on_device, [1e-2, 1e-1], [0.5, 0.5], [7, 7], OPTS)
    # Step 0 is measured before any update: same seed -> same init and same first batch.
    assert res.curves["train_loss"][0, 0] == res.curves["train_loss"][1, 0]
    other = train_cell(cell(), digits_on_device, [1e-2], [0.5], [8], OPTS)
    assert other.curves["train_loss"][0, 0] != res.curves["train_loss"][0, 0]


def test_diverging_run_is_frozen_flagged_and_isolated(digits_on_device):
    etas, betas, seeds = [1e-2, 1e4, 3e-2], [0.5, 0.5, 0.5], [0, 0, 1]
    with_bad = train_cell(cell(), digits_on_device, etas, betas, seeds, OPTS)
    without = train_cell(cell(), digits_on_device, [etas[0], etas[2]], [0.5, 0.5], [0, 1], OPTS)
    assert list(with_bad.runs["status"]) == ["ok", "diverged", "ok"]
    d = int(with_bad.runs["diverged_step"][1])
    assert 0 < d < 12 and with_bad.runs["steps"][1] == d
    assert np.all(np.isnan(with_bad.curves["train_loss"][1, d:]))
    assert np.isfinite(with_bad.runs["min_train_loss"][1])  # the loss before it blew up
    for i, j in ((0, 0), (2, 1)):  # batch-mates bit-identical to training without the bad run
        np.testing.assert_allclose(with_bad.curves["train_loss"][i], without.curves["train_loss"][j],
                                   rtol=1e-4)
    assert with_bad.runs["diverged_step"][0] == -1


def test_a_chunk_whose_runs_all_diverged_stops_with_the_same_results(digits_on_device):
    opts = OPTS._replace(eval_every=2)
    calls = {True: [], False: []}
    res = {stop: train_cell(cell(), digits_on_device, [1e4, 3e4], [0.5, 0.5], [0, 1],
                            opts._replace(stop_when_all_diverged=stop), lambda d, t, stop=stop: calls[stop].append(d))
           for stop in (True, False)}
    assert list(res[True].runs["status"]) == ["diverged", "diverged"]
    assert calls[False] == [2, 4, 6, 8, 10, 12] and calls[True][-1] < 12  # it stopped early
    for table in ("runs", "curves"):
        a, b = getattr(res[True], table), getattr(res[False], table)
        assert a.keys() == b.keys()
        for k in a:
            if k != "wall_s":
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{table}.{k}")


def test_nan_producing_lr_is_data_not_a_crash(digits_on_device):
    res = train_cell(cell(param="sp"), digits_on_device, [math.inf, 1e-2], [0.5, 0.5], [0, 0], OPTS)
    assert list(res.runs["status"]) == ["diverged", "ok"]


def test_chunking_is_invisible(digits_on_device):
    etas, betas, seeds = [1e-2, 1e-1, 3e-2, 5e-2, 2e-2], [0.5] * 5, [0, 1, 2, 0, 1]
    whole = train_cell(cell(), digits_on_device, etas, betas, seeds, OPTS)
    one = train_cell(cell(), digits_on_device, etas, betas, seeds, OPTS)
    per_run = one.runs  # same call twice: deterministic
    np.testing.assert_array_equal(whole.runs["min_train_loss"], per_run["min_train_loss"])
    from mutransfer.trainer import bytes_per_run
    budget = 2 * bytes_per_run(cell(), OPTS.test_chunk)  # forces chunks of 2 (3 chunks, last padded)
    assert chunk_sizes(5, bytes_per_run(cell(), OPTS.test_chunk), budget) == [2, 2, 2]
    chunked = train_cell(cell(), digits_on_device, etas, betas, seeds, OPTS._replace(memory_budget_bytes=budget))
    np.testing.assert_allclose(chunked.curves["train_loss"], whole.curves["train_loss"], rtol=1e-4)
    np.testing.assert_array_equal(chunked.runs["weight_lr"], etas)


@pytest.mark.parametrize("algorithm", ["pc", "bp"])
@pytest.mark.parametrize("param", ["mupc", "sp", "depth_mup", "mup", "ntp"])
def test_algorithms_learn(digits_on_device, algorithm, param):
    opts = TrainOptions(epochs=3, log_every=5)
    res = train_cell(cell(algorithm, param, width=32, depth=2), digits_on_device, [1e-2], [0.5], [0], opts)
    loss = res.curves["train_loss"][0]
    loss = loss[np.isfinite(loss)]
    assert res.runs["status"][0] == "ok"
    assert loss[-3:].mean() < 0.7 * loss[:3].mean()
    assert res.runs["final_test_acc"][0] > 0.5  # 10 classes: chance is 0.1


def test_cross_entropy_and_sgd(digits_on_device):
    # μPC's 1/N output multiplier makes raw gradients small: plain SGD needs a large η.
    res = train_cell(cell("pc", "mupc", loss="cross_entropy", optimizer="sgd"), digits_on_device, [5.0], [0.5], [0],
                     TrainOptions(epochs=3, log_every=5))
    loss = res.curves["train_loss"][0]
    loss = loss[np.isfinite(loss)]  # the last point is eval-only
    assert res.runs["status"][0] == "ok" and loss[-3:].mean() < 0.9 * loss[:3].mean()


def test_curve_steps_and_eval_points(digits_on_device):
    opts = TrainOptions(max_steps=10, log_every=4, eval_every=5)
    res = train_cell(cell(), digits_on_device, [1e-2], [0.5], [0], opts)
    steps = res.curves["step"][0]
    assert list(steps) == [0, 4, 5, 8, 9, 10]
    acc = res.curves["test_acc"][0]
    assert np.isfinite(acc[[0, 2, 5]]).all() and np.isnan(acc[[1, 3, 4]]).all()
    assert np.isnan(res.curves["train_loss"][0][-1])  # step 10: after the last update, eval only


def test_mismatched_data_is_rejected(digits_on_device):
    with pytest.raises(ValueError, match="D=784"):
        train_cell(CellSpec("pc", "mupc", 8, 2, "tanh", True, 784, 10), digits_on_device, [0.1], [0.1], [0])
