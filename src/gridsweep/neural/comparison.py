"""Predictivity of models next to their dimension-matched nulls.

NFL's control for Nayebi et al.'s predictivity ranking (docs/science.md section 7,
claim P in section 1): every model population is scored with the same linear mapping,
bin split and noise ceiling as null populations of the same size and participation
ratio drawn from :mod:`gridsweep.neural.nulls`. The figure is
:func:`gridsweep.neural.plots.plot_predictivity_vs_pr`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridsweep.errors import DataError
from gridsweep.neural.dataset import NeuralDataset
from gridsweep.neural.nulls import (
    NULL_MODELS,
    _matched_null,
    generate_null,
    population_pr,
)
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
    "DEFAULT_NULLS",
    "DimensionComparison",
    "NullSpec",
    "compare_predictivity",
    "predictivity_vs_dimension",
]


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
        ``standardize_pr=False``), ``pr_covariance`` (PR of the raw maps, docs/science.md
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
    NFL's dimension-matched control (docs/science.md section 7): each null has the model's
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
    NFL's control for Nayebi et al.'s predictivity ranking (docs/science.md sections 1, P,
    and 7): read a model's score against nulls of the same PR.
    """
    return compare_predictivity(model_maps, dataset, nulls, seed=seed, **kwargs).summary
