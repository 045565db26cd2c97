"""A BLAS-backed batched matrix product for XLA:CPU (the grid trainer's hot products), with its
VJP and vmap rule; on any other backend, or where the library is not built, ``jnp.einsum``.

    bmm(A, B, trans_b=True)[g] = A[g] · B[g]ᵀ   (trans_b False: A[g] · B[g]),

g over the leading (batch) dimensions, which A and B share. Why (measured,
docs/performance/trainer.md#blas-ffi): per CPU-second OpenBLAS's GEMM runs the
trainer's product (runs, 64, N) @ (runs, N, N)ᵀ ≈ 2.9× faster than XLA:CPU's dot.

The product is an XLA FFI custom call (mutransfer/native/bmm.cc: one single-threaded OpenBLAS
GEMM per batch element, the batch spread over XLA's intra-op thread pool). Its VJP is the two
transposed products through the same call: for C = A Bᵀ, dA = dC B and dB = dCᵀ A (for C = A B,
dA = dC Bᵀ and dB = Aᵀ dC); float32 → sgemm, float64 → dgemm. Under ``vmap`` (the trainer maps
its runs) the call gets one more leading batch dimension (``vmap_method="broadcast_all"``).
Reverse mode only (``custom_vjp``): nets that take forward-mode derivatives (the Hessian
diagnostics) never use it — only a :class:`~mutransfer.networks.Net` whose ``gemm`` is "blas"
does, and :func:`resolve` gives that only to the grid trainer on a CPU backend.

``MUTRANSFER_CPU_GEMM``: "auto" (default) uses it on CPU for hidden widths N ≥ ``BLAS_MIN_WIDTH``
when the library loads; "blas" at every width; "xla" keeps XLA's dots. The width gate is measured
(``benchmarks/gemm_shapes.py``, 66 runs, batch 64, one process, docs/performance/trainer.md): at
N = 64 the stacked hidden products of a step run 0.76–0.85× of XLA's dot through this call (per-call
overhead over 462 small GEMMs) and the whole grid 0.87×; from N = 128 the step's products are
faster (1.09× at 128, 1.88× at 256). The library is built by ``make setup``
(``python -m mutransfer.native.build``); where it is missing or fails to load, one line on stderr
says so and XLA's dots are used.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

ENV = "MUTRANSFER_CPU_GEMM"
TARGET = "mutransfer_bmm"
BLAS_MIN_WIDTH = 128  # "auto": the hidden width from which the BLAS products are faster (see above)


@functools.cache
def available() -> bool:
    """Whether the FFI target is registered for the CPU platform (loads the library once; a
    missing or unloadable library prints one notice and gives False)."""
    from mutransfer.native.build import LIBRARY

    if not LIBRARY.exists():
        print(f"mutransfer: {LIBRARY.name} is not built (run `make setup` or `python -m mutransfer.native.build`); "
              "CPU products use XLA's dots", file=sys.stderr)
        return False
    try:
        lib = ctypes.CDLL(str(LIBRARY))
        lib.mutransfer_bmm_init()
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.MutransferBmm), platform="cpu")
    except (OSError, AttributeError, RuntimeError, ValueError) as e:
        print(f"mutransfer: could not load {LIBRARY.name} ({e}); CPU products use XLA's dots", file=sys.stderr)
        return False
    return True


def resolve(width: int | None = None) -> str:
    """"blas" or "xla" for a net of hidden width ``width`` on the default backend: "xla" off CPU,
    with ``$MUTRANSFER_CPU_GEMM=xla``, or where the library does not load; with "auto" (the
    default) "blas" only from ``BLAS_MIN_WIDTH`` (``width=None``: no gate); "blas" at any width."""
    v = os.environ.get(ENV, "auto").strip().lower()
    if v not in ("auto", "blas", "xla"):
        raise ValueError(f"{ENV}: expected auto, blas or xla, got {v!r}")
    if v == "xla" or jax.default_backend() != "cpu":
        return "xla"
    if v == "auto" and width is not None and width < BLAS_MIN_WIDTH:
        return "xla"
    return "blas" if available() else "xla"


def _call(a: jax.Array, b: jax.Array, trans_a: bool, trans_b: bool) -> jax.Array:
    m = a.shape[-1] if trans_a else a.shape[-2]
    n = b.shape[-2] if trans_b else b.shape[-1]
    out = jax.ShapeDtypeStruct(a.shape[:-2] + (m, n), a.dtype)
    return jax.ffi.ffi_call(TARGET, out, vmap_method="broadcast_all")(
        a, b, trans_a=np.int32(trans_a), trans_b=np.int32(trans_b))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _bmm(a: jax.Array, b: jax.Array, trans_b: bool) -> jax.Array:
    return _call(a, b, False, trans_b)


def _bmm_fwd(a, b, trans_b):
    return _call(a, b, False, trans_b), (a, b)


def _bmm_bwd(trans_b, res, dc):
    a, b = res
    if trans_b:  # C = A Bᵀ
        return _call(dc, b, False, False), _call(dc, a, True, False)
    return _call(dc, b, False, True), _call(a, dc, True, False)  # C = A B


_bmm.defvjp(_bmm_fwd, _bmm_bwd)


def bmm(a: jax.Array, b: jax.Array, trans_b: bool = True) -> jax.Array:
    """A[g] · B[g]ᵀ (``trans_b``) or A[g] · B[g] over shared leading dimensions, through the FFI
    call (call only where :func:`resolve` gave "blas"); same dtype in, float32 or float64."""
    if a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"bmm: batch dimensions {a.shape[:-2]} and {b.shape[:-2]} differ")
    dtype = jnp.result_type(a, b)
    return _bmm(a.astype(dtype), b.astype(dtype), bool(trans_b))
