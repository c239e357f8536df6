"""Null models of matched dimension, and predictivity against dimension.

No Free Lunch (Schaeffer, Khona & Fiete 2022; SCIENCE.md section 7, claim P in
section 1): linear-regression predictivity rises with the dimensionality of a model's
basis whatever the model computes, so a model's score means something only next to
null models with the same number of features and the same participation ratio (PR).
Null families live in :data:`NULL_MODELS`; each has one scalar parameter that moves its
PR monotonically, which :func:`matched_null` tunes by bisection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from gridsweep.analysis import participation_ratio
from gridsweep.errors import DataError
from gridsweep.neural.dataset import NeuralDataset
from gridsweep.neural.predictivity import (
    NoiseCeiling,
    PredictivityResult,
    SplitSpec,
    align_to_dataset,
    neural_predictivity,
    noise_ceiling,
    small_blas,
)

__all__ = [
    "NullModel",
    "NULL_MODELS",
    "NullSpec",
    "NullMaps",
    "generate_null",
    "matched_null",
    "population_pr",
    "DimensionComparison",
    "compare_predictivity",
    "predictivity_vs_dimension",
    "plot_predictivity_vs_pr",
]


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
    ``(sum lambda)^2 / sum lambda^2`` of the covariance eigenvalues (SCIENCE.md
    section 6). The covariance PR is the published one (Nayebi et al. 2021; claim P in
    SCIENCE.md section 1) but is dominated by high-variance units; the mappings here
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


def _context(kind: str, n_features: int, shape: tuple[int, int], extent: Sequence[float], seed: int, source: np.ndarray | None) -> tuple[NullModel, _Context]:
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
    return null, _Context(int(n_features), (int(shape[0]), int(shape[1])), ext, int(seed), source)  # type: ignore[arg-type]


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
    NFL's dimension-matched comparison (SCIENCE.md section 7). ``pca_truncated``
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
    null, ctx = _context(kind, maps.shape[0], maps.shape[1:], extent, seed, source)  # type: ignore[arg-type]

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

    # orient so that g(x) increases with x
    a, b = (lo, hi) if null.pr_increases else (hi, lo)
    if null.integer:
        lo_i, hi_i = int(round(lo)), int(round(hi))
        # PR increases with k for truncations; binary search the crossing.
        while hi_i - lo_i > 1:
            mid = (lo_i + hi_i) // 2
            if signed(float(mid)) < 0:
                lo_i = mid
            else:
                hi_i = mid
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


# ----------------------------------------------------- predictivity vs dimension
@dataclass(frozen=True)
class NullSpec:
    """Which nulls to compare each model with.

    Attributes
    ----------
    kind : str
        A :data:`NULL_MODELS` key.
    match_pr : bool
        One null per draw with the model's PR (ignored when ``levels`` is given).
    levels : tuple of float, optional
        Explicit parameter values: a sweep along PR (e.g. ``pca_truncated`` with
        ``levels=(1, 2, 4, 8)`` components).
    n_draws : int
        Independent random draws (seeds) per null.
    maps : ndarray, shape (V, ny, nx), optional
        Source maps for ``untrained`` (rate maps of untrained networks, V >= U).
    """

    kind: str
    match_pr: bool = True
    levels: tuple[float, ...] | None = None
    n_draws: int = 1
    maps: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in NULL_MODELS:
            raise DataError(f"null model {self.kind!r} is not known; allowed: {sorted(NULL_MODELS)}")
        if self.n_draws < 1:
            raise DataError(f"n_draws must be >= 1; got {self.n_draws}")


#: Nulls used when none are named: PR-matched smooth fields and random Fourier features.
DEFAULT_NULLS: tuple[NullSpec, ...] = (NullSpec("smooth_fields"), NullSpec("random_fourier"))


@dataclass(frozen=True)
class DimensionComparison:
    """Models and their nulls: one summary row per population, one per-cell table.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per population. Columns ``name, role ("model"|"null_model"), model,
        null_kind, draw, param_name, param, pr_matched, target_pr,
        participation_ratio`` (the PR nulls are matched on: of z-scored maps unless
        ``standardize_pr=False``), ``pr_covariance`` (PR of the raw maps, SCIENCE.md
        section 6), ``pr_standardized``, then :meth:`PredictivityResult.summary`
        (``method, ceiling, n_features, n_cells, median_r, mean_r,
        median_normalized_r, median_ceiling``).
    cells : pandas.DataFrame
        Per-cell rows (``cell_id, animal, session, r, n_bins, split_half_r,
        ceiling, normalized_r``) of every population, keyed by ``name, role, model``.
    """

    summary: pd.DataFrame
    cells: pd.DataFrame


def _as_specs(nulls: Sequence[NullSpec | str] | None) -> list[NullSpec]:
    if nulls is None:
        return list(DEFAULT_NULLS)
    return [n if isinstance(n, NullSpec) else NullSpec(str(n)) for n in nulls]


def _null_seed(seed: int, model_index: int, draw: int, kind: str) -> int:
    return int(np.random.SeedSequence([seed, model_index, draw, *kind.encode()]).generate_state(1)[0])


def compare_predictivity(
    model_maps: Mapping[str, np.ndarray],
    dataset: NeuralDataset,
    nulls: Sequence[NullSpec | str] | None = None,
    *,
    method: str = "ridge",
    split: SplitSpec | None = None,
    ceiling: str | NoiseCeiling = "auto",
    seed: int = 0,
    tol: float = 0.05,
    standardize_pr: bool = True,
    options: Mapping[str, Any] | None = None,
    min_ceiling: float = 0.0,
) -> DimensionComparison:
    """Predictivity of each model and of its dimension-matched nulls.

    Parameters
    ----------
    model_maps : dict name -> ndarray (U, ny', nx')
        Resampled to the dataset's grid when needed (:func:`align_to_dataset`).
    dataset : NeuralDataset
    nulls : sequence of NullSpec or str, optional
        Default :data:`DEFAULT_NULLS`; ``[]`` scores only the models.
    method, split, ceiling, seed, options :
        As :func:`gridsweep.neural.predictivity.neural_predictivity`; the ceiling and
        the bin split are shared by all populations.
    tol : float
        Relative PR tolerance for matching.
    standardize_pr : bool
        Match (and report as ``participation_ratio``) the PR of z-scored maps.
    min_ceiling : float
        See :func:`~gridsweep.neural.predictivity.neural_predictivity`.

    Returns
    -------
    DimensionComparison

    Notes
    -----
    NFL's dimension-matched control (SCIENCE.md section 7): each null has the model's
    number of features ``U`` and, for matched specs, its PR within ``tol``.
    """
    if not model_maps:
        raise DataError("model_maps is empty; give at least one model {name: (U, ny, nx) maps}")
    with small_blas():
        return _compare(model_maps, dataset, nulls, method=method, split=split, ceiling=ceiling, seed=seed, tol=tol,
                        standardize_pr=standardize_pr, options=options, min_ceiling=min_ceiling)


def _compare(
    model_maps: Mapping[str, np.ndarray],
    dataset: NeuralDataset,
    nulls: Sequence[NullSpec | str] | None,
    *,
    method: str,
    split: SplitSpec | None,
    ceiling: str | NoiseCeiling,
    seed: int,
    tol: float,
    standardize_pr: bool,
    options: Mapping[str, Any] | None,
    min_ceiling: float,
) -> DimensionComparison:
    split = split or SplitSpec()
    ceil = ceiling if isinstance(ceiling, NoiseCeiling) else noise_ceiling(
        dataset, ceiling, method=method, split=split, seed=seed, options=options)
    rows: list[dict[str, Any]] = []
    cell_tables: list[pd.DataFrame] = []
    specs = _as_specs(nulls)

    def score(name: str, maps: np.ndarray, info: dict[str, Any]) -> None:
        res: PredictivityResult = neural_predictivity(
            maps, dataset, method=method, split=split, ceiling=ceil, seed=seed, options=options, min_ceiling=min_ceiling)
        pr_cov = population_pr(maps)
        pr_z = population_pr(maps, standardize=True)
        rows.append({"name": name, **info, "participation_ratio": pr_z if standardize_pr else pr_cov,
                     "pr_covariance": pr_cov, "pr_standardized": pr_z, **res.summary()})
        cell_tables.append(res.cells.assign(name=name, role=info["role"], model=info["model"]))

    for m_i, (mname, raw) in enumerate(model_maps.items()):
        maps = align_to_dataset(raw, dataset)
        mask = np.isfinite(maps).all(axis=0)
        score(mname, maps, {"role": "model", "model": mname, "null_kind": "", "draw": 0, "param_name": "",
                            "param": np.nan, "pr_matched": False, "target_pr": np.nan})
        for spec in specs:
            source = None
            if spec.kind == "untrained":
                if spec.maps is None:
                    raise DataError("NullSpec('untrained') needs maps=: rate maps of untrained networks (V, ny, nx)")
                source = align_to_dataset(spec.maps, dataset)
            for draw in range(spec.n_draws):
                nseed = _null_seed(seed, m_i, draw, spec.kind)
                if spec.levels is not None:
                    src = maps if spec.kind == "pca_truncated" else source
                    found = [
                        generate_null(spec.kind, n_features=maps.shape[0], shape=dataset.shape, extent=dataset.extent,
                                      param=float(p), seed=nseed, source=src, mask=mask, standardize_pr=standardize_pr)
                        for p in spec.levels
                    ]
                else:
                    found = [_matched_null(spec.kind, maps, extent=dataset.extent, seed=nseed, match_pr=spec.match_pr,
                                           tol=tol, max_iter=40, source=source, standardize_pr=standardize_pr)]
                for nm in found:
                    name = f"{mname}|{spec.kind}|{nm.param_name}={nm.param:.4g}|draw{draw}"
                    score(name, nm.maps, {"role": "null_model", "model": mname, "null_kind": spec.kind, "draw": draw,
                                          "param_name": nm.param_name, "param": nm.param, "pr_matched": nm.matched,
                                          "target_pr": nm.target_pr})
    summary = pd.DataFrame(rows)
    cells = pd.concat(cell_tables, ignore_index=True)
    cols = ["name", "role", "model"] + [c for c in cells.columns if c not in ("name", "role", "model")]
    return DimensionComparison(summary=summary, cells=cells[cols])


def predictivity_vs_dimension(
    model_maps: Mapping[str, np.ndarray],
    dataset: NeuralDataset,
    nulls: Sequence[NullSpec | str] | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> pd.DataFrame:
    """One row per model and per null: PR, feature count and predictivity.

    Parameters
    ----------
    model_maps : dict name -> ndarray (U, ny, nx)
    dataset : NeuralDataset
    nulls : sequence of NullSpec or str, optional
        Default PR-matched ``smooth_fields`` and ``random_fourier``.
    seed : int
    **kwargs
        ``method``, ``split``, ``ceiling``, ``tol``, ``standardize_pr``, ``options``,
        ``min_ceiling`` (see :func:`compare_predictivity`).

    Returns
    -------
    pandas.DataFrame
        :attr:`DimensionComparison.summary`.

    Notes
    -----
    NFL's control for Nayebi et al.'s predictivity ranking (SCIENCE.md sections 1, P,
    and 7): read a model's score against nulls of the same PR.
    """
    return compare_predictivity(model_maps, dataset, nulls, seed=seed, **kwargs).summary


def plot_predictivity_vs_pr(
    df: pd.DataFrame,
    *,
    y: str = "median_r",
    x: str = "participation_ratio",
    ax: Any = None,
    logx: bool = True,
    title: str | None = None,
) -> tuple[Any, Any]:
    """Predictivity against participation ratio, models and nulls together.

    Parameters
    ----------
    df : pandas.DataFrame
        :func:`predictivity_vs_dimension` output.
    y : str
        ``"median_r"`` or ``"median_normalized_r"``.
    x : str
        ``"participation_ratio"`` (the matched PR), ``"pr_covariance"`` or
        ``"pr_standardized"``.
    ax : matplotlib Axes, optional
    logx : bool

    Returns
    -------
    (fig, ax)
        Models are large labelled stars; nulls are markers per family, joined to the
        model they are matched to by dotted lines (sweeps by solid lines).
    """
    import matplotlib.pyplot as plt

    for col in ("role", x, y, "name", "model", "null_kind"):
        if col not in df.columns:
            raise DataError(f"plot_predictivity_vs_pr: column {col!r} missing; columns: {list(df.columns)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
    else:
        fig = ax.figure
    markers = {"smooth_fields": "o", "random_fourier": "s", "pca_truncated": "^", "untrained": "D"}
    colors = {"smooth_fields": "tab:blue", "random_fourier": "tab:orange", "pca_truncated": "tab:green", "untrained": "tab:purple"}
    models = df[df["role"] == "model"]
    nulls = df[df["role"] == "null_model"]
    seen: set[str] = set()
    for (mname, kind), grp in nulls.groupby(["model", "null_kind"], sort=False):
        grp = grp.sort_values(x)
        label = None if kind in seen else str(kind)
        seen.add(str(kind))
        c = colors.get(str(kind), "0.5")
        ax.scatter(grp[x], grp[y], marker=markers.get(str(kind), "x"), color=c, alpha=0.7, label=label, zorder=2)
        if grp["param"].nunique() > 1 and not grp["pr_matched"].any():
            ax.plot(grp[x], grp[y], "-", color=c, alpha=0.4, zorder=1)
        mrow = models[models["name"] == mname]
        if len(mrow):
            for _, r in grp[grp["pr_matched"]].iterrows():
                ax.plot([mrow[x].iloc[0], r[x]], [mrow[y].iloc[0], r[y]], ":", color=c, alpha=0.6, zorder=1)
    ax.scatter(models[x], models[y], marker="*", s=180, color="k", label="models", zorder=3)
    for _, r in models.iterrows():
        ax.annotate(str(r["name"]), (r[x], r[y]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if logx:
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
    xlabel = {"pr_covariance": "participation ratio (covariance of rate maps)",
              "pr_standardized": "participation ratio (z-scored rate maps)"}
    if x == "participation_ratio" and "pr_standardized" in df.columns and np.allclose(df[x], df["pr_standardized"], equal_nan=True):
        x_label = xlabel["pr_standardized"]
    elif x == "participation_ratio" and "pr_covariance" in df.columns:
        x_label = xlabel["pr_covariance"]
    else:
        x_label = xlabel.get(x, x)
    ax.set_xlabel(x_label)
    ax.set_ylabel({"median_r": "predictivity (median held-out r)", "median_normalized_r": "predictivity (median r / ceiling)"}.get(y, y))
    ax.set_title(title or "Predictivity vs dimensionality (models and matched nulls)")
    ax.legend(fontsize=8, loc="best")
    return fig, ax
