"""Readout covariance, its translation-averaged kernel and its power spectrum.

The study's explanation of grid emergence (docs/science.md section 5): gradient descent on the
readout loss drives the hidden layer like a pattern-forming system whose interaction
kernel is the spatial covariance of the targets, ``Sigma(x, x') = sum_i p_i(x) p_i(x')``.
A periodic (Turing) pattern needs the Fourier spectrum of that kernel to peak on a ring
at ``k* > 2 pi / L``.

This module computes that spectrum numerically from the actual targets (softmax across
cells, random centres, finite box, multi-field cells), so nothing is assumed about
translation invariance:

1. :func:`target_maps` evaluates the ``Np`` targets on the bin centres of a fine grid
   covering the box: ``maps (Np, ny, nx)``.
2. :func:`readout_spectrum` removes each cell's spatial mean (see *Centring*), and forms

   * the power spectrum ``S(k) = sum_i |p~_i(k)|^2`` with ``p~_i(k) = h^2 sum_x p_i(x)
     exp(-i k.x)`` on a zero-padded FFT grid (an image), and
   * the summed autocorrelation ``A(delta) = sum_i sum_x p_i(x) p_i(x + delta)`` (exact,
     linear, no wrap-around), whose division by the number of overlapping positions is
     the translation-averaged covariance kernel ``K(delta) = < Sigma(x, x + delta) >_x``.
     ``S`` is the Fourier transform of ``h^4 A`` (Wiener-Khinchin).
3. :meth:`Spectrum.radial` averages ``S`` over directions *exactly*, at any wave number:
   ``S_bar(k) = h^4 sum_delta A(delta) J0(k |delta|)`` (the angular mean of
   ``exp(i k.delta)`` is the Bessel function ``J0``), so the ring radius is not limited
   by FFT bins.
4. :func:`find_ring` locates the ring, its height relative to the long-wavelength power,
   and whether a period fits in the box.

Centring
--------
By default each cell's spatial mean over the box is subtracted before anything else, so
``Sigma`` is the covariance proper and ``S(0) = 0``. Reasons: the shift-and-normalise
step of the ``dos``/``dog_*`` targets adds an almost constant offset to every cell, which
would otherwise put nearly all the power at ``k = 0`` and hide the structure that the
theory is about; a spatially constant component of a target can be produced by the mean
of non-negative hidden units and does not select a pattern; and the closed forms
(unit-integral DoG, ``p~(0) = 0``) describe offset-free tuning. The price is that
``k = 0`` itself carries no information, so the "height relative to k = 0" is measured
against the *long-wavelength power*, the maximum of ``S_bar`` over ``0 < k <= 2 pi / L``
(modes whose period does not fit in the box). A tuning curve with a net integral (a
Gaussian; an equi-norm DoG, whose surround dominates) keeps its power there after
centring; a balanced one (DoS) does not. ``center=False`` gives the raw second-moment
spectrum (then ``S(0)`` is the offset's power).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from scipy import optimize, special

from gridsweep.config import BoxConfig
from gridsweep.errors import AnalysisError, ConfigError
from gridsweep.theory.closed_forms import hex_spacing, min_ring_k

__all__ = [
    "Spectrum",
    "RingInfo",
    "target_maps",
    "readout_spectrum",
    "radial_profile",
    "find_ring",
    "default_resolution",
    "arena_mask",
]


def default_resolution(target: Any, box: BoxConfig) -> float:
    """Grid step (m) for evaluating targets: a quarter of the narrowest width, at most 5 cm.

    Also at most ``L / 40`` so that small boxes are still resolved.
    """
    res = min(0.05, min(box.width, box.height) / 40)
    se = getattr(target, "sigma_e", None)
    if isinstance(se, torch.Tensor):
        mask = getattr(target, "field_mask", None)
        vals = se[mask] if mask is not None else se.reshape(-1)
        if vals.numel():
            res = min(res, float(vals.min()) / 4)
    return res


def target_maps(target: Any, box: BoxConfig | None = None, resolution: float | None = None,
                network: int = 0, chunk_elements: int = 2_000_000) -> tuple[np.ndarray, tuple[float, ...], float]:
    """Evaluate one network's targets on the bin centres of a grid covering the box.

    Parameters
    ----------
    target : gridsweep.targets.Target
        Any target object (``encode(positions (E, ..., 2)) -> (E, ..., Np)``).
    box : BoxConfig, optional
        The arena (default 2.2 m square).
    resolution : float, optional
        Grid step in metres (default :func:`default_resolution`). The number of bins per
        side is ``round(side / resolution)``.
    network : int
        Which network of the ensemble axis E.
    chunk_elements : int
        Bound on ``positions x Np x fields`` per ``encode`` call (memory).

    Returns
    -------
    maps : ndarray, (Np, ny, nx) float64
        ``maps[i, r, c]`` is cell i at ``y = ys[r]``, ``x = xs[c]`` (row = y bin).
    extent : tuple, (xmin, xmax, ymin, ymax)
    bin_size : float
        Mean grid step, metres.
    """
    box = box or BoxConfig()
    if not hasattr(target, "encode") or not hasattr(target, "E"):
        raise ConfigError(f"target: expected a gridsweep Target object, got {type(target).__name__}")
    if not 0 <= network < target.E:
        raise ConfigError(f"network={network}: the target holds E={target.E} networks")
    res = default_resolution(target, box) if resolution is None else float(resolution)
    if not res > 0:
        raise ConfigError(f"resolution={resolution!r}: must be a positive length in metres")
    nx = max(4, int(round(box.width / res)))
    ny = max(4, int(round(box.height / res)))
    xs = -box.width / 2 + (np.arange(nx) + 0.5) * box.width / nx
    ys = -box.height / 2 + (np.arange(ny) + 0.5) * box.height / ny
    gx, gy = np.meshgrid(xs, ys, indexing="xy")  # (ny, nx)
    pts = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], -1), dtype=torch.float64)
    t = target.select(network).to(dtype=torch.float64)
    n_fields = getattr(t, "n_fields", 1)
    step = max(1, chunk_elements // max(1, t.n_outputs * n_fields))
    out = np.empty((pts.shape[0], t.n_outputs), dtype=np.float64)
    with torch.no_grad():
        for s in range(0, pts.shape[0], step):
            out[s:s + step] = t.encode(pts[None, s:s + step].to(t.device))[0].cpu().numpy()
    maps = out.T.reshape(t.n_outputs, ny, nx)
    if not np.all(np.isfinite(maps)):
        raise AnalysisError("targets are not finite on the evaluation grid")
    return maps, tuple(float(v) for v in box.extent), float(0.5 * (box.width / nx + box.height / ny))


@dataclass(frozen=True)
class RingInfo:
    """Where the radially averaged spectrum peaks.

    Attributes
    ----------
    k_star : float
        Ring radius (rad/m): the highest local maximum of ``S_bar`` beyond ``k_min``
        (NaN when there is none, e.g. a monotonically decaying spectrum).
    k_peak : float
        Global maximum of ``S_bar`` (rad/m); ``<= k_min`` means "peak at k = 0" within
        the box's resolution.
    k_min : float
        ``2 pi / L``, L the shorter box side.
    ring_power, low_k_power, power_k0 : float
        ``S_bar(k*)``, ``max S_bar`` over ``0 <= k <= k_min``, ``S_bar(0)``.
    ring_ratio : float
        ``ring_power / low_k_power`` (NaN without a ring).
    has_ring : bool
        A ring exists at ``k* > k_min`` and stands above the long-wavelength power
        (``ring_ratio > min_ratio``, default 1.1).
    spacing_m : float
        ``4 pi / (sqrt(3) k*)`` (NaN without a ring radius).
    """

    k_star: float
    k_peak: float
    k_min: float
    ring_power: float
    low_k_power: float
    power_k0: float
    ring_ratio: float
    has_ring: bool
    spacing_m: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Spectrum:
    """The readout covariance of one network's targets, in space and in frequency.

    Attributes
    ----------
    power : ndarray, (Mky, Mkx)
        ``S(k) = sum_i |p~_i(k)|^2`` on the FFT grid, ``fftshift``-ed (k = 0 at the centre).
    kx, ky : ndarray, (Mkx,), (Mky,)
        Wave numbers of the columns / rows of ``power``, rad/m.
    autocorr : ndarray, (2 ny - 1, 2 nx - 1)
        ``A(delta) = sum_i sum_x p_i(x) p_i(x + delta)``; lag 0 at the centre.
    kernel : ndarray, (2 ny - 1, 2 nx - 1)
        Translation-averaged covariance ``K(delta) = A(delta) / N(delta)`` (N = number of
        grid positions with ``x`` and ``x + delta`` both in the box).
    lags_x, lags_y : ndarray
        Lags of the columns / rows of ``autocorr``, metres.
    bin_size : float
        Grid step h, metres.
    box_size : tuple of float
        ``(width, height)``, metres.
    n_cells : int
        Np.
    centered : bool
        Whether each cell's spatial mean was removed.
    """

    power: np.ndarray
    kx: np.ndarray
    ky: np.ndarray
    autocorr: np.ndarray
    kernel: np.ndarray
    lags_x: np.ndarray
    lags_y: np.ndarray
    bin_size: float
    box_size: tuple[float, float]
    n_cells: int
    centered: bool
    _radii: np.ndarray | None = field(repr=False, default=None)
    _weights: np.ndarray | None = field(repr=False, default=None)

    @property
    def k_min(self) -> float:
        """``2 pi / L`` with L the shorter box side."""
        return min_ring_k(min(self.box_size))

    @property
    def k_nyquist(self) -> float:
        return math.pi / self.bin_size

    def radial(self, k: np.ndarray | float) -> np.ndarray:
        """Exact angular average of the power spectrum at wave numbers ``k`` (rad/m).

        ``S_bar(k) = h^4 sum_delta A(delta) J0(k |delta|)``.

        Parameters
        ----------
        k : array_like, any shape

        Returns
        -------
        ndarray, shape of ``k``
        """
        radii, weights = self._radii, self._weights
        if radii is None or weights is None:
            raise AnalysisError("Spectrum.radial needs the lag radii and weights that readout_spectrum stores")
        k = np.asarray(k, dtype=float)
        flat = k.reshape(-1)
        out = np.empty(flat.shape)
        step = max(1, 4_000_000 // max(1, radii.size))
        for s in range(0, flat.size, step):
            out[s:s + step] = special.j0(np.outer(flat[s:s + step], radii)) @ weights
        return (out * self.bin_size**4).reshape(k.shape)

    def default_k(self, n: int | None = None) -> np.ndarray:
        """A wave-number grid from 0 to the Nyquist limit, step ``2 pi / (8 L)``."""
        L = max(self.box_size)
        if n is None:
            n = int(math.ceil(self.k_nyquist / (2 * math.pi / (8 * L)))) + 1
        return np.linspace(0.0, self.k_nyquist, int(n))

    def ring(self, k: np.ndarray | None = None, rel_prominence: float = 1e-3, min_ratio: float = 1.1
             ) -> "RingInfo":
        """:func:`find_ring` on this spectrum's exact radial profile."""
        k = self.default_k() if k is None else np.asarray(k, dtype=float)
        return find_ring(k, self.radial(k), min(self.box_size), profile_fn=self.radial,
                         rel_prominence=rel_prominence, min_ratio=min_ratio)


def arena_mask(box: BoxConfig, ny: int, nx: int) -> np.ndarray | None:
    """Bins of the (ny, nx) grid of :func:`target_maps` whose centre is inside the arena.

    None for the plain rectangle (every bin is inside; the original computation).
    """
    from gridsweep.arenas import arena_of

    arena = arena_of(box)
    return None if arena.rectangular else arena.mask(box.extent, nx, ny)


def readout_spectrum(maps: np.ndarray, bin_size: float, *, center: bool = True, pad: int = 2,
                     box_size: tuple[float, float] | None = None, chunk: int = 32,
                     mask: np.ndarray | None = None) -> Spectrum:
    """Covariance kernel and power spectrum of a set of target maps.

    Parameters
    ----------
    maps : ndarray, (Np, ny, nx)
        Targets on the bin centres of a regular grid (row = y).
    bin_size : float
        Grid step h, metres.
    center : bool
        Subtract each cell's spatial mean first (default; see the module docstring).
    pad : int
        FFT size as a multiple of the grid (>= 2, so the autocorrelation is exact); the
        power image has wave-number step ``2 pi / (pad L)``.
    box_size : (width, height), optional
        Box sides in metres (default ``(nx h, ny h)``).
    chunk : int
        Cells per FFT batch (memory).
    mask : ndarray, (ny, nx) bool, optional
        Bins inside the arena (:func:`arena_mask`). Each cell is centred over the inside
        bins only and zeroed outside, so ``A(delta)`` sums over pairs of positions that
        are both inside; ``K = A / N`` with ``N(delta)`` the mask's own autocorrelation
        (pairs both inside), NaN-free: 0 where no pair exists. None (default) is the whole
        grid, identical to a mask of ones.

    Returns
    -------
    Spectrum

    Notes
    -----
    docs/science.md section 5 (Sorscher et al. 2019/2023; Schaeffer, Khona & Fiete 2022): the
    covariance ``Sigma(x, x') = sum_i p_i(x) p_i(x')``, its translation average and
    ``sum_i |p~_i(k)|^2``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[1] < 2 or maps.shape[2] < 2:
        raise AnalysisError(f"maps have shape {maps.shape}; expected (Np, ny, nx) with ny, nx >= 2")
    if not np.all(np.isfinite(maps)):
        raise AnalysisError("maps contain NaN or infinite values")
    if not bin_size > 0:
        raise AnalysisError(f"bin_size={bin_size!r}: must be > 0 (metres)")
    if int(pad) < 2:
        raise AnalysisError(f"pad={pad!r}: must be an integer >= 2")
    Np, ny, nx = maps.shape
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (ny, nx) or mask.dtype != bool:
            raise AnalysisError(f"mask: expected a bool array of shape {(ny, nx)}; got {mask.dtype} {mask.shape}")
        if not mask.any():
            raise AnalysisError("mask: no bin is inside the arena")
        if mask.all():
            mask = None
    h = float(bin_size)
    box_size = (nx * h, ny * h) if box_size is None else (float(box_size[0]), float(box_size[1]))
    My, Mx = int(pad) * ny, int(pad) * nx
    power_half = np.zeros((My, Mx // 2 + 1))
    for s in range(0, Np, chunk):
        block = maps[s:s + chunk]
        if mask is not None:  # centre over the inside bins, zero the rest
            inside = block[:, mask]
            block = np.where(mask, block - (inside.mean(axis=1)[:, None, None] if center else 0.0), 0.0)
        elif center:
            block = block - block.mean(axis=(1, 2), keepdims=True)
        F = np.fft.rfft2(block, s=(My, Mx))
        power_half += (F.real**2 + F.imag**2).sum(0)
    # autocorrelation (exact: FFT size >= 2n - 1), lag 0 moved to the centre
    circ = np.fft.irfft2(power_half, s=(My, Mx))
    iy = np.r_[np.arange(-(ny - 1), 0) % My, np.arange(ny)]
    ix = np.r_[np.arange(-(nx - 1), 0) % Mx, np.arange(nx)]
    autocorr = circ[np.ix_(iy, ix)]
    lag_y = np.arange(-(ny - 1), ny)
    lag_x = np.arange(-(nx - 1), nx)
    if mask is None:
        overlap = (ny - np.abs(lag_y))[:, None] * (nx - np.abs(lag_x))[None, :]
        kernel = autocorr / overlap
    else:  # pairs of inside bins at each lag: the mask's own autocorrelation
        Fm = np.fft.rfft2(mask.astype(np.float64), s=(My, Mx))
        overlap = np.rint(np.fft.irfft2(Fm.real**2 + Fm.imag**2, s=(My, Mx))[np.ix_(iy, ix)])
        kernel = np.where(overlap > 0, autocorr / np.maximum(overlap, 1.0), 0.0)
    # full power image (Hermitian completion of the rfft half), fftshift-ed
    full = np.empty((My, Mx))
    full[:, : Mx // 2 + 1] = power_half
    if Mx // 2 + 1 < Mx:
        cols = np.arange(Mx // 2 + 1, Mx)
        full[:, cols] = power_half[(-np.arange(My)) % My][:, Mx - cols]
    power = np.fft.fftshift(full) * h**4
    kx = np.fft.fftshift(np.fft.fftfreq(Mx, d=h)) * 2 * np.pi
    ky = np.fft.fftshift(np.fft.fftfreq(My, d=h)) * 2 * np.pi
    # radial weights: sum of A over lags of equal length
    hx, hy = box_size[0] / nx, box_size[1] / ny
    r = np.hypot((lag_y * hy)[:, None], (lag_x * hx)[None, :]).ravel()
    key = np.round(r / h * 1e6).astype(np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    weights = np.bincount(inv, weights=autocorr.ravel())
    radii = uniq.astype(float) * 1e-6 * h
    return Spectrum(power=power, kx=kx, ky=ky, autocorr=autocorr, kernel=kernel, lags_x=lag_x * hx,
                    lags_y=lag_y * hy, bin_size=h, box_size=box_size, n_cells=Np, centered=bool(center),
                    _radii=radii, _weights=weights)


def radial_profile(spec: Spectrum, k: np.ndarray | None = None, normalise: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Angular average of a readout spectrum.

    Parameters
    ----------
    spec : Spectrum
    k : ndarray, optional
        Wave numbers, rad/m (default: 0 to Nyquist in steps of ``2 pi / 8L``).
    normalise : bool
        Divide by the maximum.

    Returns
    -------
    k : ndarray, (nk,)
    profile : ndarray, (nk,)
        ``S_bar(k)`` (see :meth:`Spectrum.radial`).
    """
    if not isinstance(spec, Spectrum):
        raise AnalysisError(f"spec: expected a Spectrum (from readout_spectrum), got {type(spec).__name__}")
    k = spec.default_k() if k is None else np.asarray(k, dtype=float)
    prof = spec.radial(k)
    if normalise:
        m = np.max(prof)
        prof = prof / m if m > 0 else prof
    return k, prof


def find_ring(k: np.ndarray, profile: np.ndarray, box_size: float, *,
              profile_fn: Callable[[np.ndarray], np.ndarray] | None = None,
              rel_prominence: float = 1e-3, min_ratio: float = 1.1) -> RingInfo:
    """Locate the ring of a radially averaged spectrum.

    Parameters
    ----------
    k : ndarray, (nk,)
        Increasing wave numbers, rad/m, starting at (or near) 0.
    profile : ndarray, (nk,)
        ``S_bar(k)``.
    box_size : float
        Box side L (m); ``k_min = 2 pi / L``.
    profile_fn : callable, optional
        ``S_bar`` at arbitrary k; when given, maxima are refined by a bounded scalar
        search between the neighbouring grid points.
    rel_prominence : float
        A local maximum counts as a ring only if it rises above the lowest point between
        it and ``k_min`` by at least this fraction of the global maximum (filters
        numerical ripple).
    min_ratio : float
        ``has_ring`` needs ``ring_power / low_k_power > min_ratio``. The margin keeps the
        top of the long-wavelength lobe of a centred Gaussian-like spectrum, which can
        sit a hair beyond ``2 pi / L``, from counting as a ring.

    Returns
    -------
    RingInfo

    Notes
    -----
    Turing criterion of docs/science.md section 5: a periodic pattern needs the spectrum to
    peak on a ring at ``k* > 2 pi / L``, above the power at ``k -> 0``.
    """
    k = np.asarray(k, dtype=float)
    p = np.asarray(profile, dtype=float)
    if k.ndim != 1 or p.shape != k.shape or k.size < 3:
        raise AnalysisError(f"k and profile must be 1-D of equal length >= 3; got {k.shape}, {p.shape}")
    if np.any(np.diff(k) <= 0):
        raise AnalysisError("k must be strictly increasing")
    k_min = min_ring_k(box_size)
    gmax = float(np.max(p))

    def refine(i: int) -> tuple[float, float]:
        if profile_fn is None or i == 0 or i == k.size - 1:
            return float(k[i]), float(p[i])
        res = optimize.minimize_scalar(lambda q: -float(profile_fn(np.asarray([q]))[0]),
                                       bounds=(k[i - 1], k[i + 1]), method="bounded",
                                       options={"xatol": 1e-6 * max(1.0, k[i])})
        if -res.fun >= p[i]:
            return float(res.x), float(-res.fun)
        return float(k[i]), float(p[i])

    ig = int(np.argmax(p))
    k_peak, _ = refine(ig)
    low_mask = k <= k_min
    low = float(np.max(p[low_mask])) if low_mask.any() else float(p[0])
    p0 = float(profile_fn(np.asarray([0.0]))[0]) if profile_fn is not None else float(p[0])
    # candidate ring: interior local maxima beyond k_min with enough prominence
    i0 = int(np.searchsorted(k, k_min, side="right"))
    best = None
    for i in range(max(i0, 1), k.size - 1):
        if p[i] >= p[i - 1] and p[i] > p[i + 1]:
            lo = float(np.min(p[max(i0 - 1, 0):i + 1]))
            if p[i] - lo >= rel_prominence * gmax and (best is None or p[i] > p[best]):
                best = i
    if best is None:
        return RingInfo(k_star=math.nan, k_peak=k_peak, k_min=k_min, ring_power=math.nan, low_k_power=low,
                        power_k0=p0, ring_ratio=math.nan, has_ring=False, spacing_m=math.nan)
    ks, ps = refine(best)
    ratio = ps / low if low > 0 else math.inf
    return RingInfo(k_star=ks, k_peak=k_peak, k_min=k_min, ring_power=ps, low_k_power=low, power_k0=p0,
                    ring_ratio=float(ratio), has_ring=bool(ks > k_min and ratio > min_ratio),
                    spacing_m=float(hex_spacing(ks)))
