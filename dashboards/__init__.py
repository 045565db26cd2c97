"""Dashboards for transfer sweeps: plotly figures (plain functions of the ``runs`` / ``curves`` /
diagnostics tables and of the typed optimum-shift report, :class:`mutransfer.report.Report`, or its
JSON) and offline HTML pages that embed them. Pages read the report's fields, never its JSON keys.

Where each page's figures live (one module per view):

=====================  ==============================  ==============================================
page                   route                           module
=====================  ==============================  ==============================================
sweeps + submit form   ``/``                           :mod:`dashboards.index`
sweep overview         ``/sweeps/{id}`` (browsers)     :mod:`dashboards.overview`
transfer contours      ``/sweeps/{id}/contours``       :mod:`dashboards.contours` (surfaces),
                                                       :mod:`dashboards.lr_sweep` (metric vs log2 lr),
                                                       :mod:`dashboards.optimum_curves` (curves at optima)
optimum shift          ``/sweeps/{id}/shift``          :mod:`dashboards.shift`
diagnostics            ``/sweeps/{id}/diagnostics``    :mod:`dashboards.diagnostics`
runs table             ``/sweeps/{id}/table``          :mod:`dashboards.runs_table`
one run's curves       ``/sweeps/{id}/runs/{run_id}``  :mod:`dashboards.curves`
report                 ``/sweeps/{id}/report``         :mod:`dashboards.report`
compare                ``/compare?a=ID&b=ID``          :mod:`dashboards.compare`
errors (HTML 404/422)  any page route                  :mod:`dashboards.errors`
=====================  ==============================  ==============================================

Shared: :mod:`dashboards.common` (figure helpers: scales, log ticks, analysis selection),
:mod:`dashboards.runlinks` (the runs behind a mark and the link that opens them),
``dashboards/static/`` (the pages' CSS and JavaScript, served at ``/static/dashboards/``),
:mod:`dashboards.html` (page chrome: document, tabs, metric selector, export buttons),
:mod:`dashboards.verdicts` (verdict badges and reasons).

Depends on :mod:`mutransfer` only (never on ``sweeps``, ``service``, ray or fastapi).
"""

from .common import EMPTY_TEXT, companion_analysis, empty_figure, log_axis, log_ticks, select_analysis
from .compare import compare_page, comparison, comparison_pairs
from .contours import contour_page, transfer_contours
from .curves import default_selection, run_figure, run_page, training_curves
from .diagnostics import coordinate_check_figure, diagnostic_figure, diagnostics_page
from .errors import error_page
from .html import DEFAULT_PLOTLY_URL, figure_html, plotly_js, static_file, static_url, sweep_links
from .index import index_page
from .lr_sweep import loss_vs_lr, lr_transfer
from .optimum_curves import optimum_curves, optimum_run_ids
from .overview import overview_page, pandas_snippets
from .report import report_page
from .runs_table import runs_table_page, table_payload
from .shift import optimum_shift, shift_page
from .verdicts import provisional_of, verdict_badge

__all__ = [
    "EMPTY_TEXT", "DEFAULT_PLOTLY_URL",
    # figures
    "transfer_contours", "loss_vs_lr", "lr_transfer", "optimum_shift", "comparison", "comparison_pairs",
    "training_curves", "optimum_curves", "optimum_run_ids", "run_figure", "coordinate_check_figure", "diagnostic_figure", "empty_figure",
    "select_analysis", "companion_analysis", "default_selection", "log_ticks", "log_axis",
    # pages
    "plotly_js", "index_page", "overview_page", "pandas_snippets", "contour_page", "shift_page", "diagnostics_page", "runs_table_page",
    "table_payload", "static_file", "static_url", "run_page", "report_page", "compare_page", "error_page", "figure_html", "sweep_links",
    # verdicts
    "provisional_of", "verdict_badge",
]
