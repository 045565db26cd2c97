"""Spec → cells → runs. A cell is one (algorithm, parameterisation, width, depth): every run in it
has identical array shapes, so the grid trainer trains them together in one compiled program."""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

from mutransfer.algorithms import ALGORITHMS
from mutransfer.data import DATASETS
from mutransfer.results import part_name
from mutransfer.trainer import CellSpec, TrainOptions
from sweeps.spec import SweepSpec, count_runs  # noqa: F401  (count_runs: re-exported)


class Run(NamedTuple):
    run_id: str
    weight_lr: float
    activity_lr: float  # NaN when the algorithm has no activity lr
    seed: int


class Cell(NamedTuple):
    cell_id: str
    spec: CellSpec
    runs: tuple[Run, ...]


def cell_id(algorithm: str, parametrization: str, width: int, depth: int) -> str:
    return f"{algorithm}-{parametrization}-w{width}-d{depth}"


def run_id(spec_hash: str, cid: str, weight_lr: float, activity_lr: float, seed: int) -> str:
    """Deterministic: the same spec and grid point always get the same id (resume-safe)."""
    key = f"{spec_hash}|{cid}|{weight_lr!r}|{activity_lr!r}|{seed}"
    return f"{cid}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def plan(spec: SweepSpec) -> list[Cell]:
    """Expand a spec into its cells, each with its runs (lr pairs × seeds), in a stable order. Under
    a local grid (``grid: {larger_sizes: local}``) only the base cell has runs here; the others are
    empty until the decide loop places their neighbourhoods (sweeps/decide.py)."""
    info = DATASETS[spec.dataset.name]
    h = spec.spec_hash()
    t = spec.training
    base = spec.grid_base if spec.local_grid else None
    cells = []
    for algo in spec.algorithms:
        betas = spec.activity_lrs if ALGORITHMS[algo].uses_activity_lr else [math.nan]
        for param in spec.parametrizations:
            for depth in spec.depths:
                for width in spec.widths:
                    cs = CellSpec(
                        algorithm=algo, parametrization=param, width=width, depth=depth,
                        activation=spec.architecture.activation, residual=spec.architecture.residual,
                        input_dim=info.input_dim, output_dim=info.num_classes,
                        batch_size=t.batch_size, base_width=spec.resolved_base_width,
                        base_depth=spec.resolved_base_depth, inference_steps=t.inference_steps,
                        loss=t.loss, optimizer=t.optimizer, output_precision=t.output_precision,
                        output_precision_exponent=t.output_precision_exponent,
                        precision=t.precision, init=t.init,
                        **_architecture(spec, info),
                        **{k: v for k, v in (("feedback_noise", t.feedback_noise),
                                             ("feedback_steps", t.feedback_steps),
                                             ("feedback_lr_ratio", t.feedback_lr_ratio)) if v is not None})
                    cid = cell_id(algo, param, width, depth)
                    if base is not None and (width, depth) != base:  # a local grid: placed by sweeps/decide.py
                        cells.append(Cell(cid, cs, ()))
                        continue
                    runs = tuple(Run(run_id(h, cid, eta, beta, seed), eta, beta, seed)
                                 for eta in spec.weight_lrs for beta in betas for seed in spec.seeds)
                    cells.append(Cell(cid, cs, runs))
    return cells


def _architecture(spec: SweepSpec, info) -> dict:
    """CellSpec fields of a CNN (none for an MLP, so MLP cells keep their defaults)."""
    a = spec.architecture
    if not a.is_cnn:
        return {}
    return {"architecture": "cnn", "kernel_size": a.resolved_kernel_size,
            "downsample_layers": a.resolved_downsample_layers, "image_shape": tuple(info.image_shape)}


class Trial(NamedTuple):
    """The unit of scheduling and of atomic output: a whole cell, or a chunk of its runs."""

    part: str  # results part name: cell-<cell_id>[-chunk-<k>]
    cell: Cell
    runs: tuple[Run, ...]


def trials(spec: SweepSpec) -> list[Trial]:
    """Cells → trials. A cell with more runs than ``resources.max_runs_per_trial`` is split into
    equal chunks (deterministically, so a resumed sweep plans exactly the same parts)."""
    cap = spec.resources.max_runs_per_trial
    out = []
    for cell in plan(spec):
        if not cell.runs:
            continue
        if cap is None or len(cell.runs) <= cap:
            out.append(Trial(part_name(cell.cell_id), cell, cell.runs))
            continue
        n_chunks = math.ceil(len(cell.runs) / cap)
        size = math.ceil(len(cell.runs) / n_chunks)
        for k in range(n_chunks):
            out.append(Trial(part_name(cell.cell_id, k), cell, cell.runs[k * size:(k + 1) * size]))
    return out


def train_options(spec: SweepSpec) -> TrainOptions:
    gb = spec.resources.memory_budget_gb
    return TrainOptions(
        epochs=spec.training.epochs, max_steps=spec.training.max_steps,
        log_every=spec.logging.every, eval_every=spec.logging.eval_every,
        divergence_factor=spec.training.divergence_factor,
        memory_budget_bytes=int(gb * 2**30) if gb else None, test_chunk=spec.logging.test_chunk)

