"""Rate maps and the participation ratio: known answers, direct references, torch == numpy."""

import numpy as np
import pytest
import torch

from gridsweep.analysis import RateMaps, fraction_above, participation_ratio, rate_maps
from gridsweep.errors import AnalysisError, DataError

EXT = (-1.1, 1.1, -1.1, 1.1)


def _direct_means(pos, act, extent, nx, ny):
    """Per-bin mean by an explicit loop over bins (positions inside the extent)."""
    xmin, xmax, ymin, ymax = extent
    ex = np.linspace(xmin, xmax, nx + 1)
    ey = np.linspace(ymin, ymax, ny + 1)
    out = np.full((act.shape[1], ny, nx), np.nan)
    occ = np.zeros((ny, nx), dtype=int)
    for iy in range(ny):
        for ix in range(nx):
            sel = (pos[:, 0] >= ex[ix]) & (pos[:, 0] < ex[ix + 1]) & (pos[:, 1] >= ey[iy]) & (pos[:, 1] < ey[iy + 1])
            occ[iy, ix] = sel.sum()
            if sel.any():
                out[:, iy, ix] = act[sel].mean(axis=0)
    return out, occ


def test_x_coordinate_gives_bin_centres():
    # Four samples per bin placed symmetrically about each bin centre: mean of x = centre x.
    n = 10
    c = (np.arange(n) + 0.5) * 2.2 / n - 1.1
    gx, gy = np.meshgrid(c, c)
    off = np.array([[-0.02, -0.03], [0.02, 0.03], [-0.02, 0.03], [0.02, -0.03]])
    pos = (np.stack([gx.ravel(), gy.ravel()], 1)[:, None, :] + off[None]).reshape(-1, 2)
    rm = rate_maps(pos, np.stack([pos[:, 0], pos[:, 1], np.ones(len(pos))], 1), bins=n)
    assert isinstance(rm, RateMaps)
    assert rm.maps.shape == (3, n, n) and rm.maps.dtype == np.float64
    np.testing.assert_allclose(rm.maps[0], gx, atol=1e-12)   # column = x bin
    np.testing.assert_allclose(rm.maps[1], gy, atol=1e-12)   # row = y bin
    np.testing.assert_allclose(rm.maps[2], 1.0)
    assert (rm.occupancy == 4).all()
    assert rm.bin_size == pytest.approx((0.22, 0.22))
    assert rm.extent == EXT


def test_random_samples_match_direct_loop_and_unvisited_are_nan():
    rng = np.random.default_rng(0)
    pos = rng.uniform([-1.1, -1.1], [0.0, 1.1], size=(3000, 2))   # left half only
    act = rng.normal(size=(3000, 5))
    rm = rate_maps(pos, act, bins=(12, 8))
    ref, occ = _direct_means(pos, act, EXT, 12, 8)
    assert rm.maps.shape == (5, 8, 12)
    np.testing.assert_array_equal(rm.occupancy, occ)
    np.testing.assert_allclose(rm.maps, ref, rtol=1e-12, atol=1e-12)
    assert np.isnan(rm.maps[:, :, 6:]).all() and (rm.occupancy[:, 6:] == 0).all()
    assert np.isfinite(rm.maps[:, :, :6]).all()


def test_outside_positions_clip_into_edge_bins():
    pos = np.array([[-5.0, 0.0], [1.1, 1.1], [1.3, -1.2], [0.0, 0.0]])
    rm = rate_maps(pos, np.array([1.0, 2.0, 3.0, 4.0]), bins=4)
    assert rm.occupancy.sum() == 4
    assert rm.maps[0, 2, 0] == 1.0          # x far left -> column 0, y = 0 -> row 2
    assert rm.maps[0, 3, 3] == 2.0          # the (xmax, ymax) corner -> last bin
    assert rm.maps[0, 0, 3] == 3.0          # beyond xmax and below ymin -> bottom-right bin


def test_bin_width_overrides_bins():
    pos = np.random.default_rng(1).uniform(-1.1, 1.1, (500, 2))
    rm = rate_maps(pos, pos[:, :1], bins=7, bin_width=0.05)
    assert rm.maps.shape == (1, 44, 44)
    assert rm.bin_size == pytest.approx((0.05, 0.05))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_and_numpy_agree(dtype):
    rng = np.random.default_rng(2)
    pos = rng.uniform(-1.2, 1.2, (4000, 2))
    act = rng.normal(size=(4000, 7))
    pt, at = torch.tensor(pos, dtype=dtype), torch.tensor(act, dtype=dtype)
    ref = rate_maps(pt.numpy(), at.numpy(), bins=9, smoothing_sigma=1.0)
    got = rate_maps(pt, at, bins=9, smoothing_sigma=1.0)
    np.testing.assert_array_equal(got.occupancy, ref.occupancy)
    np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert isinstance(got.maps, np.ndarray)


def test_experimental_smoothing_equals_direct_normalised_convolution():
    rng = np.random.default_rng(3)
    pos = rng.uniform(-1.1, 1.1, (800, 2))
    pos = pos[~((pos[:, 0] > 0.3) & (pos[:, 1] > 0.3))]          # an unvisited corner
    act = rng.normal(size=(len(pos), 2))
    sigma, n = 1.3, 10
    rm = rate_maps(pos, act, bins=n, smoothing_sigma=sigma)
    raw = rate_maps(pos, act, bins=n)
    occ = raw.occupancy.astype(float)
    sums = np.nan_to_num(raw.maps) * occ
    rad = int(4 * sigma + 0.5)
    expected = np.full((2, n, n), np.nan)
    for iy in range(n):
        for ix in range(n):
            if occ[iy, ix] == 0:
                continue
            num = np.zeros(2)
            den = 0.0
            for jy in range(max(0, iy - rad), min(n, iy + rad + 1)):
                for jx in range(max(0, ix - rad), min(n, ix + rad + 1)):
                    w = np.exp(-((jy - iy) ** 2 + (jx - ix) ** 2) / (2 * sigma ** 2))
                    num += w * sums[:, jy, jx]
                    den += w * occ[jy, jx]
            expected[:, iy, ix] = num / den
    np.testing.assert_allclose(rm.maps, expected, rtol=1e-10, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(rm.occupancy, raw.occupancy)
    assert np.isnan(rm.maps[:, -1, -1]).all()


def test_smoothing_is_off_by_default_and_keeps_constant_maps_constant():
    pos = np.random.default_rng(4).uniform(-1.1, 1.1, (2000, 2))
    act = np.full((2000, 1), 3.0)
    np.testing.assert_allclose(rate_maps(pos, act, bins=8, smoothing_sigma=2.0).maps, 3.0)
    assert not np.allclose(rate_maps(pos, pos[:, :1], bins=8).maps,
                           rate_maps(pos, pos[:, :1], bins=8, smoothing_sigma=1.0).maps)


@pytest.mark.parametrize("kwargs, match", [
    ({"positions": np.zeros((5, 3)), "activations": np.zeros((5, 1))}, "positions"),
    ({"positions": np.zeros((5, 2)), "activations": np.zeros((4, 1))}, "activations"),
    ({"positions": np.full((5, 2), np.nan), "activations": np.zeros((5, 1))}, "finite"),
    ({"positions": np.zeros((5, 2)), "activations": np.zeros((5, 1)), "extent": (1, 0, 0, 1)}, "extent"),
    ({"positions": np.zeros((5, 2)), "activations": np.zeros((5, 1)), "bins": 0}, "bins"),
    ({"positions": np.zeros((5, 2)), "activations": np.zeros((5, 1)), "bin_width": -0.1}, "bin_width"),
    ({"positions": np.zeros((5, 2)), "activations": np.zeros((5, 1)), "smoothing_sigma": -1}, "smoothing_sigma"),
])
def test_bad_inputs_raise_data_error(kwargs, match):
    with pytest.raises(DataError, match=match):
        rate_maps(**kwargs)


# ----------------------------------------------------------------- participation ratio
def test_participation_ratio_known_answers():
    b = 64
    t = np.arange(b)
    basis = np.stack([np.cos(2 * np.pi * k * t / b) for k in (1, 2, 3, 4)])   # orthogonal, equal variance
    assert participation_ratio(basis) == pytest.approx(4.0, rel=1e-12)
    rank1 = np.outer(np.array([1.0, -2.0, 0.5]), basis[0])
    assert participation_ratio(rank1) == pytest.approx(1.0, rel=1e-12)
    assert np.isnan(participation_ratio(np.ones((3, 4, 4)) * 2))   # no variance at all


def test_participation_ratio_matches_eigenvalues_and_drops_nan_bins():
    rng = np.random.default_rng(5)
    for u, bins in ((6, 50), (40, 12)):        # both U < B and U > B
        x = rng.normal(size=(u, bins)) * rng.uniform(0.2, 2, (u, 1))
        lam = np.linalg.eigvalsh(np.cov(x))     # units as variables, bins as samples
        assert participation_ratio(x) == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-10)
    maps = rng.normal(size=(5, 6, 6))
    holed = maps.copy()
    holed[2, 1, 1] = np.nan
    keep = np.ones(36, bool)
    keep[7] = False
    assert participation_ratio(holed) == pytest.approx(participation_ratio(maps.reshape(5, -1)[:, keep]), rel=1e-12)
    assert participation_ratio(torch.tensor(maps)) == pytest.approx(participation_ratio(maps), rel=1e-12)


def test_participation_ratio_errors():
    with pytest.raises(AnalysisError, match="at least 2"):
        participation_ratio(np.full((3, 2, 2), np.nan))
    with pytest.raises(DataError, match="shape"):
        participation_ratio(np.zeros(5))


def test_fraction_above():
    s = np.array([0.1, 0.35, 0.9, 1.2, np.nan])
    assert fraction_above(s) == {0.3: 0.6, 0.37: 0.4, 0.8: 0.4, 1.15: 0.2}   # NaN counts as not above
    assert fraction_above(s, thresholds=(0.0,)) == {0.0: 0.8}
