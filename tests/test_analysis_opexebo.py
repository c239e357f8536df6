"""Cross-check against opexebo (the Moser lab's Python port of BNT), where it still runs.

opexebo 0.7.2's ``grid_score`` fails on numpy >= 2 (``TypeError: only 0-dimensional
arrays can be converted to Python scalars`` in ``_findCentreRadius``), so the sargolini
variant cannot be compared with it here; its ``autocorrelation`` still works and is
compared with ours.
"""

import numpy as np
import pytest

from gridsweep.analysis import autocorrelogram, grid_scores

opexebo = pytest.importorskip("opexebo", reason="opexebo is not installed (pip install opexebo; extra 'oracles')")


def hexagonal(n, spacing, orientation_deg=0.0):
    c = (np.arange(n) + 0.5) * 2.2 / n - 1.1
    x, y = np.meshgrid(c, c)
    k = 4 * np.pi / (np.sqrt(3) * spacing)
    return sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y))
               for t in np.deg2rad(orientation_deg + 30 + np.array([0, 60, 120])))


def _crop(ours, theirs):
    cy = (ours.shape[0] - theirs.shape[0]) // 2
    cx = (ours.shape[1] - theirs.shape[1]) // 2
    return ours[cy:ours.shape[0] - cy, cx:ours.shape[1] - cx]


@pytest.mark.parametrize("n", [20, 44])
def test_autocorrelation_matches_opexebo_on_its_lags(n):
    rng = np.random.default_rng(n)
    for m in (rng.random((n, n)), hexagonal(n, 0.5, 12)):
        theirs = opexebo.analysis.autocorrelation(m)
        ours = autocorrelogram(m)[0]
        assert theirs.shape[0] < ours.shape[0]            # opexebo crops the low-overlap lags
        np.testing.assert_allclose(_crop(ours, theirs), theirs, atol=1e-10)


def test_opexebo_zero_fills_nan_bins():
    # A documented difference: opexebo replaces NaN (unvisited) bins by 0 before correlating,
    # gridsweep drops them from the overlap. On the zero-filled map both agree.
    rng = np.random.default_rng(3)
    m = rng.random((20, 20))
    m[4:6, 7:9] = np.nan
    theirs = opexebo.analysis.autocorrelation(m)
    np.testing.assert_allclose(_crop(autocorrelogram(np.nan_to_num(m))[0], theirs), theirs, atol=1e-10)
    assert np.abs(_crop(autocorrelogram(m)[0], theirs) - theirs).max() > 1e-3


def test_sargolini_against_opexebo_grid_score():
    m = hexagonal(44, 0.5, 10)
    sac = opexebo.analysis.autocorrelation(m)
    try:
        theirs, _ = opexebo.analysis.grid_score(sac)
    except TypeError as exc:
        pytest.skip(f"opexebo {getattr(opexebo, '__version__', '?')} grid_score fails on numpy "
                    f"{np.__version__} with TypeError ({exc}); only its autocorrelation is compared")
    ours = grid_scores(m, "sargolini")["score60"][0]
    assert ours == pytest.approx(theirs, abs=0.15)
