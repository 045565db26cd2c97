"""Output losses, per example (summed over output units), so callers choose the batch reduction.

``mse``: ½‖y − f‖² (the μPC paper's "training loss" convention, no 1/C).
``cross_entropy``: −Σ y log softmax(f).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def mse(f: Array, y: Array) -> Array:
    return 0.5 * jnp.sum((y - f) ** 2, axis=-1)


def cross_entropy(f: Array, y: Array) -> Array:
    return -jnp.sum(y * jax.nn.log_softmax(f, axis=-1), axis=-1)


LOSSES: dict[str, Callable[[Array, Array], Array]] = {"mse": mse, "cross_entropy": cross_entropy}


def batch_loss(name: str, f: Array, y: Array) -> Array:
    """Batch mean of the per-example loss."""
    return jnp.mean(LOSSES[name](f, y))
