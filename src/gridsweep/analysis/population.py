"""Population-level measures: dimensionality and the fraction of grid-like units.

:func:`participation_ratio` (docs/science.md section 6, "Participation ratio"; section 7),
:func:`fraction_above` (the published score thresholds), :func:`shuffled_null_scores`
(what fraction a spatially shuffled population reaches by chance) and
:func:`compare_with_untrained` (trained vs untrained network fractions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridsweep.analysis._common import as_maps, as_numpy
from gridsweep.errors import AnalysisError, DataError

__all__ = [
    "SCORE_THRESHOLDS",
    "SHUFFLE_MODES",
    "compare_with_untrained",
    "fraction_above",
    "participation_ratio",
    "shuffled_null_scores",
]

#: Published grid-score thresholds (docs/science.md section 6): 0.3 experimental, 0.37
#: Banino / Sorscher, 0.8 NFL, 1.15 strict.
SCORE_THRESHOLDS = (0.3, 0.37, 0.8, 1.15)


def participation_ratio(maps: Any) -> float:
    """Participation ratio of a rate-map population.

    Parameters
    ----------
    maps : array_like or torch.Tensor or RateMaps, shape (U, ny, nx) or (U, B)
        U units' rate maps (flattened or not). Bins that are NaN in *any* unit are
        dropped from every unit.

    Returns
    -------
    float
        ``PR = (sum_i l_i)^2 / sum_i l_i^2`` in ``[1, min(U, B_valid - 1)]``; NaN when the
        population has zero variance (all maps constant).

    Raises
    ------
    DataError
        Wrong number of dimensions.
    AnalysisError
        Fewer than 2 bins are valid (finite in every unit).

    Notes
    -----
    docs/science.md section 6 ("Participation ratio") and section 7 (Nayebi et al. 2021's
    dimensionality; Gao et al. 2017's definition). **Units are the variables and spatial
    bins are the samples**: ``X`` is the (U, B) matrix of maps, each unit is centred over
    bins, ``C = X_c X_c^T / (B - 1)`` is the U x U covariance and ``l_i`` its
    eigenvalues. The eigenvalues are not formed explicitly: ``sum l = trace C`` and
    ``sum l^2 = ||C||_F^2``, and the smaller of the U x U and B x B Gram matrices is
    used (same non-zero spectrum). The ``1/(B-1)`` factor cancels.
    """
    if hasattr(maps, "maps") and hasattr(maps, "occupancy"):
        maps = maps.maps
    x = as_numpy(maps, "maps")
    if x.ndim == 3:
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2:
        raise DataError(f"maps must have shape (U, ny, nx) or (U, B); got shape {x.shape}")
    valid = np.isfinite(x).all(axis=0)
    if valid.sum() < 2:
        raise AnalysisError(f"maps has {int(valid.sum())} bins finite in every unit; participation_ratio "
                            "needs at least 2 (drop units that are NaN everywhere)")
    x = x[:, valid]
    xc = x - x.mean(axis=1, keepdims=True)
    gram = xc @ xc.T if xc.shape[0] <= xc.shape[1] else xc.T @ xc
    tr = float(np.trace(gram))
    fro2 = float(np.sum(gram * gram))
    if not (tr > 0 and fro2 > 0):
        return float("nan")
    return tr * tr / fro2


def fraction_above(scores: Any, thresholds: Sequence[float] = SCORE_THRESHOLDS) -> dict[float, float]:
    """Fraction of units whose score exceeds each threshold.

    Parameters
    ----------
    scores : array_like, shape (U,)
        Grid scores (NaN for unscorable units).
    thresholds : sequence of float, default (0.3, 0.37, 0.8, 1.15)

    Returns
    -------
    dict float -> float
        ``{threshold: fraction}``, fraction = #(score > threshold) / U. NaN scores count
        as not above (the denominator is all U units, as in NFL's "% units above").
        NaN for an empty ``scores``.

    Notes
    -----
    Thresholds of docs/science.md section 6 (0.3 / 0.349 experimental, 0.37 Banino and
    Sorscher, 0.8 NFL, 1.15).
    """
    s = as_numpy(scores, "scores").ravel()
    out = {}
    for th in thresholds:
        th = float(th)
        if s.size == 0:
            out[th] = float("nan")
        else:
            out[th] = float(np.count_nonzero(np.where(np.isfinite(s), s, -np.inf) > th)) / s.size
    return out


def _permute_bins(maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independently permute each unit's visited bins; unvisited (NaN) bins stay in place."""
    u = maps.shape[0]
    flat = maps.reshape(u, -1)
    valid = np.isfinite(flat)
    out = flat.copy()
    # One independent random order per unit, restricted to the valid bins: sort random keys.
    keys = rng.random(flat.shape)
    keys[~valid] = np.inf
    order = np.argsort(keys, axis=1, kind="stable")  # valid bins first, in random order
    pos = np.argsort(np.where(valid, 0, 1), axis=1, kind="stable")  # valid bin slots, in place order
    nvalid = valid.sum(axis=1)
    rows = np.arange(u)[:, None]
    cols = np.arange(flat.shape[1])[None, :]
    take = cols < nvalid[:, None]
    src = flat[rows, order]
    dst_rows = np.broadcast_to(rows, flat.shape)[take]
    out[dst_rows, pos[take]] = src[take]
    return out.reshape(maps.shape)


def _circular_shift(maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Roll each unit's map by a random (dy, dx) with wrap-around (NaN bins move with it)."""
    u, ny, nx = maps.shape
    dy = rng.integers(0, ny, size=(u,))
    dx = rng.integers(0, nx, size=(u,))
    iy = (np.arange(ny)[None, :] - dy[:, None]) % ny
    ix = (np.arange(nx)[None, :] - dx[:, None]) % nx
    return maps[np.arange(u)[:, None, None], iy[:, :, None], ix[:, None, :]]


#: Spatial shuffles for null distributions (registry).
SHUFFLE_MODES = {
    "permute": _permute_bins,
    "circular": _circular_shift,
}


def shuffled_null_scores(
    ratemaps: Any,
    n_shuffles: int,
    rng: np.random.Generator | int | None,
    variant: str = "deepmind_minmax",
    *,
    mode: str = "permute",
    thresholds: Sequence[float] = SCORE_THRESHOLDS,
) -> dict[str, Any]:
    """Grid scores of spatially shuffled maps: what fraction exceeds each threshold by chance.

    Parameters
    ----------
    ratemaps : array_like or torch.Tensor or RateMaps, shape (U, ny, nx)
    n_shuffles : int
        Shuffles per unit (>= 1). U * n_shuffles maps are scored in batched calls.
    rng : numpy.random.Generator or int seed
        The only source of randomness (None is refused: results must be reproducible).
    variant : str, default "deepmind_minmax"
        A key of ``GRID_SCORE_VARIANTS``.
    mode : {"permute", "circular"}, default "permute"
        ``"permute"``: each unit's visited bins are randomly permuted (unvisited NaN bins
        stay in place); this destroys all spatial structure while keeping the rate
        distribution. ``"circular"``: each map is rolled by a random (dy, dx) with
        wrap-around, which keeps local smoothness but breaks the lattice at the seams.
    thresholds : sequence of float, default (0.3, 0.37, 0.8, 1.15)

    Returns
    -------
    dict
        ``scores`` (n_shuffles, U) score60 of the shuffled maps; ``fraction_above``
        {threshold: fraction of all shuffled maps above it}; ``percentile95`` (U,) each
        unit's 95th percentile null score (NaN-aware); ``variant``; ``mode``.

    Notes
    -----
    The shuffle null of experimental grid-cell studies (e.g. Langston et al. 2010 use
    the 95th / 99th percentile of shuffled scores) adapted to rate maps (docs/science.md
    section 6). Here bins are shuffled, not spike trains, since network units have
    no spikes.
    """
    from gridsweep.analysis.gridscore import grid_scores

    maps = as_maps(ratemaps, "ratemaps")
    if not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
        raise AnalysisError(f"n_shuffles must be an int >= 1; got {n_shuffles!r}")
    if mode not in SHUFFLE_MODES:
        raise AnalysisError(f"mode must be one of {sorted(SHUFFLE_MODES)}; got {mode!r}")
    if rng is None:
        raise AnalysisError("rng must be a numpy.random.Generator or an int seed; got None")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    shuffle = SHUFFLE_MODES[mode]
    u = maps.shape[0]
    out = np.empty((n_shuffles, u))
    for k in range(n_shuffles):  # one batched scoring call per shuffle round
        out[k] = grid_scores(shuffle(maps, gen), variant)["score60"]
    with np.errstate(invalid="ignore", all="ignore"):
        finite_any = np.isfinite(out).any(axis=0)
        p95 = np.full(u, np.nan)
        if finite_any.any():
            p95[finite_any] = np.nanpercentile(out[:, finite_any], 95, axis=0)
    return {
        "scores": out,
        "fraction_above": fraction_above(out.ravel(), thresholds),
        "percentile95": p95,
        "variant": variant,
        "mode": mode,
    }


def compare_with_untrained(
    trained_scores: Any,
    untrained_scores: Any,
    thresholds: Sequence[float] = SCORE_THRESHOLDS,
    null: dict[float, float] | None = None,
) -> dict[str, Any]:
    """Compare a trained network's fraction of grid-like units with an untrained network's.

    Parameters
    ----------
    trained_scores : array_like, shape (U1,)
    untrained_scores : array_like, shape (U2,)
        Scores of the same architecture at initialisation (computed by the caller with
        the same variant).
    thresholds : sequence of float
    null : dict, optional
        ``fraction_above`` of a shuffle null (:func:`shuffled_null_scores`), included as
        a third column when given.

    Returns
    -------
    dict
        ``thresholds`` (T,), ``trained`` (T,), ``untrained`` (T,), ``difference`` (T,)
        trained - untrained, ``ratio`` (T,) trained / untrained (inf when only the
        untrained fraction is 0, NaN when both are), and ``null`` (T,) when given.

    Notes
    -----
    NFL's control (docs/science.md sections 1 and 7): grid-like units must be compared with
    what an untrained network of the same architecture already shows.
    """
    th = [float(t) for t in thresholds]
    ft = fraction_above(trained_scores, th)
    fu = fraction_above(untrained_scores, th)
    a = np.array([ft[t] for t in th])
    b = np.array([fu[t] for t in th])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, np.inf, np.nan))
    out: dict[str, Any] = {"thresholds": np.array(th), "trained": a, "untrained": b,
                           "difference": a - b, "ratio": ratio}
    if null is not None:
        out["null"] = np.array([float(null.get(t, np.nan)) for t in th])
    return out
