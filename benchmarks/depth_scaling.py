"""Depth scaling of the grid trainer: compile time and run-steps/s against the number of hidden layers.

μPC tanh residual MLP (the μPC paper's depth row, Fig. 5 bottom, at CPU scale): fixed width N
(default 64), H ∈ {8, 16, 32, 64, 128} hidden layers, T = H inference steps, batch 64, Adam, one
cell of R runs (distinct weight/activity lrs, one seed) trained together by
:func:`mutransfer.trainer.train_cell`. Per depth it prints

  compile s      the cell's ahead-of-time compile (training block + test evaluation), as the
                 trainer measures it (``CellResult.compile_s``), in a fresh process state for that
                 shape (each depth is a new shape, so nothing is reused);
  run-steps/s    R × steps / training time (compile excluded; includes two test evaluations on a
                 256-example test set);
  step ops       the size of the compiled training program: StableHLO operations in the lowered
                 block of training steps (the trainer's ``lax.scan`` over steps), a count that
                 does not depend on the machine's load, unlike the compile seconds.

Data are synthetic (Gaussian inputs of Fashion-MNIST's D = 784, 10 classes): timing does not
depend on the values. The persistent compilation cache is not used (jax's default: off).

``--layers``: ``scan`` (the hidden layers as a ``lax.scan`` over stacked weights, the default
since issue 12), ``unrolled`` (one traced layer after another, as before), or ``both``: per
depth, unrolled then scan, side by side in this process (``$MUTRANSFER_LAYER_SCAN`` switched and
the trainer's program cache cleared between them), with the ratios.

``--parts``: instead, the compile time of each of the cell's three programs (init — compiled and
run —, the training block, the test evaluation), for the chosen ``--layers``.

Usage::

    python benchmarks/depth_scaling.py --quick                  # scan, R = 4 runs × 4 steps (< 5 min on 2 busy cores)
    python benchmarks/depth_scaling.py --layers both            # before/after table, R = 4 runs × 6 steps
    python benchmarks/depth_scaling.py --parts --depths 8 128 8 128   # compile time per program
    python benchmarks/depth_scaling.py --depths 8 16 --width 128 --runs 8 --steps 20
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer import trainer
from mutransfer.data import Dataset
from mutransfer.networks import LAYER_SCAN_ENV
from mutransfer.trainer import CellSpec, TrainOptions, to_device, train_cell

D, C, B = 784, 10, 64


def synthetic(n_train: int, n_test: int = 256, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset("synthetic", rng.standard_normal((n_train, D)).astype(np.float32),
                   rng.integers(0, C, n_train).astype(np.int32),
                   rng.standard_normal((n_test, D)).astype(np.float32),
                   rng.integers(0, C, n_test).astype(np.int32), C)


def _cutoffs() -> tuple:
    """The block's budget-cutoff argument where the trainer has one (issue 11's budget columns)."""
    fractions = getattr(trainer, "BUDGET_FRACTIONS", None)
    return () if fractions is None else (jnp.ones(len(fractions), jnp.int32),)


def step_ops(cell: CellSpec, data, runs: int, steps: int) -> int:
    """StableHLO operations of the cell's lowered training block (lowering only, no compile)."""
    init, block, _ = trainer._programs(cell, 1e3, "vmap")
    jitted = next(c.cell_contents for c in block.__closure__ if hasattr(c.cell_contents, "lower"))
    state = init(jnp.arange(runs, dtype=jnp.uint32))
    idx = jnp.zeros((steps, 1, B), jnp.int32)
    args = (state, data.x_train, data.y_train, idx, jnp.ones(steps, bool), jnp.zeros(runs, jnp.int32),
            jnp.full(runs, 1e-2), jnp.full(runs, 0.1), *_cutoffs())
    return sum(1 for line in jitted.lower(*args).as_text().splitlines() if " = " in line)


def measure(depth: int, width: int, runs: int, steps: int, data, layers: str = "scan") -> tuple[float, float, int]:
    """(compile s, run-steps/s, step ops) of one μPC tanh residual cell with H = T = ``depth``;
    ``layers`` "scan" or "unrolled"."""
    os.environ[LAYER_SCAN_ENV] = "1" if layers == "scan" else "0"
    trainer._programs.cache_clear()
    cell = CellSpec("pc", "mupc", width, depth, "tanh", True, D, C, batch_size=B, inference_steps=depth)
    etas = list(np.geomspace(1e-3, 1e-1, runs))
    betas = list(np.geomspace(1e-2, 1.0, runs))
    opts = TrainOptions(epochs=1, max_steps=steps, log_every=max(1, steps), eval_every=steps)
    res = train_cell(cell, data, etas, betas, [0] * runs, opts)
    return res.compile_s, runs * steps / res.train_s, step_ops(cell, data, runs, steps)


def parts(depth: int, width: int, runs: int, steps: int, data, layers: str) -> tuple[float, float, float]:
    """Seconds to compile (init: compile and run) each of a fresh cell's three programs."""
    os.environ[LAYER_SCAN_ENV] = "1" if layers == "scan" else "0"
    trainer._programs.cache_clear()
    cell = CellSpec("pc", "mupc", width, depth, "tanh", True, D, C, batch_size=B, inference_steps=depth)
    init, block, evaluate = trainer._programs(cell, 1e3, "vmap")
    t = time.perf_counter()
    state = jax.block_until_ready(init(jnp.arange(runs, dtype=jnp.uint32)))
    t_init = time.perf_counter() - t
    idx = jnp.zeros((steps, 1, B), jnp.int32)
    t = time.perf_counter()
    block(state, data.x_train, data.y_train, idx, jnp.ones(steps, bool), jnp.zeros(runs, jnp.int32),
          jnp.full(runs, 1e-2), jnp.full(runs, 0.1), *_cutoffs())
    t_block = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(state.weights, state.alive, data.x_test, data.y_test, data.test_mask)
    return t_init, t_block, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="R = 4 runs, 4 steps per depth")
    ap.add_argument("--layers", choices=["scan", "unrolled", "both"], default="scan")
    ap.add_argument("--parts", action="store_true", help="compile seconds of init / block / evaluation")
    ap.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--runs", type=int, default=4, help="runs per cell (default 4)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default 6; 4 with --quick)")
    args = ap.parse_args()
    runs = args.runs
    steps = args.steps or (4 if args.quick else 6)
    kinds = ["unrolled", "scan"] if args.layers == "both" else [args.layers]
    data = to_device(synthetic(max(steps, 2) * B))
    dev = jax.devices()[0]
    print(f"depth scaling: pc/mupc tanh residual, N = {args.width}, T = H, batch {B}, {runs} runs × {steps} "
          f"steps per depth; hidden layers: {' vs '.join(kinds)}; jax {jax.__version__} on {dev.platform} "
          f"({dev.device_kind}), {os.cpu_count()} CPUs")
    if args.parts:
        print(f"{'H':>5} {'layers':>9} {'init s':>7} {'block s':>8} {'evaluate s':>11}")
        for depth in args.depths:
            for k in kinds:
                ti, tb, te = parts(depth, args.width, runs, steps, data, k)
                print(f"{depth:>5} {k:>9} {ti:>7.2f} {tb:>8.2f} {te:>11.2f}", flush=True)
        return
    head = f"{'H':>5}"
    for k in kinds:
        head += f" {k + ' step ops':>17} {k + ' compile s':>18} {k + ' run-steps/s':>21}"
    if len(kinds) == 2:
        head += f" {'compile unrolled/scan':>22} {'run-steps/s scan/unrolled':>26}"
    print(head)
    t_all = time.perf_counter()
    for depth in args.depths:
        res = {k: measure(depth, args.width, runs, steps, data, k) for k in kinds}
        line = f"{depth:>5}"
        for k in kinds:
            line += f" {res[k][2]:>17d} {res[k][0]:>18.2f} {res[k][1]:>21.2f}"
        if len(kinds) == 2:
            (cu, ru, _), (cs, rs, _) = res["unrolled"], res["scan"]
            line += f" {cu / cs:>21.1f}x {rs / ru:>25.2f}x"
        print(line, flush=True)
    print(f"total {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
