"""How long a sweep would take on this machine (``mutransfer run SPEC --dry-run``).

Measured, not assumed: the spec's smallest cell is trained here, in memory (nothing written, no
Ray), with as many runs as its plan gives it for ``PROBE_STEPS`` steps, and the pace of the steps
after compilation is scaled to every cell by the nominal work of one step
(sweeps/cost.py's nominal FLOP per run-step: 2·B·Σ fan_in·fan_out·(2T + 3) for PC, 3 passes for BP,
TP/DTP's feedback passes too; conv layers by their output positions) times its runs,
never below the probe's own pace (small cells are overhead-bound). Each cell adds the probe's
compile time. The result is an estimate for one worker training cells one after another; the
Ray executor runs ``max_concurrent_trials`` at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mutransfer.algorithms import ALGORITHMS
from sweeps.cost import flop_per_run_step, steps_per_run
from sweeps.plan import Cell, plan, train_options
from sweeps.spec import SweepSpec

PROBE_STEPS = 20


@dataclass(frozen=True)
class Estimate:
    per_run_s: dict[str, float]  # cell id -> seconds of training for one run (all its steps)
    compile_s: float  # per cell (the probe's)
    probe_cell: str
    probe_runs: int

    def seconds(self, runs_by_cell: dict[str, int]) -> float:
        """Training ``runs_by_cell`` runs, cell after cell, compile included."""
        return sum(self.per_run_s[c] * n + self.compile_s for c, n in runs_by_cell.items() if n)

    def worst_per_run(self) -> float:
        return max(self.per_run_s.values())


def _work(spec: SweepSpec, cell: Cell) -> float:
    return flop_per_run_step(cell.spec)


def planned_runs(spec: SweepSpec) -> dict[str, int]:
    """Cell id -> the runs the spec plans there (a local grid's first neighbourhood included)."""
    side = 2 * spec.grid.radius + 1 if spec.grid else 1
    out = {}
    for c in plan(spec):
        if c.runs:
            out[c.cell_id] = len(c.runs)
        else:
            beta = ALGORITHMS[c.spec.algorithm].uses_activity_lr
            out[c.cell_id] = (min(side, len(spec.weight_lrs)) * (min(side, len(spec.activity_lrs or [1]))
                                                                 if beta else 1) * len(spec.seeds))
    return out


def estimate(spec: SweepSpec) -> Estimate:
    """Probe this machine with the smallest cell; scale to the spec's plan (module docstring)."""
    from mutransfer.trainer import train_cell
    from sweeps.worker import device_data

    cells = plan(spec)
    probe = min((c for c in cells if c.runs), key=lambda c: _work(spec, c))
    runs = probe.runs
    opts = train_options(spec)._replace(max_steps=PROBE_STEPS, epochs=1, eval_every=PROBE_STEPS)
    data = device_data(spec.dataset, spec.logging.test_chunk)
    res = train_cell(probe.spec, data, [r.weight_lr for r in runs], [r.activity_lr for r in runs],
                     [r.seed for r in runs], opts)
    step_s = res.train_s / PROBE_STEPS  # one step of all the probe's runs together
    unit = _work(spec, probe)
    steps = steps_per_run(spec)
    per_run = {c.cell_id: steps * step_s / len(runs) * max(1.0, _work(spec, c) / unit) for c in cells}
    return Estimate(per_run, res.compile_s, probe.cell_id, len(runs))


def clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
