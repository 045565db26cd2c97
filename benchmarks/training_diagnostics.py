"""κ(H_z), loss / F(z*) and test accuracy over training (μPC paper Fig. 3 and Fig. 6 at t > 0), at
CPU scale, through the ``training_diagnostics`` analysis kind; prints one table per quantity
(rows: training step; columns: parameterisation × depth).

Defaults (scaled down from the paper's Fig. 3 — N = 128, H ∈ {8, 16, 32}, one epoch of 60k
MNIST / Fashion-MNIST, 3 seeds, η = 1e-3, β ∈ {0.5, 0.1, 0.05}, T up to 500 with a tolerance):
tanh residual nets, N = 64, H ∈ {8, 16, 32}, PC with T = H GD inference steps of β = 0.1, Adam
η = 1e-3, one epoch of a 4096-example Fashion-MNIST subset (64 steps of batch 64), one seed;
κ of probe example 0, the loss/energy ratio on a 16-example probe batch.

Usage: python benchmarks/training_diagnostics.py [--dataset digits] [--depths 4 8] [--steps 64]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from mutransfer.diagnostics import run_analysis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--params", nargs="+", default=["sp", "mupc"])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--eval-every", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--activity-lr", type=float, default=0.1)
    ap.add_argument("--examples", type=int, default=4096)
    ap.add_argument("--probe", type=int, default=16)
    ap.add_argument("--out", default=None, help="write the table as CSV")
    args = ap.parse_args()
    t0 = time.perf_counter()
    df = run_analysis("training_diagnostics", {
        "parametrizations": tuple(args.params), "widths": (args.width,), "depths": tuple(args.depths),
        "activation": args.activation, "residual": True, "dataset": args.dataset, "num_examples": args.examples,
        "test_examples": 1000, "lr": args.lr, "activity_lr": args.activity_lr, "steps": args.steps,
        "eval_every": args.eval_every, "probe_size": args.probe})
    print(f"training_diagnostics: {args.activation} residual, N = {args.width}, H ∈ {args.depths}, PC T = H, "
          f"β = {args.activity_lr}, Adam η = {args.lr}, {args.dataset} ({args.examples} train / 1000 test), "
          f"batch 64, {args.steps} steps [{time.perf_counter() - t0:.0f} s]")
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        for value, fmt in (("kappa_abs", "{:.3g}"), ("positive_definite", "{}"), ("ratio", "{:.4g}"),
                           ("eq_converged", "{}"), ("test_acc", "{:.3f}"), ("train_loss", "{:.4g}")):
            table = df.pivot_table(index="step", columns=["parametrization", "depth"], values=value,
                                   aggfunc="first")
            print(f"\n-- {value} --")
            print(table.to_string(float_format=lambda v: fmt.format(v)) if fmt != "{}" else table.to_string())
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
