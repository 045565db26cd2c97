"""Inference divergence: when a PC run's inference stops being inference
(docs/reference/training.md#inference-divergence).

Predictive coding infers the hidden activities by T steps of gradient descent on the energy F with
step β (the activity lr), starting from the feedforward pass, where F = F_start = γ·loss. Descent
with a step below 2/λ_max(∇²_z F) lowers F; past that cliff F grows geometrically with T, and the
weight gradients read at the end of inference are garbage — which Adam normalises into ordinary-
looking updates, so the training loss alone may never flag the run.

Rule (per run, on the per-step records ``energy_start`` F₀(t), ``energy_end`` F_T(t) of every
training step t whose update was applied, i.e. whose training loss is finite):

* **non-finite activities**: F_T(t) is NaN or ±inf at a step whose loss is finite (an activity
  overflowed during inference) → inference diverged at t;
* **rising energy over a block**: over a block of consecutive steps (the trainer's eval block,
  ``eval_every`` steps), Σ_t F_T(t) > (1 + ``rtol``) · Σ_t F₀(t) — inference *raised* the energy,
  summed over the block → inference diverged at the block's first step t with
  F_T(t) > (1 + ``rtol``) · F₀(t) (its first step if none exceeds it alone).

The tolerance :data:`RTOL` = 0.1 (a 10 % rise summed over a block): healthy inference lowers the
energy at every step (end/start < 1; the 128-layer runs logged 0.75–0.97), so a block-summed rise
is not noise, while summing over the block keeps one step's rounding of a near-zero energy from
flagging a run. Energies are dimensionless (γ·½‖ε‖² summed over layers, batch-mean).

A run whose training loss diverged first keeps reason ``loss`` (the trainer freezes it there);
one whose inference diverged at or before that step gets reason ``inference``. The run is not
stopped: training goes on, so what the divergence does to accuracy stays visible in its curves.

Pure NumPy on host arrays; no JAX, so it runs on the trainer's already-fetched step records.
"""

from __future__ import annotations

import numpy as np

RTOL = 0.1  # block-summed F_T may exceed block-summed F₀ by at most 10 %
REASONS = ("loss", "inference")  # the runs table's ``diverge_reason`` values ("" when ok)


def inference_divergence(energy_start: np.ndarray, energy_end: np.ndarray, train_loss: np.ndarray,
                         block_len: int, rtol: float = RTOL) -> np.ndarray:
    """First step at which each run's inference diverged (module docstring), −1 where it never did.

    Arrays are (steps, R): row t is training step t. ``block_len`` ≥ 1 steps per block (the last
    block may be shorter). Steps with a non-finite ``train_loss`` (not applied, or padding) are
    ignored."""
    e0 = np.asarray(energy_start, np.float64)
    e1 = np.asarray(energy_end, np.float64)
    loss = np.asarray(train_loss, np.float64)
    if not (e0.shape == e1.shape == loss.shape) or e0.ndim != 2:
        raise ValueError(f"energy_start, energy_end, train_loss: need equal (steps, runs) shapes, got "
                         f"{e0.shape}, {e1.shape}, {loss.shape}")
    if block_len < 1:
        raise ValueError(f"block_len must be >= 1, got {block_len}")
    steps, runs = e0.shape
    applied = np.isfinite(loss) & np.isfinite(e0)
    nonfinite = applied & ~np.isfinite(e1)
    first_nonfinite = np.where(nonfinite.any(0), np.argmax(nonfinite, 0), -1)
    e0z = np.where(applied, e0, 0.0)
    e1z = np.where(applied & np.isfinite(e1), e1, 0.0)
    step_rise = applied & np.isfinite(e1) & (e1 > (1.0 + rtol) * e0)
    first_rise = np.full(runs, -1, np.int64)
    for start in range(0, steps, block_len):
        sl = slice(start, min(start + block_len, steps))
        fresh = (e1z[sl].sum(0) > (1.0 + rtol) * e0z[sl].sum(0)) & (first_rise < 0)
        if fresh.any():
            within = step_rise[sl]
            at = start + np.where(within.any(0), np.argmax(within, 0), 0)
            first_rise = np.where(fresh, at, first_rise)
    both = np.where(first_nonfinite < 0, first_rise,
                    np.where(first_rise < 0, first_nonfinite, np.minimum(first_rise, first_nonfinite)))
    return both.astype(np.int64)


def diverge_columns(alive: np.ndarray, diverged_step: np.ndarray, inference_step: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(status, diverge_reason, diverge_step) per run from the trainer's loss divergence (``alive``,
    ``diverged_step``, −1 while alive) and :func:`inference_divergence`'s ``inference_step``.

    Inference wins ties and anything earlier: a run whose inference diverged at or before its loss
    did is ``inference``; a run whose loss diverged first is ``loss``; ``diverge_step`` is the step
    the named divergence began (−1 and reason "" for a healthy run)."""
    alive = np.asarray(alive, bool)
    dstep = np.asarray(diverged_step, np.int64)
    istep = np.asarray(inference_step, np.int64)
    loss_div = ~alive & (dstep >= 0)
    inf_div = (istep >= 0) & (~loss_div | (istep <= dstep))
    reason = np.where(inf_div, "inference", np.where(loss_div | ~alive, "loss", ""))
    step = np.where(inf_div, istep, np.where(loss_div, dstep, -1)).astype(np.int64)
    status = np.where(inf_div | ~alive, "diverged", "ok")
    return status, reason.astype(object), step


def mark(runs: dict, metrics: np.ndarray, block_len: int, check: bool) -> dict:
    """Set ``status``/``diverge_reason``/``diverge_step`` in a trainer ``runs`` dict in place.

    ``metrics``: the trainer's (steps, 3, R) records (train_loss, energy_start, energy_end);
    ``check``: whether the algorithm's energies are an inference energy (PC; not BP's or TP's)."""
    loss, e0, e1 = (metrics[:, j, :] for j in range(3))
    steps = inference_divergence(e0, e1, loss, block_len) if check else np.full(metrics.shape[2], -1, np.int64)
    alive = np.asarray(runs["status"]) == "ok"
    runs["status"], runs["diverge_reason"], runs["diverge_step"] = diverge_columns(
        alive, runs["diverged_step"], steps)
    return runs
