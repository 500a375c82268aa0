"""Confidence intervals for comparisons of runs: Student-t over seeds, paired bootstrap over items."""

from __future__ import annotations

import math
import random
from typing import Sequence

# two-sided 95% Student-t quantiles t_{0.975, df}, df = 1…30 (beyond: the normal 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t-interval); the half-width is NaN for fewer than 2 values."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t975(n - 1) * sd / math.sqrt(n)


def paired_bootstrap(differences: Sequence[float], *, resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, 2.5% and 97.5% percentiles) of the mean of per-item paired ``differences``,
    resampling items with replacement."""
    n = len(differences)
    if n == 0:
        return math.nan, math.nan, math.nan
    rng = random.Random(seed)
    means = sorted(sum(differences[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return sum(differences) / n, means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]
