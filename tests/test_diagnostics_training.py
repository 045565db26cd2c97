"""Diagnostics over training (μPC paper Fig. 3 and Fig. 6 at t > 0): the `training_diagnostics`
analysis kind and the numerical inference equilibrium it uses for nonlinear nets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer import diagnostics as dg
from mutransfer.networks import forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, energy

D, N, C, B = 6, 5, 3, 4


def _net(act, param="mupc", depth=3, seed=0):
    layers = resolve(param, input_dim=D, width=N, hidden_layers=depth, output_dim=C, residual=True)
    w = init_weights(jax.random.key(seed), layer_dims(D, N, depth, C), [p.init_std for p in layers], jnp.float64)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((B, D)))
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, C, B)), C, dtype=jnp.float64)
    return make_net(act, True, layers), w, x, y


def test_numerical_equilibrium_matches_theorem1_on_linear_nets():
    with jax.enable_x64(True):
        net, w, x, y = _net("linear")
        eq = dg.numerical_equilibrium(net, w, x, y)
        assert eq["converged"]
        exact = dg.theorem1_energy(net, w, x, y)
        assert eq["energy"] == pytest.approx(exact, rel=1e-11)
        for z, zs in zip(eq["hidden"], dg.linear_equilibrium(net, w, x, y)):
            np.testing.assert_allclose(np.asarray(z), zs, atol=1e-5)  # gradient 1e-6 / λ_min


def test_numerical_equilibrium_is_a_stationary_point_below_the_forward_energy():
    with jax.enable_x64(True):
        net, w, x, y = _net("tanh", param="sp")
        eq = dg.numerical_equilibrium(net, w, x, y)
        assert eq["converged"] and eq["grad_rms"] < 1e-6 and eq["iterations"] > 1
        g = jax.grad(lambda zs: energy(net, w, zs, x, y, PCConfig(0)))(eq["hidden"])
        assert max(float(jnp.abs(gi).max()) for gi in g) < 1e-6
        loss = float(0.5 * jnp.mean(jnp.sum((y - forward(net, w, x)[-1]) ** 2, 1)))
        assert eq["energy"] < loss  # inference lowers the energy from its forward-pass value (= the loss)


def test_training_diagnostics_analysis():
    settings = {"parametrizations": ["mupc"], "widths": [6], "depths": [3], "activation": "tanh",
                "dataset": "synthetic", "input_dim": 8, "output_dim": 3, "num_examples": 48, "test_examples": 16,
                "batch_size": 8, "probe_size": 8, "steps": 2, "eval_every": 2, "lr": 0.05, "activity_lr": 0.2}
    df = dg.run_analysis("training_diagnostics", settings)
    assert len(df) == 2  # one net × evaluated steps {0, 2}
    assert sorted(df["step"].unique()) == [0, 2]
    assert df["train_loss"].isna().tolist() == (df["step"] == 0).tolist()
    assert (df["energy_method"] == "lbfgs").all() and df["eq_converged"].all()
    assert (df["ratio"] >= 1 - 1e-9).all()  # F(z*) ≤ F(forward) = loss
    assert np.isfinite(df["kappa_abs"]).all() and (df["test_acc"].between(0, 1)).all()
    # Training moved the weights: the probe loss and κ differ between step 0 and step 2.
    for _, g in df.groupby(["parametrization", "depth"]):
        assert g["loss"].iloc[0] != g["loss"].iloc[1] and g["kappa_abs"].iloc[0] != g["kappa_abs"].iloc[1]
    # κ at step 0 is that of the freshly built net (same seed): the analysis measures what it says.
    row = df[(df.parametrization == "mupc") & (df.depth == 3) & (df.step == 0)].iloc[0]
    with jax.enable_x64(True):
        x, labels, _ = dg._as_xy("synthetic", seed=0, input_dim=8, output_dim=3, num_examples=64)
        net, w, _ = dg._build("mupc", input_dim=8, width=6, depth=3, output_dim=3, activation="tanh",
                              residual=True, seed=0, dtype=jnp.float64)
        xp = jnp.asarray(x[:1], jnp.float64)
        yp = jax.nn.one_hot(jnp.asarray(labels[:1]), 3, dtype=jnp.float64)
        c = dg.block_condition_number(dg.activity_hessian_blocks(net, w, xp, yp, PCConfig(0)))
    assert row["kappa_abs"] == pytest.approx(c.kappa_abs, rel=1e-9)


def test_training_diagnostics_linear_uses_theorem1():
    df = dg.run_analysis("training_diagnostics", {
        "parametrizations": "mupc", "widths": [4], "depths": [2], "activation": "linear", "dataset": "synthetic",
        "input_dim": 5, "output_dim": 3, "num_examples": 32, "test_examples": 8, "batch_size": 8, "probe_size": 8,
        "steps": 1, "eval_every": 1, "lr": 0.05})
    assert (df["energy_method"] == "theorem1").all() and len(df) == 2
    assert df["positive_definite"].all() and (df["ratio"] >= 1 - 1e-12).all()


def test_spec_can_request_it():
    from sweeps.spec import AnalysisSpec

    AnalysisSpec(kind="training_diagnostics", settings={"depths": [8, 16], "steps": 100})
    with pytest.raises(ValueError, match="unknown"):
        AnalysisSpec(kind="training_diagnostics", settings={"depth": 8})
