"""The hidden layers as a scan over stacked weights give the unrolled loop's numbers.

``Net.scan=True`` (the default) runs an MLP's hidden-to-hidden layers as a ``lax.scan`` in the
forward pass and as batched products over the layer axis in the energy, inference and weight
gradient (mutransfer/networks.py, mutransfer/pc.py); ``scan=False`` is the original unrolled
loop. Compared in float64 to 1e-12 on small nets, for one step and over a few training steps.
The trainer-level checks (tests/test_trainer.py) and the comparison with the μPC authors'
library (tests/test_pc_reference.py) run the scanned path, the default.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer import bp, pc
from mutransfer.matmul import DOT_SPLIT_ENV
from mutransfer.networks import (LAYER_SCAN_ENV, forward, init_weights, join_weights, layer_dims, make_net,
                                 split_weights)
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig
from trajectories import pc_adam_trajectory

D, N, C, B = 12, 8, 5, 6


def _nets(param: str, act: str, residual: bool, depth: int, dtype=jnp.float64):
    layers = resolve(param, input_dim=D, width=N, hidden_layers=depth, output_dim=C, residual=residual)
    net = make_net(act, residual, layers, scan=True)
    w = init_weights(jax.random.key(depth), layer_dims(D, N, depth, C), [p.init_std for p in layers], dtype)
    return net, net._replace(scan=False), w


def _batch(seed: int = 0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((B, D)), dtype)
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, C, B)), C, dtype=dtype)
    return x, y


def _close(a, b, tol=1e-12):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


def test_scan_applies_to_mlps_only():
    layers = resolve("mupc", input_dim=D, width=N, hidden_layers=4, output_dim=C, residual=True)
    assert make_net("tanh", True, layers).scanned
    assert not make_net("tanh", True, layers, scan=False).scanned
    one = resolve("mupc", input_dim=D, width=N, hidden_layers=1, output_dim=C, residual=True)
    assert not make_net("tanh", True, one).scanned  # H = 1: no hidden-to-hidden layer to scan


def test_env_switch(monkeypatch):
    layers = resolve("sp", input_dim=D, width=N, hidden_layers=3, output_dim=C, residual=False)
    monkeypatch.setenv(LAYER_SCAN_ENV, "0")
    assert not make_net("relu", False, layers).scan
    monkeypatch.setenv(LAYER_SCAN_ENV, "2")
    with pytest.raises(ValueError, match=LAYER_SCAN_ENV):
        make_net("relu", False, layers)


def _everything(net, w, x, y, cfg):
    """Every public entry point on one net, in one jitted program (one compile per net)."""
    zs = forward(net, w, x)
    hid = zs[:-1]
    return {"forward": zs, "step": pc.gradients(net, w, x, y, 0.3, cfg), "energy": pc.energy(net, w, hid, x, y, cfg),
            "infer": pc.infer(net, w, x, y, cfg, 0.3, hid, hid[0]), "bp": bp.gradients(net, w, x, y, 0.0, cfg).grads,
            "packed_step": pc.gradients(net, split_weights(w), x, y, 0.3, cfg).grads if net.scanned else []}


@pytest.mark.parametrize("param,act,residual,depth", [("mupc", "tanh", True, 4), ("sp", "relu", False, 3)])
def test_forward_and_pc_step_match_unrolled(param, act, residual, depth):
    """forward, pc.gradients (list and packed weights), pc.energy, pc.infer and BP's gradient."""
    with jax.enable_x64(True):
        scan, unrolled, w = _nets(param, act, residual, depth)
        x, y = _batch()
        cfg = PCConfig(inference_steps=depth)
        run = jax.jit(_everything, static_argnums=(0, 4))
        s, u = run(scan, w, x, y, cfg), run(unrolled, w, x, y, cfg)
        assert float(u["step"].energy_end) < float(u["step"].energy_start)  # inference moved something
        assert len(s["step"].grads) == len(w) and all(g.shape == v.shape for g, v in zip(s["step"].grads, w))
        for name in ("train_loss", "energy_start", "energy_end"):
            _close(getattr(s["step"], name), getattr(u["step"], name))
        pairs = [*zip(s["forward"], u["forward"]), *zip(s["step"].grads, u["step"].grads), (s["energy"], u["energy"]),
                 *zip(s["infer"], u["infer"]), *zip(s["bp"], u["bp"]),
                 *zip(join_weights(s["packed_step"]), u["step"].grads)]
        assert len(pairs) == (depth + 1) * 4 + 1 + depth
        for a, b in pairs:
            _close(a, b)


def test_unequal_hidden_multipliers():
    """Per-layer multipliers (none of the table's rows has them, but a Net may) go through the scan."""
    with jax.enable_x64(True):
        scan, _, w = _nets("mupc", "tanh", True, 4)
        scan = scan._replace(multipliers=(0.3, 0.5, 0.7, 0.9, 0.2))
        unrolled = scan._replace(scan=False)
        x, y = _batch(1)
        cfg = PCConfig(inference_steps=3)
        step = jax.jit(pc.gradients, static_argnums=(0, 5))
        s, u = step(scan, w, x, y, 0.2, cfg), step(unrolled, w, x, y, 0.2, cfg)
        _close(s.energy_end, u.energy_end)
        for gs, gu in zip(s.grads, u.grads):
            _close(gs, gu)


def test_training_trajectories_match():
    """Five PC + Adam steps of a tanh residual μPC net (H = 5, T = H): losses agree to 1e-12, weights to 1e-10."""
    with jax.enable_x64(True):
        scan, unrolled, w0 = _nets("mupc", "tanh", True, 5)
        ws, ls = pc_adam_trajectory(scan, w0, _batch)
        wu, lu = pc_adam_trajectory(unrolled, w0, _batch)
        assert max(float(jnp.abs(a - b).max()) for a, b in zip(ws, w0)) > 0.01  # training moved the weights
        np.testing.assert_allclose(ls, lu, rtol=1e-12, atol=0)
        # Rounding-level gradient differences (≤ 1e-12 per step, above) pass through Adam's
        # normalisation m/√v, which maps a gradient entry's size to an O(lr) step whatever it is:
        # after 5 steps the weights agree to ~5e-12 of their size.
        for a, b in zip(ws, wu):
            _close(a, b, tol=1e-10)


def test_trainer_uses_the_scan(monkeypatch):
    """The grid trainer's MLP cells get scanned nets (so tests/test_trainer.py and
    tests/test_pc_reference.py exercise the scan); $MUTRANSFER_LAYER_SCAN=0 switches it off."""
    from mutransfer import trainer

    cell = trainer.CellSpec("pc", "mupc", N, 4, "tanh", True, D, C)
    assert trainer.model_for(cell).net.scanned
    monkeypatch.setenv(LAYER_SCAN_ENV, "0")
    assert not trainer.model_for(cell).net.scanned


def test_grid_trainer_packed_state_same_numbers(monkeypatch):
    """The trainer packs its state's hidden layers per block (networks.LayerPacking): its curves
    equal those of the unpacked, unrolled trainer ($MUTRANSFER_LAYER_SCAN=0), in float64 (two
    differently fused float32 programs round differently, which Adam's m/√v amplifies to O(lr) steps:
    ≈ 1e-4 relative after 3 steps with XLA's LLVM backend at -O0, as the suite runs it)."""
    from mutransfer import trainer
    from mutransfer.data import Dataset

    rng = np.random.default_rng(0)
    data = Dataset("synthetic", rng.standard_normal((48, D)).astype(np.float32),
                   rng.integers(0, C, 48).astype(np.int32), rng.standard_normal((8, D)).astype(np.float32),
                   rng.integers(0, C, 8).astype(np.int32), C)
    cell = trainer.CellSpec("pc", "mupc", N, 3, "tanh", True, D, C, batch_size=16, precision="float64")
    opts = trainer.TrainOptions(max_steps=3, log_every=1, eval_every=3)
    out = {}
    # One dot per product here (the split's own float64 check: tests/test_matmul.py): this test
    # is about the packing, and a split product's float32 rounding may differ by an ulp.
    monkeypatch.setenv(DOT_SPLIT_ENV, "1")
    # XLA's dots on both sides, for the same reason: the BLAS products (mutransfer/cpu_gemm.py,
    # checked against XLA's in float64 by tests/test_cpu_gemm.py) round float32 differently, and
    # Adam's m/√v turns that into O(lr) differences in the curves.
    monkeypatch.setenv("MUTRANSFER_CPU_GEMM", "xla")
    for flag in ("1", "0"):
        monkeypatch.setenv(LAYER_SCAN_ENV, flag)
        trainer._programs.cache_clear()
        out[flag] = trainer.train_cell(cell, data, [0.1, 0.01], [0.5, 0.1], [0, 1], opts)
    trainer._programs.cache_clear()
    for k in ("train_loss", "energy_end", "test_loss"):
        np.testing.assert_allclose(out["1"].curves[k], out["0"].curves[k], rtol=1e-10, atol=1e-12)


def test_init_weights_one_draw_per_shape_equals_per_layer_draws():
    dims = layer_dims(D, N, 5, C)
    stds = [0.3, 1.0, 0.7, 1.0, 1.0, 0.5]
    keys = jax.random.split(jax.random.key(3), len(dims))
    w = init_weights(jax.random.key(3), dims, stds)
    for a, k, d, s in zip(w, keys, dims, stds):
        assert a.shape == d and bool(jnp.all(a == s * jax.random.normal(k, d, jnp.float32)))
    w = init_weights(jax.random.key(3), dims, stds, init="kaiming_uniform")
    for a, k, d, s in zip(w, keys, dims, stds):
        assert bool(jnp.all(a == jax.random.uniform(k, d, jnp.float32, -s, s)))
