"""Weight optimisers with per-layer lr multipliers, in a vmap-friendly form.

optax supplies the update *direction* (Adam's normalised moment ratio, or the raw gradient for
SGD); the step is then ``W_l ← W_l − η · c_l · direction_l``. Keeping η out of the optax state lets
one compiled program train many runs with different η side by side (η is a traced array).
"""

from __future__ import annotations

from typing import Sequence

import jax
import optax

from mutransfer.networks import Stacked

DIRECTIONS = {
    "adam": lambda: optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
    "sgd": optax.identity,
}


def direction(name: str) -> optax.GradientTransformation:
    if name not in DIRECTIONS:
        raise ValueError(f"optimizer: unknown {name!r}; choose one of {sorted(DIRECTIONS)}")
    return DIRECTIONS[name]()


def apply(weights: list | Stacked, updates: list | Stacked, eta: jax.Array | float,
          lr_mults: Sequence[float]) -> list | Stacked:
    """W_l − η · c_l · u_l for every layer. Weights packed as :class:`~mutransfer.networks.Stacked`
    (the trainer's scanned layout; its hidden layers share one multiplier c_2 = ... = c_H) give
    the same numbers."""
    if isinstance(weights, Stacked):
        c = (lr_mults[0], lr_mults[1], lr_mults[-1])
        return Stacked(*(w - (eta * ci) * u for w, u, ci in zip(weights, updates, c)))
    return [w - (eta * c) * u for w, u, c in zip(weights, updates, lr_mults)]
