"""Forward statistics and the coordinate check (docs/reference/diagnostics.md#coordinate-check): mean
|z_l| per layer at init and after k steps, across widths and depths."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mutransfer.diagnostics.training import _as_xy, _build, _Trainer
from mutransfer.networks import Net, Weights, forward
from mutransfer.pc import PCConfig

Array = jax.Array


def forward_stats(net: Net, weights: Weights, x: Array) -> pd.DataFrame:
    """Per-layer statistics of the forward pass on ``x``: one row per layer l = 1..L (l = L is
    the output f), columns ``layer``, ``kind`` (hidden/output), ``mean``, ``std``, ``mean_abs``
    (means over batch and units)."""
    zs = forward(net, weights, x)
    rows = []
    for i, z in enumerate(zs):
        z = np.asarray(z, np.float64)
        rows.append({"layer": i + 1, "kind": "output" if i == len(zs) - 1 else "hidden",
                     "mean": float(z.mean()), "std": float(z.std()), "mean_abs": float(np.abs(z).mean())})
    return pd.DataFrame(rows)


def coordinate_check(parametrization: str, *, widths: Sequence[int], depths: Sequence[int], activation: str = "tanh",
                     residual: bool = True, algorithm: str = "pc", data=None, input_dim: int = 64,
                     output_dim: int = 10, num_examples: int = 2048, batch_size: int = 64, steps: int = 3,
                     record_every: int | None = None, lr: float = 1e-2, activity_lr: float = 0.1,
                     inference_steps: int | None = None, loss: str = "mse", optimizer: str = "adam",
                     probe_size: int = 256, seed: int = 0, base_width: int | None = None,
                     base_depth: int | None = None) -> pd.DataFrame:
    """Coordinate check (docs/reference/diagnostics.md#coordinate-check): mean |z_l| per layer at
    init and after ``steps`` optimiser steps, for every (width, depth) in ``widths × depths``.

    Training: ``algorithm`` ("pc" with T = ``inference_steps`` (default H) GD inference steps of size
    ``activity_lr``, or "bp"), ``optimizer`` (Adam) with lr ``lr``·c_l, mini-batches of
    ``batch_size`` from ``data`` (a Dataset, an (x, y) tuple, a dataset name, or None for Gaussian
    inputs of ``input_dim`` with random labels over ``output_dim`` classes). Measurement: the
    forward pass on a fixed probe batch (the first ``probe_size`` examples, the same for every
    shape) at step 0, every ``record_every`` steps and at step ``steps``.

    Returns a DataFrame with one row per (width, depth, step, layer): ``parametrization``,
    ``algorithm``, ``activation``, ``residual``, ``width``, ``depth`` (H), ``layer`` (1..H hidden,
    H+1 = the output f), ``kind``, ``step``, ``mean_abs_z``, ``mean_abs_dz`` (mean |z_l(t) − z_l(0)|)
    and ``train_loss`` (the last step's pre-update loss; NaN at step 0)."""
    x, labels, C = _as_xy(data, seed=seed, input_dim=input_dim, output_dim=output_dim, num_examples=num_examples)
    D = x.shape[1]
    probe = jnp.asarray(x[:probe_size])
    record = {0, steps} | (set(range(0, steps + 1, record_every)) if record_every else set())
    rows = []
    for depth in depths:
        for width in widths:
            net, w, lr_mults = _build(parametrization, input_dim=D, width=width, depth=depth, output_dim=C,
                                      activation=activation, residual=residual, seed=seed,
                                      base_width=base_width or min(widths), base_depth=base_depth or min(depths))
            cfg = PCConfig(inference_steps=depth if inference_steps is None else inference_steps, loss=loss)
            tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=algorithm, cfg=cfg, eta=lr, beta=activity_lr,
                          batch_size=batch_size, seed=seed, optimizer=optimizer)
            z0 = [np.asarray(z, np.float64) for z in forward(net, w, probe)]
            loss_val = math.nan
            for t in range(steps + 1):
                if t > 0:
                    loss_val = tr.train(1)
                if t in record:
                    zs = [np.asarray(z, np.float64) for z in forward(net, tr.weights, probe)]
                    for i, (z, zi) in enumerate(zip(zs, z0)):
                        rows.append({
                            "parametrization": parametrization, "algorithm": algorithm, "activation": activation,
                            "residual": residual, "width": width, "depth": depth, "layer": i + 1,
                            "kind": "output" if i == len(zs) - 1 else "hidden", "step": t,
                            "mean_abs_z": float(np.abs(z).mean()), "mean_abs_dz": float(np.abs(z - zi).mean()),
                            "train_loss": loss_val})
    return pd.DataFrame(rows)
