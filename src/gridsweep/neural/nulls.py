"""Null models of matched dimension: the generators and PR matching.

No Free Lunch (Schaeffer, Khona & Fiete 2022; docs/science.md section 7, claim P in
section 1): linear-regression predictivity rises with the dimensionality of a model's
basis whatever the model computes, so a model's score means something only next to
null models with the same number of features and the same participation ratio (PR).
Null families live in :data:`NULL_MODELS`; each has one scalar parameter that moves its
PR monotonically, which :func:`matched_null` tunes by bisection.

The comparison of models with their nulls lives in :mod:`gridsweep.neural.comparison`
and its figure in :mod:`gridsweep.neural.plots`; their public names
(``NullSpec``, ``DEFAULT_NULLS``, ``DimensionComparison``, ``compare_predictivity``,
``predictivity_vs_dimension``, ``plot_predictivity_vs_pr``) stay importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from gridsweep.analysis import participation_ratio
from gridsweep.errors import DataError
from gridsweep.neural.predictivity import small_blas

if TYPE_CHECKING:  # the names below are served lazily by __getattr__
    from gridsweep.neural.comparison import (
        DEFAULT_NULLS,
        DimensionComparison,
        NullSpec,
        compare_predictivity,
        predictivity_vs_dimension,
    )
    from gridsweep.neural.plots import plot_predictivity_vs_pr

__all__ = [
    "DEFAULT_NULLS",
    "NULL_MODELS",
    "DimensionComparison",
    "NullMaps",
    "NullModel",
    "NullSpec",
    "compare_predictivity",
    "generate_null",
    "matched_null",
    "plot_predictivity_vs_pr",
    "population_pr",
    "predictivity_vs_dimension",
]

#: Names that moved out of this module, and the module that now holds each.
_MOVED = {
    "NullSpec": "gridsweep.neural.comparison",
    "DEFAULT_NULLS": "gridsweep.neural.comparison",
    "DimensionComparison": "gridsweep.neural.comparison",
    "compare_predictivity": "gridsweep.neural.comparison",
    "predictivity_vs_dimension": "gridsweep.neural.comparison",
    "plot_predictivity_vs_pr": "gridsweep.neural.plots",
}


def __getattr__(name: str) -> Any:
    """Serve the comparison and plotting names from their own modules (lazy, no import cycle)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def population_pr(maps: np.ndarray, *, standardize: bool = False) -> float:
    """Participation ratio of a rate-map population (``gridsweep.analysis.participation_ratio``).

    Parameters
    ----------
    maps : ndarray, shape (U, ny, nx)
        NaN bins are excluded (a bin counts only when finite for every unit).
    standardize : bool
        z-score every unit over the valid bins first (constant units become 0), i.e.
        the PR of the correlation rather than the covariance matrix.

    Returns
    -------
    float

    Notes
    -----
    ``(sum lambda)^2 / sum lambda^2`` of the covariance eigenvalues (docs/science.md
    section 6). The covariance PR is the published one (Nayebi et al. 2021; claim P in
    docs/science.md section 1) but is dominated by high-variance units; the mappings here
    z-score features, so the dimension they see is the standardised PR, which is what
    nulls are matched on by default.
    """
    m = np.asarray(maps, dtype=float)
    if standardize:
        m = _zscore_units(m)
    return float(participation_ratio(m))


def _zscore_units(maps: np.ndarray) -> np.ndarray:
    """z-score each unit over the bins finite for every unit; other bins stay NaN."""
    flat = np.asarray(maps, dtype=float).reshape(maps.shape[0], -1)
    valid = np.isfinite(flat).all(axis=0)
    out = np.full(flat.shape, np.nan)
    if valid.any():
        v = flat[:, valid]
        mu = v.mean(axis=1, keepdims=True)
        sd = v.std(axis=1, keepdims=True)
        out[:, valid] = (v - mu) / np.where(sd > 1e-12 * np.maximum(np.abs(mu), 1.0), sd, np.inf)
    return out.reshape(maps.shape)


def _bin_centres(shape: tuple[int, int], extent: Sequence[float]) -> np.ndarray:
    ny, nx = shape
    xmin, xmax, ymin, ymax = extent
    xs = xmin + (np.arange(nx) + 0.5) * (xmax - xmin) / nx
    ys = ymin + (np.arange(ny) + 0.5) * (ymax - ymin) / ny
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


@dataclass(frozen=True)
class _Context:
    n_features: int
    shape: tuple[int, int]
    extent: tuple[float, float, float, float]
    rng_seed: int
    source: np.ndarray | None  # maps the null is derived from (pca / untrained), (V, ny, nx)


def _smooth_fields(ctx: _Context, sigma_bins: float) -> np.ndarray:
    noise = np.random.default_rng(ctx.rng_seed).standard_normal((ctx.n_features, *ctx.shape))
    sm = ndimage.gaussian_filter(noise, sigma=(0.0, sigma_bins, sigma_bins), mode="reflect")
    return _zscore_units(sm)


def _random_fourier(ctx: _Context, length_m: float) -> np.ndarray:
    rng = np.random.default_rng(ctx.rng_seed)
    z = rng.standard_normal((ctx.n_features, 2))
    b = rng.uniform(0, 2 * np.pi, ctx.n_features)
    pts = _bin_centres(ctx.shape, ctx.extent)
    feats = np.cos(pts @ (z / length_m).T + b).T
    return _zscore_units(feats.reshape(ctx.n_features, *ctx.shape))


def _truncate(source: np.ndarray, n_features: int, k: float, rng_seed: int) -> np.ndarray:
    v = source.shape[0]
    flat = source.reshape(v, -1)
    valid = np.isfinite(flat).all(axis=0)
    x = np.where(valid, flat, 0.0)
    mu = x[:, valid].mean(axis=1, keepdims=True)
    xc = np.where(valid, x - mu, 0.0)
    uu, s, vt = np.linalg.svd(xc, full_matrices=False)
    kk = int(max(1, min(int(round(k)), s.size)))
    rec = (uu[:, :kk] * s[:kk]) @ vt[:kk] + mu
    if v != n_features:
        if v < n_features:
            raise DataError(f"the source maps have {v} units; the null needs {n_features} features (at most {v})")
        rec = rec[np.sort(np.random.default_rng(rng_seed).choice(v, n_features, replace=False))]
    rec = np.where(valid, rec, np.nan)
    return rec.reshape(rec.shape[0], *source.shape[1:])


def _pca_truncated(ctx: _Context, k: float) -> np.ndarray:
    if ctx.source is None:
        raise DataError("the pca_truncated null needs the model's maps (source)")
    return _truncate(ctx.source, ctx.n_features, k, ctx.rng_seed)


def _untrained(ctx: _Context, k: float) -> np.ndarray:
    if ctx.source is None:
        raise DataError("the untrained null needs rate maps of untrained networks: NullSpec('untrained', maps=...)")
    return _truncate(ctx.source, ctx.n_features, k, ctx.rng_seed)


@dataclass(frozen=True)
class NullModel:
    """A family of null rate maps with one PR-controlling parameter.

    Attributes
    ----------
    name : str
    generate : callable (context, param) -> maps (U, ny, nx)
        The same seed gives the same underlying random draw for every ``param``
        (common random numbers), so PR is a deterministic function of ``param``.
    param_name : str
    bounds : callable (context) -> (low, high)
    pr_increases : bool
        Whether PR grows with ``param``.
    integer : bool
        Integer parameter (searched by binary search).
    default : callable (context) -> float
        Parameter used when PR is not matched.
    needs_source : bool
        Derived from given maps (the model itself, or untrained networks).
    description : str
    """

    name: str
    generate: Callable[[_Context, float], np.ndarray]
    param_name: str
    bounds: Callable[[_Context], tuple[float, float]]
    pr_increases: bool
    integer: bool
    default: Callable[[_Context], float]
    needs_source: bool = False
    description: str = ""


def _rank(ctx: _Context) -> float:
    assert ctx.source is not None
    return float(min(ctx.source.shape[0], np.prod(ctx.shape)))


#: Registry of null families.
NULL_MODELS: dict[str, NullModel] = {
    "smooth_fields": NullModel(
        name="smooth_fields",
        generate=_smooth_fields,
        param_name="sigma_bins",
        bounds=lambda ctx: (0.05, float(max(ctx.shape))),
        pr_increases=False,
        integer=False,
        default=lambda ctx: 2.0,
        description="Gaussian-filtered white noise (sigma in bins), z-scored per unit",
    ),
    "random_fourier": NullModel(
        name="random_fourier",
        generate=_random_fourier,
        param_name="length_m",
        bounds=lambda ctx: (
            0.05 * (ctx.extent[1] - ctx.extent[0]) / ctx.shape[1],
            20.0 * max(ctx.extent[1] - ctx.extent[0], ctx.extent[3] - ctx.extent[2]),
        ),
        pr_increases=False,
        integer=False,
        default=lambda ctx: 0.1 * (ctx.extent[1] - ctx.extent[0]),
        description="random Fourier features cos(w.x + b), w ~ N(0, I / length^2) (a Gaussian-kernel basis)",
    ),
    "pca_truncated": NullModel(
        name="pca_truncated",
        generate=_pca_truncated,
        param_name="n_components",
        bounds=lambda ctx: (1.0, _rank(ctx)),
        pr_increases=True,
        integer=True,
        default=lambda ctx: max(1.0, round(_rank(ctx) / 4)),
        needs_source=True,
        description="the model's own maps reconstructed from their top-k principal components",
    ),
    "untrained": NullModel(
        name="untrained",
        generate=_untrained,
        param_name="n_components",
        bounds=lambda ctx: (1.0, _rank(ctx)),
        pr_increases=True,
        integer=True,
        default=_rank,
        needs_source=True,
        description="rate maps of untrained networks (given), PCA-truncated to lower their PR when matching",
    ),
}


@dataclass(frozen=True)
class NullMaps:
    """One null population.

    Attributes
    ----------
    kind : str
    maps : ndarray, shape (U, ny, nx)
    param_name : str
    param : float
    participation_ratio : float
        PR as used for matching (standardised unless ``standardize_pr=False``).
    target_pr : float
        NaN when not matched.
    matched : bool
        Whether ``|PR - target| <= tol * target`` was reached (False when unmatched or
        the target is outside the family's reachable range).
    """

    kind: str
    maps: np.ndarray
    param_name: str
    param: float
    participation_ratio: float
    target_pr: float = float("nan")
    matched: bool = False


def _context(kind: str, n_features: int, shape: tuple[int, int], extent: Sequence[float], seed: int,
             source: np.ndarray | None) -> tuple[NullModel, _Context]:
    if kind not in NULL_MODELS:
        raise DataError(f"null model {kind!r} is not known; allowed: {sorted(NULL_MODELS)}")
    if n_features < 1:
        raise DataError(f"n_features must be >= 1; got {n_features}")
    null = NULL_MODELS[kind]
    if null.needs_source and source is None:
        raise DataError(f"null model {kind!r} needs source maps (the model's own, or untrained networks')")
    if source is not None:
        source = np.asarray(source, dtype=float)
        if source.ndim != 3 or source.shape[1:] != tuple(shape):
            raise DataError(f"source maps must be (V, ny, nx) with (ny, nx) = {tuple(shape)}; got {source.shape}")
    ext = tuple(float(v) for v in extent)
    if len(ext) != 4:
        raise DataError(f"extent must be (xmin, xmax, ymin, ymax); got {extent}")
    return null, _Context(int(n_features), (int(shape[0]), int(shape[1])), ext, int(seed), source)


def generate_null(
    kind: str,
    *,
    n_features: int,
    shape: tuple[int, int],
    extent: Sequence[float] = (-0.5, 0.5, -0.5, 0.5),
    param: float | None = None,
    seed: int = 0,
    source: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    standardize_pr: bool = True,
) -> NullMaps:
    """Draw one null population (unmatched).

    Parameters
    ----------
    kind : str
        A :data:`NULL_MODELS` key.
    n_features : int
        ``U``.
    shape : (ny, nx)
    extent : (xmin, xmax, ymin, ymax)
        Metres (used by ``random_fourier``).
    param : float, optional
        The family's parameter (default :attr:`NullModel.default`).
    seed : int
    source : ndarray, shape (V, ny, nx), optional
        For ``pca_truncated`` (the model) and ``untrained`` (untrained networks).
    mask : ndarray, shape (ny, nx), bool, optional
        Valid bins; others are set to NaN (use the model's valid bins).
    standardize_pr : bool
        Report the PR of z-scored maps (see :func:`population_pr`).

    Returns
    -------
    NullMaps
    """
    null, ctx = _context(kind, n_features, shape, extent, seed, source)
    p = float(null.default(ctx) if param is None else param)
    maps = _apply_mask(null.generate(ctx, p), mask)
    return NullMaps(kind, maps, null.param_name, p, population_pr(maps, standardize=standardize_pr))


def _apply_mask(maps: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return maps
    return np.where(np.asarray(mask, bool)[None], maps, np.nan)


def matched_null(
    kind: str,
    model_maps: np.ndarray,
    *,
    extent: Sequence[float] = (-0.5, 0.5, -0.5, 0.5),
    seed: int = 0,
    match_pr: bool = True,
    tol: float = 0.05,
    max_iter: int = 40,
    source: np.ndarray | None = None,
    standardize_pr: bool = True,
) -> NullMaps:
    """A null with the model's number of features and (optionally) its participation ratio.

    Parameters
    ----------
    kind : str
        A :data:`NULL_MODELS` key.
    model_maps : ndarray, shape (U, ny, nx)
        The model; bins NaN in any unit are NaN in the null too.
    extent : (xmin, xmax, ymin, ymax)
    seed : int
    match_pr : bool
        Tune the family's parameter by bisection (geometric for continuous, binary
        search for integer parameters) until ``|PR - PR_model| <= tol * PR_model``.
    tol : float
        Relative PR tolerance.
    max_iter : int
    source : ndarray, optional
        Untrained networks' maps for ``kind="untrained"``; ``pca_truncated`` uses the
        model itself.
    standardize_pr : bool
        Match the PR of z-scored maps (default; what a mapping that z-scores its
        features sees) or, with False, the covariance PR of the raw maps.

    Returns
    -------
    NullMaps
        ``matched`` is False when the target PR lies outside what the family reaches
        with ``U`` features on this grid (the nearest end is returned).

    Notes
    -----
    NFL's dimension-matched comparison (docs/science.md section 7). ``pca_truncated``
    matched to the model's own PR returns the model itself (all components); use it
    with explicit levels for a dimension sweep.
    """
    with small_blas():
        return _matched_null(kind, model_maps, extent=extent, seed=seed, match_pr=match_pr, tol=tol,
                             max_iter=max_iter, source=source, standardize_pr=standardize_pr)


def _matched_null(
    kind: str,
    model_maps: np.ndarray,
    *,
    extent: Sequence[float],
    seed: int,
    match_pr: bool,
    tol: float,
    max_iter: int,
    source: np.ndarray | None,
    standardize_pr: bool,
) -> NullMaps:
    maps = np.asarray(model_maps, dtype=float)
    if maps.ndim != 3:
        raise DataError(f"model maps must be (U, ny, nx); got shape {maps.shape}")
    mask = np.isfinite(maps).all(axis=0)
    if kind == "pca_truncated" and source is None:
        source = maps
    null, ctx = _context(kind, maps.shape[0], maps.shape[1:], extent, seed, source)

    def draw(p: float) -> tuple[np.ndarray, float]:
        m = _apply_mask(null.generate(ctx, p), mask)
        return m, population_pr(m, standardize=standardize_pr)

    if not match_pr:
        p = float(null.default(ctx))
        m, pr = draw(p)
        return NullMaps(kind, m, null.param_name, p, pr)
    target = population_pr(maps, standardize=standardize_pr)
    lo, hi = null.bounds(ctx)
    cache: dict[float, tuple[np.ndarray, float]] = {}

    def ev(p: float) -> tuple[np.ndarray, float]:
        if p not in cache:
            cache[p] = draw(p)
        return cache[p]

    def signed(p: float) -> float:  # > 0 when PR(p) is above target, along increasing "PR order"
        return ev(p)[1] - target

    best: float
    # orient so that g(x) increases with x
    a, b = (lo, hi) if null.pr_increases else (hi, lo)
    if null.integer:
        lo_i, hi_i = int(round(lo)), int(round(hi))
        # PR increases with k for truncations; binary search the crossing.
        while hi_i - lo_i > 1:
            mid_i = (lo_i + hi_i) // 2
            if signed(float(mid_i)) < 0:
                lo_i = mid_i
            else:
                hi_i = mid_i
        best = min((float(lo_i), float(hi_i)), key=lambda p: abs(signed(p)))
    else:
        ga, gb = signed(a), signed(b)
        if ga >= 0 or gb <= 0:
            best = a if abs(ga) < abs(gb) else b
        else:
            best = a
            for _ in range(max_iter):
                mid = float(np.sqrt(a * b))
                g = signed(mid)
                best = mid
                if abs(g) <= tol * target:
                    break
                if g < 0:
                    a = mid
                else:
                    b = mid
            else:
                best = min((a, b, best), key=lambda p: abs(signed(p)))
    m, pr = ev(best)
    return NullMaps(kind, m, null.param_name, float(best), pr, target, bool(abs(pr - target) <= tol * target))
