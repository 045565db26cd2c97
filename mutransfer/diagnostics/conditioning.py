"""Condition numbers of symmetric matrices: dense eigenvalues, or Lanczos on a block-tridiagonal
matrix without forming it (λ_min by shift-invert on its block Cholesky)."""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from mutransfer.diagnostics.hessian import HessianBlocks, assemble_blocks
from mutransfer.diagnostics.linear import _block_cholesky, _block_matvec, _block_solve, _small_blas

Array = jax.Array


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
