"""What a sweep will cost, from its spec alone, and the bound on it (checked before anything starts:
at ``POST /sweeps`` and by ``mutransfer run``).

* **Memory of one run** — the trainer's own estimate (``mutransfer.trainer.bytes_per_run``:
  weights, optimiser moments, update temporaries, activations of a step and of a test chunk), for
  the largest cell. The trainer packs runs into chunks that fit its budget but cannot split a run,
  so one run over the budget cannot train at all. Budget: ``MUTRANSFER_MAX_RUN_MEMORY_GB``, or the
  spec's ``resources.memory_budget_gb`` when smaller.
* **Compute of the sweep** — Σ over cells of runs × run-steps × FLOP per run-step, nominal (the
  convention of ``mutransfer/throughput.py``: every weight matrix is multiplied 2T + 3 times per
  PC step, at 2·B·fan_in·fan_out FLOP each (a conv layer: fan_in = k²·C_in, times its output
  positions); BP is T = 0; TP/DTP count their feedback maps' passes as well). Bound:
  ``MUTRANSFER_MAX_SWEEP_PFLOP`` (10^15 FLOP).
* **The decide loop's runs** (a spec with ``decide:``, or ``mutransfer run --decide``) — the most
  it may add, ``decide.max_runs`` (default: the spec's own run count, sweeps/decide.py), count in
  both bounds: in the run count (``MUTRANSFER_MAX_RUNS``) and in the compute, each priced as a run of
  the most expensive cell (where the loop will add them is known only once it reports).
* **A spec that cannot run** — ``training.batch_size`` above the training examples (the trainer
  refuses it), ``dataset.train_examples`` above what the dataset has.

Refusals name the fields to shrink. Numbers are the planner's (``sweeps/plan.py``), never a run's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mutransfer.algorithms import ALGORITHMS
from mutransfer.data import DATASETS
from mutransfer.networks import Layer
from mutransfer.trainer import CellSpec, bytes_per_run, geometry_for
from sweeps.limits import Limits
from sweeps.spec import SweepSpec

GIB = 2**30
PFLOP = 1e15


def _multiplies(layer: Layer) -> int:
    """Multiply-adds of one layer for one example: fan_in × every output unit."""
    return layer.fan_in * math.prod(layer.out_shape)


def passes_per_step(cell: CellSpec) -> int:
    """Nominal passes over the weights per training step: 2T + 3 for PC; 3 for BP; TP/DTP: a
    forward and a backward pass (3), their feedback maps' 2 per feedback step, and the targets."""
    algo = ALGORITHMS[cell.algorithm]
    if algo.feedback:
        return 3 + 2 * (cell.feedback_steps or 1) + 2
    if not algo.uses_activity_lr:
        return 3
    return 2 * cell.steps_T + 3


def flop_per_run_step(cell: CellSpec) -> float:
    """Nominal FLOP of one training step of one run (module docstring)."""
    return 2.0 * cell.batch_size * sum(_multiplies(g) for g in geometry_for(cell)) * passes_per_step(cell)


def train_examples(spec: SweepSpec) -> int:
    return spec.dataset.train_examples or DATASETS[spec.dataset.name].n_train


def steps_per_run(spec: SweepSpec) -> int:
    """Training steps of one run: epochs × ⌊examples / batch⌋, or ``training.max_steps`` if fewer."""
    steps = spec.training.epochs * (train_examples(spec) // spec.training.batch_size)
    return min(steps, spec.training.max_steps) if spec.training.max_steps else steps


@dataclass(frozen=True)
class Cost:
    run_bytes: int          # the largest cell's estimate for one run
    run_cell: str           # which cell that is
    flop: float             # the whole sweep, nominal
    run_steps: int          # runs × steps per run, summed over cells (the decide loop's included)
    budget_bytes: int       # what one run may take here
    decide_runs: int = 0    # the most runs the decide loop may add (0 without decide)
    decide_flop: float = 0.0  # their nominal compute, included in ``flop``

    @property
    def pflop(self) -> float:
        return self.flop / PFLOP


def decide_runs(spec: SweepSpec) -> int:
    """The most runs the decide loop may add: its ``max_runs`` limit (sweeps/decide.py's default when
    unset); 0 for a spec without ``decide:``."""
    if spec.decide is None:
        return 0
    from sweeps.decide import limits as decide_limits

    return decide_limits(spec).max_runs


def estimate(spec: SweepSpec, limits: Limits) -> Cost:
    """The cost of ``spec`` (its run count must already be within ``limits.max_runs``: cells are planned),
    with the decide loop's most runs priced at the most expensive cell's FLOP per run."""
    from sweeps.plan import plan

    steps = steps_per_run(spec)
    worst, worst_cell, flop, run_steps, dearest = 0, "", 0.0, 0, 0.0
    # The cells of a one-point grid are the spec's cells (they do not depend on the lr/seed axes):
    # planned without building every run (20,000 run ids would cost a noticeable part of a second).
    one_point = spec.model_copy(update={"weight_lrs": spec.weight_lrs[:1], "seeds": spec.seeds[:1],
                                        "activity_lrs": spec.activity_lrs[:1] if spec.activity_lrs else spec.activity_lrs})
    for cell in plan(one_point):
        runs = len(spec.weight_lrs) * len(spec.seeds) * (
            len(spec.activity_lrs or [None]) if ALGORITHMS[cell.spec.algorithm].uses_activity_lr else 1)
        b = bytes_per_run(cell.spec, spec.logging.test_chunk)
        if b > worst:
            worst, worst_cell = b, cell.cell_id
        if spec.local_grid and (cell.spec.width, cell.spec.depth) != spec.grid_base:
            runs = _local_runs(spec, cell.spec.algorithm)
        per_run = steps * flop_per_run_step(cell.spec)
        flop += runs * per_run
        dearest = max(dearest, per_run)
        run_steps += runs * steps
    extra = decide_runs(spec)
    budget = limits.max_run_memory_gb * GIB
    if spec.resources.memory_budget_gb:
        budget = min(budget, spec.resources.memory_budget_gb * GIB)
    return Cost(worst, worst_cell, flop + extra * dearest, run_steps + extra * steps, int(budget),
                extra, extra * dearest)


def _local_runs(spec: SweepSpec, algorithm: str) -> int:
    """Runs of a local-grid cell at a non-base size (its first placement; sweeps/spec.py's count_runs)."""
    side = 2 * spec.grid.radius + 1
    beta = ALGORITHMS[algorithm].uses_activity_lr
    return (min(side, len(spec.weight_lrs)) * (min(side, len(spec.activity_lrs or [None])) if beta else 1)
            * len(spec.seeds))


def refusals(spec: SweepSpec, limits: Limits) -> list[tuple[str, str]]:
    """(field, one-line message) for every reason the spec is refused before it starts; [] if none."""
    out = []
    n_train, available = train_examples(spec), DATASETS[spec.dataset.name].n_train
    if spec.dataset.train_examples and spec.dataset.train_examples > available:
        out.append(("dataset.train_examples", f"{spec.dataset.train_examples:,} exceeds the {available:,} training "
                                              f"examples {spec.dataset.name} has; use at most {available:,}"))
    elif spec.training.batch_size > n_train:
        out.append(("training.batch_size", f"{spec.training.batch_size:,} exceeds the {n_train:,} training "
                                           "examples, so no step can be taken; use a batch_size of at most "
                                           f"{n_train:,} (or raise dataset.train_examples)"))
    if out:
        return out
    cost = estimate(spec, limits)
    if cost.run_bytes > cost.budget_bytes:
        setting = ("resources.memory_budget_gb" if spec.resources.memory_budget_gb
                   and spec.resources.memory_budget_gb * GIB < limits.max_run_memory_gb * GIB
                   else "MUTRANSFER_MAX_RUN_MEMORY_GB")
        out.append(("resources", f"one run of cell {cost.run_cell} needs about {cost.run_bytes / GIB:,.1f} GiB "
                                 f"(the trainer's estimate) but the budget is {cost.budget_bytes / GIB:,.1f} GiB "
                                 f"({setting}); shrink widths, depths, training.batch_size or logging.test_chunk"
                                 + (" or use training.precision float32" if spec.training.precision == "float64"
                                    else "")))
    own_pflop = (cost.flop - cost.decide_flop) / PFLOP
    if own_pflop > limits.max_sweep_pflop:
        out.append(("training", f"the sweep needs about {own_pflop:,.4g} PFLOP "
                                f"({cost.run_steps - cost.decide_runs * steps_per_run(spec):,} run-steps) but "
                                f"this service's limit is {limits.max_sweep_pflop:,g} PFLOP "
                                "(MUTRANSFER_MAX_SWEEP_PFLOP); shrink training.epochs or training.max_steps, "
                                "training.inference_steps, widths, depths, or the lr grid and seeds"))
    elif cost.pflop > limits.max_sweep_pflop:  # the spec's own runs fit; with the decide loop's they do not
        per_run = cost.decide_flop / cost.decide_runs / PFLOP
        room = max(0, int((limits.max_sweep_pflop - own_pflop) / per_run))
        out.append(("decide.max_runs", f"{cost.decide_runs:,} runs the decide loop may add would bring the sweep to "
                                       f"about {cost.pflop:,.4g} PFLOP (its own runs: {own_pflop:,.4g}) but this "
                                       f"service's limit is {limits.max_sweep_pflop:,g} PFLOP "
                                       f"(MUTRANSFER_MAX_SWEEP_PFLOP); " + (f"set decide.max_runs to at most {room:,}" if room
                                                                     else "shrink the spec or drop decide")))
    return out


class CostError(ValueError):
    """A spec refused before it starts; the message is one line per reason, each naming its field."""


def check(spec: SweepSpec, limits: Limits) -> None:
    """Raise :class:`CostError` for a spec over a bound (the run count first: cells are planned)."""
    from sweeps.spec import count_runs

    n = count_runs(spec)
    if n > limits.max_runs:
        raise CostError(f"runs: {n:,} exceeds the limit of {limits.max_runs:,} (MUTRANSFER_MAX_RUNS)")
    extra = decide_runs(spec)
    if n + extra > limits.max_runs:
        raise CostError(f"decide.max_runs: the spec's {n:,} runs and the {extra:,} the decide loop may add exceed "
                        f"the limit of {limits.max_runs:,} (MUTRANSFER_MAX_RUNS); "
                        + (f"set decide.max_runs to at most {limits.max_runs - n:,}" if limits.max_runs > n
                           else "shrink the spec or drop decide"))
    found = refusals(spec, limits)
    if found:
        raise CostError("; ".join(f"{field}: {msg}" for field, msg in found))
