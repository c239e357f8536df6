"""Closed-form readout spectra, keyed by target kind.

For place-cell targets whose centres tile the plane uniformly, the covariance
``Sigma(x, x') = sum_i p_i(x) p_i(x')`` is translation invariant and its Fourier
spectrum is ``rho |p~(k)|^2`` (rho the density of centres), where ``p~`` is the 2-D
Fourier transform of one cell's tuning curve ``f(d)``. The closed forms below give
``p~(k)`` up to a constant factor, its extremum ``k*`` and the ring height relative to
``k = 0``. They are the idealisations of docs/science.md section 5; the numerical spectrum of
:mod:`gridsweep.theory.spectrum` is computed from the actual targets (softmax across
cells, random centres, finite box) and is what :func:`gridsweep.theory.predict` reports
first.

Derivations (2-D Fourier transform, ``FT[exp(-d^2 / 2 s^2)](k) = 2 pi s^2 exp(-s^2 k^2 / 2)``):

* ``gaussian`` (softmax across cells ~ unit-integral Gaussian): ``p~ = exp(-s^2 k^2/2)``,
  maximal at ``k = 0``: no ring.
* ``dos`` (difference of softmaxes ~ unit-integral difference of Gaussians, because the
  softmax divides by about ``rho 2 pi sigma^2``): ``p~ = exp(-sE^2 k^2/2) -
  exp(-sI^2 k^2/2)``, zero at ``k = 0``, maximal at
  ``k*^2 = 2 ln(sI^2/sE^2) / (sI^2 - sE^2)``.
* ``dog_general`` ``aE exp(-d^2/2 sE^2) - aI exp(-d^2/2 sI^2)``:
  ``p~ = 2 pi (aE sE^2 exp(-sE^2 k^2/2) - aI sI^2 exp(-sI^2 k^2/2))``. Setting the
  derivative with respect to ``u = k^2/2`` to zero gives
  ``k*^2 = 2 ln(aI sI^4 / (aE sE^4)) / (sI^2 - sE^2)`` (a maximum, and positive there,
  whenever the logarithm is positive). The ring beats ``k = 0`` when
  ``|p~(k*)| > |p~(0)| = 2 pi |aE sE^2 - aI sI^2|``, i.e. when centre and surround
  integrals nearly balance. ``aE/aI = sI^2/sE^2`` is the unit-integral DoG.
* ``dog_equinorm`` (``aE = aI = 1``): with ``s = sI/sE``, ``k*^2 = 8 ln s / ((s^2 - 1) sE^2)``
  and ``|p~(k*)|^2 / |p~(0)|^2 = exp(-2 u*) / s^4`` with ``u* = 4 ln s / (s^2 - 1)``, always
  below 1: the surround dominates at ``k = 0`` and the ring is never selected. NFL's
  notebook quotes ``k*^2 = 6 ln s / ((s^2 - 1) sE^2)``: that is the same calculation for a
  1-D tuning curve, whose transform ``sqrt(2 pi) s exp(-s^2 k^2/2)`` carries one power of
  the width instead of two (in ``d`` dimensions the factor is ``2 (d + 2)``). Both are
  returned (``k_star`` is the 2-D value; ``k_star_1d`` the 1-D one).
* ``sod`` (softmax of ``-d^2/2 sE^2 + d^2/2 sI^2``) is a Gaussian of width
  ``s_eff = sE / sqrt(1 - sE^2/sI^2)``: no ring.
* ``cartesian``, ``cartesian_highdim``, ``polar_highdim``: no centre-surround structure;
  their spectra are concentrated at the lowest wave numbers: no ring.

A hexagonal lattice whose three wave vectors have length ``k*`` has spacing (distance
between neighbouring peaks) ``4 pi / (sqrt(3) k*)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from gridsweep.errors import ConfigError

__all__ = [
    "ClosedForm",
    "CLOSED_FORMS",
    "closed_form",
    "closed_form_profile",
    "dog_k_star",
    "dog_transform",
    "hex_spacing",
    "min_ring_k",
    "sigma_i_from_ratio",
]

SQRT3 = math.sqrt(3.0)


def hex_spacing(k_star: float | np.ndarray) -> float | np.ndarray:
    """Spacing (m) of a hexagonal lattice whose wave vectors have length ``k_star`` (rad/m).

    ``4 pi / (sqrt(3) k*)``; NaN where ``k_star`` is not positive and finite.
    """
    k = np.asarray(k_star, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.isfinite(k) & (k > 0), 4 * np.pi / (SQRT3 * np.where(k > 0, k, 1.0)), np.nan)
    return float(out) if out.ndim == 0 else out


def min_ring_k(box_size: float) -> float:
    """``2 pi / L``: the smallest wave number whose period fits in a box of side L (m)."""
    if not box_size > 0:
        raise ConfigError(f"box_size={box_size!r}: must be a positive length in metres")
    return 2 * math.pi / float(box_size)


def sigma_i_from_ratio(sigma_e: float | np.ndarray, ratio: float | np.ndarray,
                       convention: str) -> float | np.ndarray:
    """Surround width from a surround ratio under a named convention (docs/science.md section 3).

    ``convention="width"`` (NFL): ``sigma_I = s sigma_E``; ``"variance"`` (Sorscher):
    ``sigma_I = sqrt(s) sigma_E``.
    """
    if convention not in ("width", "variance"):
        raise ConfigError(f"convention={convention!r}: allowed 'width' (sigma_I = s sigma_E) or "
                          "'variance' (sigma_I^2 = s sigma_E^2)")
    r = np.asarray(ratio, dtype=float)
    if np.any(~(r > 1)):
        raise ConfigError(f"surround ratio={ratio!r}: must be > 1 ({convention} convention)")
    out = np.asarray(sigma_e, dtype=float) * (r if convention == "width" else np.sqrt(r))
    return float(out) if out.ndim == 0 else out


def dog_transform(k, sigma_e, sigma_i, alpha_e=1.0, alpha_i=1.0):
    """2-D Fourier transform of ``aE exp(-d^2/2 sE^2) - aI exp(-d^2/2 sI^2)``.

    Parameters
    ----------
    k : array_like
        Wave numbers, rad/m (any shape).
    sigma_e, sigma_i : float
        Centre and surround widths, m.
    alpha_e, alpha_i : float
        Amplitudes.

    Returns
    -------
    ndarray, shape of ``k``
        ``2 pi (aE sE^2 exp(-sE^2 k^2/2) - aI sI^2 exp(-sI^2 k^2/2))`` (m^2).
    """
    k = np.asarray(k, dtype=float)
    return 2 * np.pi * (alpha_e * sigma_e**2 * np.exp(-0.5 * sigma_e**2 * k**2)
                        - alpha_i * sigma_i**2 * np.exp(-0.5 * sigma_i**2 * k**2))


def dog_k_star(sigma_e, sigma_i, alpha_e=1.0, alpha_i=1.0):
    """Wave number (rad/m) of the maximum of :func:`dog_transform`; 0 where it is at k = 0.

    ``k*^2 = 2 ln(aI sI^4 / (aE sE^4)) / (sI^2 - sE^2)``; broadcasts over arrays.
    """
    se2, si2 = np.asarray(sigma_e, float) ** 2, np.asarray(sigma_i, float) ** 2
    arg = np.asarray(alpha_i, float) * si2**2 / (np.asarray(alpha_e, float) * se2**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        k2 = 2 * np.log(arg) / (si2 - se2)
    k = np.sqrt(np.where(k2 > 0, k2, 0.0))
    return float(k) if k.ndim == 0 else k


@dataclass(frozen=True)
class ClosedForm:
    """A closed-form prediction for one target setting.

    Attributes
    ----------
    kind : str
        Target kind.
    name : str
        The idealisation used (e.g. ``"unit-integral DoG"``).
    formula : str
        ``k*`` as a formula.
    k_star : float
        Ring radius, rad/m; 0 when the spectrum peaks at k = 0.
    ring_ratio : float
        ``|p~(k*)|^2 / |p~(0)|^2`` (inf when ``p~(0) = 0``; 1 when k* = 0).
    has_ring : bool
        ``k* > 2 pi / L`` and ``ring_ratio > 1``.
    spacing_m : float
        ``4 pi / (sqrt(3) k*)`` (NaN without a ring radius).
    extra : dict
        Further values (e.g. ``k_star_1d`` for ``dog_equinorm``).
    """

    kind: str
    name: str
    formula: str
    k_star: float
    ring_ratio: float
    has_ring: bool
    spacing_m: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finish(kind, name, formula, k_star, ring_ratio, box_size, extra=None) -> ClosedForm:
    k_min = min_ring_k(box_size)
    has = bool(k_star > k_min and ring_ratio > 1)
    return ClosedForm(kind=kind, name=name, formula=formula, k_star=float(k_star), ring_ratio=float(ring_ratio),
                      has_ring=has, spacing_m=float(hex_spacing(k_star)) if k_star > 0 else math.nan,
                      extra=dict(extra or {}))


def _need_surround(kind: str, sigma_i: float | None) -> float:
    """``sigma_i``, or a ConfigError when a centre-surround kind has none."""
    if sigma_i is None:
        raise ConfigError(f"target.kind={kind!r} needs a surround width (surround_width_ratio or "
                          "surround_variance_ratio)")
    return sigma_i


def _cf_gaussian(sigma_e, sigma_i, alpha_e, alpha_i, box_size):
    return _finish("gaussian", "unit-integral Gaussian", "k* = 0 (exp(-sigma^2 k^2 / 2) is maximal at k = 0)",
                   0.0, 1.0, box_size)


def _cf_sod(sigma_e, sigma_i, alpha_e, alpha_i, box_size):
    _need_surround("sod", sigma_i)
    s_eff = sigma_e / math.sqrt(1 - sigma_e**2 / sigma_i**2)
    return _finish("sod", "Gaussian of width sE / sqrt(1 - sE^2/sI^2)", "k* = 0", 0.0, 1.0, box_size,
                   {"sigma_eff": s_eff})


def _cf_dos(sigma_e, sigma_i, alpha_e, alpha_i, box_size):
    _need_surround("dos", sigma_i)
    k = dog_k_star(sigma_e, sigma_i, 1 / (2 * math.pi * sigma_e**2), 1 / (2 * math.pi * sigma_i**2))
    return _finish("dos", "unit-integral DoG", "k*^2 = 2 ln(sI^2/sE^2) / (sI^2 - sE^2)", k, math.inf, box_size)


def _dog_ratio(k, sigma_e, sigma_i, alpha_e, alpha_i):
    p0 = dog_transform(0.0, sigma_e, sigma_i, alpha_e, alpha_i)
    pk = dog_transform(k, sigma_e, sigma_i, alpha_e, alpha_i)
    if k == 0:
        return 1.0
    return math.inf if p0 == 0 else float(pk**2 / p0**2)


def _cf_dog_general(sigma_e, sigma_i, alpha_e, alpha_i, box_size):
    _need_surround("dog_general", sigma_i)
    k = dog_k_star(sigma_e, sigma_i, alpha_e, alpha_i)
    return _finish("dog_general", "DoG with amplitudes",
                   "k*^2 = 2 ln(aI sI^4 / (aE sE^4)) / (sI^2 - sE^2)", k,
                   _dog_ratio(k, sigma_e, sigma_i, alpha_e, alpha_i), box_size,
                   {"alpha_ratio": alpha_e / alpha_i, "unit_integral_alpha_ratio": sigma_i**2 / sigma_e**2})


def _cf_dog_equinorm(sigma_e, sigma_i, alpha_e, alpha_i, box_size):
    _need_surround("dog_equinorm", sigma_i)
    s = sigma_i / sigma_e
    k = math.sqrt(8 * math.log(s) / ((s**2 - 1) * sigma_e**2))
    k1 = math.sqrt(6 * math.log(s) / ((s**2 - 1) * sigma_e**2))
    u = 4 * math.log(s) / (s**2 - 1)
    return _finish("dog_equinorm", "equi-norm DoG (2-D)", "k*^2 = 8 ln s / ((s^2 - 1) sE^2), s = sI/sE", k,
                   math.exp(-2 * u) / s**4, box_size,
                   {"k_star_1d": k1, "formula_1d": "k*^2 = 6 ln s / ((s^2 - 1) sE^2) (NFL notebook, 1-D)",
                    "spacing_m_1d": float(hex_spacing(k1))})


def _cf_no_surround(kind):
    def f(sigma_e, sigma_i, alpha_e, alpha_i, box_size):
        return _finish(kind, "no centre-surround", "no ring: power concentrated at the lowest wave numbers",
                       0.0, 1.0, box_size)
    return f


#: kind -> f(sigma_e, sigma_i, alpha_e, alpha_i, box_size) -> ClosedForm
CLOSED_FORMS: dict[str, Callable[..., ClosedForm]] = {
    "gaussian": _cf_gaussian,
    "sod": _cf_sod,
    "dos": _cf_dos,
    "dog_general": _cf_dog_general,
    "dog_equinorm": _cf_dog_equinorm,
    "cartesian": _cf_no_surround("cartesian"),
    "cartesian_highdim": _cf_no_surround("cartesian_highdim"),
    "polar_highdim": _cf_no_surround("polar_highdim"),
}


def closed_form(kind: str, sigma_e: float = 0.12, sigma_i: float | None = None, alpha_e: float = 1.0,
                alpha_i: float = 1.0, box_size: float = 2.2) -> ClosedForm:
    """Closed-form ring radius, ring height and spacing for one target setting.

    Parameters
    ----------
    kind : str
        A key of :data:`CLOSED_FORMS`.
    sigma_e, sigma_i : float
        Centre and surround widths, metres (``sigma_i`` for centre-surround kinds).
    alpha_e, alpha_i : float
        Amplitudes (``dog_general``).
    box_size : float
        Box side L, metres (the ring must satisfy ``k* > 2 pi / L``).

    Returns
    -------
    ClosedForm

    Notes
    -----
    docs/science.md section 5; see the module docstring for the derivations.
    """
    if kind not in CLOSED_FORMS:
        raise ConfigError(f"kind={kind!r}: no closed form; allowed: {sorted(CLOSED_FORMS)}")
    if not sigma_e > 0:
        raise ConfigError(f"sigma_e={sigma_e!r}: must be > 0 (metres)")
    if sigma_i is not None and not sigma_i > sigma_e:
        raise ConfigError(f"sigma_i={sigma_i!r}: the surround must be wider than sigma_e={sigma_e}")
    return CLOSED_FORMS[kind](float(sigma_e), None if sigma_i is None else float(sigma_i), float(alpha_e),
                              float(alpha_i), float(box_size))


def closed_form_profile(kind: str, k, sigma_e: float = 0.12, sigma_i: float | None = None,
                        alpha_e: float = 1.0, alpha_i: float = 1.0) -> np.ndarray:
    """Closed-form power ``|p~(k)|^2`` (arbitrary units) of one cell's tuning curve.

    Parameters
    ----------
    kind : str
        ``gaussian``, ``sod``, ``dos``, ``dog_general`` or ``dog_equinorm``.
    k : array_like
        Wave numbers, rad/m.

    Returns
    -------
    ndarray, shape of ``k``
    """
    k = np.asarray(k, dtype=float)
    if kind == "gaussian":
        return np.exp(-(sigma_e**2) * k**2)
    if kind == "sod":
        si = _need_surround(kind, sigma_i)
        s_eff2 = sigma_e**2 / (1 - sigma_e**2 / si**2)
        return np.exp(-s_eff2 * k**2)
    if kind == "dos":
        si = _need_surround(kind, sigma_i)
        return dog_transform(k, sigma_e, si, 1 / (2 * np.pi * sigma_e**2), 1 / (2 * np.pi * si**2)) ** 2
    if kind == "dog_general":
        si = _need_surround(kind, sigma_i)
        return dog_transform(k, sigma_e, si, alpha_e, alpha_i) ** 2
    if kind == "dog_equinorm":
        si = _need_surround(kind, sigma_i)
        return dog_transform(k, sigma_e, si, 1.0, 1.0) ** 2
    raise ConfigError(f"kind={kind!r}: no closed-form profile; allowed: dog_equinorm, dog_general, dos, "
                      "gaussian, sod")
