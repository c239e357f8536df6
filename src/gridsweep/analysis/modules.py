"""Grid modules: is the distribution of grid spacings multimodal, and how far apart are its modes?

One analysis: :func:`spacing_modules` (docs/science.md section 6, "Modules"; claim R3).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

from gridsweep.analysis._common import as_numpy
from gridsweep.errors import AnalysisError, DataError

__all__ = ["MIN_UNITS", "MODE_MIN_RELATIVE_DENSITY", "spacing_modules"]

#: Fewer units than this above threshold: no module analysis (NaN results, ``reason`` set).
MIN_UNITS = 5
#: A KDE local maximum is a mode only if its density is at least this fraction of the highest.
MODE_MIN_RELATIVE_DENSITY = 0.1


def spacing_modules(
    spacings: Any,
    scores: Any = None,
    threshold: float = 0.8,
    *,
    max_components: int = 4,
    bandwidth: str | float | None = None,
    n_grid: int = 512,
    alpha: float = 0.05,
    seed: int = 0,
    n_init: int = 3,
) -> dict[str, Any]:
    """Modes of the grid-spacing distribution and tests of multimodality.

    Parameters
    ----------
    spacings : array_like, shape (U,)
        Grid spacing per unit (metres; NaN for unmeasured units, which are dropped).
    scores : array_like, shape (U,), optional
        Grid scores; only units with ``score > threshold`` are used. All finite spacings
        are used when omitted.
    threshold : float, default 0.8
        Score threshold (NFL's; docs/science.md section 6).
    max_components : int, default 4
        Largest number of Gaussian-mixture components compared by BIC (K).
    bandwidth : str or float, optional
        ``scipy.stats.gaussian_kde`` ``bw_method`` (default Scott's rule).
    n_grid : int, default 512
        Points of the KDE evaluation grid.
    alpha : float, default 0.05
        Significance level of the dip test's verdict.
    seed : int, default 0
        ``random_state`` of the Gaussian mixtures.
    n_init : int, default 3
        Restarts of each Gaussian-mixture fit (the best is kept).

    Returns
    -------
    dict
        ``spacings`` (n,) the spacings used, sorted; ``n_units`` int; ``kde_x``,
        ``kde_density`` (n_grid,); ``modes`` (M,) KDE modes, ascending; ``mode_ratios``
        (M-1,) ``modes[i+1] / modes[i]``; ``dip_statistic``, ``dip_pvalue`` (NaN when the
        ``diptest`` package is missing; ``dip_available`` says which); ``gmm_bic`` (K,)
        BIC of 1..K components; ``gmm_n_components`` int (lowest BIC);
        ``gmm_means`` (k,) ascending means of that mixture; ``multimodal`` bool
        (dip p < alpha or BIC prefers > 1 component, each reported separately as
        ``dip_multimodal`` and ``bic_multimodal``); ``reason`` str, ``""`` when computed.

    Raises
    ------
    DataError
        Shapes differ or ``spacings`` is not 1-D.
    AnalysisError
        ``max_components`` < 1.

    Notes
    -----
    docs/science.md section 6 ("Modules") and claim R3 (Schaeffer et al. 2022: one period
    per setting, ratio of adjacent modes 0.99-1.15, against ~1.4 in the brain, Stensola
    et al. 2012).

    * KDE: ``scipy.stats.gaussian_kde`` on a grid spanning the data +/- 3 bandwidths;
      modes are its local maxima with density >= ``MODE_MIN_RELATIVE_DENSITY`` (10%) of
      the highest.
    * Hartigan & Hartigan (1985) dip test via the ``diptest`` package (tabulated
      p-value); null hypothesis: unimodal.
    * Gaussian mixtures (``sklearn.mixture.GaussianMixture``, ``n_init`` restarts, fixed seed)
      with 1..K components, compared by BIC; K is capped at n - 1.
    * Fewer than ``MIN_UNITS`` (5) units, or all spacings equal: every statistic is NaN
      and ``reason`` says why.
    """
    if not isinstance(max_components, (int, np.integer)) or max_components < 1:
        raise AnalysisError(f"max_components must be an int >= 1; got {max_components!r}")
    sp_ = as_numpy(spacings, "spacings")
    if sp_.ndim != 1:
        raise DataError(f"spacings must be 1-D (U,); got shape {sp_.shape}")
    keep = np.isfinite(sp_)
    if scores is not None:
        sc = as_numpy(scores, "scores")
        if sc.shape != sp_.shape:
            raise DataError(f"scores must have the shape of spacings {sp_.shape}; got {sc.shape}")
        keep &= np.where(np.isfinite(sc), sc, -np.inf) > threshold
    x = np.sort(sp_[keep])
    n = x.size
    out: dict[str, Any] = {
        "spacings": x, "n_units": int(n), "threshold": float(threshold) if scores is not None else float("nan"),
        "kde_x": np.full(0, np.nan), "kde_density": np.full(0, np.nan), "modes": np.full(0, np.nan),
        "mode_ratios": np.full(0, np.nan), "dip_statistic": float("nan"), "dip_pvalue": float("nan"),
        "dip_available": False, "gmm_bic": np.full(max_components, np.nan), "gmm_n_components": -1,
        "gmm_means": np.full(0, np.nan), "dip_multimodal": False, "bic_multimodal": False,
        "multimodal": False, "reason": "",
    }
    if n < MIN_UNITS:
        out["reason"] = f"fewer than {MIN_UNITS} units with a spacing" + (f" and score > {threshold}" if scores is not None else "")
        return out
    if np.ptp(x) == 0:
        out["reason"] = "all spacings are equal"
        return out

    kde = stats.gaussian_kde(x, bw_method=bandwidth)
    bw = float(np.sqrt(kde.covariance[0, 0]))
    grid = np.linspace(x[0] - 3 * bw, x[-1] + 3 * bw, int(n_grid))
    dens = kde(grid)
    inner = (dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:]) & (dens[1:-1] >= MODE_MIN_RELATIVE_DENSITY * dens.max())
    modes = grid[1:-1][inner]
    out.update(kde_x=grid, kde_density=dens, modes=modes, mode_ratios=modes[1:] / modes[:-1])

    try:
        import diptest
    except ImportError:
        pass
    else:
        dip, pval = diptest.diptest(x)
        out.update(dip_statistic=float(dip), dip_pvalue=float(pval), dip_available=True,
                   dip_multimodal=bool(pval < alpha))

    from sklearn.mixture import GaussianMixture

    bic = np.full(max_components, np.nan)
    means: dict[int, np.ndarray] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning on tiny samples
        for k in range(1, min(max_components, n - 1) + 1):
            gm = GaussianMixture(n_components=k, n_init=int(n_init), random_state=seed).fit(x[:, None])
            bic[k - 1] = gm.bic(x[:, None])
            means[k] = np.sort(gm.means_.ravel())
    best = int(np.nanargmin(bic)) + 1
    out.update(gmm_bic=bic, gmm_n_components=best, gmm_means=means[best], bic_multimodal=best > 1)
    out["multimodal"] = bool(out["dip_multimodal"] or out["bic_multimodal"])
    return out
