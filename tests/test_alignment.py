"""PC-vs-BP gradient alignment (docs/reference/algorithms.md#output-precision,
docs/reference/claims.md#claim-7): the linear equilibrium closed forms, the
small-precision limit, and the width trend under μP for γ̄_L ∈ {0, −1} (numbers verified with
fixed seeds; see benchmarks/gradient_alignment.py for the Fashion-MNIST run to N = 4096)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer.diagnostics import alignment as al
from mutransfer.diagnostics import Analysis
from mutransfer.networks import forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, energy

D, N, H, C, B = 12, 10, 2, 4, 6


def build(param="mupc", activation="linear", residual=False, width=N, depth=H, seed=0):
    layers = resolve(param, input_dim=D, width=width, hidden_layers=depth, output_dim=C, residual=residual)
    net = make_net(activation, residual, layers)
    with jax.enable_x64(True):
        w = init_weights(jax.random.key(seed), layer_dims(D, width, depth, C), [p.init_std for p in layers],
                         jnp.float64)
    return net, w


def batch():
    rng = np.random.default_rng(1)
    return rng.standard_normal((B, D)), np.eye(C)[rng.integers(0, C, B)]


def rel(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b)) / max(float(np.abs(v).max()) for v in b)


@pytest.mark.parametrize("param,residual,gamma", [("mupc", False, 1.0), ("mupc", True, 10.0), ("sp", False, 3.0)])
def test_closed_form_equals_converged_inference(param, residual, gamma):
    net, w = build(param, residual=residual)
    x, y = batch()
    g_chol = al.pc_equilibrium_grads(net, w, x, y, gamma, method="closed_form")
    g_out = al.pc_equilibrium_grads(net, w, x, y, gamma, method="output_space")
    g_inf, info = al.pc_equilibrium_grads(net, w, x, y, gamma, method="inference", return_info=True)
    assert rel(g_out, g_chol) < 1e-10
    assert info.steps > 10 and info.residual <= al.DEFAULT_TOL
    assert rel(g_inf, g_chol) < 1e-4
    if param != "mupc" or residual:
        return
    # An explicit small step in pc.infer's (batch-mean) units converges to the same point.
    g_small = al.pc_equilibrium_grads(net, w, x, y, gamma, method="inference", beta=0.05, steps=200_000)
    assert rel(g_small, g_chol) < 1e-4


def test_closed_form_structure():
    """∇_z F = 0 at the closed-form z*, and ∇_{W_l} F = γ a_l P_lᵀ (I + C_γ)⁻¹(f − y) z*_{l-1}ᵀ
    (batch mean) — the formula the module docstring derives; the GN reference at γ → 0 is BP."""
    net, w = build("mupc")
    x, y = batch()
    gamma = 5.0
    grads, info = al.pc_equilibrium_grads(net, w, x, y, gamma, method="output_space", return_info=True)
    cfg = PCConfig(inference_steps=0, output_precision=gamma)
    with jax.enable_x64(True):
        gz = jax.grad(lambda zs: energy(net, [jnp.asarray(u) for u in w], zs, jnp.asarray(x), jnp.asarray(y), cfg))(
            [jnp.asarray(h) for h in info.hidden])
        gz = [np.asarray(g) for g in gz]
    assert max(float(np.abs(g).max()) for g in gz) < 1e-12
    A, M, P = al._linear_parts(net, w)
    f = x @ A[0].T @ A[1].T @ M.T
    e = np.linalg.solve(np.eye(C) + gamma * sum(p @ p.T for p in P), (f - y).T).T
    pres = [x] + info.hidden
    Ps = P + [np.eye(C)]
    expect = [gamma * net.multipliers[k] * (e @ Ps[k]).T @ pres[k] / B for k in range(net.depth)]
    assert rel(grads, expect) < 1e-10
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in al.gn_reference_grads(net, w, x, y, 0.0)]),
                               np.concatenate([g.ravel() for g in al.bp_grads(net, w, x, y)]), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("param", ["sp", "mupc"])
def test_small_precision_limit_is_bp(param):
    df = al.gradient_alignment(param, widths=[16, 128], depth=2, gamma_exponents=[0.0], gamma_prime=1e-6,
                               seeds=[0, 1], batch_size=32)
    assert (df.cos_pc_bp > 0.999).all()
    assert (df.cos_gn_bp > 0.999).all()
    assert np.allclose(df.pc_bp_norm_ratio, 1.0, atol=1e-3)


@pytest.fixture(scope="module")
def trend():
    return al.gradient_alignment("mupc", widths=[64, 1024], depth=2, gamma_exponents=[0.0, -1.0], seeds=[0, 1])


def _cos(df, ge, width, col="cos_pc_bp", layer="all"):
    return df[(df.gamma_exponent == ge) & (df.width == width) & (df.layer == layer)][col].to_numpy()


def test_width_trend_gamma0_approaches_bp(trend):
    # Verified (synthetic, seeds 0-3): all-layer cos ≈ 0.9967 at N=64, ≈ 0.99998 at N=1024.
    small, large = _cos(trend, 0.0, 64), _cos(trend, 0.0, 1024)
    assert (large > small).all() and (large > 0.9999).all() and (small > 0.99).all()
    assert (1 - large).max() < 0.1 * (1 - small).min()


def test_width_trend_gamma_minus1_stays_away_from_bp(trend):
    # Verified (synthetic, seeds 0-3): all-layer cos 0.04-0.15 at N=64, 0.35-0.37 at N=1024
    # (Fashion-MNIST: 0.77 → 0.86 at N=4096, saturating).
    for width in (64, 1024):
        assert (_cos(trend, -1.0, width) < 0.6).all()
        assert (_cos(trend, -1.0, width, layer="3") < 0.5).all()
    # The damped-GN preconditioner becomes isotropic at init (C_γ → γ′·H·I), so the GN
    # reference itself aligns with BP; PC's deviation is the presynaptic equilibrium shift.
    assert (_cos(trend, -1.0, 1024, "cos_gn_bp") > 0.99).all()
    assert (_cos(trend, -1.0, 1024, "presyn_shift") > 0.3).all()
    assert (_cos(trend, 0.0, 1024, "presyn_shift") < 0.01).all()
    assert np.abs(_cos(trend, -1.0, 1024, "cos_pc_gn") - _cos(trend, -1.0, 1024)).max() < 0.01
    # Input layer: its presynaptic activity x is clamped, so PC = γ × GN reference exactly.
    np.testing.assert_allclose(trend[trend.layer == "1"].cos_pc_gn, 1.0, atol=1e-10)


def test_mup_equals_mupc_for_plain_nets():
    a = al.gradient_alignment("mupc", widths=[32], gamma_exponents=[0.0, -1.0], seeds=[0], batch_size=32)
    b = al.gradient_alignment("mup", widths=[32], gamma_exponents=[0.0, -1.0], seeds=[0], batch_size=32)
    cols = ["cos_pc_bp", "cos_pc_gn", "cos_gn_bp", "pc_bp_norm_ratio"]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-12)


def test_dataframe_and_registry_entry():
    name, config, run, description = al.ALIGNMENT
    assert name == "gradient_alignment" and isinstance(description, str)
    from mutransfer.diagnostics import ANALYSES
    assert isinstance(ANALYSES[name], Analysis) and ANALYSES[name].run is run  # registered
    cfg = config(parametrizations=("mupc", "sp"), widths=(8, 16), gamma_exponents=(0.0, -1.0), seeds=(0, 1),
                 batch_size=16)
    assert dataclasses.is_dataclass(cfg)
    df = run(cfg)
    L = cfg.depth + 1
    assert len(df) == 2 * 2 * 2 * 2 * (L + 1)
    expected = {"parametrization", "width", "depth", "gamma_exponent", "layer", "cos_pc_bp", "cos_pc_gn",
                "gamma_L", "seed", "cos_gn_bp", "pc_bp_norm_ratio", "presyn_shift"}
    assert expected <= set(df.columns)
    assert sorted(df.layer.unique()) == ["1", "2", "3", "all"]
    assert set(df.parametrization) == {"mupc", "sp"} and set(df.width) == {8, 16}
    assert np.allclose(df.gamma_L, df.gamma_prime * df.width.astype(float) ** (-df.gamma_exponent))
    assert df[["cos_pc_bp", "cos_pc_gn"]].notna().all().all()
    assert ((df.cos_pc_bp <= 1 + 1e-12) & (df.cos_pc_bp >= -1 - 1e-12)).all()


def test_nonlinear_uses_inference():
    net, w = build("mupc", activation="tanh")
    x, y = batch()
    with pytest.raises(ValueError):
        al.pc_equilibrium_grads(net, w, x, y, 1.0, method="closed_form")
    df = al.gradient_alignment("mupc", widths=[8], activation="tanh", gamma_exponents=[0.0], gamma_prime=1e-6,
                               seeds=[0], batch_size=8)
    assert (df.method == "inference").all() and (df.inference_steps > 0).all()
    assert df.cos_pc_gn.isna().all()
    assert (df.cos_pc_bp > 0.999).all()
    # Converged inference really is an equilibrium of the nonlinear energy.
    g, info = al.pc_equilibrium_grads(net, w, x, y, 2.0, method="inference", return_info=True)
    cfg = PCConfig(inference_steps=0, output_precision=2.0)
    with jax.enable_x64(True):
        f0 = forward(net, [jnp.asarray(u) for u in w], jnp.asarray(x))
        gz = jax.grad(lambda zs: energy(net, [jnp.asarray(u) for u in w], zs, jnp.asarray(x), jnp.asarray(y), cfg))
        r0 = max(float(jnp.abs(u).max()) for u in gz(f0[:-1]))
        r1 = max(float(jnp.abs(u).max()) for u in gz([jnp.asarray(h) for h in info.hidden]))
    assert r1 < 1e-8 * r0
