"""Readout spectrum over the positions inside an arena (theory.spectrum ``mask=``)."""

from __future__ import annotations

import numpy as np
import pytest

from gridsweep.config import BoxConfig, TargetConfig
from gridsweep.errors import AnalysisError
from gridsweep.theory.predict import predict
from gridsweep.theory.spectrum import arena_mask, readout_spectrum


def _brute_force(maps: np.ndarray, mask: np.ndarray):
    """A(delta) and N(delta) by direct sums over pairs of inside bins (numpy transcription)."""
    inside = np.argwhere(mask)
    centred = maps - maps[:, mask].mean(axis=1)[:, None, None]
    ny, nx = mask.shape
    A = np.zeros((2 * ny - 1, 2 * nx - 1))
    N = np.zeros_like(A)
    for (y, x) in inside:
        for (y2, x2) in inside:
            A[y2 - y + ny - 1, x2 - x + nx - 1] += (centred[:, y, x] * centred[:, y2, x2]).sum()
            N[y2 - y + ny - 1, x2 - x + nx - 1] += 1
    return A, N


def test_masked_autocorrelation_and_kernel_match_direct_sums():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 6, 7)) + 2.0
    mask = rng.random((6, 7)) < 0.6
    spec = readout_spectrum(maps, 0.1, mask=mask)
    A, N = _brute_force(maps, mask)
    np.testing.assert_allclose(spec.autocorr, A, atol=1e-10)
    np.testing.assert_allclose(spec.kernel, np.where(N > 0, A / np.maximum(N, 1), 0.0), atol=1e-10)
    # bins outside carry nothing: changing them changes nothing
    other = maps.copy()
    other[:, ~mask] = 1e3
    np.testing.assert_allclose(readout_spectrum(other, 0.1, mask=mask).power, spec.power, rtol=1e-10, atol=1e-12)
    # S is the Fourier transform of h^4 A: S_bar(0) = h^4 sum A = 0 for centred maps
    assert abs(spec.radial(0.0)) < 1e-9 * spec.radial(np.linspace(0, 30, 50)).max()


def test_full_mask_is_the_rectangle_computation():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(2, 5, 8))
    a, b = readout_spectrum(maps, 0.05), readout_spectrum(maps, 0.05, mask=np.ones((5, 8), bool))
    for f in ("power", "autocorr", "kernel"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert arena_mask(BoxConfig(), 5, 8) is None
    with pytest.raises(AnalysisError, match="mask: expected a bool array of shape"):
        readout_spectrum(maps, 0.05, mask=np.ones((4, 8), bool))
    with pytest.raises(AnalysisError, match="no bin is inside"):
        readout_spectrum(maps, 0.05, mask=np.zeros((5, 8), bool))


def test_rectangle_prediction_unchanged_and_circle_close_to_square():
    """Default DoS (sigma 0.12 m, variance ratio 2): square 2.2 m 0.7368 m (the value before masks
    existed), circle of diameter 2.2 m 0.7316 m (-0.7 %)."""
    square = predict(TargetConfig(), box=BoxConfig())
    assert square.spacing_m == pytest.approx(0.7367719248363978, rel=1e-12)
    circle = predict(TargetConfig(), box=BoxConfig(shape="circle", radius=1.1))
    assert circle.has_ring
    assert circle.spacing_m == pytest.approx(square.spacing_m, rel=0.03)
    assert circle.spacing_m != square.spacing_m  # the mask is used
