"""Figures of the analysis: top units (rate map + SAC), score histograms, survival curves.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, safe
under the Agg backend and in threads) and returns ``(fig, axes)``; save it with
``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gridsweep.analysis._common import as_maps, as_numpy
from gridsweep.analysis.population import SCORE_THRESHOLDS
from gridsweep.analysis.ratemaps import DEFAULT_EXTENT
from gridsweep.errors import DataError

__all__ = ["plot_score_histogram", "plot_score_survival", "plot_top_units"]


def plot_top_units(
    ratemaps: Any,
    sacs: Any,
    scores: Any,
    spacing_m: Any = None,
    extent: Sequence[float] | None = None,
    n: int = 16,
    *,
    cols: int = 4,
    variant: str | None = None,
) -> tuple[Figure, np.ndarray]:
    """The ``n`` highest-scoring units: rate map and SAC side by side, score and spacing printed.

    Parameters
    ----------
    ratemaps : RateMaps or array_like, shape (U, ny, nx)
    sacs : array_like, shape (U, 2ny-1, 2nx-1)
    scores : array_like, shape (U,)
        Units are ranked by score (NaN last).
    spacing_m : array_like, shape (U,), optional
        Printed next to the score when given.
    extent : 4 floats, optional
        ``(xmin, xmax, ymin, ymax)`` of the maps in metres (default: the RateMaps' own,
        else (-1.1, 1.1, -1.1, 1.1)).
    n : int, default 16
        Units shown (fewer if U < n).
    cols : int, default 4
        Units per row (each unit takes two axes).
    variant : str, optional
        Score variant, printed in the title.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, shape (rows, 2 cols)
        Unused axes are switched off.

    Notes
    -----
    Maps are drawn with ``origin="lower"`` and the box extent (docs/architecture.md);
    SACs with lags in bins, colour range [-1, 1] (docs/science.md section 6).
    """
    if extent is None:
        extent = getattr(ratemaps, "extent", DEFAULT_EXTENT)
    maps = as_maps(ratemaps, "ratemaps")
    s = as_numpy(sacs, "sacs")
    if s.ndim == 2:
        s = s[None]
    sc = as_numpy(scores, "scores").ravel()
    u = maps.shape[0]
    if s.shape[0] != u or sc.shape[0] != u:
        raise DataError(f"ratemaps, sacs and scores must describe the same U units; got {u}, {s.shape[0]}, {sc.shape[0]}")
    sp = None if spacing_m is None else as_numpy(spacing_m, "spacing_m").ravel()
    if sp is not None and sp.shape[0] != u:
        raise DataError(f"spacing_m must have U = {u} entries; got {sp.shape[0]}")
    k = max(1, min(int(n), u))
    order = np.argsort(np.where(np.isfinite(sc), -sc, np.inf), kind="stable")[:k]
    cols = max(1, min(int(cols), k))
    rows = -(-k // cols)
    fig = Figure(figsize=(2.4 * 2 * cols, 2.5 * rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 2 * cols, squeeze=False))
    hy, hx = (s.shape[1] - 1) // 2, (s.shape[2] - 1) // 2
    for i, unit in enumerate(order):
        r, c = divmod(i, cols)
        am, asac = axes[r, 2 * c], axes[r, 2 * c + 1]
        am.imshow(maps[unit], origin="lower", extent=tuple(extent), cmap="viridis", interpolation="nearest")
        asac.imshow(s[unit], origin="lower", extent=(-hx - 0.5, hx + 0.5, -hy - 0.5, hy + 0.5), cmap="RdBu_r",
                    vmin=-1, vmax=1, interpolation="nearest")
        score = "nan" if not np.isfinite(sc[unit]) else f"{sc[unit]:.2f}"
        label = f"unit {unit}  g={score}"
        if sp is not None:
            label += "" if not np.isfinite(sp[unit]) else f"  {100 * sp[unit]:.0f} cm"
        am.set_title(label, fontsize=7)
        asac.set_title("SAC", fontsize=7)
        for a in (am, asac):
            a.set_xticks([])
            a.set_yticks([])
    for j in range(k, rows * cols):
        r, c = divmod(j, cols)
        axes[r, 2 * c].axis("off")
        axes[r, 2 * c + 1].axis("off")
    fig.suptitle(f"top {k} units by grid score" + (f" ({variant})" if variant else ""), fontsize=9)
    return fig, axes


def plot_score_histogram(
    scores: Any,
    thresholds: Sequence[float] = SCORE_THRESHOLDS,
    *,
    bins: int = 40,
    variant: str | None = None,
) -> tuple[Figure, Any]:
    """Histogram of grid scores with the published thresholds marked.

    Parameters
    ----------
    scores : array_like, shape (U,)
        NaN scores are left out (their count is printed).
    thresholds : sequence of float, default (0.3, 0.37, 0.8, 1.15)
    bins : int, default 40
    variant : str, optional
        Axis label.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : Axes

    Notes
    -----
    Thresholds of docs/science.md section 6; the legend gives the fraction of all units above each.
    """
    sc = as_numpy(scores, "scores").ravel()
    finite = sc[np.isfinite(sc)]
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    if finite.size:
        ax.hist(finite, bins=bins, color="0.5")
    for th in thresholds:
        frac = float(np.count_nonzero(finite > th)) / sc.size if sc.size else float("nan")
        ax.axvline(th, ls="--", lw=1, label=f"{th}: {100 * frac:.1f}% above")
    ax.set_xlabel("grid score" + (f" ({variant})" if variant else ""))
    ax.set_ylabel("units")
    ax.set_title(f"{sc.size} units, {sc.size - finite.size} unscorable", fontsize=8)
    if len(thresholds):
        ax.legend(fontsize=7)
    return fig, ax


def plot_score_survival(scores_by_group: dict[str, Any], *, variant: str | None = None) -> tuple[Figure, Any]:
    """Survival curves P(score > s) per group (e.g. trained vs untrained vs shuffled).

    Parameters
    ----------
    scores_by_group : dict str -> array_like (U_g,)
        One curve per group; NaN scores count as never above (denominator: all units).
    variant : str, optional
        Axis label.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : Axes

    Notes
    -----
    The fraction of units above a threshold as a function of the threshold (the
    quantity of NFL's "% units above 0.8", docs/science.md section 6, for every threshold).
    """
    if not isinstance(scores_by_group, dict) or not scores_by_group:
        raise DataError(f"scores_by_group must be a non-empty dict name -> scores; got {type(scores_by_group).__name__}")
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    for name, scores in scores_by_group.items():
        sc = as_numpy(scores, f"scores_by_group[{name!r}]").ravel()
        finite = np.sort(sc[np.isfinite(sc)])
        if sc.size == 0:
            continue
        surv = (finite.size - np.arange(1, finite.size + 1)) / sc.size   # fraction strictly above
        ax.step(np.r_[finite[:1] if finite.size else [0.0], finite], np.r_[finite.size / sc.size, surv],
                where="post", label=f"{name} (n={sc.size})")
    ax.set_xlabel("grid score" + (f" ({variant})" if variant else ""))
    ax.set_ylabel("fraction of units above")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    return fig, ax
