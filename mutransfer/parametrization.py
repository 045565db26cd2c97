"""Parameterisations as one table: per layer kind, the forward multiplier a_l, init std σ_l and
learning-rate multiplier c_l (docs/reference/conventions.md#parameterisations).

Conventions
-----------
* Layers are the L = H + 1 weight matrices of a network with H hidden layers: layer 0 is the
  *input* layer (fan-in D), layers 1..H-1 are *hidden* (fan-in N), layer H is the *output*
  layer (fan-in N, fan-out C).
* ``L`` in the formulas below is the number of weight matrices (H + 1), as in the μPC authors'
  library (jpc) and the reference fixture.
* Multipliers and init stds depend on a layer's fan-in: the width N for the hidden and output
  layers of an MLP, k²·C_in for a k×k convolution, the flattened feature-map size for a CNN's
  readout (pass ``fan_ins`` to :func:`resolve`). The lr multipliers depend on width ratios N/N0
  (channels, for a CNN), since the rest of a layer's fan-in does not change across a width sweep.
* The optimiser's lr for layer l is ``c_l · η`` where η is the run's weight learning rate.
* ``base_width``/``base_depth`` (N0, L0-as-H0) are the sweep's base shape; they only enter the lr
  multipliers of ``depth_mup`` and ``mup`` (c_l = 1 at the base shape).

Everything else in the package consumes resolved :class:`LayerParams` triples, so adding a
parameterisation is one table row.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

# A rule maps the shape context to one number.
Rule = Callable[["Shape"], float]


class Shape(NamedTuple):
    """What a rule may depend on. ``depth`` is L = H + 1 weight matrices."""

    fan_in: int
    width: int
    depth: int
    input_dim: int
    residual: bool
    base_width: int
    base_depth: int


class LayerParams(NamedTuple):
    """Resolved per-layer triple: forward multiplier, init std, lr multiplier."""

    multiplier: float
    init_std: float
    lr_mult: float


class Parametrization(NamedTuple):
    """Rules per layer kind, each a (multiplier, init_std, lr_mult) triple of rules."""

    input: tuple[Rule, Rule, Rule]
    hidden: tuple[Rule, Rule, Rule]
    output: tuple[Rule, Rule, Rule]
    description: str


def _const(v: float) -> Rule:
    return lambda s: v


_one = _const(1.0)
_std_fan_in: Rule = lambda s: 1.0 / math.sqrt(s.fan_in)
# Multipliers use the fan-in (= N for MLP hidden/output layers, k²·C for convolutions).
_in_mult: Rule = lambda s: 1.0 / math.sqrt(s.fan_in)
_width_mult: Rule = lambda s: 1.0 / math.sqrt(s.fan_in)
_depth_width_mult: Rule = lambda s: 1.0 / math.sqrt(s.fan_in * s.depth)
_mupc_hidden: Rule = lambda s: (
    _depth_width_mult(s) if s.residual else _width_mult(s)  # jpc: 1/√(NL) only with skips
)
_mean_field_out: Rule = lambda s: 1.0 / s.fan_in
_ntk_out: Rule = lambda s: 1.0 / math.sqrt(s.fan_in)
# Adam lr scalings relative to the base shape (c = 1 at the base).
_depth_mup_lr: Rule = lambda s: math.sqrt(s.base_width * s.base_depth) / math.sqrt(s.width * s.depth)
_mup_lr: Rule = lambda s: math.sqrt(s.base_width) / math.sqrt(s.width)

PARAMETRIZATIONS: dict[str, Parametrization] = {
    "sp": Parametrization(
        input=(_one, _std_fan_in, _one),
        hidden=(_one, _std_fan_in, _one),
        output=(_one, _std_fan_in, _one),
        description="standard: unit multipliers, 1/sqrt(fan_in) init",
    ),
    "mupc": Parametrization(
        input=(_in_mult, _one, _one),
        hidden=(_mupc_hidden, _one, _one),
        output=(_mean_field_out, _one, _one),
        description="muPC (Innocenti et al. 2025, Table 1), no lr scaling, as run in its experiments",
    ),
    # μPC with width-μP's Adam scaling of the hidden layers' lr, c = √(N0/N) (= 1 at the base width
    # N0, so at the base it is `mupc`): "hidden-layer Adam lr / √N" relative to the base. The μPC
    # paper ran no lr scaling (its §7); the issue-25 claim-1 study runs this arm beside `mupc`.
    "mupc_adam": Parametrization(
        input=(_in_mult, _one, _one),
        hidden=(_mupc_hidden, _one, _mup_lr),
        output=(_mean_field_out, _one, _one),
        description="muPC with the hidden layers' Adam lr scaled by sqrt(N0/N) (width-muP's Adam rule)",
    ),
    "depth_mup": Parametrization(
        input=(_in_mult, _one, _one),
        hidden=(_depth_width_mult, _one, _depth_mup_lr),
        output=(_mean_field_out, _one, _one),
        description="Depth-muP with Adam hidden-lr scaling 1/sqrt(NL) relative to the base shape",
    ),
    "mup": Parametrization(
        input=(_in_mult, _one, _one),
        hidden=(_width_mult, _one, _mup_lr),
        output=(_mean_field_out, _one, _one),
        description="width-only muP (Tensor Programs V, unit-init multiplier form)",
    ),
    # μP for target propagation (Ishikawa et al. 2025; derived in docs/reference/conventions.md#tp-mup):
    # hidden layers as in width-μP; the output keeps the standard 1/fan_in
    # variance (multiplier 1/√N, not μP's 1/N), which removes the kernel regime; Adam lr of hidden
    # and output layers ∝ 1/√N so each layer's feature update a·ΔW·φ(h) ~ (1/√N)·(η·c)·N stays O(1).
    "tp_mup": Parametrization(
        input=(_in_mult, _one, _one),
        hidden=(_width_mult, _one, _mup_lr),
        output=(_ntk_out, _one, _mup_lr),
        description="muP for TP/DTP: 1/sqrt(N) hidden and output multipliers, Adam lr ∝ 1/sqrt(N)",
    ),
    "ntp": Parametrization(
        input=(_in_mult, _one, _one),
        hidden=(_width_mult, _one, _one),
        output=(_ntk_out, _one, _one),
        description="neural tangent parameterisation (kernel-regime contrast)",
    ),
}


def resolve(
    name: str,
    *,
    input_dim: int,
    width: int,
    hidden_layers: int,
    output_dim: int,
    residual: bool,
    base_width: int | None = None,
    base_hidden_layers: int | None = None,
    fan_ins: "list[int] | tuple[int, ...] | None" = None,
) -> list[LayerParams]:
    """Per-layer (multiplier, init std, lr multiplier) for a network with ``hidden_layers`` = H.

    Returns L = H + 1 triples, input layer first. ``base_*`` default to the network's own shape.
    ``fan_ins``: each layer's fan-in (``[g.fan_in for g in cnn_layers(...)]`` for a CNN);
    default: an MLP's ``[input_dim, N, ..., N]``.
    """
    if name not in PARAMETRIZATIONS:
        raise ValueError(
            f"parametrization: unknown {name!r}; choose one of {sorted(PARAMETRIZATIONS)}"
        )
    if width < 1 or hidden_layers < 1 or input_dim < 1 or output_dim < 1:
        raise ValueError("width, hidden_layers, input_dim and output_dim must all be >= 1")
    p = PARAMETRIZATIONS[name]
    depth = hidden_layers + 1
    if fan_ins is None:
        fan_ins = [input_dim] + [width] * hidden_layers
    if len(fan_ins) != depth or min(fan_ins) < 1:
        raise ValueError(f"fan_ins: need {depth} positive fan-ins (one per layer), got {list(fan_ins)}")
    base_depth = (base_hidden_layers if base_hidden_layers is not None else hidden_layers) + 1
    out: list[LayerParams] = []
    for layer in range(depth):
        kind = p.input if layer == 0 else p.output if layer == depth - 1 else p.hidden
        shape = Shape(
            fan_in=int(fan_ins[layer]),
            width=width,
            depth=depth,
            input_dim=input_dim,
            residual=residual,
            base_width=base_width or width,
            base_depth=base_depth,
        )
        out.append(LayerParams(*(float(rule(shape)) for rule in kind)))
    return out
