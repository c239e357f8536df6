"""Private helpers shared by the analysis modules: input conversion and validation."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridsweep.errors import AnalysisError, DataError

__all__ = ["as_maps", "as_numpy", "bin_size_of", "is_torch"]


def is_torch(x: Any) -> bool:
    """True when ``x`` is a ``torch.Tensor`` (without importing torch when it is not loaded)."""
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach")


def as_numpy(x: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Convert a numpy array, torch tensor or sequence to a numpy array of ``dtype``.

    Parameters
    ----------
    x : array_like or torch.Tensor
    name : str
        Argument name used in error messages.
    dtype : numpy dtype, default float64
    """
    if is_torch(x):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a numeric array (numpy or torch); got {type(x).__name__}: {exc}") from None


def as_maps(maps: Any, name: str = "maps") -> np.ndarray:
    """Return rate maps as float64 ``(U, ny, nx)``; a single ``(ny, nx)`` map becomes ``(1, ny, nx)``.

    Accepts a :class:`~gridsweep.analysis.RateMaps` (its ``maps``), numpy arrays and torch tensors.
    """
    if hasattr(maps, "maps") and hasattr(maps, "occupancy"):
        maps = maps.maps
    arr = as_numpy(maps, name)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(f"{name} must have shape (U, ny, nx) or (ny, nx); got shape {arr.shape}")
    if arr.shape[1] < 2 or arr.shape[2] < 2:
        raise AnalysisError(f"{name} must have at least 2 bins per side; got shape {arr.shape}")
    return arr


def bin_size_of(data: Any, bin_size: Any, name: str = "data") -> Any:
    """``bin_size`` as given, else the ``bin_size`` of ``data`` when it is a RateMaps.

    Raises
    ------
    DataError
        ``bin_size`` is None and ``data`` carries none.
    """
    if bin_size is not None:
        return bin_size
    if not hasattr(data, "bin_size"):
        raise DataError(f"bin_size (metres) is required unless {name} is a RateMaps")
    return data.bin_size
