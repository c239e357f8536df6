"""Synthetic MEC recordings with known ground truth.

A medial-entorhinal-like population (grid cells in several modules, border cells,
head-direction cells, irregular spatial cells) is driven along a trajectory and emits
Poisson spikes; the result goes through the same map-building path as real recordings
(:func:`gridsweep.neural.io.dataset_from_spikes`) and can be written as NWB. The
noiseless expected maps are kept, so predictivity and noise ceilings can be checked
against known answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridsweep.errors import DataError
from gridsweep.neural.dataset import NeuralDataset
from gridsweep.neural.io import (
    DEFAULT_SPEED_THRESHOLD_CM_S,
    maps_from_rates,
    maps_from_spikes,
    write_nwb,
)

__all__ = [
    "Trajectory",
    "random_walk",
    "trajectory_from_positions",
    "MECPopulationSpec",
    "MECPopulation",
    "make_population",
    "SyntheticRecording",
    "simulate_recording",
    "simulate_animals",
]

CELL_TYPES = ("grid", "border", "head_direction", "spatial")


@dataclass(frozen=True)
class Trajectory:
    """A tracked path.

    Attributes
    ----------
    times : ndarray, shape (N,)
        Seconds.
    positions : ndarray, shape (N, 2)
        Metres.
    head_direction : ndarray, shape (N,)
        Radians.
    extent : (xmin, xmax, ymin, ymax)
        The arena, metres.
    """

    times: np.ndarray
    positions: np.ndarray
    head_direction: np.ndarray
    extent: tuple[float, float, float, float]

    @property
    def dt(self) -> np.ndarray:
        """Duration of each sample, shape (N,): the last one repeats the median."""
        d = np.diff(self.times)
        return np.append(d, np.median(d))


def _reflect(x: float, lo: float, hi: float) -> tuple[float, bool]:
    if x < lo:
        return 2 * lo - x, True
    if x > hi:
        return 2 * hi - x, True
    return x, False


def random_walk(
    duration_s: float = 600.0,
    *,
    dt: float = 0.02,
    arena_size_m: float = 1.0,
    speed_mean_m_s: float = 0.15,
    speed_sd_m_s: float = 0.08,
    speed_tau_s: float = 1.0,
    turn_sd_rad_s: float = 2.0,
    seed: int | np.random.Generator = 0,
) -> Trajectory:
    """A smooth random walk in a square arena centred at the origin, reflected at walls.

    Speed is an Ornstein-Uhlenbeck process (mean ``speed_mean_m_s``, stationary s.d.
    ``speed_sd_m_s``, time constant ``speed_tau_s``; its absolute value is used), the
    heading diffuses with ``turn_sd_rad_s`` per sqrt(s); a step that leaves the box is
    mirrored back at the wall and the heading reflected.

    Parameters
    ----------
    duration_s, dt : float
        Seconds; ``N = round(duration_s / dt)`` samples.
    arena_size_m : float
        Side of the square box; extent ``(-L/2, L/2, -L/2, L/2)``.
    seed : int or numpy Generator

    Returns
    -------
    Trajectory
    """
    if duration_s <= 0 or dt <= 0 or arena_size_m <= 0:
        raise DataError(f"duration_s, dt and arena_size_m must be > 0; got {duration_s}, {dt}, {arena_size_m}")
    rng = np.random.default_rng(seed)
    n = max(int(round(duration_s / dt)), 2)
    half = arena_size_m / 2
    a = np.exp(-dt / speed_tau_s)
    speed_noise = rng.standard_normal(n) * speed_sd_m_s * np.sqrt(1 - a * a)
    turn_noise = rng.standard_normal(n) * turn_sd_rad_s * np.sqrt(dt)
    pos = np.empty((n, 2))
    hd = np.empty(n)
    pos[0] = rng.uniform(-half, half, 2) * 0.9
    hd[0] = rng.uniform(-np.pi, np.pi)
    s = speed_mean_m_s
    x, y, h = float(pos[0, 0]), float(pos[0, 1]), float(hd[0])
    for i in range(1, n):
        s = speed_mean_m_s + a * (s - speed_mean_m_s) + speed_noise[i]
        step = abs(s) * dt
        h = h + turn_noise[i]
        x, fx = _reflect(x + step * np.cos(h), -half, half)
        y, fy = _reflect(y + step * np.sin(h), -half, half)
        if fx:
            h = np.pi - h
        if fy:
            h = -h
        h = (h + np.pi) % (2 * np.pi) - np.pi
        pos[i] = (x, y)
        hd[i] = h
    return Trajectory(times=np.arange(n) * dt, positions=pos, head_direction=hd, extent=(-half, half, -half, half))


def trajectory_from_positions(
    positions: np.ndarray, dt: float, *, extent: tuple[float, float, float, float] | None = None
) -> Trajectory:
    """A :class:`Trajectory` from a user path ``(N, 2)`` in metres sampled every ``dt`` s.

    Head direction is the movement direction (central differences). Use it e.g. with
    ratinabox's ``sargolini.npz`` positions (convert to metres first).
    """
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] < 2 or not np.isfinite(pos).all():
        raise DataError(f"positions must be a finite (N >= 2, 2) array in metres; got shape {pos.shape}")
    if dt <= 0:
        raise DataError(f"dt must be > 0; got {dt}")
    vel = np.gradient(pos, dt, axis=0)
    hd = np.arctan2(vel[:, 1], vel[:, 0])
    if extent is None:
        lo, hi = pos.min(axis=0), pos.max(axis=0)
        extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    return Trajectory(times=np.arange(pos.shape[0]) * dt, positions=pos, head_direction=hd, extent=extent)


@dataclass(frozen=True)
class MECPopulationSpec:
    """What kind of MEC population to draw.

    Attributes
    ----------
    n_grid_per_module : tuple of int
        Grid cells per module; module ``m`` has spacing
        ``base_spacing_m * spacing_ratio**m`` (observed ratio ~1.4, Stensola et al. 2012).
    base_spacing_m, spacing_ratio : float
    field_heterogeneity : float
        S.d. of a smooth log-gain field multiplying each grid map (field-to-field
        variability of peak rates); 0 gives perfect lattices.
    n_border, n_head_direction, n_spatial : int
        Border cells (one wall each), head-direction cells (von Mises tuning,
        concentration ``hd_kappa``, spatially flat), irregular spatial cells (a
        smooth random field of length scale ``spatial_length_m``).
    peak_rate_hz : (low, high)
        Peak rates drawn uniformly per cell.
    baseline_rate_hz : float
    border_width_m, hd_kappa, spatial_length_m : float
    """

    n_grid_per_module: tuple[int, ...] = (12, 10, 8)
    base_spacing_m: float = 0.35
    spacing_ratio: float = 1.4
    field_heterogeneity: float = 0.25
    n_border: int = 6
    n_head_direction: int = 6
    n_spatial: int = 8
    peak_rate_hz: tuple[float, float] = (8.0, 20.0)
    baseline_rate_hz: float = 0.3
    border_width_m: float = 0.08
    hd_kappa: float = 2.0
    spatial_length_m: float = 0.15


@dataclass(frozen=True)
class MECPopulation:
    """A drawn population: per-cell parameters of the generative model.

    ``cell_types`` has one of ``"grid", "border", "head_direction", "spatial"`` per cell;
    parameters of other types are NaN. Rates are evaluated by :meth:`rates`.
    """

    spec: MECPopulationSpec
    extent: tuple[float, float, float, float]
    cell_types: np.ndarray  # (C,) str
    module: np.ndarray  # (C,) int, -1 for non-grid
    peak_rate: np.ndarray  # (C,)
    # grid: three wave vectors (C, 3, 2) and phase (C, 2)
    grid_k: np.ndarray
    grid_phase: np.ndarray
    # smooth random fields (heterogeneity for grids, the map itself for spatial cells)
    field_k: np.ndarray  # (C, F, 2)
    field_b: np.ndarray  # (C, F)
    border_wall: np.ndarray  # (C,) int 0..3 (left, right, bottom, top), -1 otherwise
    hd_pref: np.ndarray  # (C,) rad

    @property
    def n_cells(self) -> int:
        return int(self.cell_types.shape[0])

    @property
    def spacings_m(self) -> np.ndarray:
        """Grid spacing of each cell (NaN for non-grid cells), shape (C,)."""
        k = np.linalg.norm(self.grid_k[:, 0], axis=-1)
        out = np.full(self.n_cells, np.nan)
        g = self.cell_types == "grid"
        out[g] = 4 * np.pi / (np.sqrt(3) * k[g])
        return out

    def _field(self, positions: np.ndarray, idx: np.ndarray) -> np.ndarray:
        # (N, len(idx)) unit-variance smooth random field from F random cosines.
        f = self.field_k.shape[1]
        phase = np.einsum("nd,cfd->ncf", positions, self.field_k[idx]) + self.field_b[idx][None]
        return np.sqrt(2.0 / f) * np.cos(phase).sum(axis=-1)

    def rates(self, positions: np.ndarray, head_direction: np.ndarray) -> np.ndarray:
        """Noiseless firing rates.

        Parameters
        ----------
        positions : ndarray, shape (N, 2)
            Metres.
        head_direction : ndarray, shape (N,)
            Radians.

        Returns
        -------
        ndarray, shape (N, C)
            Hz, non-negative.

        Notes
        -----
        Grid cells: ``((sum_j cos(k_j . (x - phase)) + 1.5) / 4.5)**2`` (a hexagonal
        lattice of spacing ``4 pi / (sqrt 3 |k|)``, docs/science.md section 5) times
        ``exp(h * field(x))``; border cells ``exp(-d_wall / width)``; head-direction
        cells ``exp(kappa (cos(hd - pref) - 1))``; spatial cells
        ``exp(1.2 (field(x) - 1))``; all scaled by the peak rate plus a baseline.
        """
        pos = np.asarray(positions, dtype=float)
        hd = np.asarray(head_direction, dtype=float)
        n = pos.shape[0]
        out = np.empty((n, self.n_cells))
        sp = self.spec
        types = self.cell_types
        g = np.flatnonzero(types == "grid")
        if g.size:
            d = pos[:, None, :] - self.grid_phase[g][None]  # (N, G, 2)
            lattice = np.cos(np.einsum("ngd,gjd->ngj", d, self.grid_k[g])).sum(-1)
            shape = ((lattice + 1.5) / 4.5) ** 2
            gain = np.exp(sp.field_heterogeneity * self._field(pos, g) - sp.field_heterogeneity**2 / 2)
            out[:, g] = shape * gain
        b = np.flatnonzero(types == "border")
        if b.size:
            xmin, xmax, ymin, ymax = self.extent
            dists = np.stack([pos[:, 0] - xmin, xmax - pos[:, 0], pos[:, 1] - ymin, ymax - pos[:, 1]], axis=1)
            d = np.clip(dists[:, self.border_wall[b]], 0.0, None)
            out[:, b] = np.exp(-d / sp.border_width_m)
        h = np.flatnonzero(types == "head_direction")
        if h.size:
            out[:, h] = np.exp(sp.hd_kappa * (np.cos(hd[:, None] - self.hd_pref[h][None]) - 1.0))
        s = np.flatnonzero(types == "spatial")
        if s.size:
            out[:, s] = np.exp(1.2 * (self._field(pos, s) - 1.0))
        return sp.baseline_rate_hz + self.peak_rate[None] * out

    def expected_maps(self, shape: tuple[int, int], *, n_headings: int = 16) -> np.ndarray:
        """Noiseless maps at bin centres averaged over uniform heading, shape (C, ny, nx)."""
        ny, nx = shape
        xmin, xmax, ymin, ymax = self.extent
        xs = xmin + (np.arange(nx) + 0.5) * (xmax - xmin) / nx
        ys = ymin + (np.arange(ny) + 0.5) * (ymax - ymin) / ny
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        acc = np.zeros((pts.shape[0], self.n_cells))
        for th in np.linspace(-np.pi, np.pi, n_headings, endpoint=False):
            acc += self.rates(pts, np.full(pts.shape[0], th))
        return (acc / n_headings).T.reshape(self.n_cells, ny, nx)


def make_population(
    spec: MECPopulationSpec | None = None,
    *,
    extent: tuple[float, float, float, float] = (-0.5, 0.5, -0.5, 0.5),
    seed: int | np.random.Generator = 0,
    n_field_components: int = 12,
) -> MECPopulation:
    """Draw a :class:`MECPopulation` (random phases, orientations, walls, preferences).

    Each grid module gets one random orientation (uniform in [0, 60) degrees) and its
    spacing; each grid cell a uniform random phase.
    """
    spec = spec or MECPopulationSpec()
    rng = np.random.default_rng(seed)
    types: list[str] = []
    module: list[int] = []
    ks: list[np.ndarray] = []
    for m, count in enumerate(spec.n_grid_per_module):
        spacing = spec.base_spacing_m * spec.spacing_ratio**m
        kmag = 4 * np.pi / (np.sqrt(3) * spacing)
        theta = rng.uniform(0, np.pi / 3)
        angles = theta + np.array([0.0, np.pi / 3, 2 * np.pi / 3])
        k = kmag * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        for _ in range(count):
            types.append("grid")
            module.append(m)
            ks.append(k)
    for t, count in (("border", spec.n_border), ("head_direction", spec.n_head_direction), ("spatial", spec.n_spatial)):
        types += [t] * count
        module += [-1] * count
        ks += [np.full((3, 2), np.nan)] * count
    c = len(types)
    if c == 0:
        raise DataError("the population spec has no cells; give at least one grid, border, HD or spatial cell")
    ctypes = np.array(types, dtype=object)
    grid_k = np.stack(ks)
    # random phase: uniform over one unit cell of the module's lattice
    phase = np.full((c, 2), np.nan)
    for i in np.flatnonzero(ctypes == "grid"):
        spacing = 4 * np.pi / (np.sqrt(3) * np.linalg.norm(grid_k[i, 0]))
        ang = np.arctan2(grid_k[i, 0, 1], grid_k[i, 0, 0]) + np.pi / 6
        a1 = spacing * np.array([np.cos(ang), np.sin(ang)])
        a2 = spacing * np.array([np.cos(ang + np.pi / 3), np.sin(ang + np.pi / 3)])
        u, v = rng.uniform(0, 1, 2)
        phase[i] = u * a1 + v * a2
    # smooth random fields: wave vectors ~ N(0, I / l^2); for grid cells l = spacing / 2
    # (gain changes from one field to the next), for spatial cells l = spatial_length_m.
    kmag = np.linalg.norm(np.nan_to_num(grid_k[:, 0]), axis=-1)
    grid_spacing = 4 * np.pi / (np.sqrt(3) * np.where(kmag > 0, kmag, 1.0))
    length = np.where(ctypes == "grid", grid_spacing / 2, spec.spatial_length_m)
    field_k = rng.standard_normal((c, n_field_components, 2)) / length[:, None, None]
    field_b = rng.uniform(0, 2 * np.pi, (c, n_field_components))
    wall = np.where(ctypes == "border", rng.integers(0, 4, c), -1)
    hd_pref = np.where(ctypes == "head_direction", rng.uniform(-np.pi, np.pi, c), np.nan)
    peak = rng.uniform(*spec.peak_rate_hz, c)
    return MECPopulation(
        spec=spec,
        extent=tuple(float(v) for v in extent),  # type: ignore[arg-type]
        cell_types=ctypes,
        module=np.array(module),
        peak_rate=peak,
        grid_k=grid_k,
        grid_phase=phase,
        field_k=field_k,
        field_b=field_b,
        border_wall=wall,
        hd_pref=hd_pref,
    )


@dataclass(frozen=True)
class SyntheticRecording:
    """A simulated session and its ground truth.

    Attributes
    ----------
    dataset : NeuralDataset
        Maps from the Poisson spikes (with split halves), built exactly as for NWB.
    true_maps : ndarray, shape (C, ny, nx)
        The same binning applied to the noiseless rates along the same trajectory:
        the limit of ``dataset.maps`` with infinitely many spikes.
    population : MECPopulation
    trajectory : Trajectory
    spike_times : list of C arrays (s)
    """

    dataset: NeuralDataset
    true_maps: np.ndarray
    population: MECPopulation
    trajectory: Trajectory
    spike_times: list[np.ndarray] = field(repr=False)

    @property
    def cell_types(self) -> np.ndarray:
        return self.population.cell_types

    def write_nwb(self, path: str | Path) -> Path:
        """Write the session (positions, spike times, subject, session) as NWB."""
        return write_nwb(
            path,
            self.trajectory.times,
            self.trajectory.positions,
            self.spike_times,
            cell_ids=[int(c) for c in self.dataset.cell_ids],
            animal=str(self.dataset.animal[0]),
            session=str(self.dataset.session[0]),
        )


def simulate_recording(
    spec: MECPopulationSpec | None = None,
    *,
    trajectory: Trajectory | None = None,
    duration_s: float = 600.0,
    dt: float = 0.02,
    arena_size_m: float = 1.0,
    bins: int | None = None,
    bin_width: float | None = 0.05,
    speed_threshold_cm_s: float = DEFAULT_SPEED_THRESHOLD_CM_S,
    smoothing_sigma: float = 0.0,
    animal: str = "sim0",
    session: str = "session0",
    seed: int = 0,
    population: MECPopulation | None = None,
) -> SyntheticRecording:
    """Simulate one session: a population, a trajectory, Poisson spikes, rate maps.

    Parameters
    ----------
    spec : MECPopulationSpec, optional
    trajectory : Trajectory, optional
        Default :func:`random_walk` (``duration_s``, ``dt``, ``arena_size_m``).
    bins, bin_width :
        Grid (default 5 cm bins).
    speed_threshold_cm_s, smoothing_sigma :
        As for real data (:func:`gridsweep.neural.io.maps_from_rates`).
    animal, session : str
    seed : int
        Streams for the population, the walk and the spikes are derived from it.
    population : MECPopulation, optional
        Reuse a drawn population (e.g. several sessions of one animal).

    Returns
    -------
    SyntheticRecording

    Notes
    -----
    Spike counts per sample are Poisson(rate * dt); spike times are uniform inside
    the sample (kept away from its edges so binning them back is exact).
    """
    ss = np.random.SeedSequence(seed)
    pop_rng, walk_rng, spike_rng = (np.random.default_rng(s) for s in ss.spawn(3))
    if trajectory is None:
        trajectory = random_walk(duration_s, dt=dt, arena_size_m=arena_size_m, seed=walk_rng)
    if population is None:
        population = make_population(spec, extent=trajectory.extent, seed=pop_rng)
    rates = population.rates(trajectory.positions, trajectory.head_direction)
    dts = trajectory.dt
    counts = spike_rng.poisson(rates * dts[:, None])
    spike_times: list[np.ndarray] = []
    for c in range(population.n_cells):
        idx = np.repeat(np.arange(counts.shape[0]), counts[:, c])
        u = spike_rng.uniform(0.01, 0.99, idx.size)
        spike_times.append(trajectory.times[idx] + u * dts[idx])
    kw: dict[str, Any] = dict(  # noqa: C408
        extent=trajectory.extent,
        bins=bins,
        bin_width=None if bins is not None else bin_width,
        speed_threshold_cm_s=speed_threshold_cm_s,
        smoothing_sigma=smoothing_sigma,
    )
    sm = maps_from_spikes(trajectory.times, trajectory.positions, spike_times, **kw)
    truth = maps_from_rates(trajectory.times, trajectory.positions, rates, split_halves=False, **kw)
    ids = [str(i) for i in range(population.n_cells)]
    dataset = NeuralDataset(
        maps=sm.maps,
        occupancy=sm.occupancy,
        extent=sm.extent,
        cell_ids=ids,  # type: ignore[arg-type]
        animal=animal,  # type: ignore[arg-type]
        session=session,  # type: ignore[arg-type]
        split_maps=sm.split_maps,
        source="synthetic",
        meta={"cell_types": population.cell_types.tolist(), "seed": seed, "n_samples_kept": sm.n_samples_kept},
    )
    return SyntheticRecording(
        dataset=dataset, true_maps=truth.maps, population=population, trajectory=trajectory, spike_times=spike_times
    )


def simulate_animals(
    n_animals: int = 2,
    spec: MECPopulationSpec | None = None,
    *,
    seed: int = 0,
    **kwargs: Any,
) -> list[SyntheticRecording]:
    """Independent recordings of ``n_animals`` animals (own populations and paths).

    Grid modules of different animals differ in orientation and phases, as in real
    data; use :func:`gridsweep.neural.dataset.concat_datasets` on their datasets for
    inter-animal ceilings.
    """
    if n_animals < 1:
        raise DataError(f"n_animals must be >= 1; got {n_animals}")
    seeds = np.random.SeedSequence(seed).generate_state(n_animals)
    return [
        simulate_recording(spec, seed=int(s), animal=f"sim{i}", session=f"sim{i}-s0", **kwargs)
        for i, s in enumerate(seeds)
    ]

