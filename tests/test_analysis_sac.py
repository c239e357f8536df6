"""Spatial autocorrelogram: equals the direct definition (explicit sum over overlapping bins)."""

import numpy as np
import pytest
import torch

from gridsweep.analysis import autocorrelogram
from gridsweep.errors import AnalysisError, DataError


def direct_sac(m, min_overlap=2):
    """Pearson r over the valid overlapping bins at every lag, by explicit loops (the definition)."""
    ny, nx = m.shape
    out = np.zeros((2 * ny - 1, 2 * nx - 1))
    for dy in range(-(ny - 1), ny):
        for dx in range(-(nx - 1), nx):
            xs, ys = [], []
            for i in range(ny):
                for j in range(nx):
                    i2, j2 = i + dy, j + dx
                    if 0 <= i2 < ny and 0 <= j2 < nx and np.isfinite(m[i, j]) and np.isfinite(m[i2, j2]):
                        xs.append(m[i, j])
                        ys.append(m[i2, j2])
            if len(xs) < min_overlap:
                continue
            x = np.array(xs) - np.mean(xs)
            y = np.array(ys) - np.mean(ys)
            vx, vy = np.sum(x * x), np.sum(y * y)
            if vx == 0 or vy == 0:
                continue                      # zero-variance convention: 0
            out[dy + ny - 1, dx + nx - 1] = np.sum(x * y) / np.sqrt(vx * vy)
    return out


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    m = rng.gamma(2.0, size=(4, 7, 9)) + 3.0      # an offset: tests the centring
    m[1, 2:4, 3:6] = np.nan                        # a hole
    m[2, :, 0] = np.nan                            # a missing column
    m[2, 5, 5] = np.nan
    m[3] = np.round(m[3] / 3)                      # ties -> constant overlaps at some lags
    return m


def test_equals_direct_definition_with_and_without_nan(maps):
    sac = autocorrelogram(maps)
    assert sac.shape == (4, 13, 17) and sac.dtype == np.float64
    for u in range(4):
        np.testing.assert_allclose(sac[u], direct_sac(maps[u]), rtol=0, atol=1e-9)
    assert np.isfinite(sac).all()


def test_min_overlap_matches_direct(maps):
    sac = autocorrelogram(maps[:2], min_overlap=10)
    for u in range(2):
        np.testing.assert_allclose(sac[u], direct_sac(maps[u], min_overlap=10), rtol=0, atol=1e-9)


def test_invariants(maps):
    sac = autocorrelogram(maps)
    np.testing.assert_allclose(sac[:, 6, 8], 1.0, atol=1e-12)                 # zero lag
    np.testing.assert_allclose(sac, sac[:, ::-1, ::-1], atol=1e-12)           # point symmetry
    assert np.abs(sac).max() <= 1.0
    # Pearson r is invariant to an affine change of the map, and units are independent.
    np.testing.assert_allclose(autocorrelogram(2.5 * maps[:1] - 7.0), sac[:1], atol=1e-12)
    np.testing.assert_allclose(autocorrelogram(maps[2]), sac[2:3], atol=1e-12)


def test_mixed_masks_batched_equal_one_by_one():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(70, 6, 6))                # more units than one FFT chunk
    m[rng.random(m.shape) < 0.1] = np.nan
    sac = autocorrelogram(m)
    for u in (0, 33, 69):
        np.testing.assert_allclose(sac[u], autocorrelogram(m[u])[0], atol=1e-13)


def test_constant_and_empty_maps_give_zero_without_warnings():
    m = np.stack([np.full((5, 5), 2.0), np.full((5, 5), np.nan)])
    with np.errstate(all="raise"):
        sac = autocorrelogram(m)
    np.testing.assert_array_equal(sac, 0.0)


def test_torch_input():
    m = np.random.default_rng(2).normal(size=(2, 5, 5))
    np.testing.assert_allclose(autocorrelogram(torch.tensor(m)), autocorrelogram(m), atol=1e-14)


def test_errors():
    with pytest.raises(DataError, match="shape"):
        autocorrelogram(np.zeros((2, 3, 4, 5)))
    with pytest.raises(AnalysisError, match="min_overlap"):
        autocorrelogram(np.zeros((1, 4, 4)), min_overlap=0)
