"""Confidence intervals used by sweep and replication tables."""

import math

import pytest

from unisd.engine.stats import mean_ci, paired_bootstrap, t975


def test_t_interval_matches_the_textbook_value():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-4)
    assert math.isnan(mean_ci([1.0])[1]) and t975(1000) == 1.96


def test_paired_bootstrap_brackets_the_mean_and_is_seeded():
    diffs = [1.0] * 30 + [0.0] * 60 + [-1.0] * 10
    mean, lo, hi = paired_bootstrap(diffs, resamples=2000, seed=1)
    assert mean == pytest.approx(0.2) and lo < 0.2 < hi and lo > 0.0
    assert paired_bootstrap(diffs, resamples=2000, seed=1) == (mean, lo, hi)
    assert paired_bootstrap([0.5] * 5, resamples=100) == (0.5, 0.5, 0.5)
