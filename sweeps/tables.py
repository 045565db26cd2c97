"""A trained cell's arrays → rows of the ``runs`` and ``curves`` tables (mutransfer.results)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mutransfer.budgets import BUDGET_FRACTIONS, budget_column
from mutransfer.trainer import CellResult
from sweeps.plan import Trial
from sweeps.spec import SweepSpec


def trial_tables(spec: SweepSpec, trial: Trial, result: CellResult, steps_per_epoch: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    cell = trial.cell
    cs = cell.spec
    n = len(trial.runs)
    ids = np.array([r.run_id for r in trial.runs])
    runs = pd.DataFrame({
        "run_id": ids,
        "cell_id": cell.cell_id,
        "algorithm": cs.algorithm,
        "parametrization": cs.parametrization,
        "width": cs.width,
        "depth": cs.depth,
        "activation": cs.activation,
        "dataset": spec.dataset.name,
        **{k: result.runs[k] for k in ("weight_lr", "activity_lr", "seed", "status", "min_train_loss",
                                       *map(budget_column, BUDGET_FRACTIONS),
                                       "final_train_loss", "best_test_acc", "final_test_acc", "steps",
                                       "wall_s", "diverged_step", "diverge_reason",
                                       "diverge_step")},
        "spec_hash": spec.spec_hash(),
    }, index=range(n))
    c = result.curves
    points = c["step"].shape[1]
    step = c["step"].reshape(-1)
    curves = pd.DataFrame({
        "run_id": np.repeat(ids, points),
        "step": step,
        "epoch": (step // max(steps_per_epoch, 1)).astype(np.int32),
        **{k: c[k].reshape(-1) for k in ("train_loss", "energy_start", "energy_end", "test_loss",
                                         "test_acc")},
    })
    return runs, curves
