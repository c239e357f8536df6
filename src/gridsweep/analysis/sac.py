"""Spatial autocorrelograms (SACs) of rate maps, NaN-aware, batched over units, by FFT.

One analysis: :func:`autocorrelogram` (SCIENCE.md section 6, "Spatial autocorrelogram").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft as sfft

from gridsweep.analysis._common import as_maps
from gridsweep.errors import AnalysisError

__all__ = ["ZERO_VARIANCE_RTOL", "autocorrelogram"]

#: An overlap whose variance term ``N Sxx - Sx^2`` is below this fraction of ``N Sxx``
#: (the overlap's second moment about the map's global mean) is treated as having zero
#: variance. It only removes FFT rounding noise (~1e-13) from genuinely constant overlaps.
ZERO_VARIANCE_RTOL = 1e-10


def autocorrelogram(maps: Any, *, min_overlap: int = 2) -> np.ndarray:
    """NaN-aware spatial autocorrelogram of every map, computed with FFTs.

    Parameters
    ----------
    maps : array_like or torch.Tensor or RateMaps, shape (U, ny, nx) or (ny, nx)
        Rate maps; NaN marks unvisited bins (ignored). A single map gives U = 1.
    min_overlap : int, default 2
        Lags whose overlap has fewer valid bin pairs than this are set to 0. The
        default 2 is the published definition (one pair has no variance anyway);
        raise it (e.g. to 20) to silence the noisy extreme lags.

    Returns
    -------
    ndarray, shape (U, 2 ny - 1, 2 nx - 1), float64
        ``sac[u, ny - 1 + dy, nx - 1 + dx]`` is the Pearson correlation between the map
        and itself shifted by ``dy`` rows (y bins) and ``dx`` columns (x bins), over the
        bins valid in both. Point symmetric; the centre is 1 for any non-constant map.
        Never NaN: lags with zero variance (or fewer than ``min_overlap`` pairs) are 0.

    Notes
    -----
    Pearson correlation at every lag over the overlapping valid bins, as defined in
    SCIENCE.md section 6 (Sargolini et al. 2006; Hafting et al. 2005; the same
    definition as Banino et al. 2018's SAC). With ``a = x`` on valid bins and 0
    elsewhere, ``m`` the valid mask and ``corr(f, g)(t) = sum_p f(p) g(p + t)``:
    ``N = corr(m, m)``, ``Sx = corr(a, m)``, ``Sy = corr(m, a)``, ``Sxx = corr(a^2, m)``,
    ``Syy = corr(m, a^2)``, ``Sxy = corr(a, a)`` and

    ``r = (N Sxy - Sx Sy) / sqrt((N Sxx - Sx^2) (N Syy - Sy^2))``.

    The cross-correlations are computed for all units at once with real 2-D FFTs
    zero-padded to at least ``(2 ny - 1, 2 nx - 1)`` (no circular wrap), using
    ``corr(m, a)(t) = corr(a, m)(-t)``. Before the FFTs each map is centred on its
    valid-bin mean and scaled by its standard deviation (Pearson r is invariant to
    both), which keeps the cancellation in ``N Sxx - Sx^2`` small: the result equals an
    explicit sum over overlapping bins to ~1e-12. **Zero-variance convention**
    (SCIENCE.md section 6): where either variance term is <= ``ZERO_VARIANCE_RTOL``
    times its ``N Sxx`` (a constant overlap, including single-pair overlaps) or the
    overlap has fewer than ``min_overlap`` pairs, the value is 0. A constant or
    all-NaN map therefore gives an all-zero SAC.
    """
    if not isinstance(min_overlap, (int, np.integer)) or min_overlap < 1:
        raise AnalysisError(f"min_overlap must be an int >= 1; got {min_overlap!r}")
    x = as_maps(maps, "maps")
    u, ny, nx = x.shape
    valid = np.isfinite(x)
    m = valid.astype(np.float64)
    cnt = m.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, np.where(valid, x, 0.0).sum(axis=(1, 2)) / np.maximum(cnt, 1), 0.0)
        a = np.where(valid, x - mean[:, None, None], 0.0)
        sd = np.sqrt((a * a).sum(axis=(1, 2)) / np.maximum(cnt, 1))
    a = a / np.where(sd > 0, sd, 1.0)[:, None, None]

    ly, lx = sfft.next_fast_len(2 * ny - 1, real=True), sfft.next_fast_len(2 * nx - 1, real=True)
    shape = (ly, lx)
    # Phase factor that places the second argument of every cross-correlation at offset
    # (ny - 1, nx - 1): lag t then lands at index t + (n - 1), a contiguous slice.
    ky = np.fft.fftfreq(ly)[:, None]
    kx = np.fft.rfftfreq(lx)[None, :]
    phase = np.exp(-2j * np.pi * (ky * (ny - 1) + kx * (nx - 1)))
    shared_mask = bool((valid == valid[:1]).all())
    out = np.empty((u, 2 * ny - 1, 2 * nx - 1))
    n_shared = fm_shared = None
    if shared_mask:
        fm_shared = sfft.rfft2(m[:1], s=shape)
        n_shared = np.rint(sfft.irfft2(np.conj(fm_shared) * (fm_shared * phase), s=shape)[:, : 2 * ny - 1, : 2 * nx - 1])
    for lo in range(0, u, _CHUNK):
        hi = min(u, lo + _CHUNK)
        _sac_chunk(a[lo:hi], m[lo:hi], shape, phase, fm_shared, n_shared, min_overlap, out[lo:hi])
    return out


#: Units per FFT batch (keeps the temporaries in cache).
_CHUNK = 32


def _sac_chunk(a: np.ndarray, m: np.ndarray, shape: tuple[int, int], phase: np.ndarray,
               fm: np.ndarray | None, n: np.ndarray | None, min_overlap: int, out: np.ndarray) -> None:
    ny, nx = a.shape[1:]
    sl = (slice(None), slice(0, 2 * ny - 1), slice(0, 2 * nx - 1))
    fa = sfft.rfft2(a, s=shape)
    fa2 = sfft.rfft2(a * a, s=shape)
    if fm is None:
        fm = sfft.rfft2(m, s=shape)
        fms = fm * phase
        n = np.rint(sfft.irfft2(np.conj(fm) * fms, s=shape)[sl])  # exact integer counts
    else:
        fms = fm * phase
    sx = sfft.irfft2(np.conj(fa) * fms, s=shape)[sl]    # sum of x(p) over the overlap
    sxx = sfft.irfft2(np.conj(fa2) * fms, s=shape)[sl]
    sxy = sfft.irfft2(np.conj(fa) * (fa * phase), s=shape)[sl]
    sy = sx[:, ::-1, ::-1]                               # corr(m, a)(t) = corr(a, m)(-t)
    syy = sxx[:, ::-1, ::-1]
    vx = n * sxx - sx * sx
    vy = n * syy - sy * sy
    cov = n * sxy - sx * sy
    ok = (n >= min_overlap) & (vx > ZERO_VARIANCE_RTOL * n * sxx) & (vy > ZERO_VARIANCE_RTOL * n * syy)
    den = np.sqrt(np.where(ok, vx * vy, 1.0))
    np.divide(cov, den, out=out)
    out[~ok] = 0.0
    np.clip(out, -1.0, 1.0, out=out)
