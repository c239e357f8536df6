"""Pattern formation driven by the readout covariance.

Sorscher et al. (2019, 2023) reduce the learning dynamics of a path integrator's hidden
layer to gradient ascent of ``g^T Sigma g`` for each hidden unit's rate map ``g``, with
``Sigma`` the spatial covariance of the readout targets (docs/science.md section 5). With a
non-negativity constraint (ReLU) the maximiser is a hexagonal lattice at the ring radius
``k*`` of the spectrum of ``Sigma``; with a Gaussian readout (spectrum peaked at k = 0)
no periodic pattern forms. :func:`simulate_patterns` runs that ascent in two settings:

* ``method="fourier"`` (the published setting): a periodic domain; ``Sigma`` acts as a
  convolution whose Fourier multiplier is the radially averaged spectrum
  ``S_bar(|k|)`` of the actual targets (or any callable, e.g. a closed form), evaluated
  at the domain's wave vectors. A square torus cannot hold an exact hexagonal lattice,
  so by default hexagons come out strained; ``fit_lattice=True`` uses instead a
  rectangular torus of ``m_x a`` by ``m_y sqrt(3) a`` (``a = 4 pi / (sqrt(3) k*)``, the
  predicted spacing), on which the lattice fits, and returns its square crop. That
  choice *assumes* the predicted spacing, so use it to study which pattern is selected,
  not to test the spacing.
* ``method="box"``: the real, non-periodic box on an ``n x n`` grid, with no assumption
  on the spacing. ``box_kernel="averaged"`` (default) uses the translation-averaged
  covariance of the targets, ``Sigma(x, x') = K(x - x')`` with ``K`` from
  :func:`gridsweep.theory.spectrum.readout_spectrum` (the kernel of the theory);
  ``box_kernel="actual"`` uses the explicit covariance ``P^T P`` of the centred targets
  ``P (Np, n^2)``. The actual covariance of ``Np`` randomly placed, softmax-normalised
  cells is far from translation invariant (its diagonal varies several-fold across the
  box), and a single non-negative unit then collapses into one bump where the local gain
  is highest instead of forming a lattice: see ``docs/theory.md``.

Each step is a projected gradient-ascent step on the sphere, ``g <- f(g + eta Sigma g)``
followed by ``g <- g / rms(g)``, where ``f`` is the constraint: ``relu`` (projection onto
``g >= 0``), ``tanh`` (a saturating, sign-symmetric bound) or ``linear`` (none: power
iteration, which converges to an arbitrary superposition of the top eigenmodes).
``Sigma`` is scaled so that its largest eigenvalue is (at most) 1. Units are independent
(each has its own random start); unit RMS instead of unit Euclidean norm only fixes the
scale (ReLU and linear runs are scale-free; for ``tanh`` it sets where saturation bites).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gridsweep.config import BoxConfig
from gridsweep.errors import ConfigError

__all__ = ["PatternResult", "simulate_patterns", "score_patterns", "fourier_kernel", "box_covariance", "NONLINEARITIES"]

#: name -> projection applied after each ascent step
NONLINEARITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda g: np.maximum(g, 0.0),
    "tanh": np.tanh,
    "linear": lambda g: g,
}


@dataclass(frozen=True)
class PatternResult:
    """Emergent rate maps of a pattern-formation run.

    Attributes
    ----------
    maps : ndarray, (U, n, n)
        One map per unit (row = y), unit RMS.
    extent : tuple, (xmin, xmax, ymin, ymax)
        Metres.
    bin_size : float
        Metres per bin.
    method, nonlinearity, box_kernel : str
    objective : ndarray, (U,)
        Final ``g^T Sigma g / g^T g`` per unit (Sigma scaled to top eigenvalue <= 1).
    history : ndarray, (n_records, U)
        The objective every ``record_every`` steps (first row: the initial maps).
    domain : tuple of float
        ``(width, height)`` of the simulated domain in metres (fourier: the torus, which
        may be larger than the returned crop).
    """

    maps: np.ndarray
    extent: tuple[float, float, float, float]
    bin_size: float
    method: str
    nonlinearity: str
    objective: np.ndarray
    history: np.ndarray
    domain: tuple[float, float]
    box_kernel: str | None = None


def fourier_kernel(profile: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int] | int,
                   bin_size: float) -> np.ndarray:
    """Fourier multiplier of an isotropic kernel on a periodic grid.

    Parameters
    ----------
    profile : callable
        ``S_bar(k)`` for an array of wave numbers (rad/m).
    shape : (ny, nx) or int
        Grid points.
    bin_size : float
        Grid step, metres.

    Returns
    -------
    ndarray, (ny, nx)
        ``S_bar(|k|)`` in ``numpy.fft.fft2`` order, clipped at 0 and scaled to maximum 1.
    """
    ny, nx = (shape, shape) if isinstance(shape, int) else shape
    ky = 2 * np.pi * np.fft.fftfreq(ny, d=bin_size)
    kx = 2 * np.pi * np.fft.fftfreq(nx, d=bin_size)
    kmag = np.hypot(ky[:, None], kx[None, :])
    uniq, inv = np.unique(np.round(kmag, 9), return_inverse=True)
    vals = np.maximum(np.asarray(profile(uniq), dtype=float), 0.0)[inv].reshape(ny, nx)
    m = vals.max()
    if not m > 0:
        raise ConfigError("the kernel's spectrum is zero on this grid; nothing to form a pattern from")
    return vals / m


def box_covariance(maps: np.ndarray, kernel: str = "actual", bin_size: float | None = None) -> np.ndarray:
    """The explicit covariance matrix of target maps on a box grid.

    Parameters
    ----------
    maps : ndarray, (Np, n, n)
        Targets on the grid (row = y).
    kernel : {"actual", "averaged"}
        ``P^T P`` of the mean-centred maps, or its translation average ``K(x - x')``.
    bin_size : float, optional
        Grid step (only passed on to the spectrum; any positive value gives the same matrix).

    Returns
    -------
    ndarray, (n^2, n^2)
        Row-major over (y, x) positions.
    """
    from gridsweep.theory.spectrum import readout_spectrum

    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3:
        raise ConfigError(f"maps have shape {maps.shape}; expected (Np, ny, nx)")
    if kernel == "actual":
        P = maps.reshape(maps.shape[0], -1)
        P = P - P.mean(axis=1, keepdims=True)
        return P.T @ P
    if kernel == "averaged":
        _, ny, nx = maps.shape
        K = readout_spectrum(maps, bin_size or 1.0).kernel
        iy, ix = np.indices((ny, nx))
        iy, ix = iy.ravel(), ix.ravel()
        return K[(iy[:, None] - iy[None, :]) + ny - 1, (ix[:, None] - ix[None, :]) + nx - 1]
    raise ConfigError(f"box_kernel={kernel!r}: allowed 'averaged' (translation-averaged) or 'actual' (P^T P)")


def _ascent(apply_sigma, g, n_steps, lr, f, record_every, tol):
    def rms(x):
        r = np.sqrt(np.mean(x**2, axis=1, keepdims=True))
        return np.where(r > 0, r, 1.0)

    def objective(x):
        return np.sum(x * apply_sigma(x), axis=1) / np.maximum(np.sum(x * x, axis=1), 1e-300)

    g = g / rms(g)
    hist = [objective(g)]
    for step in range(1, n_steps + 1):
        new = f(g + lr * apply_sigma(g))
        new = new / rms(new)
        delta = float(np.max(np.sqrt(np.mean((new - g) ** 2, axis=1))))
        g = new
        if step % record_every == 0:
            hist.append(objective(g))
        if tol and delta < tol:
            break
    return g, objective(g), np.array(hist)


def _profile_and_ring(source, box, resolution):
    """(profile callable, box side, k* or None) from a source for the Fourier method."""
    from gridsweep.theory.predict import spectrum as spectrum_fn
    from gridsweep.theory.spectrum import Spectrum

    if isinstance(source, Spectrum):
        ring = source.ring()
        return source.radial, min(source.box_size), (ring.k_star if ring.has_ring else None)
    if callable(source) and not hasattr(source, "encode"):
        return source, None, None
    sp = spectrum_fn(source, box=box, resolution=resolution)
    ring = sp.ring()
    return sp.radial, min(sp.box_size), (ring.k_star if ring.has_ring else None)


def simulate_patterns(source: Any, *, method: str = "box", n_units: int = 4, n_steps: int = 1000,
                      lr: float = 1.0, nonlinearity: str = "relu", seed: int = 0, bins: int = 44,
                      domain_size: float | None = None, fit_lattice: bool = False, k_star: float | None = None,
                      box_kernel: str = "averaged", box: BoxConfig | None = None, resolution: float | None = None,
                      record_every: int = 50, tol: float = 1e-7) -> PatternResult:
    """Gradient ascent of ``g^T Sigma g`` under a constraint: the emergent maps.

    Parameters
    ----------
    source :
        Anything :func:`gridsweep.theory.spectrum` accepts (Target, TargetConfig, target
        dict, RunConfig, config path). For ``method="fourier"`` also a
        :class:`~gridsweep.theory.spectrum.Spectrum` or a callable ``S_bar(k)``; for
        ``method="box"`` also target maps ``(Np, n, n)`` as an ndarray (with ``box``).
    method : {"box", "fourier"}
        ``box`` (default): the real box, no assumption on the spacing; ``fourier``: a
        periodic domain (the published setting).
    n_units : int
        Independent units U.
    n_steps : int
        Maximum ascent steps (stops earlier once no map changes by more than ``tol`` RMS).
    lr : float
        Step size (Sigma is scaled to top eigenvalue <= 1).
    nonlinearity : {"relu", "tanh", "linear"}
    seed : int
        Seeds the random initial maps (``numpy.random.default_rng(seed)``; uniform on
        [0, 1) for relu, on [-0.5, 0.5) otherwise).
    bins : int
        Grid points per side of the returned maps (fourier: per ``domain_size``).
    domain_size : float, optional
        Side of the periodic domain, metres (fourier; default the box side).
    fit_lattice : bool
        Fourier only: use a torus on which a hexagonal lattice at ``k*`` fits (see the
        module docstring); needs a ring (or ``k_star``).
    k_star : float, optional
        Ring radius for ``fit_lattice`` (default: from the numerical spectrum).
    box_kernel : {"averaged", "actual"}
        Box only: translation-averaged covariance (default) or the explicit ``P^T P``.
    box : BoxConfig, optional
        The arena (default: the config's box, else 2.2 m).
    resolution : float, optional
        Grid step for the spectrum of the targets (fourier; default automatic).
    record_every : int
        Steps between entries of ``history``.
    tol : float
        Convergence threshold (RMS change of the unit-RMS maps per step).

    Returns
    -------
    PatternResult
        ``maps`` (U, bins, bins) for scoring with ``gridsweep.analysis``.

    Notes
    -----
    Sorscher et al. 2019 (NeurIPS) / 2023 (Neuron) pattern-formation analysis, as
    summarised in docs/science.md section 5.
    """
    from gridsweep.theory.predict import resolve_target
    from gridsweep.theory.spectrum import readout_spectrum, target_maps

    if method not in ("fourier", "box"):
        raise ConfigError(f"method={method!r}: allowed 'fourier' (periodic domain) or 'box' (explicit covariance)")
    if nonlinearity not in NONLINEARITIES:
        raise ConfigError(f"nonlinearity={nonlinearity!r}: allowed {sorted(NONLINEARITIES)}")
    for name, val, lo in (("n_units", n_units, 1), ("n_steps", n_steps, 1), ("bins", bins, 8),
                          ("record_every", record_every, 1)):
        if not isinstance(val, (int, np.integer)) or val < lo:
            raise ConfigError(f"{name}={val!r}: must be an integer >= {lo}")
    if not lr > 0:
        raise ConfigError(f"lr={lr!r}: must be > 0")
    if box_kernel not in ("averaged", "actual"):
        raise ConfigError(f"box_kernel={box_kernel!r}: allowed 'averaged' (translation-averaged) or 'actual' (P^T P)")
    f = NONLINEARITIES[nonlinearity]
    rng = np.random.default_rng(seed)

    if method == "fourier":
        prof, side, ring_k = _profile_and_ring(source, box, resolution)
        D = float(domain_size) if domain_size is not None else (box.width if box is not None else (side or 2.2))
        if not D > 0:
            raise ConfigError(f"domain_size={domain_size!r}: must be > 0 (metres)")
        h = D / bins
        ny = nx = bins
        if fit_lattice:
            kk = k_star if k_star is not None else ring_k
            if kk is None or not kk > 0:
                raise ConfigError("fit_lattice=True needs a ring: the spectrum has none (or pass k_star)")
            a = 4 * math.pi / (math.sqrt(3) * kk)
            mx = max(1, math.ceil(D / a - 1e-9))
            my = max(1, math.ceil(D / (math.sqrt(3) * a) - 1e-9))
            nx = max(1, int(round(mx * a / h)))
            h = mx * a / nx
            ny = max(1, int(round(my * math.sqrt(3) * a / h)))
        kernel = fourier_kernel(prof, (ny, nx), h)

        def apply_sigma(x):
            X = np.fft.rfft2(x.reshape(-1, ny, nx))
            return np.fft.irfft2(X * kernel[:, : nx // 2 + 1], s=(ny, nx)).reshape(x.shape[0], -1)

        domain = (nx * h, ny * h)
        shape = (ny, nx)
    else:
        if isinstance(source, np.ndarray):
            maps = np.asarray(source, dtype=float)
            if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
                raise ConfigError(f"target maps have shape {maps.shape}; expected (Np, n, n)")
            bins = maps.shape[1]
            b = box or BoxConfig()
        else:
            target, b = resolve_target(source, box)
            if abs(b.width - b.height) > 1e-12:
                raise ConfigError(f"box {b.width} x {b.height}: method='box' needs a square box")
            maps, _, _ = target_maps(target, b, resolution=b.width / bins)
        n = bins
        h = b.width / n
        if box_kernel == "actual":
            P = maps.reshape(maps.shape[0], -1)
            P = P - P.mean(axis=1, keepdims=True)
            top = float(np.linalg.eigvalsh(P @ P.T)[-1])
            if not top > 0:
                raise ConfigError("the target covariance is zero; nothing to form a pattern from")
            Ps = P / math.sqrt(top)

            def apply_sigma(x):
                return (x @ Ps.T) @ Ps
        else:
            K = readout_spectrum(maps, h).kernel
            M = 2 * n
            lag = np.arange(-(n - 1), n) % M
            Kc = np.zeros((M, M))
            Kc[np.ix_(lag, lag)] = K
            Kf = np.fft.rfft2(Kc)
            top = float(np.max(Kf.real))  # circulant embedding bounds the Toeplitz spectrum
            if not top > 0:
                raise ConfigError("the target covariance is zero; nothing to form a pattern from")
            Kf = Kf / top

            def apply_sigma(x):
                out = np.fft.irfft2(np.fft.rfft2(x.reshape(-1, n, n), s=(M, M)) * Kf, s=(M, M))
                return out[:, :n, :n].reshape(x.shape[0], -1)

        domain = (b.width, b.height)
        shape = (n, n)
    g0 = rng.random((int(n_units), shape[0] * shape[1]))
    if nonlinearity != "relu":
        g0 = g0 - 0.5
    g, obj, hist = _ascent(apply_sigma, g0, int(n_steps), float(lr), f, int(record_every), tol)
    g = g.reshape(-1, *shape)
    n = min(bins, *shape)
    maps_out = g[:, :n, :n]
    extent: tuple[float, float, float, float]
    if method == "fourier":
        half = n * h / 2
        extent = (-half, half, -half, half)
    else:
        x0, x1, y0, y1 = b.extent
        extent = (float(x0), float(x1), float(y0), float(y1))
    return PatternResult(maps=np.ascontiguousarray(maps_out), extent=extent, bin_size=float(h), method=method,
                         nonlinearity=nonlinearity, objective=obj, history=hist, domain=domain,
                         box_kernel=box_kernel if method == "box" else None)


def score_patterns(result: PatternResult, variant: str = "deepmind_minmax") -> dict[str, np.ndarray]:
    """Grid score and geometry of simulated maps with ``gridsweep.analysis``.

    Parameters
    ----------
    result : PatternResult
    variant : str
        Grid-score variant (docs/science.md section 6).

    Returns
    -------
    dict
        ``score60`` (U,), ``spacing_m`` (U,), ``orientation_deg`` (U,).
    """
    from gridsweep.analysis import autocorrelogram, grid_geometry, grid_scores

    if not isinstance(result, PatternResult):
        raise ConfigError(f"result: expected a PatternResult, got {type(result).__name__}")
    sacs = autocorrelogram(result.maps)
    sc = grid_scores(sacs=sacs, variant=variant)
    geo = grid_geometry(sacs, result.bin_size, kind="sacs")
    return {"score60": np.asarray(sc["score60"]), "spacing_m": np.asarray(geo["spacing_m"]),
            "orientation_deg": np.asarray(geo["orientation_deg"])}
