"""Grid points that can still be the optimum of one size (what the decide loop adds seeds to).

For one cell's runs (one size of an analysis), every grid point's seed-mean cost gets a seed-
bootstrap percentile interval (the report's bootstrap, :mod:`.uncertainty`: seeds resampled jointly
over the grid, intervals that pick actual resample values). A point is a *candidate* when its
interval overlaps the best point's, i.e. its lower end is at most the upper end of the interval of
the grid argmin of the seed means:

    candidate(p)  ⇔  lo(p) ≤ hi(argmin)

Costs are the report's (:mod:`.metrics`: the loss, or 1 − accuracy; a diverged run is +inf under
``diverged: inf``), so a point with a diverged seed is never a candidate. With one seed there is no
interval: every finite point is a candidate (nothing rules it out).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metrics import BETA_COL, ETA_COL, metric_info, prepare
from .surfaces import argmin, make_grid, seed_cube, seed_mean
from .uncertainty import percentile_ci, resample_means


def candidate_points(rows: pd.DataFrame, *, metric: str, diverged: str = "inf", n_bootstrap: int = 200,
                     ci_level: float = 0.95, rng_seed: int = 0) -> list[tuple[float, float | None]]:
    """(weight_lr, activity_lr or None) of the candidate points of ``rows`` (one cell's runs), best first."""
    info = metric_info(metric)
    df, _ = prepare(rows, info, diverged)
    if len(df) == 0:
        return []
    grid, df, _ = make_grid(df)
    _, cube = seed_cube(df, grid)
    surf = seed_mean(cube)
    best = argmin(surf)
    if best is None:
        return []
    boot, _ = resample_means(cube, n_bootstrap, np.random.default_rng(rng_seed))
    finite = np.isfinite(surf)
    if boot is None:
        keep = finite
    else:
        def interval(i: int, j: int) -> tuple[float, float]:
            ci = percentile_ci(boot[:, i, j], ci_level)
            return (math.inf, math.inf) if ci is None else (ci[0], ci[1])
        hi_best = interval(*best)[1]
        keep = np.zeros_like(finite)
        for i, j in zip(*np.nonzero(finite)):
            keep[i, j] = interval(int(i), int(j))[0] <= hi_best
    pts = sorted(zip(*np.nonzero(keep)), key=lambda ij: surf[ij])
    return [(float(grid.eta[i]), grid.beta_at(j)) for i, j in pts]


__all__ = ["candidate_points", "ETA_COL", "BETA_COL"]
