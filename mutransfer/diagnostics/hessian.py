"""The PC activity Hessian ∇²E of one example: dense by autodiff, or exactly as its
block-tridiagonal blocks (conventions: :mod:`mutransfer.diagnostics`)."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer import losses
from mutransfer.networks import Net, Weights, forward
from mutransfer.pc import PCConfig, energy

Array = jax.Array

GiB = 1024**3
DEFAULT_MAX_BYTES = 8 * GiB


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
