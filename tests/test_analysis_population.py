"""Shuffle nulls and the trained-vs-untrained comparison."""

import numpy as np
import pytest

from gridsweep.analysis import fraction_above, grid_scores, shuffled_null_scores
from gridsweep.analysis.population import (
    SHUFFLE_MODES,
    _circular_shift,
    _permute_bins,
    compare_with_untrained,
)
from gridsweep.errors import AnalysisError


def hexagonal(n, spacing, orientation_deg=0.0):
    c = (np.arange(n) + 0.5) * 2.2 / n - 1.1
    x, y = np.meshgrid(c, c)
    k = 4 * np.pi / (np.sqrt(3) * spacing)
    return sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y)) for t in np.deg2rad(orientation_deg + np.array([0, 60, 120])))


def test_permutation_keeps_values_and_nan_positions():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 6, 6))
    m[:, 0, 0] = np.nan
    m[2, 3, :] = np.nan
    p = _permute_bins(m, np.random.default_rng(1))
    np.testing.assert_array_equal(np.isnan(p), np.isnan(m))
    for u in range(5):
        np.testing.assert_array_equal(np.sort(p[u][np.isfinite(p[u])]), np.sort(m[u][np.isfinite(m[u])]))
    assert not np.allclose(np.nan_to_num(p), np.nan_to_num(m))


def test_circular_shift_is_a_roll():
    m = np.random.default_rng(2).normal(size=(3, 5, 7))
    s = _circular_shift(m, np.random.default_rng(3))
    for u in range(3):
        assert any(np.array_equal(s[u], np.roll(m[u], (dy, dx), axis=(0, 1))) for dy in range(5) for dx in range(7))


def test_shuffled_null_of_grids_is_low_and_reproducible():
    maps = np.stack([hexagonal(20, 0.6, o) for o in (0, 10, 20, 30)])
    assert (grid_scores(maps)["score60"] > 1.0).all()
    a = shuffled_null_scores(maps, 5, np.random.default_rng(7))
    b = shuffled_null_scores(maps, 5, 7)
    np.testing.assert_array_equal(a["scores"], b["scores"])
    assert a["scores"].shape == (5, 4) and a["variant"] == "deepmind_minmax" and a["mode"] == "permute"
    assert a["fraction_above"][0.8] == 0.0
    assert (a["percentile95"] < 0.8).all()
    assert set(SHUFFLE_MODES) == {"permute", "circular"}
    c = shuffled_null_scores(maps, 2, 0, "sargolini", mode="circular")
    assert c["variant"] == "sargolini" and c["scores"].shape == (2, 4)


def test_shuffled_null_errors():
    m = np.zeros((1, 5, 5))
    with pytest.raises(AnalysisError, match="n_shuffles"):
        shuffled_null_scores(m, 0, 1)
    with pytest.raises(AnalysisError, match="rng"):
        shuffled_null_scores(m, 1, None)
    with pytest.raises(AnalysisError, match="mode"):
        shuffled_null_scores(m, 1, 1, mode="rotate")


def test_compare_with_untrained():
    trained = np.array([0.1, 0.5, 0.9, 1.3])
    untrained = np.array([0.0, 0.4, 0.2, np.nan])
    out = compare_with_untrained(trained, untrained, null=fraction_above(np.zeros(3)))
    np.testing.assert_allclose(out["trained"], [0.75, 0.75, 0.5, 0.25])
    np.testing.assert_allclose(out["untrained"], [0.25, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(out["difference"], [0.5, 0.5, 0.5, 0.25])
    np.testing.assert_allclose(out["ratio"], [3.0, 3.0, np.inf, np.inf])
    np.testing.assert_allclose(out["null"], 0.0)
