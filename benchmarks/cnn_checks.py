"""Small CNNs: throughput of the grid trainer and the width (channel) coordinate check.

1. Convolution implementation inside the trainer (one process, side by side): the patch matmul
   (im2col, the CPU default) vs XLA's native convolution, same cell and runs.
2. Grid vs loop: R runs of one CNN cell trained together in one program — vmapped (a batched
   program) or lax.map-ped (one run after another inside the compiled step, the CPU default for
   CNNs) — vs the same R runs trained one at a time by the same trainer: run-steps/s and ratios.
3. Coordinate check: mean |h_l(3) − h_l(0)| after 3 Adam steps of the 3-layer CNN (two 3×3 convs,
   stride 2, ReLU, dense readout) on Fashion-MNIST as the channel count grows: flat under the μP rows
   (tp_mup for DTP, mup for PC and BP) if the fan-in k²·C conventions are right, growing under sp.

Usage: python benchmarks/cnn_checks.py [--widths 16 32 ...] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from mutransfer.data import load_dataset
from mutransfer.networks import CONV_IMPL_ENV
from mutransfer.tp_checks import feature_updates
from mutransfer.trainer import CellSpec, TrainOptions, train_cell


def cell(algorithm: str, param: str, width: int) -> CellSpec:
    return CellSpec(algorithm, param, width, 2, "relu", False, 784, 10, batch_size=64, architecture="cnn",
                    image_shape=(1, 28, 28))


def run_steps_per_s(c: CellSpec, data, runs: int, steps: int, one_at_a_time: bool = False,
                    batching: str | None = None) -> float:
    etas = list(np.geomspace(1e-3, 3e-2, runs))
    opts = TrainOptions(max_steps=steps, log_every=10, eval_every=10_000, run_batching=batching)
    if one_at_a_time:
        train_cell(c, data, etas[:1], [0.5], [0], opts)  # compile outside the timing, as for the grid
        t = time.perf_counter()
        for eta in etas:
            train_cell(c, data, [eta], [0.5], [0], opts)
        return runs * steps / (time.perf_counter() - t)
    train_cell(c, data, etas, [0.5] * runs, [0] * runs, opts)
    t = time.perf_counter()
    train_cell(c, data, etas, [0.5] * runs, [0] * runs, opts)
    return runs * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--quick", action="store_true", help="fewer runs and steps")
    ap.add_argument("--only", type=int, nargs="+", default=[1, 2, 3], help="sections to run")
    args = ap.parse_args()
    runs, steps = (4, 8) if args.quick else (16, 32)
    data = load_dataset("fashion_mnist", train_examples=4096, test_examples=256)

    if 1 in args.only:
        section1(data, runs, steps)
    if 2 in args.only:
        section2(data, runs, steps)
    if 3 in args.only:
        section3(data, args.widths)


def section1(data, runs: int, steps: int) -> None:
    print(f"== 1. convolution implementation in the trainer (bp, mup, 32 channels, {runs} runs × {steps} steps) ==")
    rates = {}
    for impl in ("patches", "xla"):
        os.environ[CONV_IMPL_ENV] = impl
        rates[impl] = run_steps_per_s(cell("bp", "mup", 32), data, runs, steps if impl == "patches" else 4)
        print(f"{impl:8s} {rates[impl]:8.1f} run-steps/s")
    os.environ.pop(CONV_IMPL_ENV)
    print(f"patches / xla: {rates['patches'] / rates['xla']:.1f}x")


def section2(data, runs: int, steps: int) -> None:

    print(f"\n== 2. grid (all runs in one program) vs one run at a time ({runs} runs × {steps} steps) ==")
    print("run-steps/s         vmap      map     loop  vmap/loop  map/loop")
    for algo, param in (("bp", "mup"), ("pc", "mup"), ("dtp", "tp_mup")):
        for width in (16, 64):
            c = cell(algo, param, width)
            vm = run_steps_per_s(c, data, runs, steps, batching="vmap")
            mp = run_steps_per_s(c, data, runs, steps, batching="map")
            loop = run_steps_per_s(c, data, runs, steps, one_at_a_time=True)
            print(f"{algo:4s} {param:7s} C={width:3d} {vm:7.1f}  {mp:7.1f}  {loop:7.1f}  {vm / loop:8.2f}x "
                  f"{mp / loop:8.2f}x")



def section3(data, widths) -> None:
    print("\n== 3. mean |h_l(3) − h_l(0)| after 3 steps, 3-layer ReLU CNN, by channel count ==")
    x, y = data.x_train[:512], np.eye(10)[data.y_train[:512]]
    rows = []
    for algo, params, beta in (("dtp", ("tp_mup", "sp"), 0.5), ("pc", ("mup", "sp"), 1.0), ("bp", ("mup", "sp"), 0.0)):
        for p in params:
            rows.append(feature_updates(algo, p, widths, x=x, y=y, beta_out=beta, activation="relu",
                                        architecture="cnn", image_shape=(1, 28, 28), probe=128))
    df = pd.concat(rows)
    print(df.pivot_table(index=["algorithm", "parametrization", "layer"], columns="width", values="delta",
                         sort=False).to_string(float_format=lambda v: f"{v:.4g}"))
    for (a, p), g in df.groupby(["algorithm", "parametrization"], sort=False):
        spread = g.groupby("layer")["delta"].agg(lambda d: np.max(np.abs(d / d.mean() - 1)))
        slope = {k: np.polyfit(np.log2(gg["width"].to_numpy(float)), np.log2(gg["delta"].to_numpy()), 1)[0]
                 for k, gg in g.groupby("layer")}
        print(f"{a} {p}: max deviation from the layer mean " + ", ".join(f"{k} {v:.0%}" for k, v in spread.items())
              + "; slope in log2 C " + ", ".join(f"{k} {v:+.2f}" for k, v in slope.items()))


if __name__ == "__main__":
    main()
