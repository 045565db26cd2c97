"""Seed uncertainty by the bootstrap: resample a size's seeds with replacement, recompute the seed-mean
surface, and read every statistic (argmin, regret, sub-grid optimum, drift slope) off each resample.

Seeds are resampled jointly over the grid (a resample keeps a seed's whole surface: runs sharing a
seed share the initial weights and the batches, so lr comparisons are paired). Sizes are resampled
independently (resample b of every size uses its own seed draw). Confidence intervals are percentile
intervals that pick actual resample values (``method="lower"/"higher"``, no interpolation), so a
table whose seeds are identical gives zero-width intervals exactly, and ±inf values are allowed.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .surfaces import seed_mean


def resample_means(cube: np.ndarray, n_bootstrap: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Seed means of ``n_bootstrap`` resamples, shape (B, n_eta, n_beta), and each resample's class
    (B,): resamples drawing the same multiset of seeds share a class (and have identical means);
    (None, None) with < 2 seeds or B = 0."""
    n = cube.shape[0]
    if n < 2 or n_bootstrap <= 0:
        return None, None
    idx = np.sort(rng.integers(0, n, size=(n_bootstrap, n)), axis=1)
    _, first, cls = np.unique(idx, axis=0, return_index=True, return_inverse=True)
    return seed_mean(cube[idx[first]], axis=1)[cls.ravel()], cls.ravel()


def argmins(means: np.ndarray) -> np.ndarray:
    """Grid argmin (i, j) of each resample, shape (B, 2); (-1, -1) where nothing is finite."""
    b = means.shape[0]
    flat = np.where(np.isnan(means), np.inf, means).reshape(b, -1)
    am = flat.argmin(axis=1)
    ok = np.isfinite(flat[np.arange(b), am])
    i, j = np.unravel_index(am, means.shape[1:])
    return np.where(ok[:, None], np.stack([i, j], axis=1), -1)


def argmin_counts(opts: np.ndarray) -> Counter:
    """How often each grid point (i, j) wins; the key None counts resamples with no finite point."""
    counts: Counter = Counter()
    for i, j in opts.tolist():
        counts[None if i < 0 else (int(i), int(j))] += 1
    return counts


def percentile_ci(values, level: float) -> list[float] | None:
    """Central ``level`` percentile interval of the non-NaN values (picks actual values); None if none."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(v, tail, method="lower")), float(np.percentile(v, 100 - tail, method="higher"))]
