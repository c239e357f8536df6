"""Grid geometry: spacing and orientation of synthetic lattices of known geometry."""

import numpy as np
import pytest
from scipy import ndimage

from gridsweep.analysis import autocorrelogram, grid_geometry, rate_maps
from gridsweep.errors import DataError

BOX = 2.2


def hexagonal(n, spacing, orientation_deg, phase=(0.11, -0.07), rectify=False, stretch_y=1.0):
    """Three cosine gratings whose lattice (SAC peaks) has the given period and orientation mod 60.

    The wave vectors sit at orientation + 30 + {0, 60, 120} degrees, since a hexagonal
    lattice is rotated by 30 degrees from its reciprocal lattice. ``stretch_y`` stretches
    the pattern along y (an elliptical grid).
    """
    c = (np.arange(n) + 0.5) * BOX / n - BOX / 2
    x, y = np.meshgrid(c, c)
    x, y = x - phase[0], (y - phase[1]) / stretch_y
    k = 4 * np.pi / (np.sqrt(3) * spacing)
    th = np.deg2rad(orientation_deg + 30 + np.array([0.0, 60.0, 120.0]))
    m = sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y)) for t in th)
    return np.maximum(m, 0.0) if rectify else m


def angle_error(a, b):
    return np.abs((np.asarray(a) - b + 30) % 60 - 30)


CASES = [(20, s, o) for s in (0.45, 0.6, 0.8) for o in (0.0, 8.0, 23.0, 41.0, 57.0)] + \
        [(44, s, o) for s in (0.3, 0.5, 0.75) for o in (0.0, 8.0, 23.0, 41.0, 57.0)]


@pytest.mark.parametrize("rectify", [False, True])
@pytest.mark.parametrize("n", [20, 44])
def test_recovers_spacing_and_orientation(n, rectify):
    cases = [c for c in CASES if c[0] == n]
    maps = np.stack([hexagonal(n, s, o, rectify=rectify) for _, s, o in cases])
    g = grid_geometry(maps, BOX / n, kind="maps")
    spacing = np.array([s for _, s, _ in cases])
    orient = np.array([o for _, _, o in cases])
    np.testing.assert_array_less(np.abs(g["spacing_m"] / spacing - 1), 0.05)
    np.testing.assert_array_less(angle_error(g["orientation_deg"], orient), 3.0)
    assert ((g["orientation_deg"] >= 0) & (g["orientation_deg"] < 60)).all()
    assert (g["reason"] == "").all()
    np.testing.assert_array_less(g["ellipticity"], 0.1)
    assert g["peak_positions"].shape == (len(cases), 6, 2)
    # The six peaks are the first lattice shell: all at about one spacing from the centre.
    d = np.hypot(g["peak_positions"][..., 0], g["peak_positions"][..., 1])
    np.testing.assert_array_less(np.abs(d / spacing[:, None] - 1), 0.08)


def test_sacs_and_maps_inputs_agree_and_auto_detects():
    maps = np.stack([hexagonal(20, 0.6, 10), hexagonal(20, 0.5, 30)])
    a = grid_geometry(maps, 0.11)                        # auto: even sides -> maps
    b = grid_geometry(autocorrelogram(maps), 0.11)       # auto: SACs
    c = grid_geometry(autocorrelogram(maps), 0.11, kind="sacs")
    for k in ("spacing_m", "orientation_deg", "ellipticity"):
        np.testing.assert_allclose(a[k], b[k])
        np.testing.assert_allclose(a[k], c[k])


def test_rate_maps_object_carries_bin_size():
    rng = np.random.default_rng(0)
    pos = rng.uniform(-1.1, 1.1, (60000, 2))
    k = 4 * np.pi / (np.sqrt(3) * 0.5)
    th = np.deg2rad(30 + 14 + np.array([0, 60, 120]))
    act = sum(np.cos(k * (np.cos(t) * pos[:, 0] + np.sin(t) * pos[:, 1])) for t in th)
    rm = rate_maps(pos, act, bin_width=0.05)
    g = grid_geometry(rm)
    assert g["spacing_m"][0] == pytest.approx(0.5, rel=0.05)
    assert angle_error(g["orientation_deg"][0], 14.0) < 3.0


def test_anisotropic_bins_are_converted_per_axis():
    # The same pattern sampled on 20 x-bins and 40 y-bins of a 2.2 m box: spacing in metres is unchanged.
    ny, nx = 40, 20
    cx = (np.arange(nx) + 0.5) * BOX / nx - BOX / 2
    cy = (np.arange(ny) + 0.5) * BOX / ny - BOX / 2
    x, y = np.meshgrid(cx, cy)
    k = 4 * np.pi / (np.sqrt(3) * 0.6)
    m = sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y)) for t in np.deg2rad(30 + 5 + np.array([0, 60, 120])))
    g = grid_geometry(m, (BOX / nx, BOX / ny), kind="maps")
    assert g["spacing_m"][0] == pytest.approx(0.6, rel=0.05)


def test_elliptical_grid_has_ellipticity():
    g = grid_geometry(hexagonal(44, 0.4, 0.0, stretch_y=1.5), BOX / 44, kind="maps")
    assert g["ellipticity"][0] == pytest.approx(1 - 1 / 1.5, abs=0.05)


def test_failures_are_nan_with_a_reason():
    rng = np.random.default_rng(1)
    few = ndimage.gaussian_filter(rng.normal(size=(20, 20)), 6)      # very smooth: few SAC peaks
    maps = np.stack([np.full((20, 20), 1.0), np.full((20, 20), np.nan), few, hexagonal(20, 0.6, 0)])
    with np.errstate(all="raise"):
        g = grid_geometry(maps, 0.11, kind="maps")
    assert g["reason"][0] == g["reason"][1] == "constant or empty map"
    assert np.isnan(g["spacing_m"][:2]).all() and np.isnan(g["peak_positions"][:2]).all()
    if g["reason"][2]:
        assert np.isnan(g["spacing_m"][2])
    assert g["reason"][3] == "" and np.isfinite(g["spacing_m"][3])
    lone = np.zeros((1, 9, 9))
    lone[0, 4, 4] = 1.0
    lone[0, 4, 7] = lone[0, 4, 1] = 0.5
    g = grid_geometry(lone, 0.1, kind="sacs")
    assert g["reason"][0] == "fewer than 6 peaks" and np.isnan(g["orientation_deg"][0])


def test_errors():
    with pytest.raises(DataError, match="bin_size"):
        grid_geometry(np.zeros((1, 5, 5)), -1.0)
    with pytest.raises(DataError, match="bin_size"):
        grid_geometry(np.zeros((1, 5, 5)))
    with pytest.raises(DataError, match="kind"):
        grid_geometry(np.zeros((1, 5, 5)), 0.1, kind="map")


# ------------------------------------------------------------------ NFL's period estimator
def nfl_period_oracle(rate_map):
    """Loop transcription of NFL scores.py:151-173 with skimage 0.19 peak_local_max defaults
    (3 x 3 maximum, > image minimum, 1-pixel border excluded), written pixel by pixel."""
    import scipy.signal

    z = np.nan_to_num(rate_map)                                  # trainer.py:423
    ac = scipy.signal.correlate2d(z, z, mode="full")             # scores.py:162
    h, w = ac.shape
    if np.all(ac == ac[0, 0]):
        return np.nan, np.nan
    offsets = []
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            if ac[i, j] > ac.min() and ac[i, j] >= ac[i - 1:i + 2, j - 1:j + 2].max():
                offsets.append((i - h // 2, j - w // 2))           # scores.py:166
    d = np.sort([np.hypot(*o) for o in offsets])[1:7]            # scores.py:167-169
    return (np.mean(d), np.std(d)) if len(d) else (np.nan, np.nan)


def test_nfl_period_equals_loop_transcription():
    from gridsweep.analysis.geometry import nfl_period

    rng = np.random.default_rng(3)
    maps = np.stack([hexagonal(20, 0.5, 12, rectify=True), hexagonal(20, 0.7, 40),
                     ndimage.gaussian_filter(rng.normal(size=(20, 20)), 1.5), np.full((20, 20), 0.3)])
    maps[1, 3:5, 4:9] = np.nan
    got = nfl_period(maps)
    for u in range(len(maps)):
        p, e = nfl_period_oracle(maps[u])
        np.testing.assert_allclose([got["period_bins"][u], got["period_err_bins"][u]], [p, e], atol=1e-12)
    assert np.isnan(got["period_bins"][3])                       # constant map: no peaks


def test_nfl_period_reads_short_and_ours_stays_accurate():
    from gridsweep.analysis.geometry import grid_period

    n, b, true_bins = 44, BOX / 44, 26
    maps = np.stack([hexagonal(n, true_bins * b, o, phase=(0.03 * k, -0.05 * k), rectify=True)
                     for k, o in enumerate((0.0, 7.0, 15.0, 22.0, 30.0, 41.0))])
    nfl = grid_period(maps, b, method="nfl") / b
    ours = grid_period(maps, b, method="peaks") / b
    assert np.all(nfl < true_bins - 1.5) and np.mean(nfl) < 24.5      # NFL's known short bias
    np.testing.assert_allclose(ours, true_bins, atol=0.1)              # ours: sub-bin accurate
    small = np.stack([hexagonal(n, 10 * b, o, rectify=True) for o in (0.0, 23.0)])
    assert np.all(np.abs(grid_period(small, b, method="nfl") / b - 10) < 0.5)   # short periods: integer-bin exact-ish


def test_grid_period_errors():
    from gridsweep.analysis.geometry import grid_period
    from gridsweep.errors import AnalysisError

    with pytest.raises(AnalysisError, match="method must be one of"):
        grid_period(np.zeros((1, 5, 5)), 0.1, method="fft")
    with pytest.raises(DataError, match="bin_size"):
        grid_period(np.zeros((1, 5, 5)), method="nfl")
