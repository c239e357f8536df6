"""One row per unit: grid scores of every variant and the grid geometry.

One analysis: :func:`unit_table` (the ``analysis/units.parquet`` of docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridsweep.analysis._common import as_maps, bin_size_of
from gridsweep.analysis.geometry import grid_geometry
from gridsweep.analysis.gridscore import GRID_SCORE_VARIANTS, grid_scores
from gridsweep.analysis.sac import autocorrelogram
from gridsweep.errors import AnalysisError

__all__ = ["DEFAULT_VARIANTS", "unit_table"]

#: Variants scored by default (NFL's first: it feeds the run summary).
DEFAULT_VARIANTS = ("deepmind_minmax", "deepmind_mean", "sargolini")


def unit_table(ratemaps: Any, bin_size: Any = None, variants: Sequence[str] = DEFAULT_VARIANTS, *,
               unvisited: str | None = None) -> pd.DataFrame:
    """Per-unit table of grid scores (all requested variants) and grid geometry.

    Parameters
    ----------
    ratemaps : RateMaps or array_like or torch.Tensor, shape (U, ny, nx)
    bin_size : float or (dx, dy), optional
        Metres; taken from a RateMaps when omitted.
    variants : sequence of str, default ("deepmind_minmax", "deepmind_mean", "sargolini")
        Keys of ``GRID_SCORE_VARIANTS``.
    unvisited : {"zero", "drop"}, optional
        NaN-bin handling of every variant's SAC; default: each variant's own
        (``deepmind_*`` zero-fill, ``sargolini`` and the geometry drop them).

    Returns
    -------
    pandas.DataFrame
        U rows, columns ``unit`` (int), ``score60_<variant>``, ``score90_<variant>`` per
        variant, ``spacing_m``, ``orientation_deg``, ``ellipticity`` (float) and
        ``reason`` (str, ``""`` when the geometry was measured).

    Notes
    -----
    The SACs are computed once (:func:`~gridsweep.analysis.autocorrelogram`) and shared
    by every variant and by :func:`~gridsweep.analysis.grid_geometry` (docs/science.md
    section 6). Every score column names its variant.
    """
    variants = tuple(variants)
    unknown = [v for v in variants if v not in GRID_SCORE_VARIANTS]
    if unknown or not variants:
        raise AnalysisError(f"variants must be a non-empty subset of {sorted(GRID_SCORE_VARIANTS)}; got {variants!r}")
    bin_size = bin_size_of(ratemaps, bin_size, "ratemaps")
    maps = as_maps(ratemaps, "ratemaps")
    sacs = {"drop": autocorrelogram(maps)}
    if np.isnan(maps).any():                 # otherwise both conventions give the same SAC
        sacs["zero"] = autocorrelogram(maps, unvisited="zero")
    else:
        sacs["zero"] = sacs["drop"]
    cols: dict[str, Any] = {"unit": np.arange(maps.shape[0], dtype=np.int64)}
    for v in variants:
        mode = GRID_SCORE_VARIANTS[v].unvisited if unvisited is None else unvisited
        if mode not in sacs:
            raise AnalysisError(f"unvisited must be 'zero', 'drop' or None; got {unvisited!r}")
        g = grid_scores(sacs=sacs[mode], variant=v)
        cols[f"score60_{v}"] = g["score60"]
        cols[f"score90_{v}"] = g["score90"]
    geo = grid_geometry(sacs["drop" if unvisited is None else unvisited], bin_size, kind="sacs")
    cols["spacing_m"] = geo["spacing_m"]
    cols["orientation_deg"] = geo["orientation_deg"]
    cols["ellipticity"] = geo["ellipticity"]
    cols["reason"] = pd.array([str(r) for r in geo["reason"]], dtype=object)
    return pd.DataFrame(cols)
