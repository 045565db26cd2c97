"""How the trainer's products are issued to the device: one einsum, or (on a multi-core CPU) the
same einsum split into independent pieces along an axis that is neither contracted nor summed.

Why (measured, docs/performance/trainer.md): XLA:CPU in this JAX (0.10) lowers a dot to a
YNNPACK fusion (``__ynn_fusion``) that runs on **one thread**, and gets its multi-core speed from
running *independent* thunks concurrently. The unrolled hidden layers gave it H − 1 independent
dots per inference step; the stacked form (:func:`mutransfer.networks.hidden_predictions`) gives
one, so the grid trainer used one core of two (≈ 1.6× slower at N = 256). Splitting the stacked
product along the layer axis into as many independent dots as XLA has threads gives the
concurrency back without giving up the stacked, depth-independent program (a fixed number of
pieces, not one per layer).

The split changes no arithmetic: every output element is the same dot product of the same
numbers (pieces are concatenated back in order). A GEMM kernel may still block a smaller product
differently and round an element differently (≈ 1 ulp); so products below
:data:`MIN_SPLIT_MACS` multiply-adds per run — far too small for a second core to pay — are never
split, and the small nets of the float64 trajectory tests compute bit for bit as before.

The piece count is static, part of :class:`mutransfer.networks.Net` (``dot_pieces``, so jit
specialises on it), resolved by :func:`dot_pieces` when a net is made: ``$MUTRANSFER_DOT_SPLIT``
= n gives n pieces; unset, 1 (**opt-in**: the end-to-end benchmark this issue could run, on a
loaded shared machine, did not show the split paying — docs/performance/trainer.md).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

DOT_SPLIT_ENV = "MUTRANSFER_DOT_SPLIT"
MAX_PIECES = 16
MIN_SPLIT_MACS = 1 << 18  # one product's multiply-adds (per run) below which it is never split


def dot_pieces() -> int:
    """How many independent pieces a splittable product is issued as (module docstring)."""
    v = os.environ.get(DOT_SPLIT_ENV, "").strip()
    if v:
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"{DOT_SPLIT_ENV}: expected a positive integer, got {v!r}") from None
        if n < 1:
            raise ValueError(f"{DOT_SPLIT_ENV}: expected a positive integer, got {v!r}")
        return min(n, MAX_PIECES)
    # Opt-in: the one end-to-end measurement this issue got (docs/performance/trainer.md) did not
    # show the split paying, so by default every product stays one dot (the program of before).
    return 1


def piece_bounds(size: int, pieces: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges splitting ``size`` into ``min(pieces, size)`` near-equal pieces."""
    n = max(1, min(pieces, size))
    edges = np.cumsum([0] + [len(c) for c in np.array_split(np.arange(size), n)])
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def split_einsum(spec: str, x: jax.Array, y: jax.Array, axis: str, pieces: int,
                 scale: float = 1.0) -> jax.Array:
    """``scale · jnp.einsum(spec, x, y)`` issued as ``pieces`` independent einsums over contiguous
    ranges of index ``axis`` — a free index of the output (not contracted) — concatenated back in
    order. The same numbers as the single product (module docstring): ``scale`` (a Python float) is
    applied to each piece, as it would be to the whole, so XLA's algebraic simplifier makes the
    same choice (folding it into an operand or not) for every piece."""
    ins, out = spec.replace(" ", "").split("->")
    a_in, b_in = ins.split(",")
    if axis not in out:
        raise ValueError(f"split_einsum: {axis!r} must be an output index of {spec!r}")
    n = pieces
    size = (x.shape[a_in.index(axis)] if axis in a_in else y.shape[b_in.index(axis)])
    n = min(n, size)
    dims = {c: d for c, d in zip(a_in, x.shape)} | {c: d for c, d in zip(b_in, y.shape)}
    if n <= 1 or int(np.prod([dims[c] for c in dims])) < MIN_SPLIT_MACS:
        return scale * jnp.einsum(spec, x, y)
    parts = []
    for lo, hi in piece_bounds(size, n):
        xs = jax.lax.slice_in_dim(x, int(lo), int(hi), axis=a_in.index(axis)) if axis in a_in else x
        ys = jax.lax.slice_in_dim(y, int(lo), int(hi), axis=b_in.index(axis)) if axis in b_in else y
        parts.append(scale * jnp.einsum(spec, xs, ys))
    return jnp.concatenate(parts, axis=out.index(axis))
