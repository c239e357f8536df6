"""Neural predictivity: how well linear maps from model units predict recorded cells.

For each recorded cell, a map from the model's rate maps ``(U, ny, nx)`` to the cell's
rate map is fit on a subset of spatial bins and scored by Pearson r on the held-out
bins (Nayebi et al. 2021; docs/science.md section 7). Scores are compared with a noise
ceiling (split-half reliability, Spearman-Brown corrected, or inter-animal
consistency). Mapping methods, bin splits and ceilings are registries
(:data:`MAPPINGS`, :data:`SPLITS`, :data:`CEILINGS`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from gridsweep.errors import DataError
from gridsweep.neural.dataset import NeuralDataset

__all__ = [
    "SplitSpec",
    "SPLITS",
    "split_bins",
    "MAPPINGS",
    "fit_predict",
    "pearson_r",
    "spearman_brown",
    "NoiseCeiling",
    "CEILINGS",
    "noise_ceiling",
    "PredictivityResult",
    "neural_predictivity",
    "resample_maps",
    "align_to_dataset",
]

_MIN_BINS = 3


def small_blas():
    """Context limiting BLAS to one thread: the matrices here are small (bins x units),
    and multithreaded BLAS on a shared machine is far slower for them than one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ------------------------------------------------------------------ statistics
def pearson_r(a: np.ndarray, b: np.ndarray, axis: int = 0) -> np.ndarray:
    """Pearson correlation along ``axis``, NaN (without a warning) where either input is constant.

    Parameters
    ----------
    a, b : ndarray, same shape

    Returns
    -------
    ndarray
        The shape of ``a`` without ``axis``.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    da = a - a.mean(axis=axis, keepdims=True)
    db = b - b.mean(axis=axis, keepdims=True)
    num = (da * db).sum(axis=axis)
    sa = (da * da).sum(axis=axis)
    sb = (db * db).sum(axis=axis)
    # constant inputs (up to rounding) have no defined correlation
    ok = (sa > 1e-24 * (a * a).sum(axis=axis) + 1e-300) & (sb > 1e-24 * (b * b).sum(axis=axis) + 1e-300)
    den = np.sqrt(np.where(ok, sa * sb, 1.0))
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=ok)


def spearman_brown(r: np.ndarray | float, factor: float = 2.0) -> np.ndarray:
    """Spearman-Brown prophecy ``factor r / (1 + (factor - 1) r)``; NaN where ``r <= 0`` or NaN.

    With ``factor = 2`` it turns the correlation between two half-session maps into
    the reliability of the full-session map.
    """
    r = np.asarray(r, dtype=float)
    ok = np.isfinite(r) & (r > 0)
    safe = np.where(ok, r, 0.0)
    return np.where(ok, factor * safe / (1 + (factor - 1) * safe), np.nan)


# ---------------------------------------------------------------- bin splits
@dataclass(frozen=True)
class SplitSpec:
    """How spatial bins are split into training and test sets.

    Attributes
    ----------
    kind : {"kfold", "holdout"}
        ``kfold``: every bin is tested once over ``n_folds`` folds; ``holdout``: one
        test set of ``test_fraction`` of the bins.
    n_folds : int
    test_fraction : float
    block : int
        Bins per side of square spatial blocks assigned to folds together (1 = single
        bins; larger blocks reduce leakage between neighbouring, correlated bins).
    """

    kind: str = "kfold"
    n_folds: int = 5
    test_fraction: float = 0.2
    block: int = 1

    def __post_init__(self) -> None:
        if self.kind not in SPLITS:
            raise DataError(f"split kind {self.kind!r} is not known; allowed: {sorted(SPLITS)}")
        if self.n_folds < 2:
            raise DataError(f"n_folds must be >= 2; got {self.n_folds}")
        if not 0 < self.test_fraction < 1:
            raise DataError(f"test_fraction must be in (0, 1); got {self.test_fraction}")
        if self.block < 1:
            raise DataError(f"block must be >= 1; got {self.block}")


def _block_ids(shape: tuple[int, int], block: int) -> tuple[np.ndarray, int]:
    ny, nx = shape
    by, bx = np.meshgrid(np.arange(ny) // block, np.arange(nx) // block, indexing="ij")
    nbx = -(-nx // block)
    ids = (by * nbx + bx).ravel()
    return ids, int(ids.max()) + 1


def _kfold(shape: tuple[int, int], spec: SplitSpec, rng: np.random.Generator) -> list[np.ndarray]:
    ids, n_blocks = _block_ids(shape, spec.block)
    fold_of_block = np.empty(n_blocks, dtype=int)
    fold_of_block[rng.permutation(n_blocks)] = np.arange(n_blocks) % spec.n_folds
    folds = fold_of_block[ids]
    return [folds == f for f in range(spec.n_folds)]


def _holdout(shape: tuple[int, int], spec: SplitSpec, rng: np.random.Generator) -> list[np.ndarray]:
    ids, n_blocks = _block_ids(shape, spec.block)
    n_test = max(1, int(round(spec.test_fraction * n_blocks)))
    test_blocks = rng.permutation(n_blocks)[:n_test]
    return [np.isin(ids, test_blocks)]


#: Split kind -> function (shape, spec, rng) -> list of flat boolean test masks.
SPLITS: dict[str, Callable[[tuple[int, int], SplitSpec, np.random.Generator], list[np.ndarray]]] = {
    "kfold": _kfold,
    "holdout": _holdout,
}


def split_bins(shape: tuple[int, int], split: SplitSpec | None = None, seed: int = 0) -> list[np.ndarray]:
    """Test masks over the flattened ``(ny * nx)`` grid, one per fold.

    The split depends only on the grid and the seed, so every model and every cell is
    scored on the same bins (restricted to the bins valid for both).

    Returns
    -------
    list of ndarray, each shape (ny * nx,), bool
    """
    split = split or SplitSpec()
    return SPLITS[split.kind](shape, split, np.random.default_rng(seed))


# ------------------------------------------------------------------ mappings
def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x_train.mean(axis=0)
    sd = x_train.std(axis=0)
    keep = sd > 1e-12 * np.maximum(np.abs(mu), 1.0)
    if not keep.any():
        return np.zeros((x_train.shape[0], 0)), np.zeros((x_test.shape[0], 0))
    return (x_train[:, keep] - mu[keep]) / sd[keep], (x_test[:, keep] - mu[keep]) / sd[keep]


def _ridge(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, opts: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    # Closed-form ridge path through one thin SVD of the (centred) training features;
    # the penalty of each cell is chosen by efficient leave-one-out error.
    alphas = np.asarray(opts.get("alphas", np.logspace(-3, 6, 19)), dtype=float)
    y_mean = y_tr.mean(axis=0)
    yc = y_tr - y_mean
    u, s, vt = np.linalg.svd(x_tr, full_matrices=False)  # x_tr is already centred
    keep = s > s.max(initial=0.0) * 1e-10
    u, s, vt = u[:, keep], s[keep], vt[keep]
    uty = u.T @ yc  # (k, C)
    s2 = s * s
    loo = np.empty((alphas.size, y_tr.shape[1]))
    for i, a in enumerate(alphas):
        shrink = s2 / (s2 + a)  # (k,)
        fitted = u @ (shrink[:, None] * uty)  # (n, C)
        # 1 - diag(H) with the (unpenalised) intercept's 1/n
        lev = 1.0 - (u * u) @ shrink - 1.0 / x_tr.shape[0]
        resid = (yc - fitted) / np.maximum(lev, 1e-12)[:, None]
        loo[i] = (resid * resid).mean(axis=0)
    best = np.argmin(loo, axis=0)  # (C,)
    out = np.empty((x_te.shape[0], y_tr.shape[1]))
    proj = x_te @ vt.T  # (m, k)
    for i in np.unique(best):
        cols = best == i
        coef = (s / (s2 + alphas[i]))[:, None] * uty[:, cols]
        out[:, cols] = proj @ coef + y_mean[cols]
    return out


def _pls_components(n: int | str, x_tr: np.ndarray) -> int:
    return int(max(1, min(int(n), x_tr.shape[1], x_tr.shape[0] - 1)))


def _pls_one(x_tr: np.ndarray, y: np.ndarray, x_te: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cross_decomposition import PLSRegression

    pls = PLSRegression(n_components=k, scale=False)
    pls.fit(x_tr, y)
    return np.asarray(pls.predict(x_te)).ravel()


def _pls(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, opts: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    n_comp = opts.get("n_components", 10)
    candidates = opts.get("candidates", (1, 2, 3, 5, 8, 12, 20, 30))
    inner = int(opts.get("inner_folds", 3))
    out = np.empty((x_te.shape[0], y_tr.shape[1]))
    inner_folds = np.arange(x_tr.shape[0]) % inner
    rng.shuffle(inner_folds)
    for c in range(y_tr.shape[1]):
        y = y_tr[:, c]
        if n_comp == "cv":
            best, best_score = 1, -np.inf
            tried: set[int] = set()
            for cand in candidates:
                k = _pls_components(cand, x_tr[inner_folds != 0])
                if k in tried:
                    continue
                tried.add(k)
                preds = np.empty_like(y)
                for f in range(inner):
                    tr, te = inner_folds != f, inner_folds == f
                    preds[te] = _pls_one(x_tr[tr], y[tr], x_tr[te], _pls_components(k, x_tr[tr]))
                score = float(pearson_r(preds, y))
                if np.isfinite(score) and score > best_score:
                    best, best_score = k, score
            k = best
        else:
            k = _pls_components(n_comp, x_tr)
        out[:, c] = _pls_one(x_tr, y, x_te, k)
    return out


def _one_to_one(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, opts: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    # x is standardised (mean 0, sd 1) on the training bins, so r^2 of unit u with
    # cell c is proportional to (x_u . y_c)^2.
    yc = y_tr - y_tr.mean(axis=0)
    best = np.argmax(np.abs(x_tr.T @ yc), axis=0)  # (C,)
    xb = x_tr[:, best]  # (n, C)
    slope = (xb * yc).sum(axis=0) / (xb * xb).sum(axis=0)
    return y_tr.mean(axis=0) + x_te[:, best] * slope


#: Mapping name -> function (X_train (n, U'), Y_train (n, C), X_test (m, U'), options, rng)
#: -> predictions (m, C). X is standardised on the training bins before the call.
MAPPINGS: dict[str, Callable[..., np.ndarray]] = {
    "ridge": _ridge,
    "pls": _pls,
    "one_to_one": _one_to_one,
}


def fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    method: str = "ridge",
    options: Mapping[str, Any] | None = None,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Fit one mapping on training bins and predict test bins.

    Parameters
    ----------
    x_train : ndarray, shape (n, U)
        Model features at the training bins.
    y_train : ndarray, shape (n, C)
        Cells at the training bins.
    x_test : ndarray, shape (m, U)
    method : {"ridge", "pls", "one_to_one"}
        ``ridge``: closed-form ridge (one SVD of the training features) with one
        penalty per cell chosen by efficient leave-one-out error (as sklearn's
        RidgeCV) over ``options["alphas"]`` (default ``logspace(-3, 6, 19)``, in
        units of z-scored features); ``pls``: one
        PLSRegression per cell with ``options["n_components"]`` (default 10, or
        ``"cv"`` for an inner 3-fold choice among ``options["candidates"]``);
        ``one_to_one``: the single unit with the highest training r^2, fit by least
        squares (sign-agnostic).
    options : dict, optional
    seed : int or Generator

    Returns
    -------
    ndarray, shape (m, C)

    Notes
    -----
    The linear-map families of Nayebi et al. 2021 (docs/science.md section 7). Features are
    z-scored on the training bins; features constant on them are dropped.
    """
    if method not in MAPPINGS:
        raise DataError(f"mapping method {method!r} is not known; allowed: {sorted(MAPPINGS)}")
    x_tr, x_te = _standardise(np.asarray(x_train, float), np.asarray(x_test, float))
    y_tr = np.asarray(y_train, float)
    if y_tr.ndim == 1:
        y_tr = y_tr[:, None]
    if x_tr.shape[1] == 0:
        return np.broadcast_to(y_tr.mean(axis=0), (x_te.shape[0], y_tr.shape[1])).copy()
    rng = np.random.default_rng(seed)
    return MAPPINGS[method](x_tr, y_tr, x_te, dict(options or {}), rng)


# ------------------------------------------------------------------- grids
def resample_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample rate maps to another grid over the same extent (bilinear, NaN-aware).

    Parameters
    ----------
    maps : ndarray, shape (U, ny, nx)
        NaN where unvisited.
    shape : (ny', nx')

    Returns
    -------
    ndarray, shape (U, ny', nx')
        NaN where less than half of the interpolation weight fell on valid bins.

    Notes
    -----
    Bin centres are aligned as areas (the grid edges coincide), i.e. the geometry of
    ``scipy.ndimage.zoom(..., grid_mode=True)``: output bin ``i`` samples input
    coordinate ``(i + 0.5) * n_in / n_out - 0.5``, interpolated bilinearly by
    ``scipy.ndimage.map_coordinates(order=1, mode="nearest")``. Values and validity are
    interpolated separately and divided (normalised convolution), so NaN bins do not
    spread. Used when a model's and a dataset's grids differ (e.g. 20 x 20 vs 5 cm bins).
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3:
        raise DataError(f"maps must be (U, ny, nx); got shape {maps.shape}")
    ny, nx = maps.shape[1:]
    oy, ox = (int(s) for s in shape)
    if (oy, ox) == (ny, nx):
        return maps.copy()
    cy = (np.arange(oy) + 0.5) * ny / oy - 0.5
    cx = (np.arange(ox) + 0.5) * nx / ox - 0.5
    gy, gx = np.meshgrid(cy, cx, indexing="ij")
    coords = np.stack([gy.ravel(), gx.ravel()])
    valid = np.isfinite(maps)
    out = np.full((maps.shape[0], oy, ox), np.nan)
    for u in range(maps.shape[0]):
        v = valid[u].astype(float)
        w = ndimage.map_coordinates(v, coords, order=1, mode="nearest").reshape(oy, ox)
        s = ndimage.map_coordinates(np.where(valid[u], maps[u], 0.0), coords, order=1, mode="nearest").reshape(oy, ox)
        ok = w > 0.5
        out[u][ok] = s[ok] / w[ok]
    return out


def align_to_dataset(model_maps: np.ndarray, dataset: NeuralDataset) -> np.ndarray:
    """Model maps on the dataset's grid: unchanged if the shapes agree, else :func:`resample_maps`.

    The model's box is mapped onto the recorded arena bin for bin; a difference in
    physical size (e.g. a 2.2 m model box vs a 1 m arena) is a rescaling the caller
    accepts by comparing the two.
    """
    maps = np.asarray(model_maps, dtype=float)
    if maps.ndim != 3:
        raise DataError(f"model maps must be (U, ny, nx); got shape {maps.shape}")
    return resample_maps(maps, dataset.shape)


# ------------------------------------------------------------ the core loop
def _cv_scores(*args: Any) -> tuple[np.ndarray, np.ndarray]:
    with small_blas():
        return _cv_scores_impl(*args)


def _cv_scores_impl(
    features: np.ndarray,
    targets: np.ndarray,
    feature_valid: np.ndarray,
    target_valid: np.ndarray,
    test_masks: list[np.ndarray],
    method: str,
    options: Mapping[str, Any],
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated r per target.

    features (U, B), targets (C, B), feature_valid (B,), target_valid (C, B).
    Returns r (C,) (mean over folds) and n_bins (C,).
    """
    c = targets.shape[0]
    r_sum = np.zeros(c)
    r_n = np.zeros(c)
    n_bins = np.zeros(c, dtype=int)
    valid = target_valid & feature_valid[None]
    keys: dict[bytes, list[int]] = {}
    for i in range(c):
        keys.setdefault(np.packbits(valid[i]).tobytes(), []).append(i)
    rng = np.random.default_rng(seed)
    for cells in keys.values():
        v = valid[cells[0]]
        n_bins[cells] = int(v.sum())
        for test in test_masks:
            tr, te = v & ~test, v & test
            if tr.sum() < _MIN_BINS or te.sum() < _MIN_BINS:
                continue
            pred = fit_predict(
                features[:, tr].T, targets[cells][:, tr].T, features[:, te].T, method=method, options=options, seed=rng
            )
            r = pearson_r(pred, targets[cells][:, te].T)
            ok = np.isfinite(r)
            idx = np.asarray(cells)
            r_sum[idx[ok]] += r[ok]
            r_n[idx[ok]] += 1
    r = np.divide(r_sum, r_n, out=np.full(c, np.nan), where=r_n > 0)
    return r, n_bins


# ------------------------------------------------------------- noise ceilings
@dataclass(frozen=True)
class NoiseCeiling:
    """Per-cell noise ceiling of Pearson r.

    Attributes
    ----------
    kind : str
        The :data:`CEILINGS` entry that produced it.
    values : ndarray, shape (C,)
        The ceiling each cell's r is divided by (NaN where undefined).
    split_half_r : ndarray, shape (C,)
        Raw correlation between the two half-session maps (NaN if not computed).
    """

    kind: str
    values: np.ndarray
    split_half_r: np.ndarray


def _split_half_r(dataset: NeuralDataset) -> np.ndarray:
    if dataset.split_maps is None:
        raise DataError(
            f"dataset {dataset.source!r} has no split_maps (2, C, ny, nx); split-half ceilings need "
            "them (load from spikes) or use ceiling='inter_animal'"
        )
    a = dataset.split_maps[0].reshape(dataset.n_cells, -1)
    b = dataset.split_maps[1].reshape(dataset.n_cells, -1)
    out = np.full(dataset.n_cells, np.nan)
    for i in range(dataset.n_cells):
        ok = np.isfinite(a[i]) & np.isfinite(b[i])
        if ok.sum() >= _MIN_BINS:
            out[i] = float(pearson_r(a[i, ok], b[i, ok]))
    return out


def _ceiling_sqrt_sb(dataset: NeuralDataset, **_: Any) -> NoiseCeiling:
    r = _split_half_r(dataset)
    return NoiseCeiling("split_half", np.sqrt(spearman_brown(r)), r)


def _ceiling_sb(dataset: NeuralDataset, **_: Any) -> NoiseCeiling:
    r = _split_half_r(dataset)
    return NoiseCeiling("split_half_sb", spearman_brown(r), r)


def _ceiling_inter_animal(
    dataset: NeuralDataset, *, method: str, split: SplitSpec, seed: int, options: Mapping[str, Any], **_: Any
) -> NoiseCeiling:
    animals = dataset.animals
    if len(animals) < 2:
        raise DataError(f"inter-animal ceiling needs cells from >= 2 animals; dataset has {animals}")
    values = np.full(dataset.n_cells, np.nan)
    test_masks = split_bins(dataset.shape, split, seed)
    flat = dataset.maps.reshape(dataset.n_cells, -1)
    valid = np.isfinite(flat)
    for a in animals:
        tgt = dataset.animal == a
        src = ~tgt
        feat_valid = valid[src].all(axis=0)
        feats = np.where(valid[src], flat[src], 0.0)
        r = _cv_scores(feats, np.where(valid[tgt], flat[tgt], 0.0), feat_valid, valid[tgt], test_masks, method, options, seed)[0]
        values[tgt] = r
    values = np.where(values > 0, values, np.nan)
    return NoiseCeiling("inter_animal", values, np.full(dataset.n_cells, np.nan))


def _ceiling_none(dataset: NeuralDataset, **_: Any) -> NoiseCeiling:
    nan = np.full(dataset.n_cells, np.nan)
    return NoiseCeiling("none", nan, nan.copy())


#: Ceiling name -> function (dataset, method=, split=, seed=, options=) -> NoiseCeiling.
#: ``split_half``: sqrt of the Spearman-Brown-corrected split-half correlation, the
#: largest Pearson r a noiseless model can reach against the full-session map
#: (r(model, data) <= sqrt(reliability)); ``split_half_sb``: the Spearman-Brown
#: reliability itself (the stricter convention of dividing by reliability);
#: ``inter_animal``: r of the same mapping fit from the other animals' cells (Nayebi
#: et al. 2021); ``none``.
CEILINGS: dict[str, Callable[..., NoiseCeiling]] = {
    "split_half": _ceiling_sqrt_sb,
    "split_half_sb": _ceiling_sb,
    "inter_animal": _ceiling_inter_animal,
    "none": _ceiling_none,
}


def noise_ceiling(
    dataset: NeuralDataset,
    kind: str = "auto",
    *,
    method: str = "ridge",
    split: SplitSpec | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> NoiseCeiling:
    """Per-cell noise ceiling of held-out Pearson r.

    Parameters
    ----------
    dataset : NeuralDataset
    kind : {"auto", "split_half", "split_half_sb", "inter_animal", "none"}
        ``auto``: ``split_half`` when the dataset has split maps, else
        ``inter_animal`` with >= 2 animals, else ``none``.
    method, split, seed, options :
        The mapping used for ``inter_animal``.

    Returns
    -------
    NoiseCeiling

    Notes
    -----
    With half-session maps ``y1, y2`` of a cell, ``r_half = r(y1, y2)``; the
    Spearman-Brown reliability of the full map is ``rho = 2 r_half / (1 + r_half)``,
    and a noiseless model correlates with the full map at ``sqrt(rho)``
    (docs/science.md section 7; classical test theory).
    """
    if kind == "auto":
        if dataset.split_maps is not None:
            kind = "split_half"
        elif len(dataset.animals) >= 2:
            kind = "inter_animal"
        else:
            kind = "none"
    if kind not in CEILINGS:
        raise DataError(f"ceiling {kind!r} is not known; allowed: {sorted(CEILINGS) + ['auto']}")
    return CEILINGS[kind](dataset, method=method, split=split or SplitSpec(), seed=seed, options=dict(options or {}))


# --------------------------------------------------------------- the result
@dataclass(frozen=True)
class PredictivityResult:
    """Per-cell predictivity of one model.

    Attributes
    ----------
    cells : pandas.DataFrame
        One row per cell: ``cell_id, animal, session, r, n_bins, split_half_r,
        ceiling, normalized_r`` (``r / ceiling``).
    method : str
    ceiling_kind : str
    n_features : int
        Model units ``U``.
    split : SplitSpec
    seed : int
    """

    cells: pd.DataFrame
    method: str
    ceiling_kind: str
    n_features: int
    split: SplitSpec = field(default_factory=SplitSpec)
    seed: int = 0

    @property
    def median_r(self) -> float:
        """Median over cells of held-out r (cells with a finite r)."""
        r = self.cells["r"].to_numpy(float)
        r = r[np.isfinite(r)]
        return float(np.median(r)) if r.size else float("nan")

    @property
    def median_normalized_r(self) -> float:
        """Median over cells with a finite ceiling of r / ceiling."""
        r = self.cells["normalized_r"].to_numpy(float)
        r = r[np.isfinite(r)]
        return float(np.median(r)) if r.size else float("nan")

    def summary(self) -> dict[str, Any]:
        """Flat dict: method, ceiling, n_features, n_cells, median_r, mean_r, median_normalized_r, median_ceiling."""
        r = self.cells["r"].to_numpy(float)
        ceil = self.cells["ceiling"].to_numpy(float)
        return {
            "method": self.method,
            "ceiling": self.ceiling_kind,
            "n_features": self.n_features,
            "n_cells": int(np.isfinite(r).sum()),
            "median_r": self.median_r,
            "mean_r": float(np.mean(r[np.isfinite(r)])) if np.isfinite(r).any() else float("nan"),
            "median_normalized_r": self.median_normalized_r,
            "median_ceiling": float(np.median(ceil[np.isfinite(ceil)])) if np.isfinite(ceil).any() else float("nan"),
        }


def neural_predictivity(
    model_maps: np.ndarray,
    dataset: NeuralDataset,
    *,
    method: str = "ridge",
    split: SplitSpec | None = None,
    ceiling: str | NoiseCeiling = "auto",
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    resample: bool = False,
    min_ceiling: float = 0.0,
) -> PredictivityResult:
    """Cross-validated predictivity of every recorded cell from a model's rate maps.

    Parameters
    ----------
    model_maps : ndarray, shape (U, ny, nx)
        Model unit rate maps on the dataset's grid (NaN bins are excluded).
    dataset : NeuralDataset
        ``C`` cells on an ``(ny, nx)`` grid.
    method : {"ridge", "pls", "one_to_one"}
        See :func:`fit_predict`.
    split : SplitSpec, optional
        Default 5-fold over single bins; the folds come from ``seed`` and the grid
        only, so all models see the same bins.
    ceiling : str or NoiseCeiling
        See :func:`noise_ceiling`; pass a precomputed one to reuse it across models.
    seed : int
    options : dict, optional
        Mapping options.
    resample : bool
        Resample the model maps to the dataset's grid when shapes differ (else raise).
    min_ceiling : float
        Cells whose ceiling is below this get no ``normalized_r`` (NaN), so unreliable
        cells (e.g. spatially flat head-direction cells) do not inflate r / ceiling.

    Returns
    -------
    PredictivityResult

    Notes
    -----
    Nayebi et al. 2021's test (docs/science.md section 7): per cell, fit on training bins
    valid for both model and cell, Pearson r on held-out bins, averaged over folds;
    summary = median over cells of r and of r / ceiling. NFL's caveat (same section):
    compare against dimension-matched nulls (:mod:`gridsweep.neural.nulls`).
    """
    split = split or SplitSpec()
    maps = np.asarray(model_maps, dtype=float)
    if maps.ndim != 3:
        raise DataError(f"model maps must be (U, ny, nx); got shape {maps.shape}")
    if maps.shape[1:] != dataset.shape:
        if not resample:
            raise DataError(
                f"model maps grid {maps.shape[1:]} differs from the dataset grid {dataset.shape}; "
                "pass resample=True or use align_to_dataset()"
            )
        maps = resample_maps(maps, dataset.shape)
    if method not in MAPPINGS:
        raise DataError(f"mapping method {method!r} is not known; allowed: {sorted(MAPPINGS)}")
    opts = dict(options or {})
    ceil = ceiling if isinstance(ceiling, NoiseCeiling) else noise_ceiling(dataset, ceiling, method=method, split=split, seed=seed, options=opts)
    if ceil.values.shape != (dataset.n_cells,):
        raise DataError(f"noise ceiling has {ceil.values.shape[0]} cells; the dataset has {dataset.n_cells}")
    u = maps.shape[0]
    feats = maps.reshape(u, -1)
    feat_valid = np.isfinite(feats).all(axis=0)
    if feat_valid.sum() < 2 * _MIN_BINS:
        raise DataError(f"model maps have only {int(feat_valid.sum())} bins finite for all units; need >= {2 * _MIN_BINS}")
    flat = dataset.maps.reshape(dataset.n_cells, -1)
    tvalid = np.isfinite(flat)
    test_masks = split_bins(dataset.shape, split, seed)
    r, n_bins = _cv_scores(
        np.where(np.isfinite(feats), feats, 0.0), np.where(tvalid, flat, 0.0), feat_valid, tvalid, test_masks, method, opts, seed
    )
    cv = ceil.values
    ok = np.isfinite(cv) & (cv > max(min_ceiling, 0.0)) & np.isfinite(r)
    norm = np.divide(r, cv, out=np.full(r.shape, np.nan), where=ok)
    cells = pd.DataFrame(
        {
            "cell_id": dataset.cell_ids.astype(str),
            "animal": dataset.animal.astype(str),
            "session": dataset.session.astype(str),
            "r": r,
            "n_bins": n_bins,
            "split_half_r": ceil.split_half_r,
            "ceiling": cv,
            "normalized_r": norm,
        }
    )
    return PredictivityResult(cells=cells, method=method, ceiling_kind=ceil.kind, n_features=u, split=split, seed=seed)
