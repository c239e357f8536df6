"""Rate maps: the mean activation of every unit in every spatial bin.

One analysis: :func:`rate_maps` turns ``(positions, activations)`` samples into a
:class:`RateMaps` (docs/science.md section 6, "Rate map").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from gridsweep.analysis._common import as_numpy, is_torch
from gridsweep.errors import DataError

__all__ = ["DEFAULT_EXTENT", "RateMaps", "rate_maps"]

#: Sorscher's 2.2 m box centred at the origin (docs/science.md section 2).
DEFAULT_EXTENT = (-1.1, 1.1, -1.1, 1.1)


@dataclass(frozen=True, eq=False)
class RateMaps:
    """Rate maps of U units on one spatial grid.

    Attributes
    ----------
    maps : ndarray, shape (U, ny, nx), float64
        Mean activation per bin; NaN where the bin was never visited. Row index = y bin
        (increasing y), column = x bin (docs/architecture.md).
    occupancy : ndarray, shape (ny, nx)
        Number of samples per bin (raw counts, also when smoothing was applied).
    extent : tuple of 4 floats
        ``(xmin, xmax, ymin, ymax)`` in metres.
    bin_size : tuple of 2 floats
        ``(dx, dy)`` bin width along x and along y, metres.

    Notes
    -----
    Compared and hashed by identity (``eq=False``): the fields are arrays.
    """

    maps: np.ndarray
    occupancy: np.ndarray
    extent: tuple[float, float, float, float]
    bin_size: tuple[float, float]

    @property
    def n_units(self) -> int:
        """Number of units U."""
        return int(self.maps.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return (int(self.maps.shape[1]), int(self.maps.shape[2]))


def _grid(extent: Sequence[float], bins: int | Sequence[int], bin_width: float | Sequence[float] | None
          ) -> tuple[tuple[float, float, float, float], int, int]:
    try:
        ext = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        raise DataError(f"extent must be 4 numbers (xmin, xmax, ymin, ymax) in metres; got {extent!r}") from None
    if len(ext) != 4 or not all(math.isfinite(v) for v in ext) or not (ext[1] > ext[0] and ext[3] > ext[2]):
        raise DataError(f"extent must be 4 finite numbers (xmin, xmax, ymin, ymax) with xmax > xmin "
                        f"and ymax > ymin; got {extent!r}")
    width, height = ext[1] - ext[0], ext[3] - ext[2]
    if bin_width is not None:
        bw = np.broadcast_to(np.asarray(bin_width, dtype=float), (2,)) if np.ndim(bin_width) <= 1 else None
        if bw is None or not np.all(np.isfinite(bw)) or np.any(bw <= 0):
            raise DataError(f"bin_width must be a positive number of metres (or (dx, dy)); got {bin_width!r}")
        nx = max(1, round(width / bw[0]))
        ny = max(1, round(height / bw[1]))
    else:
        if isinstance(bins, (int, np.integer)):
            nx = ny = int(bins)
        else:
            try:
                nx, ny = (int(b) for b in bins)
            except (TypeError, ValueError):
                raise DataError(f"bins must be an int (per side) or (nx, ny); got {bins!r}") from None
        if nx < 1 or ny < 1:
            raise DataError(f"bins must be >= 1 per side; got {bins!r}")
    return ext, nx, ny


def _bin_index(x: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    idx = np.floor((x - lo) * (n / (hi - lo))).astype(np.int64)
    return np.clip(idx, 0, n - 1)


def rate_maps(
    positions: Any,
    activations: Any,
    *,
    extent: Sequence[float] = DEFAULT_EXTENT,
    bins: int | Sequence[int] = 20,
    bin_width: float | Sequence[float] | None = None,
    smoothing_sigma: float = 0.0,
    mask: Any = None,
) -> RateMaps:
    """Mean activation of every unit per spatial bin.

    Parameters
    ----------
    positions : array_like or torch.Tensor, shape (N, 2)
        Positions in metres, ``[:, 0] = x``. Must be finite.
    activations : array_like or torch.Tensor, shape (N, U) or (N,)
        Activation of U units at each sample (a 1-D array is one unit). NaN activations
        make their bin's mean NaN.
    extent : 4 floats, default (-1.1, 1.1, -1.1, 1.1)
        ``(xmin, xmax, ymin, ymax)`` in metres.
    bins : int or (nx, ny), default 20
        Bins per side, or per axis.
    bin_width : float or (dx, dy), optional
        Bin width in metres; overrides ``bins``. The number of bins per axis is
        ``round(side / bin_width)`` (at least 1) and the bins then tile the extent exactly,
        so the realised ``bin_size`` can differ slightly from ``bin_width`` when the side
        is not a multiple of it (2.2 m at 0.05 m gives 44 bins of exactly 0.05 m).
    smoothing_sigma : float, default 0
        Gaussian smoothing width in bins; 0 (the default, docs/science.md section 6: no
        smoothing for network units) disables it.
    mask : bool array_like (ny, nx), optional
        Bins inside the arena (``gridsweep.arenas.Arena.mask``: bin centre inside); bins
        outside are NaN in ``maps`` and 0 in ``occupancy`` (docs/arenas.md). None keeps
        every bin.

    Returns
    -------
    RateMaps
        ``maps`` (U, ny, nx) float64 with NaN in unvisited bins, ``occupancy`` (ny, nx)
        raw sample counts, ``extent``, ``bin_size = (dx, dy)`` metres.

    Raises
    ------
    DataError
        Bad shapes, non-finite positions, a bad extent, ``bins`` or ``bin_width``.

    Notes
    -----
    Rate map as defined in docs/science.md section 6 (Banino et al. 2018; Sorscher et al.
    2019; Schaeffer et al. 2022): the mean activation per bin over all samples.

    * Binning: bin ``i = floor((x - xmin) / dx)``. Positions outside the extent (the
      published motion model lets trajectories slip a little past the walls, docs/science.md
      section 2) are **clipped into the edge bins**, as is ``x == xmax``.
    * Accumulation is one scatter-add over all samples and units at once: a sparse
      one-hot (bins x N) binning matrix times the (N, U) activations in numpy/scipy, or
      ``torch.Tensor.index_add_`` on the tensor's own device (float64) when both inputs
      are torch tensors. No Python loop over samples or units. Both paths agree to
      rounding (~1e-15 relative).
    * Smoothing, when ``smoothing_sigma > 0``, is done the experimental way (adaptive /
      normalised convolution, as in the Moser-lab pipelines): the per-bin activity sum
      and the occupancy are each convolved with the same Gaussian kernel
      (``scipy.ndimage.gaussian_filter``, sigma in bins, truncated at
      ``int(4 sigma + 0.5)`` bins per axis, zero padding outside the box, no NaNs
      involved), and the smoothed sum is divided by the smoothed occupancy. Bins never
      visited stay NaN; ``occupancy`` stays the raw counts.
    """
    if not (isinstance(smoothing_sigma, (int, float, np.integer, np.floating)) and math.isfinite(smoothing_sigma)
            and smoothing_sigma >= 0):
        raise DataError(f"smoothing_sigma must be a finite number >= 0 (bins); got {smoothing_sigma!r}")
    ext, nx, ny = _grid(extent, bins, bin_width)
    nb = nx * ny
    use_torch = is_torch(positions) and is_torch(activations)
    pshape = tuple(positions.shape) if hasattr(positions, "shape") else np.shape(positions)
    ashape = tuple(activations.shape) if hasattr(activations, "shape") else np.shape(activations)
    if len(pshape) != 2 or pshape[1] != 2:
        raise DataError(f"positions must have shape (N, 2) in metres; got shape {pshape}")
    if len(ashape) not in (1, 2) or ashape[0] != pshape[0]:
        raise DataError(f"activations must have shape (N, U) with N = {pshape[0]} (one row per position); "
                        f"got shape {ashape}")
    if pshape[0] == 0:
        raise DataError("positions is empty (N = 0): no samples to bin")

    if use_torch:
        import torch

        dev = activations.device
        pos_t = positions.detach().to(device=dev, dtype=torch.float64)
        act_t = activations.detach().to(dtype=torch.float64)
        if act_t.ndim == 1:
            act_t = act_t[:, None]
        if not bool(torch.isfinite(pos_t).all()):
            raise DataError("positions must be finite; got NaN or inf (drop lost-tracking samples first)")
        ix_t = torch.clamp(torch.floor((pos_t[:, 0] - ext[0]) * (nx / (ext[1] - ext[0]))), 0, nx - 1).long()
        iy_t = torch.clamp(torch.floor((pos_t[:, 1] - ext[2]) * (ny / (ext[3] - ext[2]))), 0, ny - 1).long()
        flat_t = iy_t * nx + ix_t
        sums_t = torch.zeros((nb, act_t.shape[1]), dtype=torch.float64, device=dev)
        sums_t.index_add_(0, flat_t, act_t)
        counts_t = torch.bincount(flat_t, minlength=nb)
        sums = sums_t.cpu().numpy()
        counts = counts_t.cpu().numpy().astype(np.int64)
    else:
        pos = as_numpy(positions, "positions")
        act = as_numpy(activations, "activations")
        if act.ndim == 1:
            act = act[:, None]
        if not np.isfinite(pos).all():
            raise DataError("positions must be finite; got NaN or inf (drop lost-tracking samples first)")
        ix = _bin_index(pos[:, 0], ext[0], ext[1], nx)
        iy = _bin_index(pos[:, 1], ext[2], ext[3], ny)
        flat = iy * nx + ix
        n = flat.shape[0]
        onehot = sp.csr_matrix((np.ones(n), (flat, np.arange(n))), shape=(nb, n))
        sums = np.asarray(onehot @ act)
        counts = np.bincount(flat, minlength=nb).astype(np.int64)

    n_units = sums.shape[1]
    sums = sums.T.reshape(n_units, ny, nx)
    occ = counts.reshape(ny, nx)
    visited = occ > 0
    if smoothing_sigma > 0:
        s_sum = ndimage.gaussian_filter(sums, sigma=(0, smoothing_sigma, smoothing_sigma), mode="constant", cval=0.0)
        s_occ = ndimage.gaussian_filter(occ.astype(np.float64), sigma=smoothing_sigma, mode="constant", cval=0.0)
        num, den = s_sum, s_occ
    else:
        num, den = sums, occ.astype(np.float64)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (ny, nx) or mask.dtype != bool:
            raise DataError(f"mask must be a bool array of shape (ny, nx) = {(ny, nx)}; got {mask.dtype} {mask.shape}")
        visited = visited & mask
        occ = np.where(mask, occ, 0)
    maps = np.full((n_units, ny, nx), np.nan)
    maps[:, visited] = num[:, visited] / den[visited]
    dx = (ext[1] - ext[0]) / nx
    dy = (ext[3] - ext[2]) / ny
    return RateMaps(maps=maps, occupancy=occ, extent=ext, bin_size=(dx, dy))
