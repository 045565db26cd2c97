"""Backprop baseline (docs/reference/algorithms.md#backprop): gradient of the batch-mean output loss by autodiff."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mutransfer import losses
from mutransfer.networks import Net, Weights, output
from mutransfer.pc import PCConfig, StepOut

Array = jax.Array


def gradients(net: Net, weights: Weights, x: Array, y: Array, beta: Array | float,
              cfg: PCConfig) -> StepOut:
    """∇_W of mean_batch ℓ(y, f(x)). ``beta`` is unused (BP has no activity lr); energies are NaN."""
    loss, grads = jax.value_and_grad(lambda w: losses.batch_loss(cfg.loss, output(net, w, x), y))(weights)
    nan = jnp.full_like(loss, jnp.nan)
    return StepOut(grads, loss, nan, nan)
