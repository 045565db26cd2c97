"""Diagnostics tracked over training: the activity Hessian's condition number (μPC paper Fig. 3)
and Theorem 1's loss / equilibrated-energy ratio (Fig. 6 at t > 0), with the test accuracy, for a
grid of parameterisations × widths × depths × seeds.

Every net is trained with :class:`~mutransfer.diagnostics.training._Trainer` (PC with T GD
inference steps of size β, or BP; Adam with lr η·c_l; fixed-order mini-batches of the training
split). At step 0 and every ``eval_every`` steps (and the last) one row records:

* ``kappa`` (= λ_max/λ_min, ∞ when indefinite), ``kappa_abs``, ``lambda_min``, ``lambda_max``,
  ``positive_definite``, ``resolved`` — of the per-example activity Hessian ∇²E of probe example 0
  at its forward-pass activities (PC's inference initialisation), in float64: the closed form for
  linear nets, the exact block-tridiagonal form otherwise (:mod:`mutransfer.diagnostics.hessian`).
* ``loss`` = ½ mean_b ‖y_b − f(x_b)‖² on a fixed probe batch of ``probe_size`` training examples
  (the forward pass: BP's loss), ``energy`` = F(z*) the batch-mean energy at the inference
  equilibrium of that batch (output precision γ = 1), and ``ratio`` = loss / energy.
  ``energy_method``: ``theorem1`` for linear nets — the exact F(z*) of Theorem 1
  (:func:`~mutransfer.diagnostics.linear.theorem1_energy`); ``lbfgs`` otherwise — F at a numerical
  equilibrium, L-BFGS on the probe batch's energy from the forward-pass activities until the RMS
  activity gradient of the summed per-example energy is below ``equilibrium_tol`` (``eq_grad_rms``,
  ``eq_iterations``; ``eq_converged``). For nonlinear nets the energy need not be convex (κ = ∞
  above), so this is the nearest local minimum — the one PC's inference descends to from its
  forward initialisation. ratio ≥ 1 always (the forward pass is a feasible point with energy = loss).
* ``test_acc`` on ``test_examples`` held-out examples, and ``train_loss`` (the last step's
  pre-update loss on its batch; NaN at step 0).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize

from mutransfer.diagnostics.conditioning import Conditioning, block_condition_number
from mutransfer.diagnostics.hessian import activity_hessian_blocks
from mutransfer.diagnostics.linear import linear_hessian_blocks, theorem1_energy
from mutransfer.diagnostics.training import _as_xy, _build, _Trainer
from mutransfer.networks import Net, Weights, forward
from mutransfer.pc import PCConfig, energy


@dataclasses.dataclass(frozen=True)
class TrainingDiagnosticsConfig:
    """κ(H_z), loss / F(z*) and test accuracy over training (μPC paper Figs 3 and 6 at t > 0), for
    every (parametrization, width, depth, seed). The paper's Fig. 3: N = 128, H ∈ {8, 16, 32},
    η = 1e-3, β ∈ {0.5, 0.1, 0.05}, one epoch of MNIST / Fashion-MNIST, 3 seeds; Fig. 6: linear
    μPC ResNets, N, H ∈ {2, ..., 64}. ``dataset``: a name for :func:`mutransfer.data.load_dataset`
    or "synthetic" (Gaussian inputs of ``input_dim``, random labels); ``inference_steps`` None → H."""

    parametrizations: tuple[str, ...] = ("sp", "mupc")
    widths: tuple[int, ...] = (32,)
    depths: tuple[int, ...] = (4, 8)
    activation: str = "tanh"
    residual: bool = True
    dataset: str = "digits"
    input_dim: int = 64
    output_dim: int = 10
    num_examples: int = 1024
    test_examples: int = 256
    algorithm: str = "pc"
    lr: float = 1e-3
    activity_lr: float = 0.1
    inference_steps: int | None = None
    batch_size: int = 64
    steps: int = 50
    eval_every: int = 10
    seeds: tuple[int, ...] = (0,)
    probe_size: int = 64
    hessian: bool = True
    ratio: bool = True
    equilibrium_tol: float = 1e-6
    equilibrium_max_iter: int = 2000


def _conditioning(net: Net, weights: Weights, x1: jax.Array, y1: jax.Array) -> Conditioning:
    if net.activation == "linear":
        blocks = linear_hessian_blocks(net, weights)
    else:
        blocks = activity_hessian_blocks(net, weights, x1, y1, PCConfig(inference_steps=0))
    return block_condition_number(blocks)


@functools.partial(jax.jit, static_argnums=(0,))
def _sum_energy_and_grad(net: Net, weights: Weights, x, y, Z):
    """B·F (the summed per-example energy, γ = 1, mse) and its gradient w.r.t. stacked activities Z (H, B, N)."""
    B = x.shape[0]
    return jax.value_and_grad(lambda Zc: B * energy(net, weights, list(Zc), x, y, PCConfig(inference_steps=0)))(Z)


def numerical_equilibrium(net: Net, weights: Weights, x: jax.Array, y: jax.Array, *, tol: float = 1e-6,
                          max_iter: int = 2000) -> dict:
    """F(z*) of any PC net (mse, γ = 1) at a numerical inference equilibrium of the batch (x, y):
    L-BFGS on the summed per-example energy from the forward-pass activities, in the weights' dtype
    (use float64), stopped when the RMS of its activity gradient is below ``tol`` (float64 resolves
    it down to ~1e-8·√(F·λ_max): below that the energy stops changing and ``converged`` is False).
    At tol = 1e-6 the energy of a linear net is within ~1e-13 of Theorem 1's (tested). Returns
    ``energy`` (batch mean, as :func:`mutransfer.pc.energy`), ``grad_rms``, ``iterations``,
    ``converged`` and the activities ``hidden`` [z*_1, ..., z*_H]."""
    Z0 = jnp.stack(forward(net, weights, x)[:-1])
    shape, dtype = Z0.shape, Z0.dtype
    B = x.shape[0]

    def fun(v):
        e, g = _sum_energy_and_grad(net, weights, x, y, jnp.asarray(v, dtype).reshape(shape))
        return float(e), np.asarray(g, np.float64).ravel()

    # gtol bounds the largest gradient entry; tol is on the RMS: the max-norm bound implies it.
    res = scipy.optimize.minimize(fun, np.asarray(Z0, np.float64).ravel(), jac=True, method="L-BFGS-B",
                                  options={"maxiter": int(max_iter), "gtol": float(tol), "ftol": 0.0,
                                           "maxcor": 20})
    e, g = fun(res.x)
    rms = float(np.sqrt(np.mean(g ** 2)))
    Z = jnp.asarray(res.x, dtype).reshape(shape)
    return {"energy": e / B, "grad_rms": rms, "iterations": int(res.nit), "converged": bool(rms < tol),
            "hidden": [Z[i] for i in range(shape[0])]}


def _ratio_row(net: Net, weights: Weights, xp, yp, cfg: TrainingDiagnosticsConfig) -> dict:
    f = forward(net, weights, xp)[-1]
    loss = float(0.5 * jnp.mean(jnp.sum((yp - f) ** 2, axis=1)))
    if net.activation == "linear":
        F = theorem1_energy(net, weights, np.asarray(xp), np.asarray(yp))
        eq = {"energy_method": "theorem1", "eq_grad_rms": math.nan, "eq_iterations": 0, "eq_converged": True}
    else:
        r = numerical_equilibrium(net, weights, xp, yp, tol=cfg.equilibrium_tol, max_iter=cfg.equilibrium_max_iter)
        F = r["energy"]
        eq = {"energy_method": "lbfgs", "eq_grad_rms": r["grad_rms"], "eq_iterations": r["iterations"],
              "eq_converged": r["converged"]}
    return {"loss": loss, "energy": F, "ratio": loss / F if F > 0 else math.nan, **eq}


def run_training_diagnostics(cfg: TrainingDiagnosticsConfig) -> pd.DataFrame:
    """One row per (parametrization, width, depth, seed, evaluated step); see the module docstring."""
    if cfg.steps < 0 or cfg.eval_every < 1:
        raise ValueError("steps must be >= 0 and eval_every >= 1")
    rows = []
    with jax.enable_x64(True):
        dtype = jnp.float64
        for seed in cfg.seeds:
            x, labels, C = _as_xy(cfg.dataset, seed=seed, input_dim=cfg.input_dim, output_dim=cfg.output_dim,
                                  num_examples=cfg.num_examples + cfg.test_examples)
            if x.shape[0] <= cfg.test_examples:
                raise ValueError(f"test_examples={cfg.test_examples} leaves no training examples of {x.shape[0]}")
            xt, yt = jnp.asarray(x[-cfg.test_examples:], dtype), np.asarray(labels[-cfg.test_examples:])
            x, labels = x[:-cfg.test_examples], labels[:-cfg.test_examples]
            xp = jnp.asarray(x[:cfg.probe_size], dtype)
            yp = jax.nn.one_hot(jnp.asarray(labels[:cfg.probe_size]), C, dtype=dtype)
            for param in cfg.parametrizations:
                for depth in cfg.depths:
                    for width in cfg.widths:
                        net, w, lr_mults = _build(param, input_dim=x.shape[1], width=width, depth=depth,
                                                  output_dim=C, activation=cfg.activation, residual=cfg.residual,
                                                  seed=seed, dtype=dtype)
                        pcc = PCConfig(inference_steps=depth if cfg.inference_steps is None else cfg.inference_steps)
                        tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=cfg.algorithm, cfg=pcc, eta=cfg.lr,
                                      beta=cfg.activity_lr, batch_size=cfg.batch_size, seed=seed)
                        loss = math.nan
                        for t in range(cfg.steps + 1):
                            if t > 0:
                                loss = tr.train(1)
                            if not (t % cfg.eval_every == 0 or t == cfg.steps):
                                continue
                            row = {"parametrization": param, "activation": cfg.activation, "residual": cfg.residual,
                                   "algorithm": cfg.algorithm, "width": width, "depth": depth, "seed": seed,
                                   "step": t, "train_loss": loss}
                            f_test = forward(net, tr.weights, xt)[-1]
                            row["test_acc"] = float(np.mean(np.argmax(np.asarray(f_test), 1) == yt))
                            if cfg.hessian:
                                row.update(_conditioning(net, tr.weights, xp[:1], yp[:1])._asdict())
                            if cfg.ratio:
                                row.update(_ratio_row(net, tr.weights, xp, yp, cfg))
                            rows.append(row)
    return pd.DataFrame(rows)
