"""Phase diagrams: where the readout spectrum has a ring, and the spacing it predicts.

Two families of diagrams (docs/science.md sections 3 and 5):

* :func:`phase_diagram` over the centre width ``sigma_E`` and the surround ratio, under
  either surround convention (``"width"``: NFL, ``sigma_I = s sigma_E``; ``"variance"``:
  Sorscher, ``sigma_I^2 = s sigma_E^2``);
* :func:`amplitude_phase_diagram` over the amplitude ratio ``alpha_E / alpha_I`` of the
  general DoG (NFL's amplitude sweep, claim R7) and the surround ratio, at fixed
  ``sigma_E``. The unit-integral line ``alpha_E / alpha_I = sigma_I^2 / sigma_E^2``
  is where the centre and surround integrals cancel.

A point "has a ring" when the spectrum's ring radius satisfies ``k* > 2 pi / L`` and the
ring stands above the power at ``k = 0`` (closed forms) or the long-wavelength power
(numerical spectra, see :mod:`gridsweep.theory.spectrum`). Values are arrays of shape
``(len(y), len(x))`` so that ``imshow``/``pcolormesh`` draw them directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from gridsweep.config import BoxConfig, TargetConfig
from gridsweep.errors import ConfigError
from gridsweep.theory.closed_forms import CLOSED_FORMS, closed_form, sigma_i_from_ratio

__all__ = ["PhaseDiagram", "phase_diagram", "amplitude_phase_diagram", "plot_phase_diagram"]

_CONVENTIONS = ("width", "variance")


@dataclass(frozen=True)
class PhaseDiagram:
    """Ring existence and predicted spacing on a 2-D parameter grid.

    Attributes
    ----------
    x, y : ndarray, (nx,), (ny,)
        Parameter values along the columns / rows.
    x_name, y_name : str
        What they are (``"sigma_E (m)"``, ``"surround width ratio"``, ...).
    k_star : ndarray, (ny, nx)
        Ring radius, rad/m (NaN / 0 without one).
    spacing_m : ndarray, (ny, nx)
        Predicted spacing where a ring exists, NaN elsewhere.
    has_ring : ndarray of bool, (ny, nx)
    ring_ratio : ndarray, (ny, nx)
        Ring height over the k = 0 (closed form) or long-wavelength (numeric) power.
    kind, convention, method : str
    box_size_m : float
    fixed : dict
        Parameters held fixed (e.g. ``sigma_e`` for the amplitude diagram).
    """

    x: np.ndarray
    y: np.ndarray
    x_name: str
    y_name: str
    k_star: np.ndarray
    spacing_m: np.ndarray
    has_ring: np.ndarray
    ring_ratio: np.ndarray
    kind: str
    convention: str
    method: str
    box_size_m: float
    fixed: dict[str, Any] = field(default_factory=dict)


def _check(kind: str, convention: str, method: str, values: dict[str, Any]) -> None:
    if kind not in CLOSED_FORMS:
        raise ConfigError(f"kind={kind!r}: allowed {sorted(CLOSED_FORMS)}")
    if convention not in _CONVENTIONS:
        raise ConfigError(f"convention={convention!r}: allowed 'width' (NFL, sigma_I = s sigma_E) or "
                          "'variance' (Sorscher, sigma_I^2 = s sigma_E^2)")
    if method not in ("closed_form", "numeric"):
        raise ConfigError(f"method={method!r}: allowed 'closed_form' or 'numeric'")
    for name, v in values.items():
        arr = np.asarray(v, dtype=float)
        if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise ConfigError(f"{name}={list(np.atleast_1d(v))!r}: need a 1-D sequence of positive numbers")


def _point(kind, sigma_e, ratio, convention, alpha_e, alpha_i, method, box, n_cells, seed, resolution):
    """(k*, spacing or NaN, has_ring, ring_ratio) at one parameter point."""
    if method == "closed_form":
        si = sigma_i_from_ratio(sigma_e, ratio, convention)
        cf = closed_form(kind, sigma_e, si if kind not in ("gaussian",) else None, alpha_e, alpha_i,
                         box_size=min(box.width, box.height))
        return cf.k_star, (cf.spacing_m if cf.has_ring else math.nan), cf.has_ring, cf.ring_ratio
    from gridsweep.theory.predict import predict

    key = "surround_width_ratio" if convention == "width" else "surround_variance_ratio"
    kw = {key: float(ratio)} if kind in ("dos", "dog_equinorm", "dog_general", "sod") else {}
    cfg = TargetConfig(kind=kind, n_cells=n_cells, sigma=float(sigma_e), alpha_e=float(alpha_e),
                       alpha_i=float(alpha_i), **kw)
    p = predict(cfg, box=box, seed=seed, resolution=resolution)
    return p.k_star, p.spacing_m, p.has_ring, p.ring_ratio


def phase_diagram(sigmas: Sequence[float] | np.ndarray, ratios: Sequence[float] | np.ndarray, *, kind: str = "dos",
                  convention: str = "width", method: str = "closed_form", box: BoxConfig | None = None,
                  alpha_e: float = 1.0, alpha_i: float = 1.0, n_cells: int = 512, seed: int = 0,
                  resolution: float | None = None) -> PhaseDiagram:
    """Ring existence and predicted spacing over (sigma_E, surround ratio).

    Parameters
    ----------
    sigmas : sequence of float, (nx,)
        Centre widths sigma_E, metres.
    ratios : sequence of float, (ny,)
        Surround ratios (> 1) under ``convention``.
    kind : str
        Target kind (default ``dos``).
    convention : {"width", "variance"}
        ``width``: ``sigma_I = s sigma_E`` (NFL); ``variance``: ``sigma_I^2 = s sigma_E^2``
        (Sorscher).
    method : {"closed_form", "numeric"}
        Closed forms (instant) or the numerical spectrum of actual targets with
        ``n_cells`` centres from ``seed`` (about a second per point).
    box : BoxConfig, optional
        The arena (default 2.2 m).
    alpha_e, alpha_i : float
        Amplitudes (``dog_general``).

    Returns
    -------
    PhaseDiagram
        Arrays of shape ``(len(ratios), len(sigmas))``.

    Notes
    -----
    docs/science.md section 5 (Turing criterion ``k* > 2 pi / L``, spacing
    ``4 pi / (sqrt(3) k*)``); section 3 for the two surround conventions.
    """
    _check(kind, convention, method, {"sigmas": sigmas, "ratios": ratios})
    if np.any(np.asarray(ratios, dtype=float) <= 1):
        raise ConfigError(f"ratios={list(ratios)!r}: surround ratios must be > 1")
    box = box or BoxConfig()
    xs, ys = np.asarray(sigmas, dtype=float), np.asarray(ratios, dtype=float)
    out = np.empty((4, ys.size, xs.size))
    for i, r in enumerate(ys):
        for j, s in enumerate(xs):
            out[:, i, j] = _point(kind, s, r, convention, alpha_e, alpha_i, method, box, n_cells, seed, resolution)
    return PhaseDiagram(x=xs, y=ys, x_name="sigma_E (m)", y_name=f"surround {convention} ratio",
                        k_star=out[0], spacing_m=out[1], has_ring=out[2].astype(bool), ring_ratio=out[3],
                        kind=kind, convention=convention, method=method, box_size_m=min(box.width, box.height),
                        fixed={"alpha_e": alpha_e, "alpha_i": alpha_i})


def amplitude_phase_diagram(alpha_ratios: Sequence[float] | np.ndarray, ratios: Sequence[float] | np.ndarray, *,
                            sigma_e: float = 0.12, convention: str = "width", method: str = "closed_form",
                            box: BoxConfig | None = None, n_cells: int = 512, seed: int = 0,
                            resolution: float | None = None) -> PhaseDiagram:
    """Ring existence and spacing of the general DoG over (alpha_E / alpha_I, surround ratio).

    Parameters
    ----------
    alpha_ratios : sequence of float, (nx,)
        ``alpha_E / alpha_I`` (``alpha_I = 1``), e.g. ``np.logspace(-1, 2, 31)``.
    ratios : sequence of float, (ny,)
        Surround ratios (> 1) under ``convention``.
    sigma_e : float
        Centre width, metres.
    convention, method, box, n_cells, seed, resolution :
        As in :func:`phase_diagram`.

    Returns
    -------
    PhaseDiagram
        Arrays of shape ``(len(ratios), len(alpha_ratios))``; the ring exists in a band
        around the unit-integral line ``alpha_E / alpha_I = sigma_I^2 / sigma_E^2``.

    Notes
    -----
    docs/science.md section 3 (``dog_general``, NFL's amplitude-ratio sweep, claim R7) and
    section 5.
    """
    _check("dog_general", convention, method, {"alpha_ratios": alpha_ratios, "ratios": ratios})
    if np.any(np.asarray(ratios, dtype=float) <= 1):
        raise ConfigError(f"ratios={list(ratios)!r}: surround ratios must be > 1")
    if not sigma_e > 0:
        raise ConfigError(f"sigma_e={sigma_e!r}: must be > 0 (metres)")
    box = box or BoxConfig()
    xs, ys = np.asarray(alpha_ratios, dtype=float), np.asarray(ratios, dtype=float)
    out = np.empty((4, ys.size, xs.size))
    for i, r in enumerate(ys):
        for j, a in enumerate(xs):
            out[:, i, j] = _point("dog_general", sigma_e, r, convention, a, 1.0, method, box, n_cells, seed,
                                  resolution)
    return PhaseDiagram(x=xs, y=ys, x_name="alpha_E / alpha_I", y_name=f"surround {convention} ratio",
                        k_star=out[0], spacing_m=out[1], has_ring=out[2].astype(bool), ring_ratio=out[3],
                        kind="dog_general", convention=convention, method=method,
                        box_size_m=min(box.width, box.height), fixed={"sigma_e": sigma_e})


def _edges(v: np.ndarray, log: bool) -> np.ndarray:
    if v.size == 1:
        return np.array([v[0] * 0.9, v[0] * 1.1])
    w = np.log(v) if log else v
    mid = (w[1:] + w[:-1]) / 2
    e = np.r_[w[0] - (mid[0] - w[0]), mid, w[-1] + (w[-1] - mid[-1])]
    return np.exp(e) if log else e


def plot_phase_diagram(pd: PhaseDiagram, ax: Any = None, *, mark: tuple[float, float] | None = None,
                       cmap: str = "viridis") -> tuple[Figure, Any]:
    """Predicted spacing (colour) where a ring exists; hatched grey where none does.

    Parameters
    ----------
    pd : PhaseDiagram
    ax : matplotlib Axes, optional
        Draw into it (default: a new figure).
    mark : (x, y), optional
        A point to mark (e.g. the config being predicted).

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : Axes
    """
    if not isinstance(pd, PhaseDiagram):
        raise ConfigError(f"pd: expected a PhaseDiagram, got {type(pd).__name__}")
    if ax is None:
        fig = Figure(figsize=(5.2, 4.0), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    logx = pd.x_name.startswith("alpha")
    xe, ye = _edges(pd.x, logx), _edges(pd.y, False)
    no = np.where(pd.has_ring, np.nan, 1.0)
    ax.pcolormesh(xe, ye, no, cmap="Greys", vmin=0, vmax=4, shading="flat")
    sp = np.where(pd.has_ring, pd.spacing_m, np.nan)
    if np.any(np.isfinite(sp)):
        mesh = ax.pcolormesh(xe, ye, sp, cmap=cmap, shading="flat")
        fig.colorbar(mesh, ax=ax, label="predicted spacing (m)")
    if pd.has_ring.any() and (~pd.has_ring).any() and pd.x.size > 1 and pd.y.size > 1:
        ax.contour(pd.x, pd.y, pd.has_ring.astype(float), levels=[0.5], colors="k", linewidths=1.0)
    if logx:
        ax.set_xscale("log")
        s = pd.y if pd.convention == "width" else np.sqrt(pd.y)
        ax.plot(s**2, pd.y, "w--", lw=1.2, label="unit integral")
        ax.set_xlim(xe[0], xe[-1])
        ax.legend(loc="upper left", fontsize=7, frameon=False, labelcolor="k")
    if mark is not None:
        ax.plot([mark[0]], [mark[1]], marker="*", color="red", ms=12, mec="k", ls="none")
    ax.set_xlabel(pd.x_name)
    ax.set_ylabel(pd.y_name)
    ax.set_title(f"{pd.kind} ({pd.method.replace('_', ' ')}, L = {pd.box_size_m:g} m): "
                 "spacing where a ring exists; grey: none", fontsize=8)
    return fig, ax
