"""External trajectories: RatInABox's own Agent and recorded positions (NWB, npz).

``trajectory.source`` (:class:`gridsweep.config.TrajectoryConfig`) chooses where the
training loop and evaluation get their trajectories (docs/science.md section 2;
docs/arenas.md):

``simulated``
    gridsweep's motion models (:func:`gridsweep.trajectories.generate`), unchanged.
``ratinabox``
    RatInABox's ``Agent`` (George et al., eLife 2024; optional extra ``oracles``) run in
    the config's arena with the ``ou_*`` parameters for ``ratinabox_duration`` seconds,
    once per network (seeded from the network's seed).
``file``
    Recorded positions in ``trajectory.file``: an NWB file (positions read by the same
    code as :func:`gridsweep.neural.io.load_nwb`) or an ``.npz`` with ``times`` (s) and
    ``positions`` (N, 2) in metres. They must be in the arena's frame (metres, centred
    on the origin, as ``box``).

A long trajectory (the *pool*, :class:`Recording`) is resampled to the model's ``dt``;
every batch is B windows of T + 1 samples whose start indices are drawn from each
network's own generator (so runs resume exactly). Within a window the network input is
the finite difference of positions (the displacement per step, as for simulated
trajectories), the start position is the window's first sample and the heading is the
direction of each step.

Checks, each a one-line typed error (subclasses of :class:`gridsweep.errors.DataError`):

* :class:`TrackingGapError`: tracking lost (NaN positions) for longer than ``max_gap``
  (default :data:`MAX_GAP_S` = 0.5 s); shorter gaps are filled by linear interpolation.
* :class:`TrackingJumpError`: two consecutive valid samples farther apart than
  ``max_speed`` x their time difference (default :data:`MAX_SPEED_M_S` = 1.5 m/s).
* :class:`OutsideArenaError`: a position outside the arena (walls and holes of ``box``).

Held-out evaluation windows come from the same pool as training windows (a recording is
one session); only their start indices differ.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gridsweep.errors import DataError

__all__ = [
    "MAX_GAP_S",
    "MAX_SPEED_M_S",
    "TrackingGapError",
    "TrackingJumpError",
    "OutsideArenaError",
    "Recording",
    "read_positions",
    "resample_positions",
    "load_recording",
    "ratinabox_recording",
    "ratinabox_environment_params",
    "ratinabox_agent_params",
    "recording_for",
    "sample_windows",
    "sample_trajectories",
]

#: Longest run of lost tracking (NaN positions) filled by interpolation, seconds.
MAX_GAP_S = 0.5

#: Fastest plausible step of a rat, m/s. Source: RatInABox's default 2D speed model, fitted
#: to the open-field data of Sargolini et al. (Science 2006) (ratinabox Agent.py
#: ``default_params``: Rayleigh speed of scale 0.08 m/s, mean 0.10 m/s), puts a speed of
#: 1.5 m/s at 19 scales, probability exp(-(1.5 / 0.08)^2 / 2) ~ 1e-76: a faster step
#: between two tracked samples is a tracking jump, not running. The cap is generous
#: rather than a published filter; pass ``max_speed`` to change it.
MAX_SPEED_M_S = 1.5


class TrackingGapError(DataError):
    """Positions are missing (NaN) for longer than the allowed gap."""


class TrackingJumpError(DataError):
    """Two consecutive positions imply a speed faster than a rat runs."""


class OutsideArenaError(DataError):
    """A position lies outside the arena (beyond a wall or inside a hole)."""


@dataclass(frozen=True)
class Recording:
    """One long trajectory sampled every ``dt`` seconds.

    Attributes
    ----------
    positions : ndarray, (M, 2) float64
        Metres, in the arena's frame.
    dt : float
        Seconds per sample (the model's ``trajectory.dt``).
    source : str
        Where it came from (a path, or ``ratinabox(seed=...)``).
    """

    positions: np.ndarray
    dt: float
    source: str

    @property
    def velocities(self) -> np.ndarray:
        """Displacement per step (the network input), (M - 1, 2) metres: ``diff(positions)``."""
        return np.diff(self.positions, axis=0)

    @property
    def speeds(self) -> np.ndarray:
        """Speed of each step, (M - 1,) m/s."""
        return np.linalg.norm(self.velocities, axis=1) / self.dt

    @property
    def headings(self) -> np.ndarray:
        """Direction of motion of each step, (M - 1,) radians in [-pi, pi].

        A step of length zero keeps the previous step's heading (0 before any motion).
        """
        v = self.velocities
        h = np.arctan2(v[:, 1], v[:, 0])
        moving = np.hypot(v[:, 0], v[:, 1]) > 0
        if moving.all():
            return h
        last = np.maximum.accumulate(np.where(moving, np.arange(len(h)), -1))
        return np.where(last >= 0, h[np.maximum(last, 0)], 0.0)


# ---------------------------------------------------------------------------------------
# reading and cleaning recorded positions
# ---------------------------------------------------------------------------------------
def read_positions(path: str | Path, *, position_unit: str = "auto",
                   position_series: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and positions (metres) of a recording.

    Parameters
    ----------
    path : ``.nwb`` (processing/behavior Position SpatialSeries, as
        :func:`gridsweep.neural.io.load_nwb` reads it; no Units table needed) or ``.npz``
        with ``times`` (N,) seconds and ``positions`` (N, 2) metres.
    position_unit : {"auto", "m", "cm", "mm"}
        NWB: ``"auto"`` reads the series' ``unit`` and ``conversion``; npz: ``"auto"``
        means metres.
    position_series : str, optional
        NWB series name when there are several.

    Returns
    -------
    times : ndarray, (N,) strictly increasing seconds
    positions : ndarray, (N, 2) metres (NaN where tracking was lost)
    """
    from gridsweep.neural.io import _check_times, convert_positions

    path = Path(path)
    if not path.is_file():
        raise DataError(f"trajectory file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("times", "positions") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; expected 'times' (N,) s and 'positions' "
                                f"(N, 2) m (found {z.files})")
            times, data = np.asarray(z["times"], float), np.asarray(z["positions"], float)
        unit = "m" if position_unit == "auto" else position_unit
    elif suffix == ".nwb":
        times, data, unit = _read_nwb_positions(path, position_unit, position_series)
    else:
        raise DataError(f"{path}: unknown trajectory file type {suffix!r}; allowed .nwb, .npz")
    if data.ndim != 2 or data.shape[1] < 2:
        raise DataError(f"{path}: positions must be (N, 2); got shape {data.shape}")
    _check_times(times, data.shape[0], f"{path}: positions")
    return np.asarray(times, float).ravel(), convert_positions(data[:, :2], unit, source=str(path))


def _read_nwb_positions(path: Path, position_unit: str, position_series: str | None
                        ) -> tuple[np.ndarray, np.ndarray, str]:
    """NWB positions with the series lookup and unit handling of gridsweep.neural.io."""
    from gridsweep.neural.io import _nwb_position_series, _nwb_unit_to_key, open_nwb

    with open_nwb(path) as nwb:
        ss = _nwb_position_series(nwb, str(path), position_series)
        data = np.asarray(ss.data[:], dtype=float)
        if ss.timestamps is not None:
            times = np.asarray(ss.timestamps[:], dtype=float)
        elif ss.rate is not None:
            times = float(ss.starting_time or 0.0) + np.arange(data.shape[0]) / float(ss.rate)
        else:
            raise DataError(f"{path}: position series {ss.name!r} has neither timestamps nor a sampling rate")
        if position_unit == "auto":
            unit = _nwb_unit_to_key(ss.unit, str(path))
            data = data * float(ss.conversion if ss.conversion is not None else 1.0)
        else:
            unit = position_unit
    return times, data, unit


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of True in a 1-D boolean array."""
    d = np.diff(np.r_[0, flags.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def resample_positions(times: Any, positions: Any, dt: float, *, arena: Any = None,
                       max_gap: float = MAX_GAP_S, max_speed: float = MAX_SPEED_M_S,
                       source: str = "positions") -> Recording:
    """Check recorded positions and resample them every ``dt`` seconds.

    Parameters
    ----------
    times : array_like, (N,)
        Strictly increasing, seconds.
    positions : array_like, (N, 2)
        Metres, NaN where tracking was lost.
    dt : float
        The model's step, seconds.
    arena : gridsweep.arenas.Arena, optional
        When given, every valid position must lie inside it.
    max_gap : float
        Longest tolerated run of lost tracking, seconds (time between the valid samples
        either side); shorter gaps are filled by linear interpolation. Leading and
        trailing NaN samples are dropped.
    max_speed : float
        Fastest tolerated step between consecutive valid samples, m/s.
    source : str
        Named in errors.

    Returns
    -------
    Recording
        Positions at ``t0, t0 + dt, ...`` up to the last valid sample (linear
        interpolation of the valid samples).

    Raises
    ------
    TrackingGapError, TrackingJumpError, OutsideArenaError, DataError
    """
    t = np.asarray(times, dtype=float).ravel()
    p = np.asarray(positions, dtype=float)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] != t.shape[0]:
        raise DataError(f"{source}: expected times (N,) and positions (N, 2); got {t.shape} and {p.shape}")
    if not (dt > 0 and math.isfinite(dt)):
        raise DataError(f"{source}: dt={dt!r} must be a positive number of seconds")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DataError(f"{source}: timestamps must be finite and strictly increasing")
    valid = np.isfinite(p).all(axis=1)
    if valid.sum() < 2:
        raise DataError(f"{source}: fewer than 2 valid (non-NaN) positions")
    first, last = int(np.argmax(valid)), int(len(valid) - 1 - np.argmax(valid[::-1]))
    t, p, valid = t[first:last + 1], p[first:last + 1], valid[first:last + 1]
    for a, b in _runs(~valid):  # a > 0 and b < len: the ends are valid
        gap = t[b] - t[a - 1]
        if gap > max_gap:
            raise TrackingGapError(f"{source}: tracking lost for {gap:.3g} s from t = {t[a - 1]:.3f} s ({b - a} NaN "
                                   f"samples); at most {max_gap:g} s is interpolated (max_gap): cut the recording "
                                   f"there or raise max_gap")
    tv, pv = t[valid], p[valid]
    speed = np.hypot(*np.diff(pv, axis=0).T) / np.diff(tv)
    if speed.size and speed.max() > max_speed:
        i = int(np.argmax(speed))
        raise TrackingJumpError(f"{source}: a jump of {speed[i]:.3g} m/s between t = {tv[i]:.3f} s and "
                                f"{tv[i + 1]:.3f} s; faster than a rat runs (max_speed {max_speed:g} m/s, "
                                f"gridsweep.external.MAX_SPEED_M_S): a tracking error, or positions not in metres")
    if arena is not None:
        inside = np.asarray(arena.contains(pv), dtype=bool)
        if not inside.all():
            i = int(np.argmin(inside))
            x0, x1, y0, y1 = arena.extent
            raise OutsideArenaError(
                f"{source}: {int((~inside).sum())} of {inside.size} positions lie outside the arena, first "
                f"({pv[i, 0]:.3f}, {pv[i, 1]:.3f}) m at t = {tv[i]:.3f} s; the arena spans x [{x0:g}, {x1:g}], "
                f"y [{y0:g}, {y1:g}] m: positions must be in metres, centred on the origin (set box to the "
                f"recording's arena)")
    grid = tv[0] + dt * np.arange(int(math.floor((tv[-1] - tv[0]) / dt + 1e-9)) + 1)
    out = np.stack([np.interp(grid, tv, pv[:, 0]), np.interp(grid, tv, pv[:, 1])], axis=-1)
    return Recording(positions=out, dt=float(dt), source=source)


def load_recording(path: str | Path, dt: float, *, arena: Any = None, max_gap: float = MAX_GAP_S,
                   max_speed: float = MAX_SPEED_M_S, position_unit: str = "auto",
                   position_series: str | None = None) -> Recording:
    """:func:`read_positions` then :func:`resample_positions` (see both)."""
    times, pos = read_positions(path, position_unit=position_unit, position_series=position_series)
    return resample_positions(times, pos, dt, arena=arena, max_gap=max_gap, max_speed=max_speed, source=str(path))


# ---------------------------------------------------------------------------------------
# RatInABox
# ---------------------------------------------------------------------------------------
#: Vertices of the polygon that stands for a circular arena in RatInABox (inscribed, so
#: its positions are inside the true circle).
CIRCLE_VERTICES = 256


def _import_ratinabox():
    try:
        from ratinabox.Agent import Agent
        from ratinabox.Environment import Environment
    except ImportError as exc:
        raise DataError("trajectory.source='ratinabox' needs RatInABox: pip install ratinabox "
                        "(or gridsweep[oracles])") from exc
    return Environment, Agent


def ratinabox_environment_params(box: Any) -> tuple[dict[str, Any], np.ndarray]:
    """RatInABox ``Environment`` parameters of an arena and the shift into its frame.

    RatInABox's coordinates start at 0; gridsweep's arena is centred on the origin. Every
    shape is passed as a ``boundary`` polygon (a circle as an inscribed
    :data:`CIRCLE_VERTICES`-gon) with its ``holes``, shifted by ``-(xmin, ymin)``.

    Returns
    -------
    params : dict
    shift : ndarray, (2,)
        Add to gridsweep positions to get RatInABox's (subtract to go back).
    """
    from gridsweep.arenas import arena_of

    arena = arena_of(box)
    x0, _, y0, _ = arena.extent
    shift = np.array([-x0, -y0])
    if arena.radius is not None:
        a = 2 * np.pi * np.arange(CIRCLE_VERTICES) / CIRCLE_VERTICES
        outer = arena.radius * np.stack([np.cos(a), np.sin(a)], -1)
    elif arena.outer is not None:
        outer = arena.outer
    else:
        raise DataError("ratinabox_environment_params: the arena has neither a radius nor an outer polygon")
    params = {"boundary": (outer + shift).tolist(), "holes": [(h + shift).tolist() for h in arena.holes]}
    return params, shift


def ratinabox_agent_params(cfg: Any) -> dict[str, Any]:
    """RatInABox ``Agent`` parameters equal to a :class:`TrajectoryConfig`'s ``ou_*`` fields.

    ``speed_mean``/``speed_std`` take ``ou_speed_mean``/``ou_speed_std``: in 2D RatInABox
    reads ``speed_mean`` as the Rayleigh scale of the speed (gridsweep's
    ``ou_speed_model='ratinabox'``). Thigmotaxis and wall-repulsion strength keep
    RatInABox's defaults (0.5, 1.0); strength is 0 when ``ou_wall_repel_distance`` is 0.
    """
    return {
        "dt": float(cfg.dt),
        "speed_mean": float(cfg.ou_speed_mean),
        "speed_std": float(cfg.ou_speed_std),
        "speed_coherence_time": float(cfg.ou_speed_coherence_time),
        "rotational_velocity_std": float(cfg.ou_rotation_std),
        "rotational_velocity_coherence_time": float(cfg.ou_rotation_coherence_time),
        "wall_repel_distance": float(cfg.ou_wall_repel_distance) if cfg.ou_wall_repel_distance > 0 else 0.1,
        "wall_repel_strength": 1.0 if cfg.ou_wall_repel_distance > 0 else 0.0,
        "save_history": True,
    }


def ratinabox_recording(cfg: Any, box: Any, seed: int, duration: float | None = None) -> Recording:
    """Run RatInABox's own Agent in the arena of ``box`` and return its positions.

    Parameters
    ----------
    cfg : TrajectoryConfig
        ``dt`` and the ``ou_*`` parameters (:func:`ratinabox_agent_params`).
    box : BoxConfig
    seed : int
        The network's seed; RatInABox draws from numpy's global generator, which is
        seeded from ``derive_seed(seed, "ratinabox")`` for the run and restored after.
    duration : float, optional
        Seconds (default ``cfg.ratinabox_duration``).

    Returns
    -------
    Recording
        ``ceil(duration / dt) + 1`` positions: the Agent's start and one per update,
        checked by :func:`resample_positions` against the arena and the speed cap.
    """
    from gridsweep.arenas import arena_of
    from gridsweep.seeding import derive_seed

    Environment, Agent = _import_ratinabox()
    duration = float(cfg.ratinabox_duration if duration is None else duration)
    n = int(math.ceil(duration / cfg.dt - 1e-9))
    env_params, shift = ratinabox_environment_params(box)
    state = np.random.get_state()
    try:
        np.random.seed(derive_seed(seed, "ratinabox") % (1 << 32))
        env = Environment(params=env_params)
        agent = Agent(env, params=ratinabox_agent_params(cfg))
        pos = [np.array(agent.pos, dtype=float)]
        for _ in range(n):
            agent.update()
        pos += [np.asarray(p, dtype=float) for p in agent.history["pos"]]
    finally:
        np.random.set_state(state)
    positions = np.asarray(pos) - shift
    times = cfg.dt * np.arange(len(positions))
    return resample_positions(times, positions, cfg.dt, arena=arena_of(box), source=f"ratinabox(seed={seed})")


# ---------------------------------------------------------------------------------------
# the trajectory source of a run
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _cached_recording(kind: str, key: str, seed: int) -> Recording:
    from gridsweep.arenas import arena_of
    from gridsweep.config import BoxConfig, TrajectoryConfig

    d = json.loads(key)
    cfg, box = TrajectoryConfig.model_validate(d["trajectory"]), BoxConfig.model_validate(d["box"])
    if kind == "ratinabox":
        return ratinabox_recording(cfg, box, seed)
    if cfg.file is None:  # TrajectoryConfig requires it for source 'file'
        raise DataError("trajectory.source='file' needs trajectory.file: a .nwb or .npz path of recorded positions")
    return load_recording(cfg.file, cfg.dt, arena=arena_of(box))


def recording_for(cfg: Any) -> Recording:
    """The pool of a :class:`RunConfig` with ``trajectory.source`` 'ratinabox' or 'file' (cached).

    A file's pool is shared by every network; RatInABox's is one per network seed. The
    cache key holds the trajectory and box sections and, for a file, its size and
    modification time.
    """
    tr = cfg.trajectory
    if tr.source == "simulated":
        raise DataError("recording_for: trajectory.source='simulated' has no recording")
    key = {"trajectory": tr.model_dump(), "box": cfg.box.model_dump()}
    seed = int(cfg.seed) if tr.source == "ratinabox" else 0
    if tr.source == "file":
        try:
            st = os.stat(tr.file)
        except OSError:
            raise DataError(f"trajectory.file={tr.file!r}: file not found") from None
        key["file_stat"] = [st.st_size, st.st_mtime_ns]
    return _cached_recording(tr.source, json.dumps(key, sort_keys=True), seed)


def sample_windows(positions: torch.Tensor, headings: torch.Tensor, gen: torch.Generator, batch: int,
                   steps: int, *, source: str = "recording"):
    """B windows of T steps from one pool, start indices uniform from ``gen``.

    Parameters
    ----------
    positions : Tensor, (M, 2)
    headings : Tensor, (M - 1,)
        Direction of each step of the pool.
    gen : torch.Generator
        One ``randint`` of shape (B,) is drawn.

    Returns
    -------
    gridsweep.trajectories.Trajectories
        velocities (B, T, 2) (``diff`` of the window's positions), start (B, 2) (the
        window's first sample), positions (B, T, 2), headings (B, T).
    """
    from gridsweep.trajectories import Trajectories

    M = positions.shape[0]
    if M < steps + 1:
        raise DataError(f"{source}: {M} samples cannot hold a window of {steps} steps (needs {steps + 1}); record "
                        f"longer, or lower the sequence length")
    i0 = torch.randint(0, M - steps, (batch,), generator=gen, device=gen.device)
    idx = i0[:, None] + torch.arange(steps + 1, device=gen.device)
    w = positions.to(gen.device)[idx]  # (B, T + 1, 2)
    return Trajectories(velocities=w[:, 1:] - w[:, :-1], start=w[:, 0], positions=w[:, 1:],
                        headings=headings.to(gen.device)[idx[:, :-1]])


def sample_trajectories(cfgs: Sequence[Any], gens: Sequence[torch.Generator], *, batch: int | None = None,
                        steps: int | None = None, dtype: torch.dtype = torch.float32):
    """A batch of trajectories (E, B, T, ...) for an ensemble, from its ``trajectory.source``.

    ``simulated``: exactly :func:`gridsweep.trajectories.generate` (bit for bit).
    ``ratinabox`` / ``file``: network e's windows come from its pool
    (:func:`recording_for` of ``cfgs[e]``) with start indices drawn from ``gens[e]``.
    """
    from gridsweep.trajectories import Trajectories, generate

    cfg = cfgs[0]
    tr = cfg.trajectory
    batch = tr.batch_size if batch is None else batch
    steps = tr.sequence_length if steps is None else steps
    if tr.source == "simulated":
        return generate(list(gens), tr, cfg.box, batch=batch, steps=steps, dtype=dtype)
    parts = []
    for c, g in zip(cfgs, gens, strict=True):
        rec = recording_for(c)
        parts.append(sample_windows(torch.as_tensor(rec.positions, dtype=dtype),
                                    torch.as_tensor(rec.headings, dtype=dtype), g, batch, steps,
                                    source=rec.source))
    return Trajectories(*(torch.stack([getattr(p, f) for p in parts])
                          for f in ("velocities", "start", "positions", "headings")))
