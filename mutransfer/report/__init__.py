"""Optimum-shift report: does the best learning rate stay put as the network grows? (docs/reference/transfer-analysis.md)

A package by job:

* :mod:`.metrics`     — metric columns, cost/regret conventions, divergence policies, table prep
* :mod:`.surfaces`    — (η, β) grid, per-seed cost cube, seed means, grid argmin, sub-grid fit
* :mod:`.uncertainty` — seed bootstrap and percentile confidence intervals
* :mod:`.verdict`     — the verdict rules and reason codes (one table)
* :mod:`.transfer`    — the base optimum's regret and argmin moves at every size, with CIs
* :mod:`.views`       — the robustness views ``by_base`` and ``by_budget``
* :mod:`.analysis`    — one group × size axis: optima, fits, drift slopes, verdict, views
* :mod:`.build`       — :func:`optimum_shift_report` over a whole runs table (groups, provisional)
* :mod:`.format`      — the text report; :mod:`.encoding` — number formatting and JSON encoding
* :mod:`.model`       — the typed report (:class:`Report` … :class:`SizeRow`, :class:`Verdict`,
                        :class:`Reason`) and its JSON; :mod:`.schema` — the JSON Schema of that JSON
"""

from .build import build_report, optimum_shift_report
from .encoding import fmt_lr, fmt_num, fmt_pct, fmt_regret
from .format import format_report, provisional_line
from .metrics import (BUDGET_COLUMNS, DIVERGED_POLICIES, METRICS, MetricInfo, check_diverged, metric_info,
                      with_run_defaults)
from .model import (MISSING_FIELDS, REASON_FIELDS, Analysis, ArgminFreq, BudgetSize, ByBase, ByBudget, DriftSlope,
                    EdgeFlag, GridPoint, Missing, Provisional, Reason, ReasonCode, RegretAt, Report, SizeRow, Surface,
                    SingleSize, Thresholds, Verdict)
from .surfaces import surface
from .verdict import REASONS, VERDICTS

__all__ = [
    "Analysis", "ArgminFreq", "BudgetSize", "ByBase", "ByBudget", "DriftSlope", "EdgeFlag", "GridPoint",
    "MISSING_FIELDS", "Missing", "Provisional", "REASON_FIELDS", "Reason", "ReasonCode", "RegretAt", "Report",
    "SingleSize", "SizeRow", "Surface", "Thresholds", "Verdict", "build_report", "report_schema",
    "BUDGET_COLUMNS", "DIVERGED_POLICIES", "METRICS", "MetricInfo", "REASONS", "VERDICTS", "check_diverged",
    "fmt_lr", "fmt_num", "fmt_pct", "fmt_regret", "format_report", "metric_info", "optimum_shift_report",
    "provisional_line", "surface", "with_run_defaults",
]


def report_schema() -> dict:
    """The JSON Schema of the report's JSON (:func:`mutransfer.report.schema.report_schema`)."""
    from .schema import report_schema as generate

    return generate()
