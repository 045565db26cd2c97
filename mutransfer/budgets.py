"""The step-budget checkpoints: the one place for the budget fractions.

The trainer records, besides ``min_train_loss`` (the running minimum of the training loss over all
S steps), the running minimum over the first ⌈f·S⌉ steps for every fraction f in
:data:`BUDGET_FRACTIONS`, in the runs-table column :func:`budget_column` (f) —
``min_train_loss_25pct`` and ``min_train_loss_50pct``. The runs table's schema
(:mod:`mutransfer.results`), the trainer (:mod:`mutransfer.trainer`) and the report's ``by_budget``
view (:data:`mutransfer.report.metrics.BUDGET_COLUMNS`) all read them from here.
"""

from __future__ import annotations

import math

BUDGET_FRACTIONS: tuple[float, ...] = (0.25, 0.5)  # fractions f < 1 of the step budget S


def budget_column(fraction: float) -> str:
    """``min_train_loss_25pct`` for 0.25: the runs-table column of a budget fraction."""
    return f"min_train_loss_{round(100 * fraction)}pct"


def budget_steps(fraction: float, total: int) -> int:
    """⌈f·S⌉ (at least 1): the steps counted by a budget fraction f of S total steps."""
    return max(1, math.ceil(fraction * total - 1e-9))


BUDGET_COLUMN_NAMES: tuple[str, ...] = tuple(budget_column(f) for f in BUDGET_FRACTIONS)
