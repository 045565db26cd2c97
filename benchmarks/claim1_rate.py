"""Seconds per training step of one claim-1 cell (44 runs: the paper's 4 η × 11 β at one seed),
tanh residual H = T = 8, full Fashion-MNIST, per width; prints the time the claim-1 study
(sweeps/specs/claim1_width_paper_budget.yaml: 2 arms × 3 seeds × 937 steps) would take here.

    python benchmarks/claim1_rate.py [--widths 64 128 256] [--steps 10]
"""
import argparse

from mutransfer.data import load_dataset
from mutransfer.trainer import CellSpec, TrainOptions, to_device, train_cell

ETAS = [1e-2, 5e-2, 1e-1, 5e-1]
BETAS = [1e-2, 5e-2, 1e-1, 5e-1, 1.0, 5.0, 1e1, 5e1, 1e2, 5e2, 1e3]

p = argparse.ArgumentParser()
p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
p.add_argument("--steps", type=int, default=10)
a = p.parse_args()
d = to_device(load_dataset("fashion_mnist"))
etas = [e for e in ETAS for _ in BETAS]
betas = [b for _ in ETAS for b in BETAS]
total = 0.0
print("width  runs  s/step(44 runs)  study s (2 arms x 3 seeds x 937 steps)")
for w in a.widths:
    c = CellSpec("pc", "mupc", w, 8, "tanh", True, 784, 10, batch_size=64, inference_steps=8)
    r = train_cell(c, d, etas, betas, [0] * len(etas), TrainOptions(max_steps=a.steps, log_every=5,
                                                                   eval_every=10 ** 6))
    per = r.train_s / a.steps
    study = per * 937 * 2 * 3
    total += study
    print(f"{w:5d}  {len(etas):4d}  {per:15.3f}  {study:10.0f}", flush=True)
print(f"total: {total:.0f} s = {total / 3600:.1f} h on this machine")
