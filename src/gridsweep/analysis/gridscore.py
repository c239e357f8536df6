"""Grid scores (gridness) of spatial autocorrelograms, batched over units, one registry of variants.

One analysis: :func:`grid_scores` (docs/science.md section 6, "Grid score"). The variants are
entries of :data:`GRID_SCORE_VARIANTS`; every result records the variant that made it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from gridsweep.analysis._common import as_maps, as_numpy
from gridsweep.analysis.sac import UNVISITED_MODES, autocorrelogram
from gridsweep.errors import AnalysisError, DataError

__all__ = [
    "ANGLES",
    "GRID_SCORE_VARIANTS",
    "GridScoreVariant",
    "deepmind_ring_radii",
    "grid_scores",
    "rotate_sacs",
    "rotation_operator",
]

#: Rotation angles (degrees) at which every variant correlates the SAC with itself.
ANGLES = (30, 45, 60, 90, 120, 135, 150)
_IDX = {a: i for i, a in enumerate(ANGLES)}
#: Regulariser added to the ring variance in the deepmind correlation (docs/science.md section 6).
DEEPMIND_EPS = 1e-5


# --------------------------------------------------------------------------- rotation
@functools.lru_cache(maxsize=64)
def rotation_operator(shape: tuple[int, int], angle: float) -> sp.csr_matrix:
    """Sparse interpolation operator of ``scipy.ndimage.rotate(x, angle, reshape=False)`` *after* its prefilter.

    Parameters
    ----------
    shape : (h, w)
        Image shape.
    angle : float
        Degrees, ``ndimage.rotate``'s sign convention.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (h w, h w)
        ``W`` with ``ndimage.rotate(x, angle, reshape=False).ravel() ==
        W @ spline_coefficients(x).ravel()`` where the coefficients are
        ``ndimage.spline_filter(x, 3, mode="constant")`` (see :func:`rotate_sacs`).
        At most 16 non-zeros per row (the cubic B-spline's 4 x 4 support).

    Notes
    -----
    Built exactly from ``ndimage.rotate(..., prefilter=False)`` applied to multiplexed
    basis images: 16 probe images, each holding a delta at every 4th row and column
    (offset by one of the 16 phases), so that no output pixel's 4 x 4 window sees two
    deltas of one probe, even after the mirror extension that ``mode="constant"`` uses
    inside the image. A second probe with amplitude ``k + 1`` at input pixel ``k``
    identifies which delta each output pixel saw. 32 rotations instead of ``h w``; cached
    per (shape, angle).
    """
    h, w = int(shape[0]), int(shape[1])
    rows, cols, vals = [], [], []
    idx = np.arange(h * w, dtype=np.float64).reshape(h, w) + 1.0
    for cy in range(4):
        for cx in range(4):
            probe = np.zeros((h, w))
            probe[cy::4, cx::4] = 1.0
            tagged = probe * idx
            r1 = ndimage.rotate(probe, angle, reshape=False, order=3, mode="constant", cval=0.0, prefilter=False)
            r2 = ndimage.rotate(tagged, angle, reshape=False, order=3, mode="constant", cval=0.0, prefilter=False)
            out = np.flatnonzero(r1.ravel() != 0.0)
            wgt = r1.ravel()[out]
            src = np.rint(r2.ravel()[out] / wgt).astype(np.int64) - 1
            rows.append(out)
            cols.append(src)
            vals.append(wgt)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w, h * w))


def _spline_coefficients(sacs: np.ndarray) -> np.ndarray:
    """Cubic B-spline prefilter of each (h, w) slice, exactly as ``ndimage.rotate`` does it."""
    c = ndimage.spline_filter1d(sacs, 3, axis=1, output=np.float64, mode="constant")
    return ndimage.spline_filter1d(c, 3, axis=2, output=np.float64, mode="constant")


def rotate_sacs(sacs: Any, angle: float) -> np.ndarray:
    """Rotate every SAC about its centre; batched equivalent of ``ndimage.rotate(s, angle, reshape=False)``.

    Parameters
    ----------
    sacs : array_like, shape (U, h, w)
    angle : float
        Degrees.

    Returns
    -------
    ndarray, shape (U, h, w)
        Cubic-spline (order 3) rotation about the centre, same size, zeros outside
        (``mode="constant"``, ``cval=0``, ``prefilter=True``: scipy's defaults).
    """
    s = as_numpy(sacs, "sacs")
    if s.ndim == 2:
        s = s[None]
    u, h, w = s.shape
    coeffs = _spline_coefficients(s).reshape(u, -1)
    return np.asarray(rotation_operator((h, w), float(angle)) @ coeffs.T).T.reshape(u, h, w)


# --------------------------------------------------------------------------- band sums
#: Units per batch inside the scorers (keeps the working set in cache).
_CHUNK = 64


@dataclass(frozen=True)
class _Bands:
    """SAC pixels grouped into radial bands, and the rotation operators restricted to them."""

    rows: np.ndarray            # flat SAC indices, sorted by band
    starts: np.ndarray          # first position of each band in ``rows`` (n_bands,)
    n_bands: int
    ops: dict                   # angle -> csr (len(rows), h w)


@functools.lru_cache(maxsize=32)
def _bands(shape: tuple[int, int], kind: str) -> _Bands:
    """Pixel bands of a SAC shape. ``kind = "deepmind"``: band j = ``outer[j-1] < r <= outer[j]``
    (band 0 starts at the inner radius); ``kind = "shells"``: band k = ``k - 1 < r <= k``,
    k = 0 ... n - 1 (band 0 is the centre pixel)."""
    h, w = shape
    n = (min(h, w) + 1) // 2
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt((yy - (h - 1) / 2.0) ** 2 + (xx - (w - 1) / 2.0) ** 2).ravel()
    if kind == "deepmind":
        inner, outers = deepmind_ring_radii(n)
        sel = np.flatnonzero((d > inner) & (d <= outers[-1]))
        band = np.searchsorted(outers, d[sel], side="left")
        n_bands = len(outers)
    else:
        sel = np.flatnonzero(d <= n - 1)
        band = np.ceil(d[sel]).astype(np.int64)
        n_bands = n
    order = np.argsort(band, kind="stable")
    rows, band = sel[order], band[order]
    starts = np.searchsorted(band, np.arange(n_bands), side="left")
    ops = {a: rotation_operator((h, w), float(a))[rows] for a in ANGLES}
    return _Bands(rows=rows, starts=starts, n_bands=n_bands, ops=ops)


def _band_sums(sacs: np.ndarray, bands: _Bands, squares: bool) -> dict[str, np.ndarray]:
    """Per-band sums of the SAC and its rotations, for all units, in cache-sized batches.

    Returns ``n`` (B,), ``s``, ``ss`` (B, U) and ``r``, ``sr`` (and ``rr`` when ``squares``)
    of shape (A, B, U): sums over each band of s, s^2, rot, s rot, rot^2 (0 for empty bands).
    """
    u = sacs.shape[0]
    nb, na = bands.n_bands, len(ANGLES)
    out = {"s": np.empty((nb, u)), "ss": np.empty((nb, u)), "r": np.empty((na, nb, u)), "sr": np.empty((na, nb, u))}
    if squares:
        out["rr"] = np.empty((na, nb, u))
    out["n"] = np.diff(np.append(bands.starts, len(bands.rows))).astype(np.float64)
    st = bands.starts
    empty = out["n"] == 0

    def reduce(x: np.ndarray) -> np.ndarray:
        # reduceat over bands; a zero row at the end makes every start a valid index, and
        # empty bands (which reduceat would give one element) are zeroed.
        res = np.add.reduceat(np.concatenate([x, np.zeros((1, x.shape[1]))]), st, axis=0)
        res[empty] = 0.0
        return res

    for lo in range(0, u, _CHUNK):
        hi = min(u, lo + _CHUNK)
        chunk = sacs[lo:hi]
        coeffs_t = np.ascontiguousarray(_spline_coefficients(chunk).reshape(hi - lo, -1).T)
        s_t = np.ascontiguousarray(chunk.reshape(hi - lo, -1)[:, bands.rows].T)      # (P, u)
        out["s"][:, lo:hi] = reduce(s_t)
        out["ss"][:, lo:hi] = reduce(s_t * s_t)
        for i, a in enumerate(ANGLES):
            r = bands.ops[a] @ coeffs_t                                                # (P, u)
            out["r"][i, :, lo:hi] = reduce(r)
            out["sr"][i, :, lo:hi] = reduce(s_t * r)
            if squares:
                out["rr"][i, :, lo:hi] = reduce(r * r)
    return out


def deepmind_ring_radii(n: int) -> tuple[float, np.ndarray]:
    """Inner radius and the 10 outer radii (bins) of the deepmind rings for ``n`` bins per side.

    Returns ``(0.2 n, linspace(0.4, 1.0, 10) n)`` (docs/science.md section 6).
    """
    return 0.2 * n, np.linspace(0.4, 1.0, 10) * n


# --------------------------------------------------------------------------- combinations
def _score60_mean(c: np.ndarray) -> np.ndarray:
    return (c[_IDX[60]] + c[_IDX[120]]) / 2.0 - (c[_IDX[30]] + c[_IDX[90]] + c[_IDX[150]]) / 3.0


def _score60_minmax(c: np.ndarray) -> np.ndarray:
    return np.minimum(c[_IDX[60]], c[_IDX[120]]) - np.maximum(np.maximum(c[_IDX[30]], c[_IDX[90]]), c[_IDX[150]])


def _score90(c: np.ndarray) -> np.ndarray:
    return c[_IDX[90]] - (c[_IDX[45]] + c[_IDX[135]]) / 2.0


def _argmax_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and argmax over axis 0 of (K, U), NaN-aware, NaN where a column is all NaN (no warning)."""
    if x.shape[0] == 0:
        return np.full(x.shape[1], np.nan), np.full(x.shape[1], -1, dtype=np.int64)
    finite = np.isfinite(x)
    filled = np.where(finite, x, -np.inf)
    arg = np.argmax(filled, axis=0)
    best = np.take_along_axis(filled, arg[None], axis=0)[0]
    none = ~finite.any(axis=0)
    best = np.where(none, np.nan, best)
    arg = np.where(none, -1, arg)
    return best, arg


# --------------------------------------------------------------------------- deepmind
def _deepmind(sacs: np.ndarray, combine60: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    u = sacs.shape[0]
    bands = _bands(tuple(sacs.shape[1:]), "deepmind")
    n_side = (min(sacs.shape[1:]) + 1) // 2
    inner, outers = deepmind_ring_radii(n_side)
    b = _band_sums(sacs, bands, squares=False)
    cnt = np.cumsum(b["n"])[:, None]                     # rings are nested: ring k = bands 0..k
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty ring (tiny maps) gives NaN
        mu = np.cumsum(b["s"], axis=0) / cnt             # (R, U)
        var = np.cumsum(b["ss"], axis=0) / cnt - mu * mu
        sum_r = np.cumsum(b["r"], axis=1) / cnt          # (A, R, U)
        sum_sr = np.cumsum(b["sr"], axis=1) / cnt
        corr = (sum_sr - mu[None] * sum_r) / (var[None] + DEEPMIND_EPS)   # mean (s - mu)(r - mu) / (var + eps)
    s60 = combine60(corr)                                # (R, U)
    s90 = _score90(corr)
    best60, arg60 = _argmax_rows(s60)
    best90, arg90 = _argmax_rows(s90)
    take = np.clip(arg60, 0, None)
    correlations = corr[:, take, np.arange(u)].T         # (U, n_angles)
    return {
        "score60": best60,
        "score90": best90,
        "correlations": correlations,
        "best_ring": arg60,
        "best_radius": np.where(arg60 >= 0, outers[take], np.nan),
        "best_ring_90": arg90,
        "best_radius_90": np.where(arg90 >= 0, outers[np.clip(arg90, 0, None)], np.nan),
        "inner_radius": np.full(u, inner),
    }


# --------------------------------------------------------------------------- sargolini
#: Radii averaged by the sargolini sliding mean.
SARGOLINI_WINDOW = 3


def _central_radius(profile: np.ndarray) -> np.ndarray:
    """Central-peak radius per unit from the radial profile (K, U): first shell k >= 1 where the
    profile is <= 0 or the next shell is higher (end of the radial decline)."""
    k = np.arange(profile.shape[0])[:, None]
    nxt = np.vstack([profile[1:], np.full((1, profile.shape[1]), np.inf)])
    stop = (k >= 1) & ((profile <= 0) | (nxt > profile))
    stop[-1] = True
    return np.argmax(stop, axis=0)


def _sliding_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean over windows of ``w`` consecutive rows of (K, ...); NaN where a window holds a NaN."""
    if x.shape[0] < w:
        return np.full((0,) + x.shape[1:], np.nan)
    bad = ~np.isfinite(x)
    z = np.concatenate([np.zeros((1,) + x.shape[1:]), np.where(bad, 0.0, x)])
    c = np.cumsum(z, axis=0)
    nb = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), bad.astype(np.float64)]), axis=0)
    mean = (c[w:] - c[:-w]) / w
    return np.where((nb[w:] - nb[:-w]) > 0, np.nan, mean)


def _sargolini(sacs: np.ndarray) -> dict[str, Any]:
    u = sacs.shape[0]
    bands = _bands(tuple(sacs.shape[1:]), "shells")
    b = _band_sums(sacs, bands, squares=True)
    cols = np.arange(u)
    r0 = _central_radius(b["s"] / b["n"][:, None])       # (U,) integer bins
    kk = b["n"].shape[0]                                   # shells 0 .. n-1; outer radius R = shell index

    def annulus(x: np.ndarray) -> np.ndarray:             # sums over r0 < r <= R for every R
        c = np.cumsum(x, axis=-2)
        return c - np.take_along_axis(c, np.broadcast_to(r0, c.shape[:-2] + (1, u)), axis=-2)

    valid = np.arange(kk)[:, None] > r0[None, :]           # (K, U)
    n = annulus(np.broadcast_to(b["n"][:, None], (kk, u)).copy())
    sx, sxx = annulus(b["s"]), annulus(b["ss"])
    sy, syy, sxy = annulus(b["r"]), annulus(b["rr"]), annulus(b["sr"])
    vx = n * sxx - sx * sx
    vy = n * syy - sy * sy
    ok = valid[None] & (n >= 2)[None] & (vx > 1e-12 * n * sxx)[None] & (vy > 1e-12 * n * syy)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(ok, (n * sxy - sx * sy) / np.sqrt(np.where(ok, vx * vy, 1.0)), np.nan)   # (A, K, U)
    s60 = _score60_minmax(corr)
    s90 = _score90(corr)
    w = SARGOLINI_WINDOW
    m60, m90 = _sliding_mean(s60, w), _sliding_mean(s90, w)
    best60, arg60 = _argmax_rows(m60)
    best90, arg90 = _argmax_rows(m90)
    corr_m = _sliding_mean(np.moveaxis(corr, 0, 1), w)     # (K - w + 1, A, U)
    take = np.clip(arg60, 0, None)
    if corr_m.shape[0]:
        correlations = np.where((arg60 >= 0)[:, None], corr_m[take, :, cols], np.nan)
    else:
        correlations = np.full((u, len(ANGLES)), np.nan)
    mid = np.arange(kk, dtype=float)[w // 2: kk - (w - 1 - w // 2)]   # middle radius of each window
    return {
        "score60": best60,
        "score90": best90,
        "correlations": correlations,
        "best_ring": arg60,
        "best_radius": np.where(arg60 >= 0, mid[take] if mid.size else np.nan, np.nan),
        "best_ring_90": arg90,
        "best_radius_90": np.where(arg90 >= 0, mid[np.clip(arg90, 0, None)] if mid.size else np.nan, np.nan),
        "inner_radius": r0.astype(float),
    }


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class GridScoreVariant:
    """One grid-score definition: a name, where it comes from, and its batched implementation.

    ``compute(sacs)`` takes ``(U, 2n-1, 2m-1)`` SACs with no NaN and returns a dict of
    per-unit arrays (see :func:`grid_scores`).
    """

    name: str
    description: str
    compute: Callable[[np.ndarray], dict]
    #: How the variant's original code treats unvisited (NaN) bins when it builds the SAC
    #: (``autocorrelogram(..., unvisited=...)``): DeepMind's scorer zero-fills them.
    unvisited: str = "drop"


#: Registry of grid-score variants (docs/science.md section 6). Add an entry to add a variant.
GRID_SCORE_VARIANTS: dict[str, GridScoreVariant] = {
    "deepmind_mean": GridScoreVariant(
        "deepmind_mean",
        "Banino et al. 2018 / Sorscher et al.: 10 rings, (c60+c120)/2 - (c30+c90+c150)/3, max over rings",
        functools.partial(_deepmind, combine60=_score60_mean),
        unvisited="zero",
    ),
    "deepmind_minmax": GridScoreVariant(
        "deepmind_minmax",
        "Schaeffer et al. 2022 (NFL) default: 10 rings, min(c60,c120) - max(c30,c90,c150), max over rings",
        functools.partial(_deepmind, combine60=_score60_minmax),
        unvisited="zero",
    ),
    "sargolini": GridScoreVariant(
        "sargolini",
        "Sargolini 2006 / Langston 2010 (BNT, opexebo): annulus outside the central peak, expanding outer "
        "radius, Pearson r, min-max, max of a 3-radius sliding mean",
        _sargolini,
    ),
}


def grid_scores(ratemaps: Any = None, variant: str = "deepmind_minmax", *, sacs: Any = None,
                unvisited: str | None = None) -> dict[str, Any]:
    """Grid scores of many rate maps in one batched call.

    Parameters
    ----------
    ratemaps : array_like or torch.Tensor or RateMaps, shape (U, ny, nx) or (ny, nx), optional
        Rate maps (NaN = unvisited). May be None when ``sacs`` is given.
    variant : str, default "deepmind_minmax"
        A key of :data:`GRID_SCORE_VARIANTS`: ``"deepmind_mean"``, ``"deepmind_minmax"``,
        ``"sargolini"``.
    sacs : array_like, shape (U, 2 ny - 1, 2 nx - 1), optional
        Precomputed autocorrelograms (:func:`~gridsweep.analysis.autocorrelogram`);
        computed from ``ratemaps`` when omitted. Must not contain NaN.
    unvisited : {"zero", "drop"}, optional
        How NaN bins of ``ratemaps`` enter the SAC (ignored when ``sacs`` is given).
        Default: the variant's own convention (``GRID_SCORE_VARIANTS[v].unvisited``):
        ``"zero"`` for ``deepmind_*`` (the published scorer sets unvisited bins to 0,
        google-deepmind/grid-cells scores.py:105-114), ``"drop"`` for ``sargolini``
        (BNT ignores them). ``unvisited="drop"`` scores the deepmind rings on the
        NaN-aware SAC instead.

    Returns
    -------
    dict
        ``score60`` (U,) gridness; ``score90`` (U,) square score
        ``c90 - (c45 + c135) / 2``; ``correlations`` (U, 7) at the rotation ``angles``
        (7,) = (30, 45, 60, 90, 120, 135, 150) degrees, taken at the ring (window) that
        gave ``score60``; ``best_ring`` (U,) int index of that ring (-1 where NaN) and
        ``best_radius`` (U,) its outer radius in bins (sargolini: the middle radius of the
        best 3-radius window); ``best_ring_90`` / ``best_radius_90`` the same for score90;
        ``inner_radius`` (U,) bins; ``variant`` (str); ``n_bins`` (int) bins per side.
        Constant or empty maps (all-zero SAC) get NaN scores, ring -1.

    Raises
    ------
    AnalysisError
        Unknown variant, or neither ``ratemaps`` nor ``sacs`` given.
    DataError
        Bad shapes, NaN in ``sacs``, or ``sacs`` and ``ratemaps`` of different sizes.

    Notes
    -----
    docs/science.md section 6 ("Grid score"). All variants correlate the SAC with itself
    rotated by each angle. **Rotation**: cubic B-spline (order 3) about the SAC centre,
    same size, zeros outside: exactly ``scipy.ndimage.rotate(sac, angle,
    reshape=False)`` with its defaults ``order=3, mode="constant", cval=0,
    prefilter=True``. It is applied to all units at once as the same B-spline
    prefilter (``ndimage.spline_filter1d`` along both image axes, ``mode="constant"``)
    followed by a cached sparse operator (:func:`rotation_operator`), restricted to
    the pixels within ``n`` bins of the centre (no ring reaches further).

    ``deepmind_mean`` / ``deepmind_minmax`` (Banino et al. 2018 Nature's published
    scorer, used by Sorscher et al., Nayebi et al., Schaeffer et al. 2022; equal to
    google-deepmind/grid-cells scores.py ``GridScorer.get_scores`` to 1e-6 on any
    non-constant map, NaN bins included, see tests/test_analysis_gridscore.py; a
    constant map, which the published code scores 0, is NaN here): ``n`` bins
    per side (``(min(h, w) + 1) // 2`` of the SAC); ten rings with inner radius
    ``0.2 n`` and outer radii ``linspace(0.4, 1.0, 10) n``; a pixel at distance ``r``
    (bins) from the centre is in a ring when ``inner < r <= outer``. Per ring ``m`` and
    angle, ``c = sum(m (s - mu)(r - mu)) / sum(m) / (var_m(s) + 1e-5)`` with ``mu`` and
    ``var`` (population variance) of the unrotated SAC ``s`` in the ring and ``r`` the
    rotated SAC. The per-ring scores are combined (mean:
    ``(c60 + c120)/2 - (c30 + c90 + c150)/3``; minmax: ``min(c60, c120) - max(c30,
    c90, c150)``) and the score is the maximum over rings (score60 and score90 maximised
    separately).

    ``sargolini`` (Sargolini et al. 2006 Science; Langston et al. 2010; the BNT /
    opexebo ``gridnessScore`` procedure, re-implemented from its description):

    * central peak radius ``r0`` (integer bins): the SAC's radial profile (mean over
      shells ``k - 1 < r <= k``) is followed outwards from the centre until it first
      drops to <= 0 or starts to rise again (a local minimum); ``r0`` is that shell;
    * for every integer outer radius ``R = r0 + 1 ... n - 1`` (the largest circle
      inside the SAC), the annulus ``r0 < r <= R``;
    * per annulus and angle, the plain Pearson correlation between the SAC and its
      rotation over the annulus pixels (both means from their own values), NaN when
      either has zero variance;
    * per radius, min-max: ``min(c60, c120) - max(c30, c90, c150)`` (score90 as above);
    * a sliding mean over 3 consecutive radii, and the score is its maximum (windows
      containing a NaN radius are skipped); ``correlations`` are the window means.
      Fewer than 3 radii beyond ``r0`` give NaN.
    """
    if variant not in GRID_SCORE_VARIANTS:
        raise AnalysisError(f"variant must be one of {sorted(GRID_SCORE_VARIANTS)}; got {variant!r}")
    if sacs is None:
        if ratemaps is None:
            raise AnalysisError("grid_scores needs ratemaps (U, ny, nx) or sacs (U, 2ny-1, 2nx-1); got neither")
        mode = GRID_SCORE_VARIANTS[variant].unvisited if unvisited is None else unvisited
        if mode not in UNVISITED_MODES:
            raise AnalysisError(f"unvisited must be one of {UNVISITED_MODES} or None; got {unvisited!r}")
        s = autocorrelogram(as_maps(ratemaps, "ratemaps"), unvisited=mode)
    else:
        s = as_numpy(sacs, "sacs")
        if s.ndim == 2:
            s = s[None]
        if s.ndim != 3 or s.shape[1] % 2 == 0 or s.shape[2] % 2 == 0 or min(s.shape[1:]) < 3:
            raise DataError(f"sacs must have shape (U, 2ny-1, 2nx-1) with odd sides >= 3; got shape {s.shape}")
        if not np.isfinite(s).all():
            raise DataError("sacs must not contain NaN or inf (autocorrelogram() never returns NaN)")
        if ratemaps is not None:
            mshape = as_maps(ratemaps, "ratemaps").shape
            want = (mshape[0], 2 * mshape[1] - 1, 2 * mshape[2] - 1)
            if tuple(s.shape) != want:
                raise DataError(f"sacs shape {s.shape} does not match ratemaps shape {mshape} (expected {want})")
    u = s.shape[0]
    empty = ~np.any(s != 0.0, axis=(1, 2))
    good = np.flatnonzero(~empty)
    res = GRID_SCORE_VARIANTS[variant].compute(s[good]) if good.size else None
    plan_n = (min(s.shape[1:]) + 1) // 2
    out: dict[str, Any] = {}
    keys_float = ("score60", "score90", "best_radius", "best_radius_90", "inner_radius")
    for k in keys_float:
        arr = np.full(u, np.nan)
        if res is not None:
            arr[good] = res[k]
        out[k] = arr
    for k in ("best_ring", "best_ring_90"):
        arr = np.full(u, -1, dtype=np.int64)
        if res is not None:
            arr[good] = res[k]
        out[k] = arr
    corr = np.full((u, len(ANGLES)), np.nan)
    if res is not None:
        corr[good] = res["correlations"]
    out["correlations"] = corr
    out["angles"] = np.array(ANGLES, dtype=float)
    out["variant"] = variant
    out["n_bins"] = plan_n
    return out
