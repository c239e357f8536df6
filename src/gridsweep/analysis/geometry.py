"""Grid geometry from autocorrelogram peaks: spacing, orientation, ellipticity.

One analysis: :func:`grid_geometry` (docs/science.md section 6, "Grid spacing (period) and
orientation").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from gridsweep.analysis._common import as_maps, as_numpy, bin_size_of
from gridsweep.analysis.sac import autocorrelogram
from gridsweep.errors import AnalysisError, DataError

__all__ = ["N_PEAKS", "PEAK_MIN_CORRELATION", "PERIOD_METHODS", "grid_geometry", "grid_period", "nfl_period"]

#: Grid-period estimators: ``"peaks"`` (ours, :func:`grid_geometry`: six nearest
#: Pearson-SAC peaks, sub-bin refined) and ``"nfl"`` (:func:`nfl_period`, Schaeffer et al.
#: 2022's integer peaks of the raw autocorrelation; reads short).
PERIOD_METHODS = ("peaks", "nfl")

#: Number of SAC peaks around the centre that define the grid.
N_PEAKS = 6
#: A SAC local maximum must exceed this correlation to count as a peak.
PEAK_MIN_CORRELATION = 0.0

# Least-squares fit of f = c0 + c1 x + c2 y + c3 x^2 + c4 x y + c5 y^2 on a 3 x 3 patch.
_PY, _PX = np.mgrid[-1:2, -1:2]
_DESIGN = np.stack([np.ones(9), _PX.ravel(), _PY.ravel(), _PX.ravel() ** 2, (_PX * _PY).ravel(), _PY.ravel() ** 2], 1)
_FIT = np.linalg.pinv(_DESIGN)  # (6, 9)


def _bin_size(bin_size: Any) -> tuple[float, float]:
    try:
        b = np.broadcast_to(np.asarray(bin_size, dtype=float).ravel(), (2,)) if np.size(bin_size) in (1, 2) else None
    except (TypeError, ValueError):
        b = None
    if b is None or not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise DataError(f"bin_size must be a positive number of metres or (dx, dy); got {bin_size!r}")
    return float(b[0]), float(b[1])


def _looks_like_sacs(x: np.ndarray) -> bool:
    h, w = x.shape[1:]
    if h % 2 == 0 or w % 2 == 0 or not np.isfinite(x).all() or np.abs(x).max(initial=0.0) > 1.0 + 1e-12:
        return False
    centre = x[:, (h - 1) // 2, (w - 1) // 2]
    return bool(np.all((np.abs(centre - 1.0) < 1e-9) | (centre == 0.0)))


def _subpixel(sacs: np.ndarray, u_idx: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic (3 x 3 least-squares) refinement of peak positions; 0 offset at borders or bad fits."""
    h, w = sacs.shape[1:]
    inside = (iy > 0) & (iy < h - 1) & (ix > 0) & (ix < w - 1)
    oy = np.zeros(iy.shape)
    ox = np.zeros(ix.shape)
    if not inside.any():
        return oy, ox
    uu, yy, xx = u_idx[inside], iy[inside], ix[inside]
    patch = sacs[uu[:, None], yy[:, None] + _PY.ravel()[None], xx[:, None] + _PX.ravel()[None]]  # (K, 9)
    c = patch @ _FIT.T                                                      # (K, 6)
    a, b, e = 2 * c[:, 3], c[:, 4], 2 * c[:, 5]                             # Hessian [[a, b], [b, e]]
    det = a * e - b * b
    good = (a < 0) & (det > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(good, (-c[:, 1] * e + c[:, 2] * b) / np.where(good, det, 1.0), 0.0)
        dy = np.where(good, (-c[:, 2] * a + c[:, 1] * b) / np.where(good, det, 1.0), 0.0)
    ok = good & (np.abs(dx) <= 1.0) & (np.abs(dy) <= 1.0)
    oy[inside] = np.where(ok, dy, 0.0)
    ox[inside] = np.where(ok, dx, 0.0)
    return oy, ox


def _solve3(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched 3 x 3 solves; NaN rows where a system is singular."""
    out = np.full(rhs.shape, np.nan)
    det = np.linalg.det(gram)
    scale = np.einsum("gii->g", gram) ** 3
    ok = np.abs(det) > 1e-12 * np.where(scale > 0, scale, 1.0)
    if ok.any():
        out[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
    return out


def grid_geometry(data: Any, bin_size: Any = None, *, kind: str = "auto") -> dict[str, Any]:
    """Spacing, orientation and ellipticity of each unit's grid from its autocorrelogram.

    Parameters
    ----------
    data : RateMaps or array_like or torch.Tensor
        Rate maps ``(U, ny, nx)`` (their SACs are computed) or autocorrelograms
        ``(U, 2ny-1, 2nx-1)`` (a single 2-D array is one unit).
    bin_size : float or (dx, dy)
        Bin size in metres (a :class:`RateMaps` supplies its own when omitted).
    kind : {"auto", "maps", "sacs"}, default "auto"
        What ``data`` holds. ``"auto"``: a RateMaps is maps; an array is taken as SACs
        when both sides are odd, it has no NaN, ``|values| <= 1`` and every centre value
        is 1 (or 0 for constant maps); otherwise maps. Pass it explicitly when in doubt.

    Returns
    -------
    dict
        ``spacing_m`` (U,) mean distance of the six peaks, metres; ``orientation_deg``
        (U,) in [0, 60); ``ellipticity`` (U,) ``1 - minor/major`` of the ellipse through
        the peaks (0 for a perfect hexagon); ``peak_positions`` (U, 6, 2) peak offsets
        from the SAC centre, ``[..., 0] = x``, metres, sorted by angle; ``peak_values``
        (U, 6) SAC value at each peak; ``reason`` (U,) object array of str, ``""`` when
        the unit was measured, else why its values are NaN.

    Raises
    ------
    DataError
        Bad shapes, ``bin_size`` or ``kind``.

    Notes
    -----
    docs/science.md section 6 (Hafting et al. 2005; Sargolini et al. 2006; the same
    quantities as BNT's / opexebo's grid statistics, defined here from the text):

    * peaks: SAC local maxima (3 x 3 neighbourhood, ``ndimage.maximum_filter``) with
      value > ``PEAK_MIN_CORRELATION`` (0), excluding the centre; the six nearest the
      centre are kept (fewer than six: NaN, reason ``"fewer than 6 peaks"``);
    * each peak is refined to sub-bin precision by a least-squares quadratic fit on its
      3 x 3 neighbourhood (kept only when the fit has a maximum within 1 bin);
    * spacing = mean distance of the six peaks from the centre, converted to metres
      with ``bin_size`` (per axis);
    * orientation = the six peak angles folded mod 60 degrees and averaged circularly
      (``angle(sum exp(6 i theta)) / 6`` mod 60), in [0, 60) degrees measured
      counter-clockwise from the +x axis (the published "angle of the first peak mod
      60", made robust by averaging);
    * ellipticity: least-squares centred ellipse ``A x^2 + B x y + C y^2 = 1`` through
      the six peaks (metres), ``1 - b/a`` with ``a >= b`` its semi-axes; NaN with reason
      ``"ellipse fit failed"`` when the fit is not an ellipse.
    """
    if kind not in ("auto", "maps", "sacs"):
        raise DataError(f"kind must be 'auto', 'maps' or 'sacs'; got {kind!r}")
    is_rm = hasattr(data, "maps") and hasattr(data, "occupancy")
    if bin_size is None:
        if not is_rm:
            raise DataError("bin_size (metres, or (dx, dy)) is required unless data is a RateMaps")
        bin_size = data.bin_size
    bx, by = _bin_size(bin_size)
    if is_rm:
        sacs = autocorrelogram(data.maps)
    else:
        x = as_numpy(data, "data")
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise DataError(f"data must be (U, ny, nx) maps or (U, 2ny-1, 2nx-1) SACs; got shape {x.shape}")
        sac_like = kind == "sacs" or (kind == "auto" and _looks_like_sacs(x))
        if sac_like:
            if not np.isfinite(x).all():
                raise DataError("SACs must not contain NaN or inf")
            sacs = x
        else:
            sacs = autocorrelogram(as_maps(x, "data"))
    u, h, w = sacs.shape
    if h < 3 or w < 3:
        raise AnalysisError(f"SACs must be at least 3 x 3; got shape {sacs.shape}")
    cy, cx = (h - 1) // 2, (w - 1) // 2

    empty = ~np.any(sacs != 0.0, axis=(1, 2))
    mx = ndimage.maximum_filter(sacs, size=(1, 3, 3), mode="constant", cval=-np.inf)
    peak = (sacs >= mx) & (sacs > PEAK_MIN_CORRELATION)
    peak[:, cy, cx] = False
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = ((yy - cy) * by) ** 2 + ((xx - cx) * bx) ** 2
    key = np.where(peak, d2[None], np.inf).reshape(u, -1)
    k = min(N_PEAKS, key.shape[1])
    nearest = np.argpartition(key, k - 1, axis=1)[:, :k]
    nearest = np.take_along_axis(nearest, np.argsort(np.take_along_axis(key, nearest, 1), axis=1), axis=1)
    n_found = np.isfinite(np.take_along_axis(key, nearest, 1)).sum(axis=1)
    ok = (~empty) & (n_found >= N_PEAKS)

    spacing = np.full(u, np.nan)
    orient = np.full(u, np.nan)
    ellip = np.full(u, np.nan)
    pos = np.full((u, N_PEAKS, 2), np.nan)
    vals = np.full((u, N_PEAKS), np.nan)
    reason = np.array(["" for _ in range(u)], dtype=object)
    reason[empty] = "constant or empty map"
    reason[~empty & (n_found < N_PEAKS)] = f"fewer than {N_PEAKS} peaks"
    good = np.flatnonzero(ok)
    if good.size:
        flat = nearest[good]                                              # (G, 6)
        iy, ix = np.divmod(flat, w)
        uu = np.broadcast_to(good[:, None], flat.shape)
        oy, ox = _subpixel(sacs, uu.ravel(), iy.ravel(), ix.ravel())
        py = (iy + oy.reshape(flat.shape) - cy) * by
        px = (ix + ox.reshape(flat.shape) - cx) * bx
        theta = np.arctan2(py, px)
        order = np.argsort(np.mod(theta, 2 * np.pi), axis=1)
        px, py = np.take_along_axis(px, order, 1), np.take_along_axis(py, order, 1)
        theta = np.take_along_axis(theta, order, 1)
        pos[good, :, 0], pos[good, :, 1] = px, py
        vals[good] = np.take_along_axis(sacs[good].reshape(good.size, -1), np.take_along_axis(flat, order, 1), 1)
        spacing[good] = np.hypot(px, py).mean(axis=1)
        z = np.exp(6j * theta).sum(axis=1)
        orient[good] = np.mod(np.degrees(np.angle(z)) / 6.0, 60.0)
        # centred ellipse A x^2 + B x y + C y^2 = 1, least squares per unit
        design = np.stack([px * px, px * py, py * py], axis=2)           # (G, 6, 3)
        gram = np.einsum("gpi,gpj->gij", design, design)                 # normal equations, batched
        rhs = design.sum(axis=1)
        coef = _solve3(gram, rhs)                                         # (G, 3)
        q = np.stack([np.stack([coef[:, 0], coef[:, 1] / 2], 1), np.stack([coef[:, 1] / 2, coef[:, 2]], 1)], 1)
        lam = np.linalg.eigvalsh(q)                                       # ascending: lam[0] -> major axis
        fit_ok = np.isfinite(lam).all(axis=1) & (lam[:, 0] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            e = 1.0 - np.sqrt(np.where(fit_ok, lam[:, 0] / np.where(fit_ok, lam[:, 1], 1.0), np.nan))
        ellip[good] = np.where(fit_ok, e, np.nan)
        bad_fit = good[~fit_ok]
        reason[bad_fit] = "ellipse fit failed"
    orient = np.where(orient >= 60.0, 0.0, orient)
    return {
        "spacing_m": spacing,
        "orientation_deg": orient,
        "ellipticity": ellip,
        "peak_positions": pos,
        "peak_values": vals,
        "reason": reason,
    }


def nfl_period(maps: Any) -> dict[str, np.ndarray]:
    """Grid period the way Schaeffer et al. 2022 (NFL) measured it: raw-autocorrelation peaks.

    Parameters
    ----------
    maps : RateMaps or array_like or torch.Tensor, shape (U, ny, nx) or (ny, nx)
        Rate maps; NaN bins are set to 0 first, as NFL does before calling it.

    Returns
    -------
    dict
        ``period_bins`` (U,) mean distance (bins, integer peak positions) of the six
        peaks nearest the centre after the first; ``period_err_bins`` (U,) their standard
        deviation; NaN where the autocorrelation has no peak besides the first.

    Notes
    -----
    Transcribed from FieteLab/NeurIPS-2022-No-Free-Lunch (d9edec2)
    ``mec_hpc_investigations/models/scores.py:151-173``
    (``calculate_grid_cell_periodicity_and_orientation``), called from
    ``models/trainer.py:418-427`` on maps with NaN set to 0 for units scoring > 0.3:

    * ``scipy.signal.correlate2d(map, map, mode="full")`` - the *unnormalised*
      autocorrelation (no mean subtraction, no overlap normalisation);
    * ``skimage.feature.peak_local_max`` with its defaults (scikit-image ~0.19, their
      requirements.txt): pixels equal to the maximum of their 3 x 3 neighbourhood,
      strictly above the image minimum, not on the one-pixel border; none for a constant
      image;
    * offsets from ``shape // 2``, Euclidean lengths, sorted, entries 1..6 kept (entry 0
      is taken to be the centre), period = their mean, error = their (population) std.

    The unnormalised autocorrelation is multiplied by the triangular overlap envelope, so
    its peaks sit closer to the centre than the lattice's: the method reads short (about
    24 bins for a true 26; docs/science.md section 6). :func:`grid_geometry` (``"peaks"``)
    is the accurate estimator. Peak ties at equal distance do not change the period.
    """
    import scipy.signal

    x = np.nan_to_num(as_maps(maps, "maps"), nan=0.0)
    u = x.shape[0]
    period = np.full(u, np.nan)
    err = np.full(u, np.nan)
    for i in range(u):
        ac = scipy.signal.correlate2d(x[i], x[i], mode="full")
        if np.all(ac == ac.flat[0]):
            continue
        peak = (ac == ndimage.maximum_filter(ac, size=3, mode="constant")) & (ac > ac.min())
        peak[0, :] = peak[-1, :] = False
        peak[:, 0] = peak[:, -1] = False
        off = np.argwhere(peak) - np.array(ac.shape) // 2
        dist = np.sort(np.linalg.norm(off, axis=1))[1:7]
        if dist.size:
            period[i], err[i] = dist.mean(), dist.std()
    return {"period_bins": period, "period_err_bins": err}


def grid_period(data: Any, bin_size: Any = None, *, method: str = "peaks") -> np.ndarray:
    """Grid period (spacing) in metres by a named method (:data:`PERIOD_METHODS`).

    Parameters
    ----------
    data : RateMaps or array_like, shape (U, ny, nx)
        Rate maps (``"nfl"`` needs maps; ``"peaks"`` also accepts SACs, see
        :func:`grid_geometry`).
    bin_size : float or (dx, dy)
        Metres (taken from a RateMaps when omitted). ``"nfl"`` uses ``dx`` (square bins).
    method : {"peaks", "nfl"}, default "peaks"

    Returns
    -------
    ndarray, shape (U,)
        Metres; NaN where the method finds no grid.
    """
    if method not in PERIOD_METHODS:
        raise AnalysisError(f"method must be one of {PERIOD_METHODS}; got {method!r}")
    bin_size = bin_size_of(data, bin_size, "data")
    if method == "peaks":
        return grid_geometry(data, bin_size)["spacing_m"]
    bx, _ = _bin_size(bin_size)
    return nfl_period(data)["period_bins"] * bx
