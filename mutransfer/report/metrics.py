"""Metric semantics of the optimum-shift report: which runs-table column, which way is better, how a
run that diverged counts, and how regret is measured (docs/reference/transfer-analysis.md#metrics-and-regret).

Cost convention. Every metric becomes a *cost* that is minimised: a loss is its own cost, an
accuracy a (a fraction in [0, 1]) becomes the error rate 1 − a. Reported values are in natural units.

Regret of using the base size's optimum (η*_b, β*_b) at size s, whose own optimum is (η*_s, β*_s):

* loss metrics, relative:       r_s = M_s(η*_b, β*_b) / M_s(η*_s, β*_s) − 1       (0.05 = 5 %)
* accuracy metrics, in points:  r_s = A_s(η*_s, β*_s) − A_s(η*_b, β*_b)            (0.01 = 1 pp)

  (percentage points of accuracy, not an error-rate ratio: 98 % vs 97 % accuracy is 1 pp, where the
  error-rate ratio would call it 50 %).

Diverged runs (``status`` diverged or failed, or an ``ok`` run whose metric is not finite) — the
report option ``diverged`` (:data:`DIVERGED_POLICIES`):

* ``inf`` (default): the run's cost is +∞, so one diverging seed in N makes that grid point +∞ (an
  lr that diverges one time in N is unusable in practice and must not win the argmin).
* ``best_before``: a diverged run keeps the value it recorded before it blew up — for
  ``min_train_loss`` the minimum training loss over the steps before divergence (the trainer
  freezes a run at its first non-finite or exploding step, mutransfer/trainer.py), for
  ``best_test_acc`` the best test accuracy measured before it. This is the μPC paper's script's
  rule. A diverged run with no finite value (it blew up at step 0; ``final_*`` metrics of a
  diverged run are NaN) is still +∞. ``failed`` runs (an error, not a divergence) are always +∞.

Budget checkpoints (the ``by_budget`` view, :data:`BUDGET_COLUMNS`, fractions from
:mod:`mutransfer.budgets`): the trainer writes ``min_train_loss_25pct`` / ``min_train_loss_50pct`` — the running minimum of the training loss over
the first ⌈f·S⌉ steps (S = the run's step budget), with the same divergence semantics as
``min_train_loss``. A run counts as diverged at checkpoint f only if its ``diverged_step`` < ⌈f·S⌉.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mutransfer.budgets import BUDGET_FRACTIONS, budget_column

SIZE_AXES: tuple[str, ...] = ("width", "depth")
FIXED_SETTINGS: tuple[str, ...] = ("algorithm", "parametrization", "activation", "dataset")
ETA_COL = "weight_lr"
BETA_COL = "activity_lr"
OK_STATUS = "ok"
DIVERGED = "diverged"
BAD_STATUSES = frozenset({"diverged", "failed"})

# policy -> one-line meaning (the report option ``diverged``; see the module docstring)
DIVERGED_POLICIES: dict[str, str] = {
    "inf": "a diverged run counts +inf (one diverged seed makes its grid point +inf)",
    "best_before": "a diverged run keeps its metric from before it diverged (the muPC paper's rule)",
}

# metric -> ((fraction of the step budget, runs column), ...) for the by_budget view
BUDGET_COLUMNS: dict[str, tuple[tuple[float, str], ...]] = {
    "min_train_loss": (*((f, budget_column(f)) for f in BUDGET_FRACTIONS), (1.0, "min_train_loss")),
}


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric column.

    ``direction`` is the natural sense ("min": lower is better, "max": higher is better). ``kind``
    decides the internal cost (a loss is its own cost, an accuracy becomes 1 − acc) and the regret:
    relative for a loss, percentage points for an accuracy (module docstring). ``regret_tol`` is the
    default tolerance of the verdict in those units.
    """

    column: str
    direction: Literal["min", "max"]
    kind: Literal["loss", "accuracy"]
    description: str

    @property
    def regret_unit(self) -> str:
        return "relative" if self.kind == "loss" else "accuracy points"

    @property
    def regret_tol(self) -> float:
        return 0.05 if self.kind == "loss" else 0.01

    def to_cost(self, values: Any) -> np.ndarray:
        """Natural values -> cost to minimise; non-finite values become +inf."""
        v = np.asarray(values, dtype=float)
        cost = v if self.kind == "loss" else 1.0 - v
        return np.where(np.isfinite(cost), cost, np.inf)

    def from_cost(self, cost: float) -> float:
        """Cost -> natural units (an infinite error rate maps to accuracy -inf)."""
        return float(cost) if self.kind == "loss" else float(1.0 - cost)

    def regret(self, cost_at_base_opt: float, cost_at_own_opt: float | None) -> float:
        """Regret from two costs (module docstring); inf if the base optimum diverged here, NaN when
        it was not run here (unknown) or this size has no finite optimum."""
        c_b, c_s = cost_at_base_opt, cost_at_own_opt
        if math.isnan(c_b):
            return math.nan
        if not math.isfinite(c_b):
            return math.inf
        if c_s is None or not math.isfinite(c_s):
            return math.nan
        if c_b == c_s:
            return 0.0
        if self.kind == "accuracy":
            return float(c_b - c_s)  # error-rate difference = accuracy difference
        if c_s <= 0:  # ratio undefined for a zero (or negative) optimum cost
            return math.inf
        return float(c_b / c_s - 1.0)


METRICS: dict[str, MetricInfo] = {
    "min_train_loss": MetricInfo("min_train_loss", "min", "loss", "minimum training loss"),
    "final_train_loss": MetricInfo("final_train_loss", "min", "loss", "final training loss"),
    "best_test_acc": MetricInfo("best_test_acc", "max", "accuracy", "best test accuracy"),
    "final_test_acc": MetricInfo("final_test_acc", "max", "accuracy", "final test accuracy"),
}
DEFAULT_METRIC = "min_train_loss"  # the report's metric when none is named (build_report, the CLI, the pages)


def metric_info(metric: str) -> MetricInfo:
    if metric not in METRICS:
        raise ValueError(f"unknown metric={metric!r}; allowed values: {sorted(METRICS)}")
    return METRICS[metric]


def check_diverged(policy: str) -> str:
    """The divergence policy, or a one-line ValueError naming the option and its allowed values."""
    if policy not in DIVERGED_POLICIES:
        raise ValueError(f"unknown diverged={policy!r}; allowed values: {sorted(DIVERGED_POLICIES)}")
    return policy


def with_run_defaults(runs: pd.DataFrame) -> pd.DataFrame:
    """A copy of a runs table with its optional columns filled in where absent: activity_lr NaN
    (algorithms without one), seed 0, status ok."""
    df = runs.copy()
    for column, default in ((BETA_COL, np.nan), ("seed", 0), ("status", OK_STATUS)):
        if column not in df.columns:
            df[column] = default
    return df


def lr_key(x: float) -> float:
    """Canonical lr value so that 0.1 and 0.1000000000001 land on one grid point."""
    return float(f"{x:.10g}") if np.isfinite(x) else float("nan")


def run_costs(df: pd.DataFrame, column: str, info: MetricInfo, diverged: str,
              diverged_rows: np.ndarray | None = None) -> np.ndarray:
    """Cost of every row of a prepared table for ``column`` under a divergence policy.

    ``diverged_rows`` (bool per row) marks the runs diverged at the point measured (default: status
    diverged); ``failed`` rows are always +inf."""
    status = df["status"].astype(str).str.lower().to_numpy()
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float) if column in df.columns \
        else np.full(len(df), np.nan)
    cost = info.to_cost(values)
    div = status == DIVERGED if diverged_rows is None else np.asarray(diverged_rows, bool)
    bad = (status == "failed") | (div if diverged == "inf" else np.zeros(len(df), bool))
    return np.where(bad, np.inf, cost)


def prepare(runs: pd.DataFrame, info: MetricInfo, diverged: str = "inf") -> tuple[pd.DataFrame, list[str]]:
    """Add ``_cost``, ``_bad``, canonical lrs and defaults for optional columns; drop non-results.

    Rows with a status other than ok/diverged/failed (e.g. ``running``) are not results yet and are
    treated as missing. Returns the prepared frame and human-readable notes about what was dropped.
    """
    notes: list[str] = []
    missing = [c for c in (ETA_COL, info.column) if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks required column(s): {missing}")
    df = with_run_defaults(runs)
    df[ETA_COL] = pd.to_numeric(df[ETA_COL], errors="coerce").astype(float).map(lr_key)
    df[BETA_COL] = pd.to_numeric(df[BETA_COL], errors="coerce").astype(float).map(lr_key)
    status = df["status"].astype(str).str.lower()
    pending = ~(status.eq(OK_STATUS) | status.isin(BAD_STATUSES))
    if pending.any():
        notes.append(
            f"{int(pending.sum())} run(s) with status other than ok/diverged/failed "
            f"(e.g. {status[pending].iloc[0]!r}) ignored as missing"
        )
    bad_eta = ~(df[ETA_COL] > 0)
    if (bad_eta & ~pending).any():
        notes.append(f"{int((bad_eta & ~pending).sum())} run(s) with non-positive/NaN weight_lr ignored")
    df = df.loc[~pending & ~bad_eta].copy()
    df["_cost"] = run_costs(df, info.column, info, diverged)
    df["_bad"] = ~np.isfinite(df["_cost"].to_numpy())
    return df, notes
