"""Table-driven analyses for the sweep layer: a config dataclass in, a DataFrame out, one
registry (:data:`ANALYSES`) that specs (``analyses:``) and ``mutransfer diagnose`` read."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mutransfer.diagnostics import alignment as _alignment
from mutransfer.diagnostics.conditioning import Conditioning, block_condition_number, condition_number
from mutransfer.diagnostics.coordinates import coordinate_check
from mutransfer.diagnostics.during_training import TrainingDiagnosticsConfig, run_training_diagnostics
from mutransfer.diagnostics.hessian import activity_hessian, activity_hessian_blocks
from mutransfer.diagnostics.linear import _linear_maps, _output_jacobians, linear_hessian_blocks, theorem1_energy
from mutransfer.diagnostics.training import _as_xy, _build, _Trainer
from mutransfer.networks import Net, Weights
from mutransfer.pc import PCConfig

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class HessianConditionConfig:
    """κ(H_z) at initialisation over a width × depth grid (μPC paper Figs 2, 4, A.21).

    ``input_dim``/``output_dim`` None → equal to the width (as the μPC authors' code). Inputs x ~
    N(0, I), targets one-hot of a random class, one example. ``method``: "auto" (closed form for
    linear nets, per-layer blocks otherwise), "closed_form", "blocks" or "autodiff" (dense).
    ``eig``: "auto" (dense float64 up to H·N ≤ 1024, else Lanczos), "dense" or "lanczos".
    ``precision`` "float64" runs the autodiff under ``jax.enable_x64``."""

    parametrizations: tuple[str, ...] = ("sp", "mupc")
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    activation: str = "linear"
    residual: bool = True
    input_dim: int | None = None
    output_dim: int | None = None
    seeds: tuple[int, ...] = (0,)
    method: str = "auto"
    eig: str = "auto"
    precision: str = "float64"


@dataclasses.dataclass(frozen=True)
class HessianTrainingConfig:
    """κ(H_z) during training (μPC paper Fig. 3): train with ``algorithm`` and Adam (lr ``lr``),
    every ``eval_every`` steps compute κ of the per-example Hessian of probe example 0 at its
    forward-pass activities. ``dataset``: a name for :func:`mutransfer.data.load_dataset` or
    "synthetic"."""

    parametrization: str = "sp"
    width: int = 32
    depth: int = 8
    activation: str = "tanh"
    residual: bool = False
    dataset: str = "digits"
    num_examples: int = 1024
    algorithm: str = "pc"
    lr: float = 1e-3
    activity_lr: float = 0.1
    inference_steps: int | None = None
    batch_size: int = 64
    steps: int = 50
    eval_every: int = 10
    seed: int = 0
    eig: str = "auto"
    precision: str = "float64"


@dataclasses.dataclass(frozen=True)
class LossEnergyRatioConfig:
    """Loss / F(z*) for LINEAR nets over a width × depth grid (μPC paper Theorem 1, Fig. 6), at
    init and optionally every ``eval_every`` of ``steps`` training steps (``algorithm``, Adam lr
    ``lr``). The ratio is measured on a fixed probe batch of ``batch_size`` examples."""

    parametrization: str = "mupc"
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    residual: bool = True
    dataset: str = "synthetic"
    input_dim: int = 64
    output_dim: int = 10
    num_examples: int = 1024
    batch_size: int = 64
    algorithm: str = "pc"
    lr: float = 1e-1
    activity_lr: float = 0.1
    steps: int = 0
    eval_every: int = 10
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class CoordinateCheckConfig:
    """Arguments of :func:`coordinate_check`, one row per parametrization in ``parametrizations``."""

    parametrizations: tuple[str, ...] = ("sp", "mupc")
    widths: tuple[int, ...] = (64, 128, 256)
    depths: tuple[int, ...] = (8,)
    activation: str = "tanh"
    residual: bool = True
    algorithm: str = "pc"
    dataset: str = "synthetic"
    input_dim: int = 64
    output_dim: int = 10
    num_examples: int = 2048
    batch_size: int = 64
    steps: int = 3
    record_every: int | None = 1  # every step, as mup's coordinate check draws one panel per step
    lr: float = 1e-2
    activity_lr: float = 0.1
    inference_steps: int | None = None
    probe_size: int = 256
    seed: int = 0


def _hessian_conditioning(net: Net, weights: Weights, x: Array, y: Array, *, method: str,
                          eig: str) -> tuple[Conditioning, str]:
    if method == "auto":
        method = "closed_form" if net.activation == "linear" else "blocks"
    if method == "closed_form":
        blocks = linear_hessian_blocks(net, weights)
    elif method == "blocks":
        blocks = activity_hessian_blocks(net, weights, x, y, PCConfig(inference_steps=0))
    elif method == "autodiff":
        Hd = activity_hessian(net, weights, x, y, PCConfig(inference_steps=0))
        return condition_number(Hd, dtype="float64" if Hd.dtype == jnp.float64 else "float32"), method
    else:
        raise ValueError(f"method: unknown {method!r}")
    return block_condition_number(blocks, method=eig), method


def _run_hessian_condition(cfg: HessianConditionConfig) -> pd.DataFrame:
    rows = []
    with jax.enable_x64(cfg.precision == "float64"):
        dtype = jnp.float64 if cfg.precision == "float64" else jnp.float32
        for param in cfg.parametrizations:
            for seed in cfg.seeds:
                for depth in cfg.depths:
                    for width in cfg.widths:
                        D = cfg.input_dim or width
                        C = cfg.output_dim or width
                        net, w, _ = _build(param, input_dim=D, width=width, depth=depth, output_dim=C,
                                           activation=cfg.activation, residual=cfg.residual, seed=seed, dtype=dtype)
                        rng = np.random.default_rng(seed + 1)
                        x = jnp.asarray(rng.standard_normal((1, D)), dtype)
                        y = jax.nn.one_hot(jnp.asarray([rng.integers(C)]), C, dtype=dtype)
                        t0 = time.perf_counter()
                        c, how = _hessian_conditioning(net, w, x, y, method=cfg.method, eig=cfg.eig)
                        rows.append({"parametrization": param, "activation": cfg.activation,
                                     "residual": cfg.residual, "width": width, "depth": depth, "seed": seed,
                                     "n": width * depth, "method": how, **c._asdict(),
                                     "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def _run_hessian_training(cfg: HessianTrainingConfig) -> pd.DataFrame:
    rows = []
    with jax.enable_x64(cfg.precision == "float64"):
        dtype = jnp.float64 if cfg.precision == "float64" else jnp.float32
        x, labels, C = _as_xy(cfg.dataset, seed=cfg.seed, input_dim=64, output_dim=10, num_examples=cfg.num_examples)
        net, w, lr_mults = _build(cfg.parametrization, input_dim=x.shape[1], width=cfg.width, depth=cfg.depth,
                                  output_dim=C, activation=cfg.activation, residual=cfg.residual, seed=cfg.seed,
                                  dtype=dtype)
        pcc = PCConfig(inference_steps=cfg.depth if cfg.inference_steps is None else cfg.inference_steps)
        tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=cfg.algorithm, cfg=pcc, eta=cfg.lr,
                      beta=cfg.activity_lr, batch_size=cfg.batch_size, seed=cfg.seed)
        xp = jnp.asarray(x[:1], dtype)
        yp = jax.nn.one_hot(jnp.asarray(labels[:1]), C, dtype=dtype)
        loss = math.nan
        for t in range(cfg.steps + 1):
            if t > 0:
                loss = tr.train(1)
            if t % cfg.eval_every == 0 or t == cfg.steps:
                c, how = _hessian_conditioning(net, tr.weights, xp, yp, method="auto", eig=cfg.eig)
                rows.append({"parametrization": cfg.parametrization, "activation": cfg.activation,
                             "residual": cfg.residual, "width": cfg.width, "depth": cfg.depth, "step": t,
                             "train_loss": loss, "method": how, **c._asdict()})
    return pd.DataFrame(rows)


def _run_loss_energy_ratio(cfg: LossEnergyRatioConfig) -> pd.DataFrame:
    rows = []
    x, labels, C = _as_xy(cfg.dataset, seed=cfg.seed, input_dim=cfg.input_dim, output_dim=cfg.output_dim,
                          num_examples=cfg.num_examples)
    xp = x[:cfg.batch_size].astype(np.float64)
    yp = np.eye(C)[labels[:cfg.batch_size]]
    for depth in cfg.depths:
        for width in cfg.widths:
            net, w, lr_mults = _build(cfg.parametrization, input_dim=x.shape[1], width=width, depth=depth,
                                      output_dim=C, activation="linear", residual=cfg.residual, seed=cfg.seed)
            tr = None
            if cfg.steps > 0:
                tr = _Trainer(net, w, lr_mults, x, labels, C, algorithm=cfg.algorithm,
                              cfg=PCConfig(inference_steps=depth), eta=cfg.lr, beta=cfg.activity_lr,
                              batch_size=cfg.batch_size, seed=cfg.seed)
            for t in range(cfg.steps + 1):
                if t > 0:
                    tr.train(1)
                if t % cfg.eval_every == 0 or t == cfg.steps:
                    wt = tr.weights if tr is not None else w
                    _, _, W1a = _linear_maps(net, wt)
                    f = xp @ (_output_jacobians(net, wt)[0] @ W1a).T
                    loss = float(0.5 * np.mean(np.sum((yp - f) ** 2, axis=1)))
                    F = theorem1_energy(net, wt, xp, yp)
                    rows.append({"parametrization": cfg.parametrization, "residual": cfg.residual, "width": width,
                                 "depth": depth, "step": t, "loss": loss, "energy": F, "ratio": loss / F})
    return pd.DataFrame(rows)


def _run_coordinate_check(cfg: CoordinateCheckConfig) -> pd.DataFrame:
    frames = [coordinate_check(p, widths=cfg.widths, depths=cfg.depths, activation=cfg.activation,
                               residual=cfg.residual, algorithm=cfg.algorithm, data=cfg.dataset,
                               input_dim=cfg.input_dim, output_dim=cfg.output_dim, num_examples=cfg.num_examples,
                               batch_size=cfg.batch_size, steps=cfg.steps, record_every=cfg.record_every,
                               lr=cfg.lr, activity_lr=cfg.activity_lr, inference_steps=cfg.inference_steps,
                               probe_size=cfg.probe_size, seed=cfg.seed)
              for p in cfg.parametrizations]
    return pd.concat(frames, ignore_index=True)


class Analysis(NamedTuple):
    """One analysis kind: its config dataclass, the function config → DataFrame, a description."""

    config: type
    run: Callable[[Any], pd.DataFrame]
    description: str


ANALYSES: dict[str, Analysis] = {
    "hessian_condition": Analysis(HessianConditionConfig, _run_hessian_condition,
                                  "κ of the activity Hessian at init over widths × depths (μPC Figs 2, 4)"),
    "hessian_condition_during_training": Analysis(HessianTrainingConfig, _run_hessian_training,
                                                  "κ of the activity Hessian during training (μPC Fig. 3)"),
    "training_diagnostics": Analysis(TrainingDiagnosticsConfig, run_training_diagnostics,
                                     "κ(H_z), loss / F(z*) and test accuracy over training, grid of params × "
                                     "widths × depths × seeds (μPC Figs 3 and 6 at t > 0)"),
    "loss_energy_ratio": Analysis(LossEnergyRatioConfig, _run_loss_energy_ratio,
                                  "loss / equilibrated energy of linear nets (μPC Theorem 1, Fig. 6)"),
    "coordinate_check": Analysis(CoordinateCheckConfig, _run_coordinate_check,
                                 "mean |z_l| per layer at init and after k steps across widths/depths"),
    # cos(PC equilibrium gradient, BP gradient) across widths and output precisions (Ishikawa et al.)
    _alignment.ALIGNMENT[0]: Analysis(*_alignment.ALIGNMENT[1:]),
}


def run_analysis(kind: str, config: Mapping[str, Any] | Any | None = None) -> pd.DataFrame:
    """Run analysis ``kind`` with ``config`` (its config dataclass, a mapping of its fields — lists
    are accepted for tuple fields — or None for the defaults). Unknown kinds or fields raise
    ``ValueError`` naming them."""
    if kind not in ANALYSES:
        raise ValueError(f"analysis: unknown {kind!r}; choose one of {sorted(ANALYSES)}")
    a = ANALYSES[kind]
    if config is None:
        config = a.config()
    elif isinstance(config, Mapping):
        fields = {f.name for f in dataclasses.fields(a.config)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"{kind}: unknown config field(s) {unknown}; allowed: {sorted(fields)}")
        tuple_fields = {f.name for f in dataclasses.fields(a.config) if isinstance(f.default, tuple)}

        def coerce(k, v):
            if isinstance(v, (list, tuple)):
                return tuple(v)
            return (v,) if k in tuple_fields else v  # a single value for a list-valued field
        config = a.config(**{k: coerce(k, v) for k, v in config.items()})
    return a.run(config)
