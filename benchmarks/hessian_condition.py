"""Condition number of the PC activity Hessian at a realistic size: N = 128, H = 64 (8192 × 8192).

A tanh residual μPC net at initialisation (D = C = N, one Gaussian example, one-hot target; the
Hessian is taken at the forward-pass activities). Two paths, timed separately for (i) building
the Hessian and (ii) the eigen-computation:

  blocks  (the fast path): the per-example Hessian is block tridiagonal (z_l only meets z_{l±1}),
          so it is assembled exactly from H per-layer Jacobians / local Hessians
          (``activity_hessian_blocks``, O(H·N³)); λ_max by Lanczos on the block mat-vec and λ_min
          by shift-invert Lanczos through a block Cholesky factorisation
          (``block_condition_number``, float64, O(H·N³)).
  dense   (the reference): the dense 8192² Hessian by forward-over-reverse autodiff of the
          energy over one example (``activity_hessian``), checked equal to the assembled blocks;
          with ``--dense-eig`` also all eigenvalues by LAPACK (syevd, float64; ~1 min single-threaded).

Compile time is reported separately from run time. Usage:
    python benchmarks/hessian_condition.py [--width 128] [--depth 64] [--precision float64]
        [--param mupc] [--activation tanh] [--no-residual] [--dense-eig] [--skip-autodiff]
        [--blas-threads 1]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer import diagnostics as dg
from mutransfer.pc import PCConfig


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=64)
    ap.add_argument("--param", default="mupc")
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--no-residual", action="store_true")
    ap.add_argument("--precision", choices=["float32", "float64"], default="float64")
    ap.add_argument("--dense-eig", action="store_true", help="also all eigenvalues of the dense matrix (slow)")
    ap.add_argument("--skip-autodiff", action="store_true", help="skip the dense autodiff Hessian")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads for the dense LAPACK eigvalsh (0: as configured). Default 1: multi-threaded "
                         "OpenBLAS spin-waits badly on a loaded 2-core machine")
    args = ap.parse_args()
    N, H = args.width, args.depth
    n = N * H
    residual = not args.no_residual
    print(f"activity Hessian of a {args.activation} {'residual' if residual else 'plain'} {args.param} net at init: "
          f"N={N}, H={H}, n=H·N={n} ({n}×{n}), {args.precision}, JAX {jax.__version__} on "
          f"{jax.devices()[0].platform}")
    with jax.enable_x64(args.precision == "float64"):
        dtype = jnp.float64 if args.precision == "float64" else jnp.float32
        net, w, _ = dg._build(args.param, input_dim=N, width=N, depth=H, output_dim=N, activation=args.activation,
                              residual=residual, seed=0, dtype=dtype)
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.standard_normal((1, N)), dtype)
        y = jax.nn.one_hot(jnp.asarray([3]), N, dtype=dtype)
        cfg = PCConfig(inference_steps=0)

        # --- fast path: blocks + Lanczos -------------------------------------------------------
        blocks, t_first = _timed(dg.activity_hessian_blocks, net, w, x, y, cfg)
        blocks, t_blocks = _timed(dg.activity_hessian_blocks, net, w, x, y, cfg)
        cond, t_lanczos = _timed(dg.block_condition_number, blocks, method="lanczos")
        print(f"[blocks ] (i) build H_z blocks:        {t_blocks:8.2f} s  (first call incl. compile {t_first:.2f} s)")
        print(f"[blocks ] (ii) λmin/λmax (Lanczos):    {t_lanczos:8.2f} s")
        print(f"[blocks ] total (excl. compile):       {t_blocks + t_lanczos:8.2f} s")
        print(f"          κ = {cond.kappa:.6g}   λmin = {cond.lambda_min:.6g}   λmax = {cond.lambda_max:.6g}   "
              f"PD = {cond.positive_definite}   κ_abs = max|λ|/min|λ| = {cond.kappa_abs:.6g}")

        # --- contrast: the same shape with a linear activation (closed-form blocks) ------------------
        if args.activation != "linear":
            lnet, lw, _ = dg._build(args.param, input_dim=N, width=N, depth=H, output_dim=N, activation="linear",
                                    residual=residual, seed=0, dtype=dtype)
            lblocks, t_lb = _timed(dg.linear_hessian_blocks, lnet, lw)
            lc, t_ll = _timed(dg.block_condition_number, lblocks, method="lanczos")
            print(f"[linear ] same shape, linear activation (closed form {t_lb:.2f} s + Lanczos {t_ll:.2f} s): "
                  f"κ = {lc.kappa:.6g}   λmin = {lc.lambda_min:.6g}   λmax = {lc.lambda_max:.6g}   "
                  f"PD = {lc.positive_definite}")

        # --- reference: dense autodiff Hessian ----------------------------------------------------
        if not args.skip_autodiff:
            Hd, t_ad_first = _timed(dg.activity_hessian, net, w, x, y, cfg)
            del Hd
            Hd, t_ad = _timed(dg.activity_hessian, net, w, x, y, cfg)
            Hd = np.asarray(Hd)
            Hb, t_asm = _timed(dg.assemble_blocks, blocks)
            err = np.abs(Hd - Hb).max() / np.abs(Hb).max()
            print(f"[dense  ] (i) autodiff H_z (dense):   {t_ad:8.2f} s  (first call incl. compile {t_ad_first:.2f} s)")
            print(f"[dense  ]     assemble blocks densely: {t_asm:8.2f} s;  "
                  f"max|H_autodiff − H_blocks| / max|H| = {err:.2e}")
            if args.dense_eig:
                c2, t_eig = _timed(dg.condition_number, Hb, dtype="float64", blas_threads=args.blas_threads or None)
                print(f"[dense  ] (ii) eigvalsh (LAPACK f64):  {t_eig:8.2f} s")
                print(f"          κ = {c2.kappa:.6g}   λmin = {c2.lambda_min:.6g}   λmax = {c2.lambda_max:.6g}   "
                      f"κ_abs = {c2.kappa_abs:.6g}")
                for name, a, b in [("λmin", c2.lambda_min, cond.lambda_min), ("λmax", c2.lambda_max, cond.lambda_max),
                                   ("κ_abs", c2.kappa_abs, cond.kappa_abs)]:
                    print(f"          dense vs Lanczos rel. diff {name}: {abs(a - b) / abs(a):.1e}")


if __name__ == "__main__":
    main()
