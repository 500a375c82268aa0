"""Confidence intervals used by sweep and replication tables, checked against scipy."""

import math

import numpy as np
import pytest
from scipy import stats

from unisd.runs.stats import mean_ci, paired_bootstrap, t975


@pytest.mark.parametrize("n", [2, 3, 5, 31, 40, 200, 5000])
def test_the_t_interval_is_scipys_for_small_and_large_n(n):
    values = np.random.default_rng(n).normal(size=n).tolist()
    mean, half = mean_ci(values)
    lo, hi = stats.t.interval(0.95, n - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values)) and half == pytest.approx((hi - lo) / 2, rel=1e-9)
    assert t975(n - 1) == pytest.approx(stats.t.ppf(0.975, n - 1), rel=1e-12)
    assert t975(40) != 1.96 and math.isnan(mean_ci([1.0])[1]) and math.isnan(t975(0))


@pytest.mark.parametrize("n", [20, 300])
def test_the_paired_bootstrap_agrees_with_scipys_percentile_bootstrap(n):
    diffs = np.random.default_rng(7).choice([-1.0, 0.0, 1.0], p=[0.15, 0.55, 0.3], size=n)
    mean, lo, hi = paired_bootstrap(diffs.tolist(), resamples=20_000, seed=1)
    ref = stats.bootstrap(
        (diffs,), np.mean, n_resamples=20_000, method="percentile", random_state=2
    ).confidence_interval
    se = diffs.std(ddof=1) / math.sqrt(n)
    assert mean == pytest.approx(diffs.mean()) and lo < mean < hi
    assert lo == pytest.approx(ref.low, abs=0.1 * se + 1e-9) and hi == pytest.approx(ref.high, abs=0.1 * se + 1e-9)


def test_paired_bootstrap_is_seeded_and_handles_constants_and_large_inputs():
    diffs = [1.0] * 30 + [0.0] * 60 + [-1.0] * 10
    assert paired_bootstrap(diffs, resamples=2000, seed=1) == paired_bootstrap(diffs, resamples=2000, seed=1)
    assert paired_bootstrap([0.5] * 5, resamples=100) == (0.5, 0.5, 0.5)
    big = paired_bootstrap([0.0, 1.0] * 50_000, resamples=500)  # chunked: never 500 × 100k at once
    assert big[1] < 0.5 < big[2] and big[2] - big[1] < 0.02
