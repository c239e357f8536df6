"""Spatial autocorrelograms (SACs) of rate maps, NaN-aware, batched over units, by FFT.

One analysis: :func:`autocorrelogram` (docs/science.md section 6, "Spatial autocorrelogram").
Lags where the FFT's round-off could matter are recomputed exactly by direct sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft as sfft

from gridsweep.analysis._common import as_maps
from gridsweep.errors import AnalysisError

__all__ = ["UNVISITED_MODES", "ZERO_VARIANCE_RTOL", "autocorrelogram"]

#: How unvisited (NaN) bins enter the SAC: ``"drop"`` ignores them (Sargolini / BNT),
#: ``"zero"`` sets them to 0 first (DeepMind's published ``calculate_sac``).
UNVISITED_MODES = ("drop", "zero")

#: An overlap whose variance term ``N Sxx - Sx^2`` is below this fraction of ``N Sxx``
#: (the overlap's second moment about the map's global mean) is treated as having zero
#: variance. It only removes FFT rounding noise (~1e-13) from genuinely constant overlaps.
ZERO_VARIANCE_RTOL = 1e-10
#: Direct (exact) path: a window whose two-pass sum of squared deviations is at most this
#: fraction of its sum of squares is constant (round-off of a constant window is ~1e-25).
_DIRECT_ZERO_RTOL = 1e-20
#: FFT round-off model: an FFT cross-correlation of ``f`` and ``g`` is trusted to within
#: ``_FFT_K * eps * ||f|| ||g||`` (measured: <= 35 on 44 x 44 maps; 100 leaves a margin).
_FFT_K = 100.0
#: A lag whose FFT Pearson r may be off by more than this (round-off bound) is recomputed
#: by direct sums over its overlap.
_FFT_TOL = 1e-11


def autocorrelogram(maps: Any, *, min_overlap: int = 2, unvisited: str = "drop") -> np.ndarray:
    """NaN-aware spatial autocorrelogram of every map, computed with FFTs.

    Parameters
    ----------
    maps : array_like or torch.Tensor or RateMaps, shape (U, ny, nx) or (ny, nx)
        Rate maps; NaN marks unvisited bins (ignored). A single map gives U = 1.
    min_overlap : int, default 2
        Lags whose overlap has fewer valid bin pairs than this are set to 0. The
        default 2 is the published definition (one pair has no variance anyway);
        raise it (e.g. to 20) to silence the noisy extreme lags.
    unvisited : {"drop", "zero"}, default "drop"
        ``"drop"``: NaN bins are ignored (Pearson r over the bins valid in both).
        ``"zero"``: NaN bins are set to 0 and take part like visited bins, as
        DeepMind's published scorer does (``np.nan_to_num`` before the overlap sums,
        google-deepmind/grid-cells scores.py:105-114, whose ``ones`` masks are built
        after the NaNs are gone, so every bin counts).

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
    docs/science.md section 6 (Sargolini et al. 2006; Hafting et al. 2005; the same
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
    (docs/science.md section 6): where either variance term is <= ``ZERO_VARIANCE_RTOL``
    times its ``N Sxx`` (a constant overlap, including single-pair overlaps) or the
    overlap has fewer than ``min_overlap`` pairs, the value is 0. A constant or
    all-NaN map therefore gives an all-zero SAC.

    **Exactness.** FFT round-off is about ``1e-16`` of the map's *global* energy at every
    lag, so a lag whose overlap holds only values tiny next to the map's largest ones
    (a place field with no threshold spans 10+ orders of magnitude) would come out as
    noise. For every lag a round-off bound of the FFT Pearson r is formed (from the
    overlap's variance terms and the map's norms); lags where it exceeds ``1e-11``, or
    whose variance is within round-off of 0, are recomputed exactly: two-pass sums
    (window means first, then centred products) over the raw values of that overlap.
    A window whose centred sum of squares is at most ``1e-20`` of its sum of squares is
    constant (value 0). The result is the definition to ~1e-12 on any map whose values
    neither overflow nor underflow when squared.
    """
    if not isinstance(min_overlap, (int, np.integer)) or min_overlap < 1:
        raise AnalysisError(f"min_overlap must be an int >= 1; got {min_overlap!r}")
    if unvisited not in UNVISITED_MODES:
        raise AnalysisError(f"unvisited must be one of {UNVISITED_MODES}; got {unvisited!r}")
    x = as_maps(maps, "maps")
    if unvisited == "zero":
        x = np.where(np.isnan(x), 0.0, x)
    u, ny, nx = x.shape
    valid = np.isfinite(x)
    m = valid.astype(np.float64)
    cnt = m.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, np.where(valid, x, 0.0).sum(axis=(1, 2)) / np.maximum(cnt, 1), 0.0)
        a = np.where(valid, x - mean[:, None, None], 0.0)
        sd = np.sqrt((a * a).sum(axis=(1, 2)) / np.maximum(cnt, 1))
    a = a / np.where(sd > 0, sd, 1.0)[:, None, None]
    raw = np.where(valid, x, 0.0)

    ly, lx = sfft.next_fast_len(2 * ny - 1, real=True), sfft.next_fast_len(2 * nx - 1, real=True)
    shape = (ly, lx)
    # Phase factor that places the second argument of every cross-correlation at offset
    # (ny - 1, nx - 1): lag t then lands at index t + (n - 1), a contiguous slice.
    ky = np.fft.fftfreq(ly)[:, None]
    kx = np.fft.rfftfreq(lx)[None, :]
    phase = np.exp(-2j * np.pi * (ky * (ny - 1) + kx * (nx - 1)))
    shared_mask = bool((valid == valid[:1]).all())
    out = np.empty((u, 2 * ny - 1, 2 * nx - 1))
    redo = np.zeros(out.shape, dtype=bool)
    n_shared = fm_shared = None
    if shared_mask:
        fm_shared = sfft.rfft2(m[:1], s=shape)
        n_shared = np.rint(sfft.irfft2(np.conj(fm_shared) * (fm_shared * phase), s=shape)[:, : 2 * ny - 1, : 2 * nx - 1])
    for lo in range(0, u, _CHUNK):
        hi = min(u, lo + _CHUNK)
        _sac_chunk(a[lo:hi], m[lo:hi], shape, phase, fm_shared, n_shared, min_overlap, out[lo:hi], redo[lo:hi])
    redo |= redo[:, ::-1, ::-1]                          # keep the SAC exactly point symmetric
    if redo.any():
        _exact_lags(raw, valid, redo, min_overlap, out)
    return out


def _exact_lags(raw: np.ndarray, valid: np.ndarray, redo: np.ndarray, min_overlap: int, out: np.ndarray) -> None:
    """Pearson r at the flagged (unit, lag) entries by two-pass direct sums over each overlap."""
    u, ny, nx = raw.shape
    full = bool(valid.all())
    uu, iy, ix = np.nonzero(redo)
    lag = iy * (2 * nx - 1) + ix
    order = np.argsort(lag, kind="stable")
    uu, lag = uu[order], lag[order]
    starts = np.flatnonzero(np.r_[True, lag[1:] != lag[:-1]])
    ends = np.r_[starts[1:], lag.size]
    for s0, s1 in zip(starts, ends):
        ky, kx = divmod(int(lag[s0]), 2 * nx - 1)
        dy, dx = ky - (ny - 1), kx - (nx - 1)
        r1 = slice(max(0, -dy), ny - max(0, dy))
        r2 = slice(max(0, dy), ny + min(0, dy))
        c1 = slice(max(0, -dx), nx - max(0, dx))
        c2 = slice(max(0, dx), nx + min(0, dx))
        units = uu[s0:s1]
        xa, ya = raw[:, r1, c1][units], raw[:, r2, c2][units]
        if full:                                          # every bin valid: plain window sums
            n = np.full(units.size, float(xa.shape[1] * xa.shape[2]))
            ddx = xa - xa.mean(axis=(1, 2), keepdims=True)
            ddy = ya - ya.mean(axis=(1, 2), keepdims=True)
            qx, qy = (xa * xa).sum(axis=(1, 2)), (ya * ya).sum(axis=(1, 2))
        else:
            mk = valid[:, r1, c1][units] & valid[:, r2, c2][units]
            n = mk.sum(axis=(1, 2)).astype(np.float64)
            nn = np.maximum(n, 1.0)[:, None, None]
            xa, ya = np.where(mk, xa, 0.0), np.where(mk, ya, 0.0)
            ddx = np.where(mk, xa - xa.sum(axis=(1, 2), keepdims=True) / nn, 0.0)
            ddy = np.where(mk, ya - ya.sum(axis=(1, 2), keepdims=True) / nn, 0.0)
            qx, qy = (xa * xa).sum(axis=(1, 2)), (ya * ya).sum(axis=(1, 2))
        vx = (ddx * ddx).sum(axis=(1, 2))
        vy = (ddy * ddy).sum(axis=(1, 2))
        cov = (ddx * ddy).sum(axis=(1, 2))
        ok = (n >= min_overlap) & (vx > _DIRECT_ZERO_RTOL * qx) & (vy > _DIRECT_ZERO_RTOL * qy)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
            r = np.where(ok, cov / np.where(ok, np.sqrt(vx) * np.sqrt(vy), 1.0), 0.0)
        out[units, ky, kx] = np.clip(r, -1.0, 1.0)


#: Units per FFT batch (keeps the temporaries in cache).
_CHUNK = 32


def _sac_chunk(a: np.ndarray, m: np.ndarray, shape: tuple[int, int], phase: np.ndarray,
               fm: np.ndarray | None, n: np.ndarray | None, min_overlap: int, out: np.ndarray,
               redo: np.ndarray) -> None:
    ny, nx = a.shape[1:]
    sl = (slice(None), slice(0, 2 * ny - 1), slice(0, 2 * nx - 1))
    fa = sfft.rfft2(a, s=shape)
    fa2 = sfft.rfft2(a * a, s=shape)
    if fm is None:
        fm = sfft.rfft2(m, s=shape)
        fms = fm * phase
        n = np.rint(sfft.irfft2(np.conj(fm) * fms, s=shape)[sl])  # exact integer counts
    else:
        if n is None:  # the caller passes a shared mask spectrum with its overlap counts
            raise AnalysisError("_sac_chunk: a precomputed mask spectrum fm needs its overlap counts n")
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
    # Round-off bound of each lag's r (see autocorrelogram, Notes): every FFT sum is off
    # by at most _FFT_K eps ||f|| ||g|| (||a|| ||m|| = count for the normalised maps).
    eps = np.finfo(np.float64).eps
    cnt = (m != 0).sum(axis=(1, 2)).astype(np.float64)[:, None, None]
    e1 = _FFT_K * eps * np.maximum(cnt, 1.0)
    a2 = a * a
    e2 = _FFT_K * eps * np.sqrt((a2 * a2).sum(axis=(1, 2))[:, None, None] * cnt)
    # vy, sy, dvy are vx, sx, dvx at the opposite lag: compute once and flip (views).
    dvx = np.abs(sx)
    dvx *= 2.0 * e1
    dvx += n * e2
    dvy = dvx[:, ::-1, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ivx = 1.0 / vx
        ivy = ivx[:, ::-1, ::-1]
        bound = np.abs(sx)
        bound += np.abs(sy)
        bound += n
        bound *= e1
        bound *= np.sqrt(np.abs(ivx * ivy))
        bound += 0.5 * (dvx * ivx + dvy * ivy)
    trusted = (vx > 2.0 * dvx) & (vy > 2.0 * dvy) & (bound <= _FFT_TOL)
    redo[...] = (n >= min_overlap) & ~(trusted & ok)
