"""Closed forms for LINEAR PC nets: the activity Hessian, the inference equilibrium z* = H_z⁻¹b,
the equilibrated energy and the μPC paper's Theorem 1 (conventions: :mod:`mutransfer.diagnostics`)."""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple, Sequence

import jax
import numpy as np
import scipy.linalg

from mutransfer.diagnostics.hessian import DEFAULT_MAX_BYTES, HessianBlocks, _check_size, assemble_blocks
from mutransfer.networks import Net, Weights

Array = jax.Array

MAX_S_CONDITION = 1e12  # theorem1_energy: beyond this κ(S) the float64 answer is not trustworthy


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
