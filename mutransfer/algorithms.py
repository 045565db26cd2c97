"""Registry of learning algorithms the grid trainer can run.

Each algorithm maps (net, weights, x, y, β, config) to a :class:`~mutransfer.pc.StepOut`
(weight gradients plus per-step metrics); the trainer applies the optimiser. Adding TP/DTP is a
new row here.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from mutransfer import bp, pc


class Algorithm(NamedTuple):
    gradients: Callable | None  # (net, weights, x, y, beta, cfg) -> StepOut; None: see `feedback`
    uses_activity_lr: bool  # whether the sweep's activity-lr axis means anything
    supports_residual: bool = True
    description: str = ""
    feedback: bool = False  # carries learned feedback weights (TP/DTP: mutransfer.tp.train_step)
    # energy_start/energy_end are an inference energy before/after GD on the activities (PC), so
    # mutransfer.inference_health can flag inference that raised it
    inference: bool = False


ALGORITHMS: dict[str, Algorithm] = {
    "pc": Algorithm(pc.gradients, True, True, "predictive coding: T steps of GD inference, then ∇_W F",
                    inference=True),
    "bp": Algorithm(bp.gradients, False, True, "backprop on the output loss (baseline)"),
    # The activity lr of TP/DTP is the output target step β_out.
    "tp": Algorithm(None, True, False, "target propagation: targets through learned feedback maps", True),
    "dtp": Algorithm(None, True, False, "difference target propagation (Lee et al. 2015)", True),
}


def get(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm: unknown {name!r}; choose one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]
