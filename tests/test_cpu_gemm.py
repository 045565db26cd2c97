"""The BLAS-backed batched matmul (mutransfer/cpu_gemm.py, mutransfer/native/bmm.cc): the same
numbers as ``jnp.einsum`` — values, VJPs, under ``vmap`` — in float32 and float64, and the PC
step, the grid trainer and the μPC authors' reference fixture through it. Skipped, with the
reason, where the library is not built (``python -m mutransfer.native.build``)."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer import cpu_gemm, pc, trainer
from mutransfer.data import Dataset
from mutransfer.networks import init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from trajectories import pc_adam_trajectory

pytestmark = pytest.mark.skipif(not (jax.default_backend() == "cpu" and cpu_gemm.available()),
                                reason="the BLAS FFI library is not built here (python -m mutransfer.native.build)")


def _close(a, b, tol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= tol * scale, (np.abs(a - b).max(), scale)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("trans_b", [True, False])
def test_bmm_values_vjp_and_vmap_match_einsum(dtype, tol, trans_b):
    with jax.enable_x64(dtype == np.float64):
        _bmm_matches_einsum(dtype, tol, trans_b)


def _bmm_matches_einsum(dtype, tol, trans_b):
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.standard_normal((3, 5, 7, 4)), dtype)
    B = jnp.asarray(rng.standard_normal((3, 5, 6, 4) if trans_b else (3, 5, 4, 6)), dtype)
    spec = "...bi,...oi->...bo" if trans_b else "...bi,...io->...bo"
    ours = lambda a, b: cpu_gemm.bmm(a, b, trans_b)  # noqa: E731
    ref = lambda a, b: jnp.einsum(spec, a, b)  # noqa: E731
    assert cpu_gemm.bmm(A, B, trans_b).dtype == dtype
    _close(jax.jit(ours)(A, B), ref(A, B), tol)
    loss = lambda f: lambda a, b: jnp.sum(jnp.sin(f(a, b)))  # noqa: E731
    for g, h in zip(jax.jit(jax.grad(loss(ours), (0, 1)))(A, B), jax.grad(loss(ref), (0, 1))(A, B)):
        _close(g, h, tol)
    # vmapped over runs (the grid trainer), one operand shared by every run (broadcast)
    _close(jax.jit(jax.vmap(lambda a: ours(a, B[0])))(A), jax.vmap(lambda a: ref(a, B[0]))(A), tol)
    for g, h in zip(jax.jit(jax.vmap(jax.grad(loss(ours), (0, 1))))(A, B), jax.vmap(jax.grad(loss(ref), (0, 1)))(A, B)):
        _close(g, h, tol)


def test_bmm_rejects_unequal_batch_dims():
    with pytest.raises(ValueError, match="batch dimensions"):
        cpu_gemm.bmm(jnp.ones((2, 3, 4)), jnp.ones((3, 5, 4)))


def test_resolve_switch(monkeypatch):
    monkeypatch.setenv(cpu_gemm.ENV, "xla")
    assert cpu_gemm.resolve() == "xla"
    assert cpu_gemm.resolve(1024) == "xla"
    monkeypatch.setenv(cpu_gemm.ENV, "blas")
    assert cpu_gemm.resolve() == "blas"
    assert cpu_gemm.resolve(8) == "blas"  # forced at every width
    monkeypatch.delenv(cpu_gemm.ENV)  # "auto": the measured width gate
    assert cpu_gemm.resolve(cpu_gemm.BLAS_MIN_WIDTH - 1) == "xla"
    assert cpu_gemm.resolve(cpu_gemm.BLAS_MIN_WIDTH) == "blas"
    monkeypatch.setenv(cpu_gemm.ENV, "auto")
    assert cpu_gemm.resolve(64) == "xla" and cpu_gemm.resolve(256) == "blas"
    monkeypatch.setenv(cpu_gemm.ENV, "mkl")
    with pytest.raises(ValueError, match=cpu_gemm.ENV):
        cpu_gemm.resolve()


D, N, C, B = 12, 8, 5, 6
FIXTURE = Path(os.environ.get("MUTRANSFER_PC_FIXTURE")
               or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pc_step_reference.npz")


def test_pc_training_trajectory_float64_matches_xla_dots():
    """Five PC + Adam steps of a tanh residual μPC net (H = 5): the BLAS products give XLA's
    losses to 1e-11 and weights to 1e-10 (float64 → dgemm; OpenBLAS sums a dot product in another
    order than XLA's Eigen dot, ≈ 1e-16 per product, and Adam's m/√v turns any rounding-level
    gradient difference into an O(lr) step, so the trajectories drift apart at ≈ 1e-12)."""
    with jax.enable_x64(True):
        layers = resolve("mupc", input_dim=D, width=N, hidden_layers=5, output_dim=C, residual=True)
        xla = make_net("tanh", True, layers, scan=True, pieces=1)
        w0 = init_weights(jax.random.key(5), layer_dims(D, N, 5, C), [p.init_std for p in layers], jnp.float64)
        def batch(t):
            rng = np.random.default_rng(t)
            x = jnp.asarray(rng.standard_normal((B, D)))
            return x, jax.nn.one_hot(jnp.asarray(rng.integers(0, C, B)), C, dtype=jnp.float64)

        wb, lb = pc_adam_trajectory(xla._replace(gemm="blas"), w0, batch)
        wx, lx = pc_adam_trajectory(xla, w0, batch)
        assert max(float(jnp.abs(a - b).max()) for a, b in zip(wx, w0)) > 0.01  # training moved the weights
        np.testing.assert_allclose(lb, lx, rtol=1e-11, atol=0)
        for a, b in zip(wb, wx):
            _close(a, b, 1e-10)


def test_jpc_reference_fixture_through_blas():
    """tests/test_pc_reference.py's comparison with the μPC authors' library, with the products
    through the BLAS call."""
    if not FIXTURE.exists():
        pytest.skip(f"fixture not found at {FIXTURE}")
    ref = np.load(FIXTURE)
    for param in ("mupc", "sp"):
        for act in ("linear", "tanh", "relu"):
            key = f"{param}_{act}"
            weights = [ref[f"{key}_W{i}"] for i in range(5)]
            out = pc.reference_step(weights, ref["x"], ref["y"], parametrization=param, activation=act,
                                    residual=True, beta=0.5, steps=4, gemm="blas")
            assert out["energy_end"] == pytest.approx(float(ref[f"{key}_energyT"]), abs=1e-5)
            assert out["energy_end"] < out["energy_start"]
            for i, z in enumerate(out["activities"]):
                np.testing.assert_allclose(z, ref[f"{key}_zT{i}"], atol=1e-5, rtol=0)
            gmax = max(np.abs(ref[f"{key}_gradW{i}"]).max() for i in range(5))
            for i, g in enumerate(out["weight_grads"]):
                assert np.abs(g - ref[f"{key}_gradW{i}"]).max() <= 1e-5 * gmax


def test_grid_trainer_uses_blas_on_cpu_and_gives_xla_curves(monkeypatch):
    """The grid trainer's PC MLP cells get ``gemm="blas"`` on CPU from the width gate on (here
    forced below it with $MUTRANSFER_CPU_GEMM=blas; "xla": XLA's dots), and both give the same
    float64 curves."""
    rng = np.random.default_rng(0)
    data = Dataset("synthetic", rng.standard_normal((48, D)).astype(np.float32),
                   rng.integers(0, C, 48).astype(np.int32), rng.standard_normal((8, D)).astype(np.float32),
                   rng.integers(0, C, 8).astype(np.int32), C)
    cell = trainer.CellSpec("pc", "mupc", N, 3, "tanh", True, D, C, batch_size=16, precision="float64")
    opts = trainer.TrainOptions(max_steps=3, log_every=1, eval_every=3)
    monkeypatch.delenv(cpu_gemm.ENV, raising=False)
    assert trainer.grid_model(cell).net.gemm == "xla"  # N = 8 is below the width gate
    assert trainer.grid_model(cell._replace(width=cpu_gemm.BLAS_MIN_WIDTH)).net.gemm == "blas"
    assert trainer.model_for(cell._replace(width=256)).net.gemm == "xla"  # the diagnostics' nets keep jnp.einsum
    out = {}
    for gemm in ("blas", "xla"):
        monkeypatch.setenv(cpu_gemm.ENV, gemm)
        assert trainer.grid_model(cell).net.gemm == gemm
        trainer._programs.cache_clear()
        out[gemm] = trainer.train_cell(cell, data, [0.1, 0.01], [0.5, 0.1], [0, 1], opts)
    trainer._programs.cache_clear()
    for k in ("train_loss", "energy_end", "test_loss"):
        np.testing.assert_allclose(out["blas"].curves[k], out["xla"].curves[k], rtol=1e-11, atol=1e-13)
