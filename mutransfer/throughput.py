"""Throughput accounting for the grid trainer: the μPC paper's Fig. 5 width-row shape, the nominal
FLOP of one PC run-step, and the matmul rate the device reaches (the practical limit a run-step
rate is compared with). Used by benchmarks/grid_throughput.py and benchmarks/device_check.py.

FLOP convention (nominal): one PC training step of one run multiplies by every weight matrix
2T + 3 times — the forward pass (1), T inference steps each needing the predictions and their
vector-Jacobian products (2T), and the weight gradient at equilibrium (predictions + gradient, 2) —
at 2·B·fan_in·fan_out FLOP each::

    FLOP/run-step = 2 · B · (Σ_l fan_in_l · fan_out_l) · (2T + 3)

The trainer computes the input layer's prediction once per step (x is clamped), so it executes
fewer FLOP than counted: achieved GFLOP/s figures are nominal (an upper bound on the executed rate).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer.networks import layer_dims


class Fig5Row(NamedTuple):
    """μPC paper, Fig. 5 (top): tanh residual MLP, H = 8 hidden layers, T = 8 inference steps,
    batch 64, a 4 × 11 (η, β) grid × 3 seeds = 132 runs per width, one epoch of 60 000 examples."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    hidden_layers: int = 8
    inference_steps: int = 8
    batch_size: int = 64
    weight_lrs: tuple[float, ...] = (5e-1, 1e-1, 5e-2, 1e-2)
    activity_lrs: tuple[float, ...] = (1e3, 5e2, 1e2, 5e1, 1e1, 5, 1, 5e-1, 1e-1, 5e-2, 1e-2)
    seeds: tuple[int, ...] = (0, 1, 2)
    train_examples: int = 60_000

    def runs(self) -> tuple[list[float], list[float], list[int]]:
        """(weight_lrs, activity_lrs, seeds) of every run of one cell, η-major."""
        grid = [(e, b, s) for e in self.weight_lrs for b in self.activity_lrs for s in self.seeds]
        etas, betas, seeds = zip(*grid)
        return list(etas), list(betas), list(seeds)

    @property
    def steps_per_epoch(self) -> int:
        """The grid trainer's steps in one epoch (it drops a last partial batch: 60000 // 64 = 937;
        the paper's loop, counting it, makes 938)."""
        return self.train_examples // self.batch_size


FIG5 = Fig5Row()


def pc_flop_per_run_step(input_dim: int, width: int, hidden_layers: int, output_dim: int,
                         batch_size: int, inference_steps: int) -> float:
    """Nominal FLOP of one PC training step of one run of an MLP (module docstring)."""
    dims = layer_dims(input_dim, width, hidden_layers, output_dim)
    return 2.0 * batch_size * sum(a * b for a, b in dims) * (2 * inference_steps + 3)


def matmul_gflops(n: int = 2048, reps: int = 20, precision: str | None = None) -> float:
    """GFLOP/s of an n × n float32 matmul (best of 3 × ``reps``), at ``precision`` (None: JAX's
    default — TF32 tensor cores on recent NVIDIA GPUs; ``"highest"``: true float32)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda a: jnp.matmul(a, a, precision=precision))
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            out = f(a)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * n**3 / best / 1e9
