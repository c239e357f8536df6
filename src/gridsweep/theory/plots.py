"""Figures of the theory: readout spectrum (image and radial profile), simulated patterns.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state) and
returns ``(fig, axes)``. Phase diagrams and the theory-versus-networks plot live with
their data in :mod:`gridsweep.theory.phase` and :mod:`gridsweep.theory.compare`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gridsweep.errors import ConfigError
from gridsweep.theory.closed_forms import closed_form_profile
from gridsweep.theory.pattern import PatternResult
from gridsweep.theory.spectrum import Spectrum

__all__ = ["plot_spectrum", "plot_patterns"]


def plot_spectrum(spec: Spectrum, prediction: Any = None, *, k_max: float | None = None
                  ) -> tuple[Figure, np.ndarray]:
    """The 2-D power spectrum of the readout covariance and its radial profile.

    Parameters
    ----------
    spec : Spectrum
    prediction : Prediction, optional
        Marks ``k*`` and overlays the closed-form profile when it has one.
    k_max : float, optional
        Largest wave number shown, rad/m (default: 3 k*, or 40 rad/m without a ring,
        capped at Nyquist).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, (2,)
        Spectrum image, radial profile.

    Notes
    -----
    docs/science.md section 5: a ring at ``k* > 2 pi / L`` (dashed circle / line) predicts a
    periodic pattern.
    """
    if not isinstance(spec, Spectrum):
        raise ConfigError(f"spec: expected a Spectrum, got {type(spec).__name__}")
    ring = spec.ring()
    ks = ring.k_star if math.isfinite(ring.k_star) else None
    kmax = k_max or (3 * ks if ks else 40.0)
    kmax = float(min(kmax, spec.k_nyquist))
    fig = Figure(figsize=(9.0, 3.9), layout="constrained")
    axes = fig.subplots(1, 2)
    ax = axes[0]
    sx = (np.abs(spec.kx) <= kmax)
    sy = (np.abs(spec.ky) <= kmax)
    img = spec.power[np.ix_(sy, sx)]
    top = img.max() if img.size and img.max() > 0 else 1.0
    dkx = spec.kx[1] - spec.kx[0]
    dky = spec.ky[1] - spec.ky[0]
    ext = (spec.kx[sx][0] - dkx / 2, spec.kx[sx][-1] + dkx / 2, spec.ky[sy][0] - dky / 2, spec.ky[sy][-1] + dky / 2)
    im = ax.imshow(img / top, origin="lower", extent=ext, cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.85, label="power / max")
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(spec.k_min * np.cos(t), spec.k_min * np.sin(t), color="w", lw=0.8, ls=":", label="2 pi / L")
    if ks:
        ax.plot(ks * np.cos(t), ks * np.sin(t), color="c", lw=1.0, ls="--", label="k*")
    ax.set_xlabel("k_x (rad/m)")
    ax.set_ylabel("k_y (rad/m)")
    ax.set_title("readout covariance spectrum sum_i |p_i(k)|^2", fontsize=8)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.5)
    ax = axes[1]
    k = np.linspace(0, kmax, 400)
    prof = spec.radial(k)
    m = prof.max() if prof.max() > 0 else 1.0
    ax.plot(k, prof / m, color="k", lw=1.5, label="numerical (actual targets)")
    if prediction is not None and getattr(prediction, "closed_form", None) is not None:
        cf = prediction.closed_form
        try:
            cp = closed_form_profile(prediction.kind, k, prediction.sigma_e, prediction.sigma_i,
                                     **_alphas(prediction))
        except ConfigError:
            cp = None
        if cp is not None and cp.max() > 0:
            ax.plot(k, cp / cp.max(), color="C0", lw=1.0, ls="--", label=f"closed form ({cf.name})")
        if cf.k_star > 0:
            ax.axvline(cf.k_star, color="C0", lw=0.8, ls=":")
    ax.axvline(spec.k_min, color="0.5", lw=0.8, ls=":", label="2 pi / L")
    if ks:
        ax.axvline(ks, color="c", lw=1.0, ls="--",
                   label=f"k* = {ks:.2f} rad/m" + (f" (spacing {ring.spacing_m:.3f} m)" if ring.has_ring else
                                                   " (below long-wavelength power)"))
    ax.set_xlim(0, kmax)
    ax.set_xlabel("|k| (rad/m)")
    ax.set_ylabel("radial mean power / max")
    ax.set_title("radial profile" + (" (ring)" if ring.has_ring else " (no ring)"), fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    return fig, axes


def _alphas(prediction) -> dict[str, float]:
    cf = prediction.closed_form
    if prediction.kind == "dog_general" and cf is not None:
        ratio = cf.extra.get("alpha_ratio", 1.0)
        return {"alpha_e": float(ratio), "alpha_i": 1.0}
    return {}


def plot_patterns(result: PatternResult, *, scores: Any = None, spacing_m: Any = None, n: int = 4,
                  title: str | None = None) -> tuple[Figure, np.ndarray]:
    """Simulated maps and their spatial autocorrelograms.

    Parameters
    ----------
    result : PatternResult
    scores, spacing_m : array_like, (U,), optional
        Printed above each unit (e.g. from ``gridsweep.analysis``).
    n : int
        Units shown (the first n).
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, (2, n)
        Maps (top row) and SACs (bottom row).
    """
    from gridsweep.analysis import autocorrelogram

    if not isinstance(result, PatternResult):
        raise ConfigError(f"result: expected a PatternResult, got {type(result).__name__}")
    k = max(1, min(int(n), result.maps.shape[0]))
    sacs = autocorrelogram(result.maps[:k])
    fig = Figure(figsize=(2.3 * k, 4.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, k, squeeze=False))
    h = result.bin_size
    for u in range(k):
        a, b = axes[0, u], axes[1, u]
        a.imshow(result.maps[u], origin="lower", extent=result.extent, cmap="viridis", interpolation="nearest")
        half = (sacs.shape[-1] // 2 + 0.5) * h
        b.imshow(sacs[u], origin="lower", extent=(-half, half, -half, half), cmap="RdBu_r", vmin=-1, vmax=1,
                 interpolation="nearest")
        label = f"unit {u}"
        if scores is not None and np.isfinite(np.asarray(scores, dtype=float)[u]):
            label += f"  g={float(np.asarray(scores)[u]):.2f}"
        if spacing_m is not None and np.isfinite(np.asarray(spacing_m, dtype=float)[u]):
            label += f"  {100 * float(np.asarray(spacing_m)[u]):.0f} cm"
        a.set_title(label, fontsize=7)
        b.set_title("SAC", fontsize=7)
        for ax in (a, b):
            ax.tick_params(labelsize=6)
    meth = result.method + (f", {result.box_kernel} kernel" if result.box_kernel else "")
    fig.suptitle(title or f"pattern formation ({meth}, {result.nonlinearity})", fontsize=9)
    return fig, axes
