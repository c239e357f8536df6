"""Intervals valid with few networks: Wilson against scipy and hand values, no degenerate
bootstrap read as certainty, and the fallbacks over networks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, linregress, t as student_t

from gridsweep.reproduce.stats import (
    bootstrap_mean,
    bootstrap_ratio,
    bootstrap_stat,
    fmt_est,
    median_ci,
    ols_slope,
    proportion,
    spearman_ci,
    t_mean,
    wilson,
)


@pytest.mark.parametrize("k, n", [(0, 2), (1, 2), (2, 2), (0, 4), (3, 4), (4, 4), (7, 20), (55, 60)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


def test_wilson_hand_computed_and_edges():
    # 0 of 2 networks: (z^2/2n +- z sqrt(z^2/4n^2)) / (1 + z^2/n) -> [0, z^2 / (n + z^2)]
    z = 1.959963984540054
    assert wilson(0, 2) == (0.0, pytest.approx(z * z / (2 + z * z)))
    assert wilson(2, 2) == (pytest.approx(2 / (2 + z * z)), 1.0)
    assert wilson(0, 2)[1] == pytest.approx(0.6576, abs=1e-4)  # never [0, 0] for 0 of 2
    assert all(math.isnan(x) for x in wilson(0, 0))
    with pytest.raises(ValueError, match="k=3"):
        wilson(3, 2)


def test_proportion_counts_networks():
    df = pd.DataFrame({"seed": [0, 0, 1, 1], "a": [True, False, True, True], "b": [True, True, True, False]})
    e = proportion(df, "a", "b")  # 2 of the 3 with b have a
    assert (e.k, e.n, e.n_seeds, e.method) == (2, 3, 2, "Wilson")
    assert (e.lo, e.hi) == pytest.approx(wilson(2, 3))
    assert "2 of 3 networks, Wilson" in fmt_est(e)


def test_two_seed_bootstrap_is_not_read_as_certainty():
    """2 seeds both with grids: the bootstrap would say [1.00, 1.00]; below min_groups it gives no interval."""
    df = pd.DataFrame({"seed": [0, 1], "x": [1.0, 1.0]})
    old = bootstrap_ratio(df, "x", n_boot=200, seed=0)
    assert (old.lo, old.hi) == (1.0, 1.0)  # the degenerate interval the rule must never see
    e = bootstrap_ratio(df, "x", n_boot=200, seed=0, min_groups=5)
    assert e.value == 1.0 and not e.has_interval and "too few seeds" in e.note
    assert "no interval" in fmt_est(e)
    s = bootstrap_stat(df, lambda d: float(d["x"].mean()), n_boot=50, min_groups=5)
    assert not s.has_interval
    # a mean falls back to Student t over networks: wide with 2 networks, undefined without spread
    df2 = pd.DataFrame({"seed": [0, 1], "x": [0.02, 0.04]})
    m = bootstrap_mean(df2, "x", min_groups=5)
    h = student_t.ppf(0.975, 1) * np.std([0.02, 0.04], ddof=1) / math.sqrt(2)
    assert m.method == "t over networks" and (m.lo, m.hi) == pytest.approx((0.03 - h, 0.03 + h))
    assert not bootstrap_mean(df, "x", min_groups=5).has_interval


def test_fallback_intervals_over_networks():
    x = np.array([0.1, 0.1, 0.12, 0.12, 0.16, 0.16])
    y = 6 * x + np.array([0.01, -0.01, 0.02, -0.02, 0.0, 0.01])
    e = ols_slope(x, y)
    ref = linregress(x, y)
    h = student_t.ppf(0.975, len(x) - 2) * ref.stderr
    assert e.value == pytest.approx(ref.slope) and (e.lo, e.hi) == pytest.approx((ref.slope - h, ref.slope + h))
    assert t_mean(np.array([1.0, 2.0, 3.0])).lo == pytest.approx(2 - student_t.ppf(0.975, 2) * 1 / math.sqrt(3))
    # median: order statistics; 6 values are enough at 95% (coverage 1 - 2/64), 5 are not
    m = median_ci(np.arange(6.0))
    assert (m.lo, m.hi) == (0.0, 5.0)
    assert not median_ci(np.arange(5.0)).has_interval
    r = spearman_ci(0.8, 12)
    zz = 1.959963984540054 * math.sqrt(1.06 / 9)
    assert (r.lo, r.hi) == pytest.approx((math.tanh(math.atanh(0.8) - zz), math.tanh(math.atanh(0.8) + zz)))
    assert not spearman_ci(0.8, 3).has_interval
