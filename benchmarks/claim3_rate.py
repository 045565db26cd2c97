"""Seconds per training step of the claim-3 network (128-layer ReLU residual μPC, T = 128, batch 64,
full Fashion-MNIST) for one run, at N = 64 and 128 in float32 and N = 64 in float64, and the time
the paper's budget (15 epochs = 14 055 steps) and 3 epochs (2 811) would take here (the per-step time
includes two test evaluations of the 10k test set, so it is a slight overestimate).

    python benchmarks/claim3_rate.py [--steps 6]
"""
import argparse

from mutransfer.data import load_dataset
from mutransfer.trainer import CellSpec, TrainOptions, to_device, train_cell

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=6)
a = p.parse_args()
d = to_device(load_dataset("fashion_mnist"))
print("width  precision  s/step (1 run)  3 epochs (h)  15 epochs (h)")
for width, precision in ((64, "float32"), (128, "float32"), (64, "float64")):
    c = CellSpec("pc", "mupc", width, 128, "relu", True, 784, 10, batch_size=64, precision=precision)
    r = train_cell(c, d, [5e-2], [0.5], [0], TrainOptions(max_steps=a.steps, log_every=1, eval_every=10 ** 6))
    per = r.train_s / a.steps
    print(f"{width:5d}  {precision:9s}  {per:14.2f}  {per * 2811 / 3600:12.1f}  {per * 14055 / 3600:13.1f}", flush=True)
