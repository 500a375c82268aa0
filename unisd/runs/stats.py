"""Confidence intervals for comparisons of runs: Student-t over seeds, paired bootstrap over items
(scipy's t quantiles; numpy's vectorised resampling)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: resampled means computed at once (rows × items), bounding the bootstrap's memory
_CHUNK_CELLS = 4_000_000


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (NaN for df < 1)."""
    if df < 1:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); the half-width is NaN for fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    n = v.size
    if n == 0:
        return math.nan, math.nan
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan
    return mean, t975(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)


def paired_bootstrap(
    differences: Sequence[float], *, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, 2.5% and 97.5% percentiles) of the mean of per-item paired ``differences``,
    resampling items with replacement (percentile bootstrap)."""
    d = np.asarray(differences, dtype=float)
    n = d.size
    if n == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // n)
    means = np.concatenate(
        [d[rng.integers(0, n, size=(min(rows, resamples - i), n))].mean(axis=1) for i in range(0, resamples, rows)]
    )
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)
