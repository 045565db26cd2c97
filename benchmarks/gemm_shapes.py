"""The grid trainer's matrix products, one by one: achieved GFLOP/s of XLA:CPU's dot against the
BLAS FFI call (mutransfer/cpu_gemm.py) for each product shape of a μPC step (R runs vmapped,
H = 8 so L = 7 stacked hidden layers, batch 64), beside a 2048² float32 matmul, in one process.

    python benchmarks/gemm_shapes.py [--widths 64 256] [--runs 132]

Per run-step the trainer executes (benchmarks/grid_throughput.py: executed_flop) the stacked
hidden product and its activity VJP T + 1 times each, the weight VJP once, the forward scan's
per-layer product once per layer, and the input product 3 times; the table's last column is the
step time these products alone would take at the measured rates (per run), to compare with the
grid's measured run-step time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mutransfer import cpu_gemm  # noqa: E402
from mutransfer.throughput import matmul_gflops  # noqa: E402


def best_seconds(f, *args, reps: int = 5) -> float:
    jax.block_until_ready(f(*args))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def products(R: int, L: int, B: int, N: int, D: int, T: int):
    """(name, A shape, B shape, einsum, (trans_a, trans_b), times per run-step)."""
    return [
        ("hidden μ: Z Wᵀ", (R, L, B, N), (R, L, N, N), "...bi,...oi->...bo", (False, True), T + 1),
        ("hidden VJP dZ: dC W", (R, L, B, N), (R, L, N, N), "...bo,...oi->...bi", (False, False), T + 1),
        ("hidden VJP dW: dCᵀ Z", (R, L, B, N), (R, L, B, N), "...bo,...bi->...oi", (True, False), 1),
        ("forward layer: z Wᵀ (×L)", (R, B, N), (R, N, N), "...bi,...oi->...bo", (False, True), L),
        ("input: x W₁ᵀ", (R, B, D), (R, N, D), "...bi,...oi->...bo", (False, True), 3),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--runs", type=int, default=132)
    args = ap.parse_args()
    if not cpu_gemm.available():
        raise SystemExit("the BLAS FFI library is not built (python -m mutransfer.native.build)")
    L, B, D, T = 7, 64, 784, 8
    rng = np.random.default_rng(0)
    print(f"{jax.devices()[0].platform}, jax {jax.__version__}, {args.runs} runs; 2048² float32 matmul "
          f"{matmul_gflops():.1f} GFLOP/s")
    print(f"{'N':>4} {'product':<26} {'shape (A; B)':<32} {'XLA GFLOP/s':>12} {'BLAS GFLOP/s':>13} "
          f"{'BLAS/XLA':>9} {'ms/step XLA':>12} {'ms/step BLAS':>13}")
    for N in args.widths:
        tot = {"xla": 0.0, "blas": 0.0}
        for name, sa, sb, spec, (ta, tb), times in products(args.runs, L, B, N, D, T):
            a = jnp.asarray(rng.standard_normal(sa), jnp.float32)
            b = jnp.asarray(rng.standard_normal(sb), jnp.float32)
            xla = jax.jit(lambda a, b, spec=spec: jnp.einsum(spec, a, b))
            blas = jax.jit(lambda a, b, ta=ta, tb=tb: cpu_gemm._call(a, b, ta, tb))
            out = xla(a, b)
            np.testing.assert_allclose(np.asarray(blas(a, b)), np.asarray(out), rtol=2e-3, atol=2e-3)
            flop = 2.0 * np.prod(out.shape) * (sa[-2] if ta else sa[-1])
            sx, sb_ = best_seconds(xla, a, b), best_seconds(blas, a, b)
            tot["xla"] += sx * times
            tot["blas"] += sb_ * times
            print(f"{N:>4} {name:<26} {str(sa) + '; ' + str(sb):<32} {flop / sx / 1e9:>12.1f} "
                  f"{flop / sb_ / 1e9:>13.1f} {sx / sb_:>8.2f}x {1e3 * sx * times:>12.1f} {1e3 * sb_ * times:>13.1f}")
        print(f"{N:>4} {'all products of one step':<26} {'':<32} {'':>12} {'':>13} {'':>9} "
              f"{1e3 * tot['xla']:>12.1f} {1e3 * tot['blas']:>13.1f}   "
              f"(→ ≤ {args.runs / tot['xla']:.1f} / {args.runs / tot['blas']:.1f} run-steps/s)")


if __name__ == "__main__":
    main()
