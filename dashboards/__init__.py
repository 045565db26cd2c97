"""Dashboards for transfer sweeps: plotly figures (plain functions of the ``runs`` / ``curves``
tables and of the optimum-shift report dict) and offline HTML pages that embed them.

Depends on :mod:`mutransfer` only (never on ``sweeps``, ``service``, ray or fastapi).
"""

from .figures import (
    EMPTY_TEXT,
    comparison,
    companion_analysis,
    empty_figure,
    loss_vs_lr,
    optimum_shift,
    select_analysis,
    training_curves,
    transfer_contours,
)
from .pages import (
    DEFAULT_PLOTLY_URL,
    compare_page,
    contour_page,
    figure_html,
    index_page,
    plotly_js,
    report_page,
    shift_page,
    sweep_links,
)

__all__ = [
    "EMPTY_TEXT",
    "DEFAULT_PLOTLY_URL",
    "transfer_contours",
    "loss_vs_lr",
    "optimum_shift",
    "comparison",
    "training_curves",
    "empty_figure",
    "select_analysis",
    "companion_analysis",
    "plotly_js",
    "contour_page",
    "shift_page",
    "compare_page",
    "index_page",
    "report_page",
    "figure_html",
    "sweep_links",
]
