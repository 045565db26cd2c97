"""Registry of learning algorithms the grid trainer can run.

Each algorithm maps (net, weights, x, y, β, config) to a :class:`~mutransfer.pc.StepOut`
(weight gradients plus per-step metrics); the trainer applies the optimiser. Adding TP/DTP is a
new row here.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from mutransfer import bp, pc


class Algorithm(NamedTuple):
    gradients: Callable
    uses_activity_lr: bool  # whether the sweep's activity-lr axis means anything
    supports_residual: bool = True
    description: str = ""


ALGORITHMS: dict[str, Algorithm] = {
    "pc": Algorithm(pc.gradients, True, True, "predictive coding: T steps of GD inference, then ∇_W F"),
    "bp": Algorithm(bp.gradients, False, True, "backprop on the output loss (baseline)"),
}


def get(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm: unknown {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]
