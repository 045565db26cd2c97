"""Diagnostics (docs/reference/diagnostics.md): activity Hessian (autodiff = per-layer blocks = closed form), its
conditioning, the linear inference equilibrium, Theorem 1, the coordinate check, the analyses table."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mutransfer import diagnostics as dg
from mutransfer.networks import forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, energy

D, N, H, C, B = 5, 6, 3, 4, 3


def build(param="mupc", activation="linear", residual=True, width=N, depth=H, seed=0, dtype=jnp.float64):
    layers = resolve(param, input_dim=D, width=width, hidden_layers=depth, output_dim=C, residual=residual)
    net = make_net(activation, residual, layers)
    w = init_weights(jax.random.key(seed), layer_dims(D, width, depth, C), [p.init_std for p in layers], dtype)
    return net, w


def batch(dtype=jnp.float64):
    x = jnp.asarray(np.random.default_rng(1).standard_normal((B, D)), dtype)
    y = jax.nn.one_hot(jnp.arange(B) % C, C, dtype=dtype)
    return x, y


CASES = [(p, r) for p in ("sp", "mupc") for r in (False, True)]


@pytest.mark.parametrize("param,residual", CASES)
def test_autodiff_hessian_equals_closed_form_and_blocks(param, residual):
    with jax.enable_x64(True):
        net, w = build(param, residual=residual)
        x, y = batch()
        cfg = PCConfig(inference_steps=1)
        auto = np.asarray(dg.activity_hessian(net, w, x, y, cfg, example=1))
        closed = dg.linear_activity_hessian(net, w)
        blocks = np.asarray(dg.activity_hessian(net, w, x, y, cfg, method="blocks"))
        assert auto.shape == (H * N, H * N)
        scale = np.abs(closed).max()
        assert np.abs(auto - closed).max() <= 1e-10 * scale
        assert np.abs(blocks - closed).max() <= 1e-10 * scale
        # Output precision γ scales only the last block's MᵀM term.
        g = 0.3
        auto_g = np.asarray(dg.activity_hessian(net, w, x, y, PCConfig(1, output_precision=g)))
        assert np.abs(auto_g - dg.linear_activity_hessian(net, w, output_precision=g)).max() <= 1e-10 * scale


def test_closed_form_hessian_float32_autodiff():
    net, w = build("sp", residual=True, dtype=jnp.float32)
    x, y = batch(jnp.float32)
    auto = np.asarray(dg.activity_hessian(net, w, x, y, PCConfig(1)))
    closed = dg.linear_activity_hessian(net, w)
    assert np.abs(auto - closed).max() <= 1e-5 * np.abs(closed).max()


@pytest.mark.parametrize("param,residual", [("sp", True), ("mupc", True), ("mupc", False)])
def test_blocks_equal_dense_autodiff_for_nonlinear_nets(param, residual):
    with jax.enable_x64(True):
        net, w = build(param, activation="tanh", residual=residual)
        x, y = batch()
        cfg = PCConfig(1)
        # Away from the forward pass too, so the hidden second-derivative terms are non-zero.
        hidden = [z + 0.3 * jax.random.normal(jax.random.key(i), z.shape, z.dtype)
                  for i, z in enumerate(forward(net, w, x)[:-1])]
        for hid in (None, hidden):
            auto = np.asarray(dg.activity_hessian(net, w, x, y, cfg, hidden=hid, example=2))
            blk = dg.assemble_blocks(dg.activity_hessian_blocks(net, w, x, y, cfg, hidden=hid, example=2))
            assert np.abs(auto - blk).max() <= 1e-12 * np.abs(auto).max()
            assert np.allclose(auto, auto.T, atol=1e-12)


def test_batch_hessian_is_block_diagonal_over_examples():
    with jax.enable_x64(True):
        net, w = build("sp", activation="tanh", residual=False)
        x, y = batch()
        cfg = PCConfig(1)
        full = np.asarray(dg.activity_hessian(net, w, x, y, cfg, per_example=False))
        m = H * N
        assert full.shape == (B * m, B * m)
        for b in range(B):
            per = np.asarray(dg.activity_hessian(net, w, x, y, cfg, example=b))
            np.testing.assert_allclose(full[b * m:(b + 1) * m, b * m:(b + 1) * m], per / B, atol=1e-12)
        # ... and it is the Hessian of the batch-mean pc.energy in (example, layer, unit) order.
        def F(v):
            zs = v.reshape(B, H, N)
            return energy(net, w, [zs[:, j] for j in range(H)], x, y, cfg)
        z0 = jnp.stack(forward(net, w, x)[:-1], axis=1).reshape(-1)
        np.testing.assert_allclose(full, np.asarray(jax.hessian(F)(z0)), atol=1e-12)


@pytest.mark.parametrize("param,residual", CASES)
def test_linear_hessian_positive_definite(param, residual):
    for width, depth in [(N, H), (8, 12)]:
        net, w = build(param, residual=residual, width=width, depth=depth, dtype=jnp.float32)
        Hz = dg.linear_activity_hessian(net, w)
        assert np.linalg.eigvalsh(Hz).min() > 0
        c = dg.condition_number(Hz, dtype="float64")
        assert c.positive_definite and c.lambda_min > 0 and math.isfinite(c.kappa) and c.kappa >= 1
        c32 = dg.condition_number(Hz)
        assert c32.kappa == pytest.approx(c.kappa, rel=1e-3)


@pytest.mark.parametrize("param,residual", CASES)
def test_linear_equilibrium_zeroes_the_energy_gradient(param, residual):
    with jax.enable_x64(True):
        net, w = build(param, residual=residual)
        x, y = batch()
        for gamma in (1.0, 0.25):
            cfg = PCConfig(1, output_precision=gamma)
            z = dg.linear_equilibrium(net, w, x, y, output_precision=gamma)
            assert [zi.shape for zi in z] == [(B, N)] * H
            g = jax.grad(lambda zs: energy(net, w, zs, x, y, cfg))([jnp.asarray(zi) for zi in z])
            assert max(float(jnp.abs(gi).max()) for gi in g) < 1e-10
            # Same as a dense solve of H_z z = b.
            Hz = dg.linear_activity_hessian(net, w, output_precision=gamma)
            f0 = forward(net, w, x)
            b = np.zeros((B, H * N))
            b[:, :N] = np.asarray(f0[0])
            M = net.multipliers[-1] * np.asarray(w[-1])
            b[:, -N:] += gamma * np.asarray(y) @ M
            np.testing.assert_allclose(np.concatenate(z, axis=1), np.linalg.solve(Hz, b.T).T, rtol=1e-9, atol=1e-10)


def test_linear_equilibrium_float32_gradient_small():
    net, w = build("mupc", residual=True, dtype=jnp.float32)
    x, y = batch(jnp.float32)
    z = [jnp.asarray(zi, jnp.float32) for zi in dg.linear_equilibrium(net, w, x, y)]
    g = jax.grad(lambda zs: energy(net, w, zs, x, y, PCConfig(1)))(z)
    assert max(float(jnp.abs(gi).max()) for gi in g) < 1e-5


@pytest.mark.parametrize("param,residual", CASES)
def test_equilibrated_energy_matches_pc_energy_and_theorem1(param, residual):
    with jax.enable_x64(True):
        net, w = build(param, residual=residual)
        x, y = batch()
        for gamma in (1.0, 2.0):
            z = dg.linear_equilibrium(net, w, x, y, output_precision=gamma)
            F_pc = float(energy(net, w, [jnp.asarray(zi) for zi in z], x, y, PCConfig(1, output_precision=gamma)))
            F_solve = dg.equilibrated_energy(net, w, x, y, output_precision=gamma)
            F_thm = dg.theorem1_energy(net, w, x, y, output_precision=gamma)
            assert F_solve == pytest.approx(F_pc, rel=1e-10)
            assert F_thm == pytest.approx(F_pc, rel=1e-9)
            assert dg.equilibrated_energy(net, w, x, y, output_precision=gamma, method="theorem1") == F_thm
        # The forward pass is feasible, so F(z*) ≤ F(forward) = loss: ratio ≥ 1.
        f = np.asarray(forward(net, w, x)[-1])
        loss = 0.5 * np.mean(np.sum((np.asarray(y) - f) ** 2, axis=1))
        ratio = dg.loss_energy_ratio(net, w, x, y)
        assert ratio == pytest.approx(loss / dg.theorem1_energy(net, w, x, y), rel=1e-9)
        assert ratio >= 1.0


def test_loss_energy_ratio_approaches_one_when_width_dominates_depth():
    ratios = {}
    for width, depth in [(4, 8), (256, 2)]:
        net, w = build("mupc", residual=True, width=width, depth=depth, dtype=jnp.float32)
        x, y = batch(jnp.float32)
        ratios[width] = dg.loss_energy_ratio(net, w, x, y)
    assert ratios[256] < 1.05 < 1.5 < ratios[4]


def test_dense_request_over_max_bytes_is_refused_with_size():
    net, w = build("mupc", activation="tanh", width=64, depth=16, dtype=jnp.float32)
    x = jnp.ones((1, D))
    y = jnp.ones((1, C))
    # 1024 × 1024 float32 = 4 MiB = 0.0039 GiB.
    with pytest.raises(ValueError, match=r"1024×1024 float32 Hessian needs 0\.00 GiB.*max_bytes"):
        dg.activity_hessian(net, w, x, y, PCConfig(1), max_bytes=1 << 20)
    lin_net, lin_w = build("mupc", width=64, depth=16, dtype=jnp.float32)
    with pytest.raises(ValueError, match="GiB"):
        dg.linear_activity_hessian(lin_net, lin_w, max_bytes=1 << 20)
    # N·H = 16k fits the default 8 GiB budget (not computed here: only the check).
    dg._check_size(16384, np.float64, dg.DEFAULT_MAX_BYTES, "x")
    with pytest.raises(ValueError, match=r"32\.00 GiB"):
        dg._check_size(65536, np.float64, dg.DEFAULT_MAX_BYTES, "x")


def test_closed_forms_refuse_nonlinear_nets():
    net, w = build("mupc", activation="tanh", dtype=jnp.float32)
    x, y = batch(jnp.float32)
    for fn, args in [(dg.linear_activity_hessian, (net, w)), (dg.linear_hessian_blocks, (net, w)),
                     (dg.linear_equilibrium, (net, w, x, y)), (dg.equilibrated_energy, (net, w, x, y)),
                     (dg.theorem1_energy, (net, w, x, y)), (dg.loss_energy_ratio, (net, w, x, y))]:
        with pytest.raises(ValueError, match="only for linear activations"):
            fn(*args)


def test_condition_number_conventions():
    c = dg.condition_number(np.diag([-1.0, 2.0, 4.0]), dtype="float64")
    assert c.kappa == math.inf and not c.positive_definite
    assert c.lambda_min == -1.0 and c.lambda_max == 4.0 and c.kappa_abs == 4.0
    c = dg.condition_number(np.diag([0.5, 2.0, 4.0]))
    assert c.positive_definite and c.kappa == pytest.approx(8.0)
    c = dg.condition_number(np.diag([0.0, 1.0]), dtype="float64")
    assert c.kappa == math.inf and c.kappa_abs == math.inf and not c.resolved
    with pytest.raises(ValueError):
        dg.condition_number(np.eye(2), dtype="float16")


@pytest.mark.parametrize("activation,residual,param", [("linear", True, "sp"), ("linear", True, "mupc"),
                                                       ("tanh", True, "mupc"), ("tanh", False, "sp")])
def test_block_lanczos_conditioning_equals_dense(activation, residual, param):
    with jax.enable_x64(True):
        net, w = build(param, activation=activation, residual=residual, width=12, depth=10)
        x, y = batch()
        blocks = dg.activity_hessian_blocks(net, w, x, y, PCConfig(1))
        dense = dg.condition_number(dg.assemble_blocks(blocks), dtype="float64")
        lanczos = dg.block_condition_number(blocks, method="lanczos")
        assert lanczos.positive_definite == dense.positive_definite
        assert lanczos.lambda_min == pytest.approx(dense.lambda_min, rel=1e-7)
        assert lanczos.lambda_max == pytest.approx(dense.lambda_max, rel=1e-9)
        assert lanczos.kappa_abs == pytest.approx(dense.kappa_abs, rel=1e-7)


def test_block_lanczos_indefinite():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 5, 5))
    diag = A @ A.transpose(0, 2, 1) + 5 * np.eye(5)
    diag[2] -= 12 * np.eye(5)  # make it indefinite
    lower = 0.5 * rng.standard_normal((3, 5, 5))
    blocks = dg.HessianBlocks(diag, lower)
    dense = dg.condition_number(dg.assemble_blocks(blocks), dtype="float64")
    lanczos = dg.block_condition_number(blocks, method="lanczos")
    assert not dense.positive_definite and not lanczos.positive_definite and lanczos.kappa == math.inf
    assert lanczos.lambda_min == pytest.approx(dense.lambda_min, rel=1e-8)
    assert lanczos.kappa_abs == pytest.approx(dense.kappa_abs, rel=1e-6)


def test_forward_stats():
    net, w = build("sp", activation="tanh", dtype=jnp.float32)
    x, _ = batch(jnp.float32)
    df = dg.forward_stats(net, w, x)
    assert list(df.columns) == ["layer", "kind", "mean", "std", "mean_abs"]
    assert df["layer"].tolist() == list(range(1, H + 2)) and df["kind"].iloc[-1] == "output"
    f = np.asarray(forward(net, w, x)[-1])
    assert df["mean_abs"].iloc[-1] == pytest.approx(np.abs(f).mean(), rel=1e-6)


def test_coordinate_check_rows_and_width_scaling():
    kw = dict(widths=(32, 256), depths=(3,), steps=3, num_examples=512, probe_size=128, seed=0)
    frames = {p: dg.coordinate_check(p, **kw) for p in ("mupc", "sp")}
    df = frames["mupc"]
    for col in ["parametrization", "width", "depth", "layer", "step", "mean_abs_z", "mean_abs_dz"]:
        assert col in df.columns
    assert len(df) == 2 * 2 * (3 + 1)  # widths × recorded steps {0, 3} × (H hidden + output)
    assert sorted(df["step"].unique()) == [0, 3]

    def at(p, step, layer, col="mean_abs_z"):
        d = frames[p]
        d = d[(d.step == step) & (d.layer == layer)].set_index("width")[col]
        return d[32], d[256]

    # μPC at init: hidden-layer |z| flat in width (measured ratios 0.99–1.01).
    for layer in (1, 2, 3):
        a, b = at("mupc", 0, layer)
        assert 1 / 1.5 < b / a < 1.5
    # After 3 Adam steps (PC, β = 0.1): μPC's last-hidden-layer feature update is flat in width
    # (measured ratio ~1.0), SP's grows with width (measured ~3×, and ~4× at the output).
    a, b = at("mupc", 3, 3, "mean_abs_dz")
    assert 1 / 1.5 < b / a < 1.5
    a, b = at("sp", 3, 3, "mean_abs_dz")
    assert b / a > 2
    a, b = at("sp", 3, 4, "mean_abs_dz")
    assert b / a > 2


def test_analyses_table_runs_small_configs():
    assert set(dg.ANALYSES) == {"hessian_condition", "hessian_condition_during_training", "loss_energy_ratio",
                                "coordinate_check", "gradient_alignment", "training_diagnostics"}

    df = dg.run_analysis("hessian_condition", {"widths": [4, 8], "depths": [3], "residual": True})
    assert len(df) == 2 * 2 and {"kappa", "lambda_min", "lambda_max", "positive_definite"} <= set(df.columns)
    assert df["positive_definite"].all() and (df["kappa"] >= 1).all()
    df = dg.run_analysis("hessian_condition", {"parametrizations": ["mupc"], "widths": [4], "depths": [3],
                                               "activation": "tanh", "method": "autodiff"})
    assert len(df) == 1 and df["method"].iloc[0] == "autodiff"
    df = dg.run_analysis("hessian_condition_during_training",
                         {"width": 8, "depth": 2, "steps": 4, "eval_every": 2, "num_examples": 128,
                          "batch_size": 16})
    assert df["step"].tolist() == [0, 2, 4] and np.isfinite(df["lambda_max"]).all()
    df = dg.run_analysis("loss_energy_ratio", {"widths": [8], "depths": [2], "steps": 2, "eval_every": 1,
                                               "num_examples": 128})
    assert df["step"].tolist() == [0, 1, 2] and (df["ratio"] >= 1).all()
    df = dg.run_analysis("coordinate_check", {"widths": [8], "depths": [2], "steps": 1, "num_examples": 128,
                                              "probe_size": 16})
    assert set(df["parametrization"]) == {"sp", "mupc"} and len(df) == 2 * 2 * 3
    assert isinstance(df, pd.DataFrame)
    with pytest.raises(ValueError, match="unknown config field"):
        dg.run_analysis("coordinate_check", {"widthz": [8]})
    with pytest.raises(ValueError, match="unknown"):
        dg.run_analysis("nope")
