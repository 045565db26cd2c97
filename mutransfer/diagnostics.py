"""Diagnostics from the papers (SPEC §6): activity Hessian and its conditioning, the linear-net
inference equilibrium and equilibrated energy (μPC paper Theorem 1), and the coordinate check.

Conventions
-----------
* Layers. A net has H hidden layers and L = H + 1 weight matrices (``net.depth``). Activities
  are ``hidden = [z_1, ..., z_H]``, each ``(B, N)``; the output f = a_L W_L φ(z_H) is clamped to y,
  the input z_0 = x is clamped, so the *free* activities are z_1..z_H (H·N numbers per example).
* Vectorisation. One example's free activities are stacked layer-major:
  ``vec(z) = [z_1; z_2; ...; z_H]`` (index ``j·N + i`` is unit i of z_{j+1}). With
  ``per_example=False`` the batch is stacked example-major on top of that.
* Per-example vs batch-mean energy. :func:`mutransfer.pc.energy` is the batch MEAN
  F = (1/B) Σ_b E_b with the per-example energy

      E_b(z) = Σ_{l=1..H} ½‖z_l − μ_l(z_{l-1})‖² + γ_L · ℓ(y_b, a_L W_L φ(z_H)).

  Examples do not interact, so ∂²F/∂z∂z is block diagonal over examples with blocks (1/B)·∇²E_b.
  Everything called "the activity Hessian" here is ∇²E_b of ONE example (no 1/B factor), the
  (H·N × H·N) matrix of the μPC paper's Eq. 5 — unless ``per_example=False`` is asked for.
* Block structure. z_l only meets z_{l-1} and z_{l+1} in E, so the Hessian is block tridiagonal:
  diagonal blocks D_l = I + ∂²/∂z_l² ½‖z_{l+1} − μ_{l+1}(z_l)‖² (l < H) and
  D_H = I + γ_L ∂²ℓ/∂z_H², sub-diagonal blocks ∂²E/∂z_{l+1}∂z_l = −J_{l+1}, J_{l+1} = ∂μ_{l+1}/∂z_l.
  This is exact for any activation (the second-derivative terms of a nonlinear μ sit in the
  diagonal blocks), so :func:`activity_hessian_blocks` builds the Hessian from H per-layer
  Jacobians/Hessians in O(H·N³) instead of the dense autodiff's O((H·N)²·N).
* Linear nets (φ = identity). With A_l = a_l W_l (+ I with skips, l = 2..H) and M = a_L W_L:
  D_l = I + A_{l+1}ᵀA_{l+1} (l < H), D_H = I + γ MᵀM, off-diagonal blocks (l, l+1) = −A_{l+1}ᵀ,
  and ∇_z E = H_z z − b with b_1 = a_1 W_1 x, b_H = γ Mᵀ y (zero elsewhere), so the inference
  equilibrium is z* = H_z⁻¹ b (the Hessian does not depend on z or on the data).
  The closed forms assume the ``mse`` output loss ½‖y − f‖².
* Theorem 1. For a linear net F(z*) = (1/2B) Σ_b r_bᵀ S⁻¹ r_b with r = y − f(x),
  S = γ⁻¹ I + Σ_{l=1..H} P_l P_lᵀ, P_l = ∂f/∂z_l = M A_H ⋯ A_{l+1} (P_H = M). For γ = 1 this is the
  paper's S = I + Σ_l P_l P_lᵀ.
* Precision. Closed forms and equilibria are computed in float64 numpy regardless of the weights'
  dtype. Autodiff Hessians are computed in the weights' dtype: run under ``jax.enable_x64(True)``
  with float64 weights when κ is large (float32 resolves λ_min only down to ~1e-7·λ_max).
* Evaluation point. For nonlinear nets the Hessian depends on z; unless ``hidden`` is given it is
  taken at the forward-pass activities (PC's inference initialisation), as in the μPC authors' code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from mutransfer import algorithms, losses, optim
from mutransfer import alignment as _alignment
from mutransfer.networks import Net, Weights, forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, energy

Array = jax.Array

GiB = 1024**3
DEFAULT_MAX_BYTES = 8 * GiB
MAX_S_CONDITION = 1e12  # theorem1_energy: beyond this κ(S) the float64 answer is not trustworthy

__all__ = [
    "ANALYSES",
    "Analysis",
    "CoordinateCheckConfig",
    "Conditioning",
    "HessianBlocks",
    "HessianConditionConfig",
    "HessianTrainingConfig",
    "LossEnergyRatioConfig",
    "activity_hessian",
    "activity_hessian_blocks",
    "assemble_blocks",
    "block_condition_number",
    "condition_number",
    "coordinate_check",
    "equilibrated_energy",
    "forward_stats",
    "linear_activity_hessian",
    "linear_hessian_blocks",
    "linear_equilibrium",
    "loss_energy_ratio",
    "run_analysis",
    "theorem1_energy",
]


# --------------------------------------------------------------------------------------------
# Activity Hessian
# --------------------------------------------------------------------------------------------


class HessianBlocks(NamedTuple):
    """A symmetric block-tridiagonal matrix: ``diag`` (H, N, N) and ``lower`` (H-1, N, N), where
    ``lower[j]`` is the block at block-row j+1, block-column j (0-based); the block above the
    diagonal at (j, j+1) is ``lower[j].T``."""

    diag: Any
    lower: Any

    @property
    def size(self) -> int:
        return int(self.diag.shape[0] * self.diag.shape[1])


def _dense_bytes(n: int, dtype) -> int:
    return int(n) * int(n) * np.dtype(dtype).itemsize


def _check_size(n: int, dtype, max_bytes: int, what: str) -> None:
    need = _dense_bytes(n, dtype)
    if need > max_bytes:
        raise ValueError(
            f"{what}: a dense {n}×{n} {np.dtype(dtype).name} Hessian needs {need / GiB:.2f} GiB, "
            f"over max_bytes={max_bytes / GiB:.2f} GiB. Use activity_hessian_blocks / "
            f"linear_activity_hessian (block-tridiagonal, H·N² entries) with block_condition_number, "
            f"a smaller net, or raise max_bytes."
        )


def _example(x: Array, y: Array, example: int) -> tuple[Array, Array]:
    if x.ndim == 1:
        x = x[None]
    if y.ndim == 1:
        y = y[None]
    if not 0 <= example < x.shape[0]:
        raise ValueError(f"example {example} out of range for a batch of {x.shape[0]}")
    return x[example], y[example]


def _hidden_of_example(net: Net, weights: Weights, x1: Array, hidden: Sequence[Array] | None,
                       example: int) -> Array:
    """(H, N) activities of one example: ``hidden`` if given (list of (B, N) or (N,)), else the
    forward pass."""
    if hidden is None:
        return jnp.stack(forward(net, weights, x1[None])[:-1])[:, 0, :]
    return jnp.stack([h[example] if h.ndim == 2 else h for h in hidden])


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _autodiff_hessian(net: Net, cfg: PCConfig, chunk: int, weights: Weights, x1: Array, y1: Array,
                      z: Array) -> Array:
    H, N = z.shape
    n = H * N

    def E(v):
        hidden = [v[j * N:(j + 1) * N][None, :] for j in range(H)]
        return energy(net, weights, hidden, x1[None], y1[None], cfg)  # B = 1: per-example energy

    g = jax.grad(E)
    v0 = z.reshape(n)

    def column(j):
        return jax.jvp(g, (v0,), (jax.nn.one_hot(j, n, dtype=v0.dtype),))[1]

    return jax.lax.map(column, jnp.arange(n), batch_size=min(chunk, n))


def activity_hessian(net: Net, weights: Weights, x: Array, y: Array, cfg: PCConfig, *,
                     hidden: Sequence[Array] | None = None, per_example: bool = True,
                     example: int = 0, method: str = "autodiff", max_bytes: int = DEFAULT_MAX_BYTES,
                     chunk: int = 256) -> Array:
    """Dense Hessian of the PC energy w.r.t. all free activities.

    ``per_example=True`` (default): the (H·N × H·N) Hessian ∇²E of ONE example's energy (example
    ``example`` of the batch; pass ``x`` of shape (1, D) for a single example) — the per-example
    energy without the batch mean's 1/B, i.e. the μPC paper's H_z. ``per_example=False``: the
    Hessian of the batch-mean energy F over all B·H·N activities (example-major), which is
    block diagonal with blocks ∇²E_b / B.

    ``method="autodiff"``: Hessian-vector products of ``pc.energy`` against every basis vector
    (forward-over-reverse, ``chunk`` columns at a time, so the peak memory is the result plus a
    small workspace). ``method="blocks"``: assembled from :func:`activity_hessian_blocks` (exact,
    much cheaper). Activities: ``hidden`` (list of (B, N)) or the forward pass.

    Raises ``ValueError`` (with the size in GiB) when the dense result would exceed ``max_bytes``.
    """
    dtype = weights[0].dtype
    H = net.depth - 1
    N = weights[0].shape[0]
    B = x.shape[0] if x.ndim == 2 else 1
    n = H * N if per_example else B * H * N
    _check_size(n, dtype, max_bytes, "activity_hessian")
    if method not in ("autodiff", "blocks"):
        raise ValueError(f"method: unknown {method!r}; choose 'autodiff' or 'blocks'")

    def one(b: int) -> Array:
        if method == "blocks":
            return jnp.asarray(assemble_blocks(activity_hessian_blocks(
                net, weights, x, y, cfg, hidden=hidden, example=b)))
        x1, y1 = _example(x, y, b)
        z = _hidden_of_example(net, weights, x1, hidden, b)
        return _autodiff_hessian(net, cfg, int(chunk), list(weights), x1, y1.astype(dtype), z)

    if per_example:
        return one(example)
    out = np.zeros((n, n), dtype)
    m = H * N
    for b in range(B):
        out[b * m:(b + 1) * m, b * m:(b + 1) * m] = np.asarray(one(b)) / B
    return jnp.asarray(out)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _blocks_impl(net: Net, cfg: PCConfig, weights: Weights, y1: Array, z: Array):
    H, N = z.shape
    phi = net.phi
    eye = jnp.eye(N, dtype=z.dtype)

    def mu(W, a, u):
        out = a * (W @ phi(u))
        return out + u if net.residual else out

    def local(W, a, u, t):
        return 0.5 * jnp.sum((t - mu(W, a, u)) ** 2)

    if H > 1:
        Ws = jnp.stack(weights[1:H])
        a = jnp.asarray(net.multipliers[1:H], z.dtype)
        hess_u = jax.vmap(jax.hessian(local, argnums=2))(Ws, a, z[:-1], z[1:])
        lower = -jax.vmap(jax.jacfwd(mu, argnums=2))(Ws, a, z[:-1])
    else:
        hess_u = jnp.zeros((0, N, N), z.dtype)
        lower = jnp.zeros((0, N, N), z.dtype)

    def out_term(u):
        f = net.multipliers[-1] * (weights[-1] @ phi(u))
        return cfg.output_precision * losses.LOSSES[cfg.loss](f[None], y1[None])[0]

    hess_out = jax.hessian(out_term)(z[-1])
    diag = eye[None] + jnp.concatenate([hess_u, hess_out[None]], axis=0)
    return diag, lower


def activity_hessian_blocks(net: Net, weights: Weights, x: Array, y: Array, cfg: PCConfig, *,
                            hidden: Sequence[Array] | None = None, example: int = 0) -> HessianBlocks:
    """The per-example activity Hessian ∇²E as its block-tridiagonal blocks (exact for any
    activation; see the module docstring). Diagonal blocks from the Hessian of each local term
    w.r.t. the lower activity, sub-diagonal blocks −∂μ_{l+1}/∂z_l. Returns jax arrays in the
    weights' dtype: ``diag`` (H, N, N), ``lower`` (H-1, N, N)."""
    x1, y1 = _example(x, y, example)
    z = _hidden_of_example(net, weights, x1, hidden, example)
    diag, lower = _blocks_impl(net, cfg, list(weights), y1.astype(z.dtype), z)
    return HessianBlocks(diag, lower)


def assemble_blocks(blocks: HessianBlocks) -> np.ndarray:
    """Dense (H·N × H·N) numpy matrix from block-tridiagonal blocks."""
    diag, lower = np.asarray(blocks.diag), np.asarray(blocks.lower)
    H, N, _ = diag.shape
    out = np.zeros((H * N, H * N), diag.dtype)
    for j in range(H):
        s = slice(j * N, (j + 1) * N)
        out[s, s] = diag[j]
        if j < H - 1:
            t = slice((j + 1) * N, (j + 2) * N)
            out[t, s] = lower[j]
            out[s, t] = lower[j].T
    return out


# --------------------------------------------------------------------------------------------
# Linear nets: closed forms
# --------------------------------------------------------------------------------------------


def _require_linear(net: Net, what: str) -> None:
    if net.activation != "linear":
        raise ValueError(
            f"{what}: the closed form exists only for linear activations (net.activation="
            f"{net.activation!r}); use activity_hessian / activity_hessian_blocks (autodiff) instead"
        )


def _linear_maps(net: Net, weights: Weights) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """float64 (A_2..A_H, M, a_1 W_1): A_l = a_l W_l (+ I with skips), M = a_L W_L."""
    W = [np.asarray(w, np.float64) for w in weights]
    a = net.multipliers
    N = W[0].shape[0]
    A = [a[k] * W[k] + (np.eye(N) if net.residual else 0.0) for k in range(1, net.depth - 1)]
    return A, a[-1] * W[-1], a[0] * W[0]


def linear_hessian_blocks(net: Net, weights: Weights, *, output_precision: float = 1.0) -> HessianBlocks:
    """Closed-form blocks (float64 numpy) of the per-example activity Hessian of a LINEAR net:
    D_l = I + A_{l+1}ᵀA_{l+1}, D_H = I + γ MᵀM, lower blocks −A_{l+1}. Assumes the mse loss."""
    _require_linear(net, "linear_hessian_blocks")
    A, M, _ = _linear_maps(net, weights)
    N = M.shape[1]
    H = net.depth - 1
    diag = np.empty((H, N, N))
    for j in range(H - 1):
        diag[j] = np.eye(N) + A[j].T @ A[j]
    diag[H - 1] = np.eye(N) + output_precision * (M.T @ M)
    lower = -np.stack(A) if A else np.zeros((0, N, N))
    return HessianBlocks(diag, lower)


def linear_activity_hessian(net: Net, weights: Weights, *, output_precision: float = 1.0,
                            max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Dense closed-form per-example activity Hessian (float64 numpy, H·N × H·N) of a LINEAR net,
    with or without skips: block tridiagonal with diagonal blocks I + A_{l+1}ᵀA_{l+1}, last block
    I + γ MᵀM and off-diagonal blocks −A_{l+1}ᵀ (above) / −A_{l+1} (below), A_l = a_l W_l (+ I with
    skips), M = a_L W_L. Raises ``ValueError`` for a nonlinear net."""
    _require_linear(net, "linear_activity_hessian")
    H, N = net.depth - 1, weights[0].shape[0]
    _check_size(H * N, np.float64, max_bytes, "linear_activity_hessian")
    return assemble_blocks(linear_hessian_blocks(net, weights, output_precision=output_precision))


class _BlockCholesky(NamedTuple):
    """Block LDLᵀ of a block-tridiagonal SPD matrix: Cholesky factors of the Schur complements."""

    factors: list
    lower: np.ndarray


def _small_blas(N: int):
    """Single-threaded BLAS for the many small (N×N) block operations: a multi-threaded OpenBLAS
    spin-waits on tiny matrices and was measured ~400× slower on a loaded 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas") if N <= 512 else contextlib.nullcontext()


def _block_cholesky(blocks: HessianBlocks) -> _BlockCholesky:
    """Raises ``np.linalg.LinAlgError`` if the matrix is not positive definite."""
    diag = np.asarray(blocks.diag, np.float64)
    lower = np.asarray(blocks.lower, np.float64)
    factors = []
    S = diag[0]
    for j in range(diag.shape[0]):
        if j > 0:
            S = diag[j] - lower[j - 1] @ scipy.linalg.cho_solve(factors[-1], lower[j - 1].T)
            S = 0.5 * (S + S.T)
        factors.append(scipy.linalg.cho_factor(S, lower=True, check_finite=False))
    return _BlockCholesky(factors, lower)


def _block_solve(chol: _BlockCholesky, b: np.ndarray) -> np.ndarray:
    """Solve H z = b for b of shape (H, N, k) by block forward elimination / back substitution."""
    H = len(chol.factors)
    y = [b[0]]
    for j in range(1, H):
        y.append(b[j] - chol.lower[j - 1] @ scipy.linalg.cho_solve(chol.factors[j - 1], y[j - 1]))
    z = [None] * H
    z[H - 1] = scipy.linalg.cho_solve(chol.factors[H - 1], y[H - 1])
    for j in range(H - 2, -1, -1):
        z[j] = scipy.linalg.cho_solve(chol.factors[j], y[j] - chol.lower[j].T @ z[j + 1])
    return np.stack(z)


def _block_matvec(diag: np.ndarray, lower: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H v for v of shape (H, N, k)."""
    out = diag @ v
    if lower.shape[0]:
        out[1:] += lower @ v[:-1]
        out[:-1] += lower.transpose(0, 2, 1) @ v[1:]
    return out


def linear_equilibrium(net: Net, weights: Weights, x: Array, y: Array, *,
                       output_precision: float = 1.0) -> list[np.ndarray]:
    """Inference equilibrium z* = H_z⁻¹ b of a LINEAR net for every example (mse loss).

    b_1 = a_1 W_1 x, b_H = γ Mᵀ y (b_1 + b_H when H = 1), zero in between. Solved in float64 by a
    block-tridiagonal Cholesky (O(H·N³), no dense matrix). Returns ``[z*_1, ..., z*_H]``, each a
    float64 numpy array (B, N), like ``hidden`` activities."""
    _require_linear(net, "linear_equilibrium")
    A, M, W1a = _linear_maps(net, weights)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    H, N, B = net.depth - 1, M.shape[1], x.shape[0]
    b = np.zeros((H, N, B))
    b[0] += W1a @ x.T
    b[H - 1] += output_precision * (M.T @ y.T)
    with _small_blas(N):
        z = _block_solve(_block_cholesky(linear_hessian_blocks(net, weights, output_precision=output_precision)), b)
    return [z[j].T.copy() for j in range(H)]


def _linear_energy(net: Net, weights: Weights, hidden: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray,
                   output_precision: float) -> float:
    """Batch-mean energy of a linear net in float64 (the same formula as ``pc.energy``)."""
    A, M, W1a = _linear_maps(net, weights)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    sq = 0.5 * np.sum((hidden[0] - x @ W1a.T) ** 2)
    for j in range(1, len(hidden)):
        sq += 0.5 * np.sum((hidden[j] - hidden[j - 1] @ A[j - 1].T) ** 2)
    out = 0.5 * output_precision * np.sum((y - hidden[-1] @ M.T) ** 2)
    return float((sq + out) / x.shape[0])


def equilibrated_energy(net: Net, weights: Weights, x: Array, y: Array, *,
                        output_precision: float = 1.0, method: str = "solve") -> float:
    """F(z*), the batch-mean energy at the inference equilibrium of a LINEAR net (float64).

    ``method="solve"``: evaluate the energy at :func:`linear_equilibrium`; ``"theorem1"``:
    :func:`theorem1_energy`. The two agree to rounding (tested)."""
    if method == "theorem1":
        return theorem1_energy(net, weights, x, y, output_precision=output_precision)
    if method != "solve":
        raise ValueError(f"method: unknown {method!r}; choose 'solve' or 'theorem1'")
    z = linear_equilibrium(net, weights, x, y, output_precision=output_precision)
    return _linear_energy(net, weights, z, x, y, output_precision)


def _output_jacobians(net: Net, weights: Weights) -> list[np.ndarray]:
    """[P_1, ..., P_H], P_l = ∂f/∂z_l (C, N) of a linear net: P_H = M, P_l = P_{l+1} A_{l+1}."""
    A, M, _ = _linear_maps(net, weights)
    P = [M]
    for Al in reversed(A):
        P.append(P[-1] @ Al)
    return P[::-1]


def theorem1_energy(net: Net, weights: Weights, x: Array, y: Array, *, output_precision: float = 1.0) -> float:
    """μPC paper Theorem 1 / Eq. 30: F(z*) = (1/2B) Σ_b r_bᵀ S⁻¹ r_b for a LINEAR net, r = y − f(x),
    S = γ⁻¹ I + Σ_l P_l P_lᵀ (γ = 1: the paper's I + Σ_l P_l P_lᵀ). Needs only a C×C solve.
    Returns NaN when S is not finite or κ(S) ≤ γ·λ_max(S) exceeds ``MAX_S_CONDITION`` (1e12, i.e.
    a float64 relative error up to ~1e-4): an exploding forward pass (deep SP ResNets) swamps
    the γ⁻¹I term, and a number would be meaningless."""
    _require_linear(net, "theorem1_energy")
    P = _output_jacobians(net, weights)
    _, _, W1a = _linear_maps(net, weights)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    C = P[0].shape[0]
    S = np.eye(C) / output_precision + sum(p @ p.T for p in P)
    r = y - x @ (P[0] @ W1a).T  # f(x) = P_1 a_1 W_1 x
    if not np.all(np.isfinite(S)):
        return math.nan
    # λ_min(S) ≥ γ⁻¹ exactly, so κ(S) ≤ γ·λ_max(S); the float64 solve's relative error is ~eps·κ(S).
    if output_precision * np.linalg.eigvalsh(S)[-1] > MAX_S_CONDITION:
        return math.nan
    Sinv_r = scipy.linalg.cho_solve(scipy.linalg.cho_factor(S), r.T).T
    return float(0.5 * np.mean(np.sum(r * Sinv_r, axis=1)))


def loss_energy_ratio(net: Net, weights: Weights, x: Array, y: Array, *, output_precision: float = 1.0) -> float:
    """(½ mean_b ‖y_b − f(x_b)‖²) / F(z*) for a LINEAR net, F(z*) from :func:`theorem1_energy`.
    ≥ 1 for γ = 1 (the forward pass is a feasible point of the energy); → 1 as H/N → 0 under μPC."""
    _require_linear(net, "loss_energy_ratio")
    _, _, W1a = _linear_maps(net, weights)
    P1 = _output_jacobians(net, weights)[0]
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    loss = 0.5 * np.mean(np.sum((y - x @ (P1 @ W1a).T) ** 2, axis=1))
    return float(loss / theorem1_energy(net, weights, x, y, output_precision=output_precision))


# --------------------------------------------------------------------------------------------
# Conditioning
# --------------------------------------------------------------------------------------------


class Conditioning(NamedTuple):
    """Extreme eigenvalues of a symmetric matrix and its condition number.

    ``kappa`` = λ_max/λ_min, the GD-convergence condition number; defined for positive-definite
    matrices only: ``kappa = inf`` and ``positive_definite = False`` when λ_min ≤ 0.
    ``kappa_abs`` = max|λ| / min|λ| (the 2-norm condition number, what ``jnp.linalg.cond`` gives and
    the μPC authors' code reports; finite for indefinite matrices unless singular).
    ``resolved``: |λ_min| > n·eps·max|λ| in the precision used — otherwise λ_min (and κ) are at the
    rounding level and only a lower bound on κ is meaningful."""

    kappa: float
    lambda_min: float
    lambda_max: float
    positive_definite: bool
    kappa_abs: float
    resolved: bool


def _conditioning(lmin: float, lmax: float, min_abs: float, max_abs: float, n: int, eps: float) -> Conditioning:
    pd_ = bool(lmin > 0)
    kappa = float(lmax / lmin) if pd_ else math.inf
    kappa_abs = float(max_abs / min_abs) if min_abs > 0 else math.inf
    return Conditioning(kappa, float(lmin), float(lmax), pd_, kappa_abs, bool(min_abs > n * eps * max_abs))


def _blas_limit(threads: int | None):
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def condition_number(H: Array | np.ndarray, *, dtype: str = "float32", blas_threads: int | None = None) -> Conditioning:
    """Condition number of a dense symmetric matrix from all its eigenvalues.

    ``dtype="float32"``: ``jnp.linalg.eigvalsh`` in float32 on an accelerator; on a CPU-only JAX
    the same float32 eigenvalues come from ``scipy.linalg.eigvalsh`` (LAPACK syevd without
    eigenvectors — JAX's CPU eigvalsh also computes the eigenvectors, ~2× slower). float32
    resolves λ_min only down to ~1e-7·λ_max. ``dtype="float64"``: ``scipy.linalg.eigvalsh`` in
    float64. The input is symmetrised first. ``blas_threads``: cap the BLAS threads for the
    LAPACK call (None: leave as configured; 1 was ~20× faster at n = 2048 on a loaded 2-core
    machine, where multi-threaded OpenBLAS spin-waits). See :class:`Conditioning` for the
    non-positive-definite convention (κ = inf, flag False)."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: choose 'float32' or 'float64', not {dtype!r}")
    np_dtype = np.float32 if dtype == "float32" else np.float64
    if dtype == "float32" and jax.default_backend() != "cpu":
        w = np.asarray(jnp.linalg.eigvalsh(jnp.asarray(H, jnp.float32)), np.float64)
    else:
        A = np.array(H, np_dtype)
        A += A.T
        A *= 0.5
        with _blas_limit(blas_threads):
            w = scipy.linalg.eigvalsh(A, driver="evd", overwrite_a=True, check_finite=False).astype(np.float64)
    eps = float(np.finfo(np_dtype).eps)
    if not np.all(np.isfinite(w)):
        return Conditioning(math.nan, math.nan, math.nan, False, math.nan, False)
    aw = np.abs(w)
    return _conditioning(w[0], w[-1], aw.min(), aw.max(), w.size, eps)


def block_condition_number(blocks: HessianBlocks, *, method: str = "auto", tol: float = 1e-10,
                           dense_max: int = 1024) -> Conditioning:
    """Condition number of a symmetric block-tridiagonal matrix without forming it densely.

    ``method="lanczos"``: λ_max by Lanczos (ARPACK ``eigsh``) on the block mat-vec; λ_min by
    shift-invert Lanczos at σ = 0 using a block Cholesky factorisation (O(H·N³)), which also
    decides positive definiteness exactly. If the Cholesky fails (not PD), λ_min comes from plain
    Lanczos for the smallest algebraic eigenvalue. All in float64. ``method="dense"``: assemble
    and use :func:`condition_number` in float64. ``"auto"``: dense when H·N ≤ ``dense_max``."""
    diag = np.asarray(blocks.diag, np.float64)
    lower = np.asarray(blocks.lower, np.float64)
    H, N, _ = diag.shape
    n = H * N
    if method == "auto":
        method = "dense" if n <= dense_max else "lanczos"
    if method == "dense":
        return condition_number(assemble_blocks(HessianBlocks(diag, lower)), dtype="float64",
                                blas_threads=1 if n <= 2048 else None)
    if method != "lanczos":
        raise ValueError(f"method: unknown {method!r}; choose 'auto', 'dense' or 'lanczos'")
    if not (np.all(np.isfinite(diag)) and np.all(np.isfinite(lower))):
        return Conditioning(math.nan, math.nan, math.nan, False, math.nan, False)
    with _small_blas(N):
        return _lanczos_conditioning(diag, lower, tol)


def _lanczos_conditioning(diag: np.ndarray, lower: np.ndarray, tol: float) -> Conditioning:
    H, N, _ = diag.shape
    n = H * N

    def mv(v):
        return _block_matvec(diag, lower, v.reshape(H, N, -1)).reshape(v.shape)

    op = scipy.sparse.linalg.LinearOperator((n, n), matvec=mv, matmat=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    ncv = min(n, 40)
    lmax = float(scipy.sparse.linalg.eigsh(op, k=1, which="LA", v0=v0, tol=tol, ncv=ncv,
                                           return_eigenvectors=False)[0])
    try:
        chol = _block_cholesky(HessianBlocks(diag, lower))
    except np.linalg.LinAlgError:
        chol = None
    if chol is not None:
        def inv(v):
            return _block_solve(chol, v.reshape(H, N, -1)).reshape(v.shape)

        opinv = scipy.sparse.linalg.LinearOperator((n, n), matvec=inv, matmat=inv, dtype=np.float64)
        lmin = float(scipy.sparse.linalg.eigsh(op, k=1, sigma=0.0, which="LM", OPinv=opinv, v0=v0, tol=tol,
                                               ncv=ncv, return_eigenvectors=False)[0])
        min_abs = lmin
    else:
        lmin = float(scipy.sparse.linalg.eigsh(op, k=1, which="SA", v0=v0, tol=tol, ncv=ncv,
                                               maxiter=100 * n, return_eigenvectors=False)[0])
        # Smallest |λ| of an indefinite matrix: shift-invert at 0 with a sparse LU.
        grid = [[None] * H for _ in range(H)]
        for j in range(H):
            grid[j][j] = diag[j]
            if j < H - 1:
                grid[j + 1][j], grid[j][j + 1] = lower[j], lower[j].T
        sparse = scipy.sparse.bmat(grid, format="csc")
        try:
            min_abs = float(abs(scipy.sparse.linalg.eigsh(sparse, k=1, sigma=0.0, which="LM", v0=v0, tol=tol,
                                                          ncv=ncv, return_eigenvectors=False)[0]))
        except RuntimeError:  # exactly singular: the LU fails
            min_abs = 0.0
    eps = float(np.finfo(np.float64).eps)
    max_abs = max(abs(lmax), abs(lmin))
    return _conditioning(lmin, lmax, min_abs, max_abs, n, eps)


# --------------------------------------------------------------------------------------------
# Forward statistics and the coordinate check
# --------------------------------------------------------------------------------------------


def forward_stats(net: Net, weights: Weights, x: Array) -> pd.DataFrame:
    """Per-layer statistics of the forward pass on ``x``: one row per layer l = 1..L (l = L is
    the output f), columns ``layer``, ``kind`` (hidden/output), ``mean``, ``std``, ``mean_abs``
    (means over batch and units)."""
    zs = forward(net, weights, x)
    rows = []
    for i, z in enumerate(zs):
        z = np.asarray(z, np.float64)
        rows.append({"layer": i + 1, "kind": "output" if i == len(zs) - 1 else "hidden",
                     "mean": float(z.mean()), "std": float(z.std()), "mean_abs": float(np.abs(z).mean())})
    return pd.DataFrame(rows)


def _synthetic(seed: int, n: int, input_dim: int, output_dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, input_dim)).astype(np.float32)
    return x, rng.integers(0, output_dim, n).astype(np.int32)


def _as_xy(data, *, seed: int, input_dim: int, output_dim: int,
           num_examples: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(x float32 (n, D), integer labels (n,), C) from a Dataset, an (x, y) tuple (labels or
    one-hot), a dataset name, or None (Gaussian inputs, uniform random labels)."""
    if data is None or (isinstance(data, str) and data == "synthetic"):
        x, y = _synthetic(seed, num_examples, input_dim, output_dim)
        return x, y, output_dim
    if isinstance(data, str):
        from mutransfer.data import load_dataset

        data = load_dataset(data, train_examples=num_examples, test_examples=1)
    if hasattr(data, "x_train"):
        return np.asarray(data.x_train, np.float32), np.asarray(data.y_train), int(data.num_classes)
    x, y = data
    x, y = np.asarray(x, np.float32), np.asarray(y)
    if y.ndim == 2:
        return x, np.argmax(y, axis=1).astype(np.int32), int(y.shape[1])
    return x, y.astype(np.int32), max(int(y.max()) + 1, output_dim)


def _build(parametrization: str, *, input_dim: int, width: int, depth: int, output_dim: int, activation: str,
           residual: bool, seed: int, base_width: int | None = None, base_depth: int | None = None,
           dtype=jnp.float32) -> tuple[Net, Weights, tuple[float, ...]]:
    layers = resolve(parametrization, input_dim=input_dim, width=width, hidden_layers=depth, output_dim=output_dim,
                     residual=residual, base_width=base_width, base_hidden_layers=base_depth)
    net = make_net(activation, residual, layers)
    w = init_weights(jax.random.key(seed), layer_dims(input_dim, width, depth, output_dim),
                     [p.init_std for p in layers], dtype)
    return net, w, tuple(p.lr_mult for p in layers)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _train_step(net: Net, cfg: PCConfig, algorithm: str, optimizer: str, lr_mults: tuple[float, ...],
                weights, opt_state, x, y, eta, beta):
    out = algorithms.get(algorithm).gradients(net, weights, x, y, beta, cfg)
    updates, opt_state = optim.direction(optimizer).update(out.grads, opt_state, weights)
    return optim.apply(weights, updates, eta, lr_mults), opt_state, out.train_loss


class _Trainer:
    """A few optimiser steps of one net on fixed-order mini-batches (what the diagnostics need;
    the grid trainer is for sweeps). Batch t is rows perm[t·B:(t+1)·B] of a seeded permutation."""

    def __init__(self, net: Net, weights: Weights, lr_mults: tuple[float, ...], x: np.ndarray, labels: np.ndarray,
                 C: int, *, algorithm: str, cfg: PCConfig, eta: float, beta: float, batch_size: int, seed: int,
                 optimizer: str = "adam"):
        self.net, self.weights, self.lr_mults, self.cfg = net, list(weights), lr_mults, cfg
        self.algorithm, self.optimizer = algorithm, optimizer
        self.opt_state = optim.direction(optimizer).init(self.weights)
        self.x, self.labels, self.C = x, labels, C
        self.eta, self.beta, self.batch_size = eta, beta, batch_size
        self.rng = np.random.default_rng(seed + 7919)
        self.perm = self.rng.permutation(x.shape[0])
        self.pos = 0
        self.step = 0

    def batch(self) -> tuple[Array, Array]:
        if self.pos + self.batch_size > self.perm.size:
            self.perm, self.pos = self.rng.permutation(self.x.shape[0]), 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        dtype = self.weights[0].dtype
        return (jnp.asarray(self.x[idx], dtype),
                jax.nn.one_hot(jnp.asarray(self.labels[idx]), self.C, dtype=dtype))

    def train(self, steps: int) -> float:
        loss = math.nan
        for _ in range(steps):
            xb, yb = self.batch()
            self.weights, self.opt_state, l = _train_step(
                self.net, self.cfg, self.algorithm, self.optimizer, self.lr_mults, self.weights, self.opt_state,
                xb, yb, self.eta, self.beta)
            loss = float(l)
            self.step += 1
        return loss


def coordinate_check(parametrization: str, *, widths: Sequence[int], depths: Sequence[int], activation: str = "tanh",
                     residual: bool = True, algorithm: str = "pc", data=None, input_dim: int = 64,
                     output_dim: int = 10, num_examples: int = 2048, batch_size: int = 64, steps: int = 3,
                     record_every: int | None = None, lr: float = 1e-2, activity_lr: float = 0.1,
                     inference_steps: int | None = None, loss: str = "mse", optimizer: str = "adam",
                     probe_size: int = 256, seed: int = 0, base_width: int | None = None,
                     base_depth: int | None = None) -> pd.DataFrame:
    """Coordinate check (SPEC §6): mean |z_l| per layer at init and after ``steps`` optimiser
    steps, for every (width, depth) in ``widths × depths``.

    Training: ``algorithm`` ("pc" with T = ``inference_steps`` (default H) GD inference steps of size
    ``activity_lr``, or "bp"), ``optimizer`` (Adam) with lr ``lr``·c_l, mini-batches of
    ``batch_size`` from ``data`` (a Dataset, an (x, y) tuple, a dataset name, or None for Gaussian
    inputs of ``input_dim`` with random labels over ``output_dim`` classes). Measurement: the
    forward pass on a fixed probe batch (the first ``probe_size`` examples, the same for every
    shape) at step 0, every ``record_every`` steps and at step ``steps``.

    Returns a DataFrame with one row per (width, depth, step, layer): ``parametrization``,
    ``algorithm``, ``activation``, ``residual``, ``width``, ``depth`` (H), ``layer`` (1..H hidden,
    H+1 = the output f), ``kind``, ``step``, ``mean_abs_z``, ``mean_abs_dz`` (mean |z_l(t) − z_l(0)|)
    and ``train_loss`` (the last step's pre-update loss; NaN at step 0)."""
    x, labels, C = _as_xy(data, seed=seed, input_dim=input_dim, output_dim=output_dim, num_examples=num_examples)
    D = x.shape[1]
    probe = jnp.asarray(x[:probe_size])
    record = {0, steps} | (set(range(0, steps + 1, record_every)) if record_every else set())
    rows = []
    for depth in depths:
        for width in widths:
            net, w, lr_mults = _build(parametrization, input_dim=D, width=width, depth=depth, output_dim=C,
                                      activation=activation, residual=residual, seed=seed,
                                      base_width=base_width or min(widths), base_depth=base_depth or min(depths))
            cfg = PCConfig(inference_steps=depth if inference_steps is None else inference_steps, loss=loss)
            tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=algorithm, cfg=cfg, eta=lr, beta=activity_lr,
                          batch_size=batch_size, seed=seed, optimizer=optimizer)
            z0 = [np.asarray(z, np.float64) for z in forward(net, w, probe)]
            loss_val = math.nan
            for t in range(steps + 1):
                if t > 0:
                    loss_val = tr.train(1)
                if t in record:
                    zs = [np.asarray(z, np.float64) for z in forward(net, tr.weights, probe)]
                    for i, (z, zi) in enumerate(zip(zs, z0)):
                        rows.append({
                            "parametrization": parametrization, "algorithm": algorithm, "activation": activation,
                            "residual": residual, "width": width, "depth": depth, "layer": i + 1,
                            "kind": "output" if i == len(zs) - 1 else "hidden", "step": t,
                            "mean_abs_z": float(np.abs(z).mean()), "mean_abs_dz": float(np.abs(z - zi).mean()),
                            "train_loss": loss_val})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Table-driven analyses (for the sweep layer: config in, DataFrame out)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HessianConditionConfig:
    """κ(H_z) at initialisation over a width × depth grid (μPC paper Figs 2, 4, A.21).

    ``input_dim``/``output_dim`` None → equal to the width (as the μPC authors' code). Inputs x ~
    N(0, I), targets one-hot of a random class, one example. ``method``: "auto" (closed form for
    linear nets, per-layer blocks otherwise), "closed_form", "blocks" or "autodiff" (dense).
    ``eig``: "auto" (dense float64 up to H·N ≤ 1024, else Lanczos), "dense" or "lanczos".
    ``precision`` "float64" runs the autodiff under ``jax.enable_x64``."""

    parametrizations: tuple[str, ...] = ("sp", "mupc")
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    activation: str = "linear"
    residual: bool = True
    input_dim: int | None = None
    output_dim: int | None = None
    seeds: tuple[int, ...] = (0,)
    method: str = "auto"
    eig: str = "auto"
    precision: str = "float64"


@dataclasses.dataclass(frozen=True)
class HessianTrainingConfig:
    """κ(H_z) during training (μPC paper Fig. 3): train with ``algorithm`` and Adam (lr ``lr``),
    every ``eval_every`` steps compute κ of the per-example Hessian of probe example 0 at its
    forward-pass activities. ``dataset``: a name for :func:`mutransfer.data.load_dataset` or
    "synthetic"."""

    parametrization: str = "sp"
    width: int = 32
    depth: int = 8
    activation: str = "tanh"
    residual: bool = False
    dataset: str = "digits"
    num_examples: int = 1024
    algorithm: str = "pc"
    lr: float = 1e-3
    activity_lr: float = 0.1
    inference_steps: int | None = None
    batch_size: int = 64
    steps: int = 50
    eval_every: int = 10
    seed: int = 0
    eig: str = "auto"
    precision: str = "float64"


@dataclasses.dataclass(frozen=True)
class LossEnergyRatioConfig:
    """Loss / F(z*) for LINEAR nets over a width × depth grid (μPC paper Theorem 1, Fig. 6), at
    init and optionally every ``eval_every`` of ``steps`` training steps (``algorithm``, Adam lr
    ``lr``). The ratio is measured on a fixed probe batch of ``batch_size`` examples."""

    parametrization: str = "mupc"
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    residual: bool = True
    dataset: str = "synthetic"
    input_dim: int = 64
    output_dim: int = 10
    num_examples: int = 1024
    batch_size: int = 64
    algorithm: str = "pc"
    lr: float = 1e-1
    activity_lr: float = 0.1
    steps: int = 0
    eval_every: int = 10
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class CoordinateCheckConfig:
    """Arguments of :func:`coordinate_check`, one row per parametrization in ``parametrizations``."""

    parametrizations: tuple[str, ...] = ("sp", "mupc")
    widths: tuple[int, ...] = (64, 128, 256)
    depths: tuple[int, ...] = (8,)
    activation: str = "tanh"
    residual: bool = True
    algorithm: str = "pc"
    dataset: str = "synthetic"
    input_dim: int = 64
    output_dim: int = 10
    num_examples: int = 2048
    batch_size: int = 64
    steps: int = 3
    record_every: int | None = None
    lr: float = 1e-2
    activity_lr: float = 0.1
    inference_steps: int | None = None
    probe_size: int = 256
    seed: int = 0


def _hessian_conditioning(net: Net, weights: Weights, x: Array, y: Array, *, method: str,
                          eig: str) -> tuple[Conditioning, str]:
    if method == "auto":
        method = "closed_form" if net.activation == "linear" else "blocks"
    if method == "closed_form":
        blocks = linear_hessian_blocks(net, weights)
    elif method == "blocks":
        blocks = activity_hessian_blocks(net, weights, x, y, PCConfig(inference_steps=0))
    elif method == "autodiff":
        Hd = activity_hessian(net, weights, x, y, PCConfig(inference_steps=0))
        return condition_number(Hd, dtype="float64" if Hd.dtype == jnp.float64 else "float32"), method
    else:
        raise ValueError(f"method: unknown {method!r}")
    return block_condition_number(blocks, method=eig), method


def _run_hessian_condition(cfg: HessianConditionConfig) -> pd.DataFrame:
    rows = []
    with jax.enable_x64(cfg.precision == "float64"):
        dtype = jnp.float64 if cfg.precision == "float64" else jnp.float32
        for param in cfg.parametrizations:
            for seed in cfg.seeds:
                for depth in cfg.depths:
                    for width in cfg.widths:
                        D = cfg.input_dim or width
                        C = cfg.output_dim or width
                        net, w, _ = _build(param, input_dim=D, width=width, depth=depth, output_dim=C,
                                           activation=cfg.activation, residual=cfg.residual, seed=seed, dtype=dtype)
                        rng = np.random.default_rng(seed + 1)
                        x = jnp.asarray(rng.standard_normal((1, D)), dtype)
                        y = jax.nn.one_hot(jnp.asarray([rng.integers(C)]), C, dtype=dtype)
                        t0 = time.perf_counter()
                        c, how = _hessian_conditioning(net, w, x, y, method=cfg.method, eig=cfg.eig)
                        rows.append({"parametrization": param, "activation": cfg.activation,
                                     "residual": cfg.residual, "width": width, "depth": depth, "seed": seed,
                                     "n": width * depth, "method": how, **c._asdict(),
                                     "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def _run_hessian_training(cfg: HessianTrainingConfig) -> pd.DataFrame:
    rows = []
    with jax.enable_x64(cfg.precision == "float64"):
        dtype = jnp.float64 if cfg.precision == "float64" else jnp.float32
        x, labels, C = _as_xy(cfg.dataset, seed=cfg.seed, input_dim=64, output_dim=10, num_examples=cfg.num_examples)
        net, w, lr_mults = _build(cfg.parametrization, input_dim=x.shape[1], width=cfg.width, depth=cfg.depth,
                                  output_dim=C, activation=cfg.activation, residual=cfg.residual, seed=cfg.seed,
                                  dtype=dtype)
        pcc = PCConfig(inference_steps=cfg.depth if cfg.inference_steps is None else cfg.inference_steps)
        tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=cfg.algorithm, cfg=pcc, eta=cfg.lr,
                      beta=cfg.activity_lr, batch_size=cfg.batch_size, seed=cfg.seed)
        xp = jnp.asarray(x[:1], dtype)
        yp = jax.nn.one_hot(jnp.asarray(labels[:1]), C, dtype=dtype)
        loss = math.nan
        for t in range(cfg.steps + 1):
            if t > 0:
                loss = tr.train(1)
            if t % cfg.eval_every == 0 or t == cfg.steps:
                c, how = _hessian_conditioning(net, tr.weights, xp, yp, method="auto", eig=cfg.eig)
                rows.append({"parametrization": cfg.parametrization, "activation": cfg.activation,
                             "residual": cfg.residual, "width": cfg.width, "depth": cfg.depth, "step": t,
                             "train_loss": loss, "method": how, **c._asdict()})
    return pd.DataFrame(rows)


def _run_loss_energy_ratio(cfg: LossEnergyRatioConfig) -> pd.DataFrame:
    rows = []
    x, labels, C = _as_xy(cfg.dataset, seed=cfg.seed, input_dim=cfg.input_dim, output_dim=cfg.output_dim,
                          num_examples=cfg.num_examples)
    xp = x[:cfg.batch_size].astype(np.float64)
    yp = np.eye(C)[labels[:cfg.batch_size]]
    for depth in cfg.depths:
        for width in cfg.widths:
            net, w, lr_mults = _build(cfg.parametrization, input_dim=x.shape[1], width=width, depth=depth,
                                      output_dim=C, activation="linear", residual=cfg.residual, seed=cfg.seed)
            tr = None
            if cfg.steps > 0:
                tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=cfg.algorithm,
                              cfg=PCConfig(inference_steps=depth), eta=cfg.lr, beta=cfg.activity_lr,
                              batch_size=cfg.batch_size, seed=cfg.seed)
            for t in range(cfg.steps + 1):
                if t > 0:
                    tr.train(1)
                if t % cfg.eval_every == 0 or t == cfg.steps:
                    wt = tr.weights if tr is not None else w
                    _, _, W1a = _linear_maps(net, wt)
                    f = xp @ (_output_jacobians(net, wt)[0] @ W1a).T
                    loss = float(0.5 * np.mean(np.sum((yp - f) ** 2, axis=1)))
                    F = theorem1_energy(net, wt, xp, yp)
                    rows.append({"parametrization": cfg.parametrization, "residual": cfg.residual, "width": width,
                                 "depth": depth, "step": t, "loss": loss, "energy": F, "ratio": loss / F})
    return pd.DataFrame(rows)


def _run_coordinate_check(cfg: CoordinateCheckConfig) -> pd.DataFrame:
    frames = [coordinate_check(p, widths=cfg.widths, depths=cfg.depths, activation=cfg.activation,
                               residual=cfg.residual, algorithm=cfg.algorithm, data=cfg.dataset,
                               input_dim=cfg.input_dim, output_dim=cfg.output_dim, num_examples=cfg.num_examples,
                               batch_size=cfg.batch_size, steps=cfg.steps, record_every=cfg.record_every,
                               lr=cfg.lr, activity_lr=cfg.activity_lr, inference_steps=cfg.inference_steps,
                               probe_size=cfg.probe_size, seed=cfg.seed)
              for p in cfg.parametrizations]
    return pd.concat(frames, ignore_index=True)


class Analysis(NamedTuple):
    """One analysis kind: its config dataclass, the function config → DataFrame, a description."""

    config: type
    run: Callable[[Any], pd.DataFrame]
    description: str


ANALYSES: dict[str, Analysis] = {
    "hessian_condition": Analysis(HessianConditionConfig, _run_hessian_condition,
                                  "κ of the activity Hessian at init over widths × depths (μPC Figs 2, 4)"),
    "hessian_condition_during_training": Analysis(HessianTrainingConfig, _run_hessian_training,
                                                  "κ of the activity Hessian during training (μPC Fig. 3)"),
    "loss_energy_ratio": Analysis(LossEnergyRatioConfig, _run_loss_energy_ratio,
                                  "loss / equilibrated energy of linear nets (μPC Theorem 1, Fig. 6)"),
    "coordinate_check": Analysis(CoordinateCheckConfig, _run_coordinate_check,
                                 "mean |z_l| per layer at init and after k steps across widths/depths"),
    # cos(PC equilibrium gradient, BP gradient) across widths and output precisions (Ishikawa et al.)
    _alignment.ALIGNMENT[0]: Analysis(*_alignment.ALIGNMENT[1:]),
}


def run_analysis(kind: str, config: Mapping[str, Any] | Any | None = None) -> pd.DataFrame:
    """Run analysis ``kind`` with ``config`` (its config dataclass, a mapping of its fields — lists
    are accepted for tuple fields — or None for the defaults). Unknown kinds or fields raise
    ``ValueError`` naming them."""
    if kind not in ANALYSES:
        raise ValueError(f"analysis: unknown {kind!r}; choose one of {sorted(ANALYSES)}")
    a = ANALYSES[kind]
    if config is None:
        config = a.config()
    elif isinstance(config, Mapping):
        fields = {f.name for f in dataclasses.fields(a.config)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"{kind}: unknown config field(s) {unknown}; allowed: {sorted(fields)}")
        tuple_fields = {f.name for f in dataclasses.fields(a.config) if isinstance(f.default, tuple)}

        def coerce(k, v):
            if isinstance(v, (list, tuple)):
                return tuple(v)
            return (v,) if k in tuple_fields else v  # a single value for a list-valued field
        config = a.config(**{k: coerce(k, v) for k, v in config.items()})
    return a.run(config)
