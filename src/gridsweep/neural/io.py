"""Loaders and writers for neural recordings: NWB, Nayebi's dictionary format, arrays.

Every loader returns a :class:`~gridsweep.neural.dataset.NeuralDataset` in gridsweep's
conventions: metres, rate maps ``(C, ny, nx)`` with row = y bin, ``extent = (xmin,
xmax, ymin, ymax)`` (docs/architecture.md). Rate maps from spikes are built by
:func:`gridsweep.analysis.rate_maps` (the same binning as for model units) applied to
each position sample's firing rate (spike count in the sample's interval / its
duration), after a running-speed filter.

Units are explicit: positions are converted with ``position_unit`` and an arena wider
than :data:`MAX_ARENA_M` metres raises :class:`PositionUnitWarning` (positions are then
probably centimetres).

Pickle (``.pkl``) and object arrays in ``.npz`` can execute code when loaded, so they
are refused unless the caller passes ``allow_pickle=True`` (the command line's
``--allow-pickle``), which should be done only for files you trust.
Every loader checks the maps before returning (:func:`validate_maps`): all-NaN or
infinite maps raise :class:`~gridsweep.errors.DataError` before anything is computed
or written.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridsweep.analysis import rate_maps
from gridsweep.errors import CorruptFileError, DataError, UnsafeFileError
from gridsweep.files import atomic_path
from gridsweep.neural.dataset import MAX_ARENA_M, NeuralDataset, PositionUnitWarning

__all__ = [
    "MAX_ARENA_M",
    "open_nwb",
    "POSITION_UNITS",
    "DEFAULT_SPEED_THRESHOLD_CM_S",
    "DEFAULT_BIN_WIDTH_M",
    "PositionUnitWarning",
    "SpikeMaps",
    "convert_positions",
    "spike_counts",
    "maps_from_rates",
    "maps_from_spikes",
    "dataset_from_spikes",
    "load_nwb",
    "write_nwb",
    "load_nayebi",
    "save_nayebi",
    "to_nayebi_dict",
    "save_npz",
    "load_npz",
    "load_dataset",
    "validate_maps",
    "LOADERS",
]

#: Default running-speed threshold: samples slower than this are dropped (cm/s). A common
#: experimental choice (e.g. 2.5 cm/s in Sargolini et al. 2006-style pipelines).
DEFAULT_SPEED_THRESHOLD_CM_S = 2.5
#: Default spatial bin width, 5 cm (Nayebi et al. 2021; NFL; docs/science.md section 6).
DEFAULT_BIN_WIDTH_M = 0.05

#: Multiply positions in the named unit by this factor to get metres.
POSITION_UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}

# NWB ``unit`` attribute spellings -> POSITION_UNITS keys.
_NWB_UNIT_NAMES: dict[str, str] = {
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "cm": "cm",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    "mm": "mm",
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
}


def convert_positions(positions: np.ndarray, position_unit: str = "m", *, source: str = "positions") -> np.ndarray:
    """Convert positions to metres and warn when the arena is implausibly large.

    Parameters
    ----------
    positions : ndarray, shape (N, 2)
        Positions in ``position_unit`` (NaN allowed for lost tracking).
    position_unit : {"m", "cm", "mm"}
    source : str
        Named in the warning.

    Returns
    -------
    ndarray, shape (N, 2)
        Positions in metres.

    Warns
    -----
    PositionUnitWarning
        When the tracked area spans more than :data:`MAX_ARENA_M` metres after conversion.
    """
    if position_unit not in POSITION_UNITS:
        raise DataError(f"position_unit={position_unit!r} is not known; allowed: {sorted(POSITION_UNITS)}")
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] < 2:
        raise DataError(f"{source} must be (N, 2); got shape {pos.shape}")
    pos = pos[:, :2] * POSITION_UNITS[position_unit]
    finite = np.isfinite(pos).all(axis=1)
    if finite.any():
        span = float(np.max(pos[finite].max(axis=0) - pos[finite].min(axis=0)))
        if span > MAX_ARENA_M:
            warnings.warn(
                f"{source}: the tracked arena spans {span:.1f} m (> {MAX_ARENA_M:g} m) with "
                f"position_unit={position_unit!r}; positions are probably in centimetres: "
                "pass position_unit='cm'",
                PositionUnitWarning,
                stacklevel=2,
            )
    return pos


def _check_times(times: np.ndarray, n: int, what: str) -> np.ndarray:
    t = np.asarray(times, dtype=float).ravel()
    if t.shape[0] != n:
        raise DataError(f"{what}: timestamps and position data have mismatched lengths ({t.shape[0]} timestamps vs {n} samples)")
    if n < 2:
        raise DataError(f"{what}: at least 2 position samples are required; got {n}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DataError(f"{what}: timestamps must be finite and strictly increasing")
    return t


def _sample_durations(times: np.ndarray) -> np.ndarray:
    dt = np.diff(times)
    return np.append(dt, np.median(dt))


def spike_counts(times: np.ndarray, spike_times: Sequence[np.ndarray]) -> np.ndarray:
    """Spike counts per position sample.

    Sample ``i`` covers ``[t_i, t_{i+1})``; the last sample covers one median sample
    interval. Spikes outside the tracked interval are ignored.

    Parameters
    ----------
    times : ndarray, shape (N,)
        Strictly increasing sample times (s).
    spike_times : sequence of C arrays
        Spike times (s) of each cell.

    Returns
    -------
    ndarray, shape (N, C), int
    """
    t = np.asarray(times, dtype=float)
    edges = np.append(t, t[-1] + np.median(np.diff(t)))
    counts = np.zeros((t.shape[0], len(spike_times)), dtype=np.int64)
    for c, st in enumerate(spike_times):
        st = np.asarray(st, dtype=float).ravel()
        counts[:, c] = np.histogram(st, bins=edges)[0]
    return counts


@dataclass(frozen=True)
class SpikeMaps:
    """Rate maps built from a recording, with their split halves.

    Attributes
    ----------
    maps : ndarray, shape (C, ny, nx)
        Firing rate (Hz) per bin, NaN where unvisited.
    occupancy : ndarray, shape (ny, nx)
        Occupancy of the kept samples, as returned by ``gridsweep.analysis.rate_maps``.
    extent : tuple of 4 floats
    split_maps : ndarray, shape (2, C, ny, nx) or None
        Maps from the first and second half of the session (split at the midpoint
        time of the recording).
    n_samples_kept : int
        Position samples that passed the speed filter.
    """

    maps: np.ndarray
    occupancy: np.ndarray
    extent: tuple[float, float, float, float]
    split_maps: np.ndarray | None
    n_samples_kept: int


def _grid_kwargs(bins: int | None, bin_width: float | None) -> dict[str, Any]:
    if bins is not None and bin_width is not None:
        raise DataError(f"give bins or bin_width, not both; got bins={bins}, bin_width={bin_width}")
    if bins is not None:
        return {"bins": int(bins)}
    return {"bin_width": float(DEFAULT_BIN_WIDTH_M if bin_width is None else bin_width)}


def maps_from_rates(
    times: np.ndarray,
    positions: np.ndarray,
    rates: np.ndarray,
    *,
    extent: Sequence[float],
    bins: int | None = None,
    bin_width: float | None = None,
    speed_threshold_cm_s: float = DEFAULT_SPEED_THRESHOLD_CM_S,
    smoothing_sigma: float = 0.0,
    split_halves: bool = True,
) -> SpikeMaps:
    """Rate maps from per-sample firing rates, with a speed filter and split halves.

    Parameters
    ----------
    times : ndarray, shape (N,)
        Sample times (s), strictly increasing.
    positions : ndarray, shape (N, 2)
        Positions in metres; samples with NaN are dropped.
    rates : ndarray, shape (N, C)
        Firing rate of each cell during each sample (Hz).
    extent : (xmin, xmax, ymin, ymax)
        Metres.
    bins, bin_width : optional
        Grid of ``gridsweep.analysis.rate_maps``; default ``bin_width = 0.05`` m.
    speed_threshold_cm_s : float
        Samples with running speed (central differences) at or below this are dropped;
        0 keeps every sample.
    smoothing_sigma : float
        Passed to ``rate_maps`` (experimental pipelines smooth; network units are not
        smoothed, docs/science.md section 6).
    split_halves : bool
        Also build maps from the first and second half of the session.

    Returns
    -------
    SpikeMaps

    Notes
    -----
    The map value of a bin is the mean of the per-sample rates over the kept samples
    in the bin: for uniform sampling, spikes in the bin / time in the bin.
    """
    t = _check_times(times, np.asarray(positions).shape[0], "positions")
    pos = np.asarray(positions, dtype=float)
    r = np.asarray(rates, dtype=float)
    if r.ndim != 2 or r.shape[0] != pos.shape[0]:
        raise DataError(f"rates must be (N, C) with N = {pos.shape[0]} position samples; got {r.shape}")
    if speed_threshold_cm_s < 0:
        raise DataError(f"speed_threshold_cm_s must be >= 0; got {speed_threshold_cm_s}")
    finite = np.isfinite(pos).all(axis=1)
    keep = finite.copy()
    if speed_threshold_cm_s > 0:
        speed = np.full(t.shape[0], np.nan)
        if finite.sum() >= 2:
            vel = np.gradient(pos[finite], t[finite], axis=0)
            speed[finite] = np.hypot(vel[:, 0], vel[:, 1]) * 100.0
        keep &= np.where(np.isfinite(speed), speed, -1.0) > speed_threshold_cm_s
    if not keep.any():
        raise DataError(
            f"no position samples left after the speed filter (> {speed_threshold_cm_s} cm/s) "
            "and dropping NaN positions"
        )
    grid = _grid_kwargs(bins, bin_width)
    ext = tuple(float(v) for v in extent)
    full = rate_maps(pos[keep], r[keep], extent=ext, smoothing_sigma=smoothing_sigma, **grid)
    split = None
    if split_halves:
        mid = 0.5 * (t[0] + t[-1])
        halves = []
        for sel in (t < mid, t >= mid):
            k = keep & sel
            if not k.any():
                raise DataError("one half of the session has no samples left after the speed filter; cannot split")
            halves.append(np.asarray(rate_maps(pos[k], r[k], extent=ext, smoothing_sigma=smoothing_sigma, **grid).maps))
        split = np.stack(halves)
    return SpikeMaps(
        maps=np.asarray(full.maps, dtype=float),
        occupancy=np.asarray(full.occupancy, dtype=float),
        extent=tuple(float(v) for v in full.extent),  # type: ignore[arg-type]
        split_maps=split,
        n_samples_kept=int(keep.sum()),
    )


def maps_from_spikes(
    times: np.ndarray,
    positions: np.ndarray,
    spike_times: Sequence[np.ndarray],
    **kwargs: Any,
) -> SpikeMaps:
    """Rate maps from spike times: spike counts per position sample / sample duration.

    Parameters
    ----------
    times : ndarray, shape (N,)
    positions : ndarray, shape (N, 2)
        Metres.
    spike_times : sequence of C arrays
        Seconds, same clock as ``times``.
    **kwargs
        Passed to :func:`maps_from_rates` (``extent`` required).

    Returns
    -------
    SpikeMaps
    """
    t = _check_times(times, np.asarray(positions).shape[0], "positions")
    rates = spike_counts(t, spike_times) / _sample_durations(t)[:, None]
    return maps_from_rates(t, positions, rates, **kwargs)


def _default_extent(positions: np.ndarray) -> tuple[float, float, float, float]:
    finite = np.isfinite(positions).all(axis=1)
    if not finite.any():
        raise DataError("positions are all NaN; cannot infer the arena extent (pass extent=...)")
    lo = positions[finite].min(axis=0)
    hi = positions[finite].max(axis=0)
    hi = np.where(hi > lo, hi, lo + 1e-3)
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


def dataset_from_spikes(
    times: np.ndarray,
    positions: np.ndarray,
    spike_times: Sequence[np.ndarray],
    *,
    cell_ids: Sequence[object] | None = None,
    animal: str = "animal0",
    session: str = "session0",
    extent: Sequence[float] | None = None,
    center: bool = True,
    position_unit: str = "m",
    source: str = "spikes",
    **kwargs: Any,
) -> NeuralDataset:
    """A :class:`NeuralDataset` from one session's positions and spike times.

    Parameters
    ----------
    times : ndarray, shape (N,)
    positions : ndarray, shape (N, 2)
        In ``position_unit``.
    spike_times : sequence of C arrays
    cell_ids : sequence of C labels, optional
    animal, session : str
    extent : (xmin, xmax, ymin, ymax), optional
        Metres, in the recording's coordinates. Default: the bounding box of the
        tracked positions, shifted to be centred at the origin when ``center``.
    center : bool
        With the default extent, shift positions so the arena is centred at the origin
        (gridsweep's convention); the shift is kept in ``meta["offset_m"]``.
    position_unit : {"m", "cm", "mm"}
    **kwargs
        ``bins``, ``bin_width``, ``speed_threshold_cm_s``, ``smoothing_sigma``,
        ``split_halves`` (see :func:`maps_from_rates`).

    Returns
    -------
    NeuralDataset
    """
    pos = convert_positions(positions, position_unit, source=source)
    offset = np.zeros(2)
    if extent is None:
        ext = _default_extent(pos)
        if center:
            offset = np.array([(ext[0] + ext[1]) / 2, (ext[2] + ext[3]) / 2])
            pos = pos - offset
            ext = (ext[0] - offset[0], ext[1] - offset[0], ext[2] - offset[1], ext[3] - offset[1])
    else:
        ext = tuple(float(v) for v in extent)  # type: ignore[assignment]
        if len(ext) != 4:
            raise DataError(f"extent must be (xmin, xmax, ymin, ymax); got {extent}")
    sm = maps_from_spikes(times, pos, spike_times, extent=ext, **kwargs)
    n = len(spike_times)
    return NeuralDataset(
        maps=sm.maps,
        occupancy=sm.occupancy,
        extent=sm.extent,
        cell_ids=[str(c) for c in (range(n) if cell_ids is None else cell_ids)],  # type: ignore[arg-type]
        animal=animal,  # type: ignore[arg-type]
        session=session,  # type: ignore[arg-type]
        split_maps=sm.split_maps,
        source=source,
        meta={"offset_m": offset.tolist(), "n_samples_kept": sm.n_samples_kept},
    )


# --------------------------------------------------------------------------- NWB
def _nwb_position_series(nwb: Any, path: str, series_name: str | None) -> Any:
    from pynwb.behavior import Position, SpatialSeries

    if "behavior" not in nwb.processing:
        raise DataError(
            f"{path}: no Position data: processing module 'behavior' is missing "
            f"(modules present: {sorted(nwb.processing)})"
        )
    behavior = nwb.processing["behavior"]
    candidates: dict[str, Any] = {}
    for name, iface in behavior.data_interfaces.items():
        if isinstance(iface, Position):
            for sname, ss in iface.spatial_series.items():
                candidates[sname] = ss
        elif isinstance(iface, SpatialSeries):
            candidates[name] = iface
    if not candidates:
        raise DataError(
            f"{path}: no Position SpatialSeries in processing['behavior'] "
            f"(interfaces present: {sorted(behavior.data_interfaces)})"
        )
    if series_name is None:
        return candidates[sorted(candidates)[0]]
    if series_name not in candidates:
        raise DataError(f"{path}: position series {series_name!r} not found; available: {sorted(candidates)}")
    return candidates[series_name]


def _nwb_unit_to_key(unit: str, path: str) -> str:
    key = _NWB_UNIT_NAMES.get(str(unit).strip().lower())
    if key is None:
        raise DataError(
            f"{path}: position unit {unit!r} is not recognised; pass position_unit= one of {sorted(POSITION_UNITS)}"
        )
    return key


@contextmanager
def open_nwb(path: str | Path) -> Iterator[Any]:
    """Open an NWB file read-only and yield its ``NWBFile``; errors become one-line DataErrors.

    Raises
    ------
    DataError
        pynwb is missing, or the file cannot be opened or read as NWB (the message names it).
    """
    path = Path(path)
    try:
        from pynwb import NWBHDF5IO
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError(f"{path}: reading NWB needs pynwb: pip install 'gridsweep[neural]'") from exc
    try:
        io = NWBHDF5IO(str(path), mode="r")
    except Exception as exc:  # h5py / hdmf raise many types on corrupt files
        raise DataError(f"{path}: cannot be opened as NWB ({type(exc).__name__}: {exc})") from exc
    with io:
        try:
            nwb = io.read()
        except Exception as exc:
            raise DataError(f"{path}: cannot be read as NWB ({type(exc).__name__}: {exc})") from exc
        yield nwb


def load_nwb(
    path: str | Path,
    *,
    bins: int | None = None,
    bin_width: float | None = None,
    extent: Sequence[float] | None = None,
    center: bool = True,
    speed_threshold_cm_s: float = DEFAULT_SPEED_THRESHOLD_CM_S,
    smoothing_sigma: float = 0.0,
    position_unit: str = "auto",
    position_series: str | None = None,
    unit_ids: Sequence[int] | None = None,
    split_halves: bool = True,
) -> NeuralDataset:
    """Load one NWB session: a Units table with ``spike_times`` and a Position.

    Parameters
    ----------
    path : path to an ``.nwb`` file (HDF5)
    bins, bin_width : optional
        Spatial grid; default 5 cm bins (Nayebi et al. 2021, docs/science.md section 6).
    extent : (xmin, xmax, ymin, ymax), optional
        Metres; default the tracked bounding box (centred at the origin when ``center``).
    center : bool
    speed_threshold_cm_s : float
        Default 2.5 cm/s; slower samples are dropped (rest periods).
    smoothing_sigma : float
        Experimental smoothing passed to ``gridsweep.analysis.rate_maps``; default none.
    position_unit : {"auto", "m", "cm", "mm"}
        ``"auto"`` reads the SpatialSeries ``unit`` attribute (and applies its
        ``conversion`` factor).
    position_series : str, optional
        Name of the SpatialSeries when there are several (default: the first by name).
    unit_ids : sequence of int, optional
        Units table ids to keep (default all).
    split_halves : bool
        Build first/second-half maps for split-half noise ceilings.

    Returns
    -------
    NeuralDataset
        ``animal`` is the subject id, ``session`` the session id (or identifier).

    Raises
    ------
    DataError
        No Units table, no ``spike_times`` column, no Position, timestamps and data of
        mismatched length, or an unreadable file.
    """
    path = Path(path)
    if not path.is_file():  # before the import: a missing file is "not found" whatever is installed
        raise DataError(f"NWB file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path}: empty file (0 bytes); expected an NWB (HDF5) file", path)
    with open_nwb(path) as nwb:
        units = nwb.units
        if units is None:
            raise DataError(f"{path}: no Units table (nwbfile.units is missing); spike times are required")
        if "spike_times" not in units.colnames:
            raise DataError(f"{path}: the Units table has no 'spike_times' column (columns: {list(units.colnames)})")
        ids = np.asarray(units.id[:])
        rows: Sequence[int] = range(len(ids))
        if unit_ids is not None:
            wanted = {int(u) for u in unit_ids}
            missing = wanted - {int(i) for i in ids}
            if missing:
                raise DataError(f"{path}: unit ids {sorted(missing)} are not in the Units table (ids: {ids.tolist()})")
            rows = [i for i in rows if int(ids[i]) in wanted]
        spikes = [np.asarray(units["spike_times"][i], dtype=float) for i in rows]
        cell_ids = [str(ids[i]) for i in rows]
        if not spikes:
            raise DataError(f"{path}: the Units table is empty (no units)")
        ss = _nwb_position_series(nwb, str(path), position_series)
        data = np.asarray(ss.data[:], dtype=float)
        if data.ndim != 2 or data.shape[1] < 2:
            raise DataError(f"{path}: position series {ss.name!r} must be (N, 2); got shape {data.shape}")
        if ss.timestamps is not None:
            times = np.asarray(ss.timestamps[:], dtype=float)
        elif ss.rate is not None:
            times = float(ss.starting_time or 0.0) + np.arange(data.shape[0]) / float(ss.rate)
        else:
            raise DataError(f"{path}: position series {ss.name!r} has neither timestamps nor a sampling rate")
        _check_times(times, data.shape[0], f"{path}: position series {ss.name!r}")
        if position_unit == "auto":
            unit_key = _nwb_unit_to_key(ss.unit, str(path))
            data = data * float(ss.conversion if ss.conversion is not None else 1.0)
        else:
            unit_key = position_unit
        animal = getattr(getattr(nwb, "subject", None), "subject_id", None) or "unknown"
        session = nwb.session_id or nwb.identifier
    return dataset_from_spikes(
        times,
        data[:, :2],
        spikes,
        cell_ids=cell_ids,
        animal=str(animal),
        session=str(session),
        extent=extent,
        center=center,
        position_unit=unit_key,
        source=str(path),
        bins=bins,
        bin_width=bin_width,
        speed_threshold_cm_s=speed_threshold_cm_s,
        smoothing_sigma=smoothing_sigma,
        split_halves=split_halves,
    )


def write_nwb(
    path: str | Path,
    times: np.ndarray,
    positions: np.ndarray,
    spike_times: Sequence[np.ndarray],
    *,
    cell_ids: Sequence[int] | None = None,
    animal: str = "animal0",
    session: str = "session0",
    position_unit: str = "meters",
    description: str = "gridsweep recording",
) -> Path:
    """Write one session as NWB: Units (``spike_times``) and processing/behavior/Position.

    Parameters
    ----------
    path : output ``.nwb`` path
    times : ndarray, shape (N,)
    positions : ndarray, shape (N, 2)
    spike_times : sequence of C arrays (s)
    cell_ids : sequence of C ints, optional (Units ids; default 0..C-1)
    animal, session : str
        Stored as ``subject.subject_id`` and ``session_id``.
    position_unit : str
        The SpatialSeries ``unit`` attribute.

    Returns
    -------
    Path
    """
    import datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.file import Subject

    path = Path(path)
    nwb = NWBFile(
        session_description=description,
        identifier=f"{animal}-{session}",
        session_id=session,
        session_start_time=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
        subject=Subject(subject_id=animal),
    )
    series = SpatialSeries(
        name="position",
        data=np.asarray(positions, dtype=float),
        timestamps=np.asarray(times, dtype=float),
        reference_frame="arena centre",
        unit=position_unit,
    )
    behavior = nwb.create_processing_module("behavior", "tracked position")
    behavior.add(Position(spatial_series=series, name="Position"))
    ids = list(range(len(spike_times))) if cell_ids is None else [int(c) for c in cell_ids]
    for uid, st in zip(ids, spike_times, strict=True):
        nwb.add_unit(spike_times=np.asarray(st, dtype=float), id=uid)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwb)
    return path


# ------------------------------------------------------------- Nayebi's format
def _nayebi_from_dict(
    data: Mapping[str, Any],
    *,
    arena: str | None,
    extent: Sequence[float] | None,
    bin_width: float,
    source: str,
) -> NeuralDataset:
    if not isinstance(data, Mapping) or not data:
        raise DataError(f"{source}: expected a dict dataset[arena][animal]; got {type(data).__name__}")
    arenas = sorted(str(k) for k in data)
    if arena is None:
        if len(arenas) != 1:
            raise DataError(f"{source}: several arenas {arenas}; choose one with arena=")
        arena = arenas[0]
    if arena not in data:
        raise DataError(f"{source}: arena {arena!r} not found; available: {arenas}")
    animals = data[arena]
    if not isinstance(animals, Mapping) or not animals:
        raise DataError(f"{source}: dataset[{arena!r}] must be a non-empty dict of animals")
    maps: list[np.ndarray] = []
    ids: list[str] = []
    who: list[str] = []
    shape = None
    for animal, entry in animals.items():
        if not isinstance(entry, Mapping) or "resp" not in entry:
            raise DataError(f"{source}: dataset[{arena!r}][{animal!r}] has no 'resp' array (nx, ny, cells)")
        resp = np.asarray(entry["resp"], dtype=float)
        if resp.ndim != 3:
            raise DataError(f"{source}: dataset[{arena!r}][{animal!r}]['resp'] must be (nx, ny, cells); got {resp.shape}")
        if shape is not None and resp.shape[:2] != shape:
            raise DataError(f"{source}: animals of arena {arena!r} have different grids: {resp.shape[:2]} vs {shape}")
        shape = resp.shape[:2]
        # Nayebi's order is (nx, ny, cells); gridsweep's is (cells, ny, nx).
        maps.append(np.transpose(resp, (2, 1, 0)))
        cids = entry.get("cell_ids")
        cids = list(range(resp.shape[2])) if cids is None else [str(c) for c in np.asarray(cids).ravel()]
        if len(cids) != resp.shape[2]:
            raise DataError(
                f"{source}: dataset[{arena!r}][{animal!r}]: {len(cids)} cell_ids for {resp.shape[2]} cells"
            )
        ids.extend(str(c) for c in cids)
        who.extend([str(animal)] * resp.shape[2])
    assert shape is not None
    nx, ny = shape
    if extent is None:
        w, h = nx * bin_width, ny * bin_width
        extent = (-w / 2, w / 2, -h / 2, h / 2)
    all_maps = np.concatenate(maps)
    return NeuralDataset(
        maps=all_maps,
        occupancy=np.isfinite(all_maps).any(axis=0).astype(float),
        extent=tuple(extent),  # type: ignore[arg-type]
        cell_ids=ids,  # type: ignore[arg-type]
        animal=who,  # type: ignore[arg-type]
        session=[f"{arena}/{a}" for a in who],  # type: ignore[arg-type]
        split_maps=None,
        source=source,
        meta={"arena": arena},
    )


def _unflatten_npz(npz: Mapping[str, np.ndarray]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for key in npz:
        parts = key.split("/")
        if len(parts) != 3:
            raise DataError(f"Nayebi .npz keys must be 'arena/animal/field'; got {key!r}")
        arena, animal, fieldname = parts
        out.setdefault(arena, {}).setdefault(animal, {})[fieldname] = npz[key]
    return out


def load_nayebi(
    path: str | Path,
    *,
    arena: str | None = None,
    extent: Sequence[float] | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH_M,
    allow_pickle: bool = False,
) -> NeuralDataset:
    """Load Nayebi et al.'s dictionary format ``dataset[arena][animal] = {"resp", "cell_ids"}``.

    Parameters
    ----------
    path : ``.pkl`` (a pickled dict) or ``.npz``
        In ``.npz`` the dict is flattened to keys ``"arena/animal/resp"`` and
        ``"arena/animal/cell_ids"`` (what :func:`save_nayebi` writes), or stored as one
        pickled object array (needs ``allow_pickle=True``).
    arena : str, optional
        Which arena; required when the file has several.
    extent : (xmin, xmax, ymin, ymax), optional
        Metres. The format carries no geometry: by default the grid is assumed to have
        ``bin_width`` bins centred at the origin.
    bin_width : float
        Default 0.05 m (Nayebi's 5 cm bins).
    allow_pickle : bool
        Default False: ``.pkl`` files and object arrays inside ``.npz`` are refused
        (:class:`~gridsweep.errors.UnsafeFileError`) because unpickling can execute
        arbitrary code. Pass True only for files you trust.

    Returns
    -------
    NeuralDataset
        ``resp`` of shape ``(nx, ny, cells)`` is transposed explicitly to
        ``(cells, ny, nx)``; every animal of the arena is included (``animal`` labels);
        no split halves (use the inter-animal ceiling).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Nayebi-format file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path}: empty file (0 bytes); expected a Nayebi-format dataset", path)
    if path.suffix in (".pkl", ".pickle"):
        if not allow_pickle:
            raise UnsafeFileError(
                f"{path}: pickle files can execute arbitrary code when loaded and are refused; convert it to "
                ".npz (gridsweep.neural.save_nayebi) or, only if you trust its source, pass allow_pickle=True "
                "(command line: --allow-pickle)")
        with path.open("rb") as fh:
            try:
                data = pickle.load(fh)  # noqa: S301 - explicit opt-in above
            except Exception as exc:
                raise DataError(f"{path}: cannot be unpickled ({type(exc).__name__}: {exc})") from exc
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=allow_pickle) as npz:
                keys = list(npz.keys())
                if len(keys) == 1 and "/" not in keys[0]:
                    try:
                        obj = npz[keys[0]]
                    except ValueError as exc:
                        raise UnsafeFileError(
                            f"{path}: holds a pickled object (which can execute code when loaded); pass "
                            "allow_pickle=True (command line: --allow-pickle) only if you trust it") from exc
                    data = obj.item() if obj.dtype == object and obj.shape == () else obj
                else:
                    data = _unflatten_npz({k: npz[k] for k in keys})
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CorruptFileError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})", path) from None
    else:
        raise DataError(f"{path}: Nayebi format must be .pkl or .npz; got suffix {path.suffix!r}")
    return _nayebi_from_dict(data, arena=arena, extent=extent, bin_width=bin_width, source=str(path))


def to_nayebi_dict(dataset: NeuralDataset, arena: str = "arena") -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Nayebi's nested dict of a dataset: ``{arena: {animal: {"resp": (nx, ny, cells), "cell_ids"}}}``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for a in dataset.animals:
        sel = dataset.animal == a
        out[a] = {
            "resp": np.transpose(dataset.maps[sel], (2, 1, 0)),
            "cell_ids": np.asarray(dataset.cell_ids[sel], dtype=str),
        }
    return {arena: out}


def save_nayebi(path: str | Path, dataset: NeuralDataset, arena: str = "arena") -> Path:
    """Write a dataset in Nayebi's format as ``.pkl`` or flattened ``.npz``."""
    path = Path(path)
    d = to_nayebi_dict(dataset, arena)
    if path.suffix in (".pkl", ".pickle"):
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            pickle.dump(d, fh)
    elif path.suffix == ".npz":
        flat = {f"{ar}/{an}/{k}": v for ar, animals in d.items() for an, e in animals.items() for k, v in e.items()}
        with atomic_path(path) as tmp:
            np.savez(tmp, **flat)  # type: ignore[arg-type]
    else:
        raise DataError(f"save_nayebi: suffix {path.suffix!r} not allowed; use .pkl or .npz")
    return path


# ----------------------------------------------------- gridsweep's own .npz
_NPZ_FIELDS = ("maps", "occupancy", "extent", "cell_ids", "animal", "session")


def save_npz(path: str | Path, dataset: NeuralDataset) -> Path:
    """Write a dataset as ``.npz`` (keys ``maps, occupancy, extent, cell_ids, animal, session[, split_maps]``)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "maps": dataset.maps,
        "occupancy": dataset.occupancy,
        "extent": np.asarray(dataset.extent),
        "cell_ids": np.asarray(dataset.cell_ids, dtype=str),
        "animal": np.asarray(dataset.animal, dtype=str),
        "session": np.asarray(dataset.session, dtype=str),
    }
    if dataset.split_maps is not None:
        arrays["split_maps"] = dataset.split_maps
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    return path


def load_npz(path: str | Path, **kwargs: Any) -> NeuralDataset:
    """Load a ``.npz``: gridsweep's dataset format (key ``maps``) or Nayebi's flattened one."""
    from gridsweep.files import load_npz as _load_arrays

    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path}: empty file (0 bytes); expected a dataset .npz", path)
    try:
        npz = _load_arrays(path, verify="off")  # a user's file has no checksum sidecar
    except CorruptFileError as err:
        if "object arrays" in str(err):  # a pickled Nayebi dict: load_nayebi decides (allow_pickle)
            return load_nayebi(path, **kwargs)
        raise
    keys = set(npz)
    if "maps" in keys:
        missing = [k for k in _NPZ_FIELDS if k not in keys]
        if missing:
            raise DataError(f"{path}: dataset .npz lacks keys {missing}")
        return NeuralDataset(
            maps=npz["maps"],
            occupancy=npz["occupancy"],
            extent=tuple(npz["extent"].tolist()),
            cell_ids=npz["cell_ids"],
            animal=npz["animal"],
            session=npz["session"],
            split_maps=npz["split_maps"] if "split_maps" in keys else None,
            source=str(path),
        )
    return load_nayebi(path, **kwargs)


#: Loader per file suffix, used by :func:`load_dataset`.
LOADERS: dict[str, Callable[..., NeuralDataset]] = {
    ".nwb": load_nwb,
    ".pkl": load_nayebi,
    ".pickle": load_nayebi,
    ".npz": load_npz,
}


def validate_maps(maps: np.ndarray, source: str, what: str = "maps") -> np.ndarray:
    """Check rate maps before any computation or output: returns them, or raises DataError.

    Parameters
    ----------
    maps : ndarray (U, ny, nx)
        NaN marks unvisited bins.
    source : str
        The file or name the maps came from (named in the error).

    Raises
    ------
    DataError
        Not 3-D, empty, any infinite value, no finite value at all, or (for ``what``
        other than ``"cells"``) some units with no finite bin, as a diverged network gives.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.size == 0:
        raise DataError(f"{source}: {what} must be a non-empty (U, ny, nx) array; got shape {maps.shape}")
    if not np.issubdtype(maps.dtype, np.number):
        raise DataError(f"{source}: {what} must be numeric; got dtype {maps.dtype}")
    n_inf = int(np.isinf(maps).sum())
    if n_inf:
        raise DataError(f"{source}: {what} hold {n_inf} infinite values (a diverged network?); allowed: finite "
                        "rates, NaN for unvisited bins")
    finite = np.isfinite(maps).reshape(maps.shape[0], -1).any(1)
    if not finite.any():
        raise DataError(f"{source}: {what} are all NaN ({maps.shape[0]} units, no visited bin); nothing to fit")
    if what != "cells" and not finite.all():
        raise DataError(f"{source}: {int((~finite).sum())} of {maps.shape[0]} units have all-NaN {what} "
                        "(a diverged network?); allowed: finite rates, NaN only for unvisited bins")
    return maps


def load_dataset(path: str | Path, **kwargs: Any) -> NeuralDataset:
    """Load a dataset, choosing the loader by suffix (see :data:`LOADERS`), and check its maps.

    Raises
    ------
    DataError
        Missing file, unknown format, or maps that fail :func:`validate_maps`.
    UnsafeFileError
        A pickle without ``allow_pickle=True``.
    """
    path = Path(path)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DataError(f"{path}: unknown data format {path.suffix!r}; allowed: {sorted(LOADERS)}")
    ds = loader(path, **kwargs)
    validate_maps(ds.maps, str(path), "cells")
    return ds
