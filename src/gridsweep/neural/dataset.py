"""The neural dataset: recorded cells' rate maps on one common spatial grid.

A :class:`NeuralDataset` is what every predictivity computation consumes: the rate
maps of ``C`` recorded cells, ``(C, ny, nx)`` in Hz (NaN where the animal never went),
on the grid given by ``extent = (xmin, xmax, ymin, ymax)`` in metres (row index = y
bin, column = x bin, as everywhere in gridsweep; see docs/architecture.md), with the
cells' identities (cell id, animal, session) and, when the spikes were available,
maps from the first and second half of each session for split-half noise ceilings
(docs/science.md section 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import warnings

import numpy as np

from gridsweep.errors import DataError

__all__ = ["MAX_ARENA_M", "NeuralDataset", "PositionUnitWarning", "concat_datasets", "from_arrays"]

#: An arena wider than this (metres) is suspicious: positions are probably centimetres.
MAX_ARENA_M = 10.0


class PositionUnitWarning(UserWarning):
    """Positions or an extent look like they are not in metres (the arena is implausibly large)."""


def _as_str_array(values: Sequence[object] | np.ndarray | None, n: int, default: str, name: str) -> np.ndarray:
    if values is None:
        return np.array([default] * n, dtype=object)
    if isinstance(values, str):
        return np.array([values] * n, dtype=object)
    arr = np.array([str(v) for v in np.asarray(values, dtype=object).ravel()], dtype=object)
    if arr.shape != (n,):
        raise DataError(f"{name} must have one entry per cell ({n}); got {arr.shape[0]} entries")
    return arr


@dataclass(frozen=True, eq=False)
class NeuralDataset:
    """Rate maps of recorded cells on a common spatial grid.

    Attributes
    ----------
    maps : ndarray, shape (C, ny, nx)
        Firing-rate maps in Hz; row = y bin (increasing y), column = x bin; NaN in
        bins without occupancy.
    occupancy : ndarray, shape (ny, nx)
        Position samples per bin (as ``gridsweep.analysis.rate_maps`` counts them),
        summed over sessions; cells share the grid, not necessarily the occupancy
        (see :attr:`valid`).
    extent : tuple of 4 floats
        ``(xmin, xmax, ymin, ymax)`` in metres.
    cell_ids : ndarray of str, shape (C,)
    animal : ndarray of str, shape (C,)
    session : ndarray of str, shape (C,)
    split_maps : ndarray, shape (2, C, ny, nx), optional
        Rate maps from the first and second half of each cell's session, for the
        split-half noise ceiling; ``None`` when unavailable (e.g. Nayebi's format).
    source : str
        Where the data came from (a path or ``"synthetic"``), for provenance.
    """

    maps: np.ndarray
    occupancy: np.ndarray
    extent: tuple[float, float, float, float]
    cell_ids: np.ndarray
    animal: np.ndarray
    session: np.ndarray
    split_maps: np.ndarray | None = None
    source: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        maps = np.asarray(self.maps, dtype=float)
        if maps.ndim != 3:
            raise DataError(f"maps must be (C, ny, nx); got shape {maps.shape}")
        c, ny, nx = maps.shape
        if c == 0:
            raise DataError("maps holds no cells (C = 0); at least one cell is required")
        occ = np.asarray(self.occupancy, dtype=float)
        if occ.shape != (ny, nx):
            raise DataError(f"occupancy must be (ny, nx) = {(ny, nx)}; got {occ.shape}")
        ext = tuple(float(v) for v in np.asarray(self.extent, dtype=float).ravel())
        if len(ext) != 4 or not (ext[1] > ext[0] and ext[3] > ext[2]):
            raise DataError(f"extent must be (xmin, xmax, ymin, ymax) with xmax > xmin, ymax > ymin; got {self.extent}")
        if max(ext[1] - ext[0], ext[3] - ext[2]) > MAX_ARENA_M:
            warnings.warn(
                f"extent {ext} spans more than {MAX_ARENA_M:g} m; it is probably in centimetres "
                "(gridsweep uses metres: divide by 100, or load with position_unit='cm')",
                PositionUnitWarning,
                stacklevel=3,
            )
        split = self.split_maps
        if split is not None:
            split = np.asarray(split, dtype=float)
            if split.shape != (2, c, ny, nx):
                raise DataError(f"split_maps must be (2, C, ny, nx) = {(2, c, ny, nx)}; got {split.shape}")
        object.__setattr__(self, "maps", maps)
        object.__setattr__(self, "occupancy", occ)
        object.__setattr__(self, "extent", ext)
        object.__setattr__(self, "split_maps", split)
        object.__setattr__(self, "cell_ids", _as_str_array(self.cell_ids, c, "", "cell_ids"))
        object.__setattr__(self, "animal", _as_str_array(self.animal, c, "animal0", "animal"))
        object.__setattr__(self, "session", _as_str_array(self.session, c, "session0", "session"))
        if len(set(zip(self.animal, self.session, self.cell_ids, strict=True))) != c:
            raise DataError("cell_ids must be unique within each (animal, session)")

    @property
    def n_cells(self) -> int:
        """Number of cells ``C``."""
        return int(self.maps.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(ny, nx)``."""
        return (int(self.maps.shape[1]), int(self.maps.shape[2]))

    @property
    def bin_size(self) -> tuple[float, float]:
        """Bin size ``(dx, dy)`` in metres."""
        ny, nx = self.shape
        xmin, xmax, ymin, ymax = self.extent
        return ((xmax - xmin) / nx, (ymax - ymin) / ny)

    @property
    def valid(self) -> np.ndarray:
        """``(C, ny, nx)`` bool: finite map values."""
        return np.isfinite(self.maps)

    @property
    def animals(self) -> list[str]:
        """Distinct animals, in order of first appearance."""
        return list(dict.fromkeys(self.animal.tolist()))

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> NeuralDataset:
        """A dataset holding only the cells selected by ``index`` (bool mask or integers)."""
        idx = np.arange(self.n_cells)[index]
        return NeuralDataset(
            maps=self.maps[idx],
            occupancy=self.occupancy,
            extent=self.extent,
            cell_ids=self.cell_ids[idx],
            animal=self.animal[idx],
            session=self.session[idx],
            split_maps=None if self.split_maps is None else self.split_maps[:, idx],
            source=self.source,
            meta=dict(self.meta),
        )

    def table(self):  # -> pandas.DataFrame
        """One row per cell: ``cell_id, animal, session, n_valid_bins, mean_rate_hz``."""
        import pandas as pd

        valid = self.valid
        n_valid = valid.reshape(self.n_cells, -1).sum(axis=1)
        total = np.where(valid, self.maps, 0.0).reshape(self.n_cells, -1).sum(axis=1)
        mean_rate = np.divide(total, n_valid, out=np.full(self.n_cells, np.nan), where=n_valid > 0)
        return pd.DataFrame(
            {
                "cell_id": self.cell_ids,
                "animal": self.animal,
                "session": self.session,
                "n_valid_bins": n_valid,
                "mean_rate_hz": mean_rate,
            }
        )


def from_arrays(
    maps: np.ndarray,
    extent: Sequence[float],
    *,
    layout: str = "cyx",
    occupancy: np.ndarray | None = None,
    cell_ids: Sequence[object] | None = None,
    animal: str | Sequence[object] | None = None,
    session: str | Sequence[object] | None = None,
    split_maps: np.ndarray | None = None,
    source: str = "arrays",
) -> NeuralDataset:
    """Build a :class:`NeuralDataset` from plain arrays.

    Parameters
    ----------
    maps : ndarray
        Rate maps, ``(C, ny, nx)`` for ``layout="cyx"`` (gridsweep's order) or
        ``(nx, ny, C)`` for ``layout="xyc"`` (Nayebi's ``resp`` order), transposed
        explicitly to ``(C, ny, nx)``.
    extent : 4 floats
        ``(xmin, xmax, ymin, ymax)`` in metres.
    layout : {"cyx", "xyc"}
    occupancy : ndarray, shape (ny, nx), optional
        Defaults to 1 where any cell is finite, else 0.
    cell_ids, animal, session : optional
        Per-cell labels (a single string broadcasts to every cell).
    split_maps : ndarray, optional
        ``(2, C, ny, nx)`` in ``"cyx"`` layout or ``(2, nx, ny, C)`` in ``"xyc"``.

    Returns
    -------
    NeuralDataset
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3:
        raise DataError(f"maps must be 3-D ({'(C, ny, nx)' if layout == 'cyx' else '(nx, ny, C)'}); got shape {maps.shape}")
    if layout == "xyc":
        maps = np.transpose(maps, (2, 1, 0))
        if split_maps is not None:
            split_maps = np.transpose(np.asarray(split_maps, dtype=float), (0, 3, 2, 1))
    elif layout != "cyx":
        raise DataError(f"layout={layout!r} is not known; allowed: 'cyx' (C, ny, nx) or 'xyc' (nx, ny, C)")
    if occupancy is None:
        occupancy = np.isfinite(maps).any(axis=0).astype(float)
    if cell_ids is None:
        cell_ids = [str(i) for i in range(maps.shape[0])]
    return NeuralDataset(
        maps=maps,
        occupancy=occupancy,
        extent=tuple(extent),  # type: ignore[arg-type]
        cell_ids=cell_ids,  # type: ignore[arg-type]
        animal=animal,  # type: ignore[arg-type]
        session=session,  # type: ignore[arg-type]
        split_maps=split_maps,
        source=source,
    )


def concat_datasets(datasets: Sequence[NeuralDataset], *, atol: float = 1e-6) -> NeuralDataset:
    """Concatenate datasets recorded on the same grid (same shape and extent).

    The occupancy of the result is the sum of the inputs' occupancies; split maps are
    kept only when every input has them.
    """
    if not datasets:
        raise DataError("concat_datasets needs at least one dataset; got none")
    first = datasets[0]
    for d in datasets[1:]:
        if d.shape != first.shape or not np.allclose(d.extent, first.extent, atol=atol):
            raise DataError(
                f"datasets must share one grid; got shape {d.shape} extent {d.extent} "
                f"vs shape {first.shape} extent {first.extent}"
            )
    has_split = all(d.split_maps is not None for d in datasets)
    return NeuralDataset(
        maps=np.concatenate([d.maps for d in datasets]),
        occupancy=np.sum([d.occupancy for d in datasets], axis=0),
        extent=first.extent,
        cell_ids=np.concatenate([d.cell_ids for d in datasets]),
        animal=np.concatenate([d.animal for d in datasets]),
        session=np.concatenate([d.session for d in datasets]),
        split_maps=np.concatenate([d.split_maps for d in datasets], axis=1) if has_split else None,
        source=";".join(dict.fromkeys(d.source for d in datasets)),
    )
