"""From a target specification to a prediction: ring radius, grid spacing, ring or not.

:func:`predict` accepts a Target object, a ``TargetConfig``, a dict of the ``target``
section of a config (or a whole config dict), a ``RunConfig``, or a path to a YAML config
or a run directory; it computes the numerical readout spectrum of the actual targets
(:mod:`gridsweep.theory.spectrum`) and the closed form of the target kind where one
exists (:mod:`gridsweep.theory.closed_forms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import torch
from pydantic import ValidationError

from gridsweep.config import BoxConfig, RunConfig, TargetConfig, load_config, validate_config
from gridsweep.errors import ConfigError, format_validation_error
from gridsweep.targets import PlaceCellTarget, Target, build_target
from gridsweep.theory.closed_forms import ClosedForm, closed_form, hex_spacing, min_ring_k
from gridsweep.theory.spectrum import RingInfo, Spectrum, arena_mask, readout_spectrum, target_maps

__all__ = ["Prediction", "predict", "spectrum", "resolve_target", "resolve_config"]

_RUN_SECTIONS = {f for f in RunConfig.model_fields}


def resolve_config(spec: Any) -> RunConfig | None:
    """A RunConfig from a RunConfig, a full config dict, a YAML path or a run directory.

    Returns None when ``spec`` is a target-level object (Target, TargetConfig, target dict).
    """
    if isinstance(spec, RunConfig):
        return spec
    if isinstance(spec, (str, Path)):
        p = Path(spec)
        if p.is_dir():
            if not (p / "config.yaml").exists():
                raise ConfigError(f"{p}: a directory without config.yaml is not a run directory")
            p = p / "config.yaml"
        return load_config(p)
    if isinstance(spec, dict) and spec and set(spec) <= _RUN_SECTIONS and "kind" not in spec:
        return validate_config(spec)
    return None


def resolve_target(spec: Any, box: BoxConfig | None = None, seed: int | None = None
                   ) -> tuple[Target, BoxConfig]:
    """A float64 Target object and its box from any target specification.

    Parameters
    ----------
    spec : Target, TargetConfig, dict, RunConfig, str or Path
        A dict is the ``target`` section of a config (``{"kind": "dos", ...}``) or a whole
        config (``{"target": {...}, "box": {...}}``).
    box : BoxConfig, optional
        Overrides the config's box (default 2.2 m square).
    seed : int, optional
        Seed of the place-cell centres (default: the config's seed, else 0).

    Returns
    -------
    (Target, BoxConfig)
    """
    if isinstance(spec, Target):
        return spec, box or BoxConfig()
    cfg = resolve_config(spec)
    if cfg is not None:
        tcfg, b, s = cfg.target, box or cfg.box, cfg.seed if seed is None else seed
    else:
        if isinstance(spec, dict):
            tcfg = _target_from_dict(spec)
        elif isinstance(spec, TargetConfig):
            tcfg = spec
        else:
            raise ConfigError(f"targets: expected a Target, TargetConfig, dict, RunConfig or config path; "
                              f"got {type(spec).__name__}")
        b, s = box or BoxConfig(), 0 if seed is None else seed
    return build_target(tcfg, int(s), b, dtype=torch.float64), b


def _target_config(spec: Any) -> TargetConfig | None:
    if isinstance(spec, TargetConfig):
        return spec
    cfg = resolve_config(spec)
    if cfg is not None:
        return cfg.target
    if isinstance(spec, dict):
        return _target_from_dict(spec)
    return None


def _target_from_dict(spec: dict) -> TargetConfig:
    """Validate the ``target`` section of a config, with a one-line ConfigError."""
    try:
        return TargetConfig.model_validate(spec)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix="target")) from None


def spectrum(targets: Any, *, box: BoxConfig | None = None, resolution: float | None = None,
             seed: int | None = None, network: int = 0, center: bool = True, pad: int = 2) -> Spectrum:
    """Readout covariance spectrum of any target specification.

    Parameters
    ----------
    targets : Target, TargetConfig, dict, RunConfig, str or Path
        See :func:`resolve_target`.
    box, seed : optional
        See :func:`resolve_target`.
    resolution : float, optional
        Grid step (m) for evaluating the targets.
    network : int
        Which network of an ensemble Target.
    center, pad :
        See :func:`gridsweep.theory.spectrum.readout_spectrum`.

    Returns
    -------
    Spectrum
    """
    target, b = resolve_target(targets, box, seed)
    maps, _, h = target_maps(target, b, resolution=resolution, network=network)
    return readout_spectrum(maps, h, center=center, pad=pad, box_size=(b.width, b.height),
                            mask=arena_mask(b, *maps.shape[1:]))  # non-rectangular arenas: inside bins only


@dataclass(frozen=True)
class Prediction:
    """The theory's prediction for one set of targets (dict-like: ``p["k_star"]``).

    Attributes
    ----------
    kind : str
        Target kind.
    k_star : float
        Numerical ring radius, rad/m (the highest spectral maximum beyond ``2 pi / L``;
        NaN when the spectrum has none). A subdominant ring (``has_ring`` False) is still
        reported.
    spacing_m : float
        Predicted grid spacing ``4 pi / (sqrt(3) k*)`` when ``has_ring``, else NaN.
    has_ring : bool
        The spectrum peaks on a ring at ``k* > 2 pi / L``, above the long-wavelength power.
    ring_ratio : float
        Ring power over long-wavelength power (see :class:`RingInfo`).
    k_peak, k_min : float
        Global spectral maximum and ``2 pi / L``, rad/m.
    sigma_e, sigma_i : float or None
        Widths in metres (place-cell kinds).
    n_cells : int
    box_size_m : float
        Shorter box side L.
    closed_form : ClosedForm or None
        The idealised closed form of the kind (None for heterogeneous cells).
    closed_form_k_star, closed_form_spacing_m, closed_form_ring_ratio : float
        Copies from ``closed_form`` (NaN when there is none).
    closed_form_has_ring : bool or None
    spectrum : Spectrum or None
        The numerical spectrum (None when ``numeric=False``).
    """

    kind: str
    k_star: float
    spacing_m: float
    has_ring: bool
    ring_ratio: float
    k_peak: float
    k_min: float
    sigma_e: float | None
    sigma_i: float | None
    n_cells: int
    box_size_m: float
    closed_form: ClosedForm | None
    closed_form_k_star: float
    closed_form_spacing_m: float
    closed_form_has_ring: bool | None
    closed_form_ring_ratio: float
    spectrum: Spectrum | None = field(default=None, repr=False, compare=False)

    # dict-like access -----------------------------------------------------------------
    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-able values (no spectrum; the closed form flattened)."""
        out = {k: getattr(self, k) for k in self.keys() if k not in ("spectrum", "closed_form")}
        if self.closed_form is not None:
            out["closed_form_name"] = self.closed_form.name
            out["closed_form_formula"] = self.closed_form.formula
            out.update({f"closed_form_{k}": v for k, v in self.closed_form.extra.items()})
        return out

    def summary(self) -> str:
        """A few human-readable lines."""
        def fmt(v, unit=""):
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}{unit}"

        lines = [f"target kind        {self.kind} (Np {self.n_cells}, sigma_E {fmt(self.sigma_e, ' m')}, "
                 f"sigma_I {fmt(self.sigma_i, ' m')}, box side {self.box_size_m:g} m)",
                 f"ring (numeric)     {'yes' if self.has_ring else 'no'}: k* {fmt(self.k_star, ' rad/m')}, "
                 f"ring/low-k power {fmt(self.ring_ratio)}, global peak at k {fmt(self.k_peak, ' rad/m')} "
                 f"(2 pi/L = {self.k_min:.3g})",
                 f"predicted spacing  {fmt(self.spacing_m, ' m')}"]
        if self.closed_form is not None:
            cf = self.closed_form
            lines.append(f"closed form        {cf.name}: {cf.formula}")
            lines.append(f"                   k* {fmt(cf.k_star, ' rad/m')}, spacing {fmt(cf.spacing_m, ' m')}, "
                         f"ring {'yes' if cf.has_ring else 'no'}, |p(k*)|^2/|p(0)|^2 {fmt(cf.ring_ratio)}")
            for k, v in cf.extra.items():
                lines.append(f"                   {k} {v if isinstance(v, str) else fmt(v)}")
        return "\n".join(lines)


def predict(targets: Any, *, box: BoxConfig | None = None, resolution: float | None = None,
            seed: int | None = None, network: int = 0, numeric: bool = True, center: bool = True
            ) -> Prediction:
    """Predicted ring radius, grid spacing and ring existence for a set of targets.

    Parameters
    ----------
    targets : Target, TargetConfig, dict, RunConfig, str or Path
        See :func:`resolve_target`.
    box : BoxConfig, optional
        Overrides the config's box (default 2.2 m square).
    resolution : float, optional
        Grid step for the numerical spectrum, metres.
    seed : int, optional
        Seed of the place-cell centres (default: the config's seed, else 0).
    network : int
        Which network of an ensemble Target.
    numeric : bool
        Compute the numerical spectrum (default). With False, only the closed form is
        used (``targets`` must then be a config, not a Target object).
    center : bool
        Remove each cell's spatial mean (see :mod:`gridsweep.theory.spectrum`).

    Returns
    -------
    Prediction

    Notes
    -----
    docs/science.md section 5: a periodic (Turing) pattern needs the spectrum of the readout
    covariance to peak on a ring at ``k* > 2 pi / L``; a hexagonal lattice at wave number
    ``k*`` has spacing ``4 pi / (sqrt(3) k*)``.

    Examples
    --------
    >>> from gridsweep.config import TargetConfig
    >>> p = predict(TargetConfig(kind="dos", sigma=0.12, surround_variance_ratio=2.0))
    >>> bool(p.has_ring), round(p.closed_form_spacing_m, 3)
    (True, 0.739)
    """
    if isinstance(targets, Target):
        target, b = resolve_target(targets, box, seed)
        tcfg = None
        kind = target.kind
        se = _scalar(getattr(target, "sigma_e", None))
        surround = kind in ("dos", "dog_equinorm", "dog_general", "sod")
        si = _scalar(getattr(target, "sigma_i", None)) if surround else None
        n_cells = target.n_outputs
    else:
        cfg = resolve_config(targets)  # reads a path once
        tcfg = cfg.target if cfg is not None else _target_config(targets)
        if tcfg is None:
            raise ConfigError(f"targets: expected a Target, TargetConfig, dict, RunConfig or config path; "
                              f"got {type(targets).__name__}")
        targets = cfg if cfg is not None else tcfg
        b = box or (cfg.box if cfg is not None else BoxConfig())
        kind, se, si, n_cells = tcfg.kind, tcfg.sigma, tcfg.sigma_i, tcfg.n_cells
        target = None
    L = min(b.width, b.height)
    cf = None
    if tcfg is not None and tcfg.heterogeneity is None:
        cf = closed_form(kind, tcfg.sigma, si, tcfg.alpha_e, tcfg.alpha_i, box_size=L)  # se == tcfg.sigma here
    elif tcfg is None and isinstance(targets, Target):
        cf = _closed_form_from_target(targets, L)
    spec = None
    ring: RingInfo | None = None
    if numeric:
        if target is None:
            target, b = resolve_target(targets, box, seed)
        maps, _, h = target_maps(target, b, resolution=resolution, network=network)
        spec = readout_spectrum(maps, h, center=center, box_size=(b.width, b.height),
                                mask=arena_mask(b, *maps.shape[1:]))  # non-rectangular arenas: inside bins only
        ring = spec.ring()
    if ring is not None:
        k_star, has, ratio, k_peak = ring.k_star, ring.has_ring, ring.ring_ratio, ring.k_peak
    elif cf is not None:
        k_star, has, ratio = cf.k_star if cf.k_star > 0 else math.nan, cf.has_ring, cf.ring_ratio
        k_peak = cf.k_star
    else:
        raise ConfigError(f"numeric=False but kind {kind!r} with heterogeneity has no closed form")
    return Prediction(
        kind=kind, k_star=float(k_star), spacing_m=float(hex_spacing(k_star)) if has else math.nan,
        has_ring=bool(has), ring_ratio=float(ratio), k_peak=float(k_peak), k_min=min_ring_k(L),
        sigma_e=se, sigma_i=si, n_cells=int(n_cells), box_size_m=float(L), closed_form=cf,
        closed_form_k_star=cf.k_star if cf else math.nan, closed_form_spacing_m=cf.spacing_m if cf else math.nan,
        closed_form_has_ring=cf.has_ring if cf else None, closed_form_ring_ratio=cf.ring_ratio if cf else math.nan,
        spectrum=spec,
    )


def _scalar(t: Any) -> float | None:
    """The common value of a per-field width tensor, or None when widths differ."""
    if not isinstance(t, torch.Tensor) or t.numel() == 0:
        return None
    lo, hi = float(t.min()), float(t.max())
    return lo if hi - lo <= 1e-12 * max(1.0, abs(hi)) else None


def _closed_form_from_target(t: Target, L: float) -> ClosedForm | None:
    kind = t.kind
    if kind in ("cartesian", "cartesian_highdim", "polar_highdim"):
        return closed_form(kind, box_size=L)
    if not isinstance(t, PlaceCellTarget):
        raise ConfigError(f"targets: kind {kind!r} ({type(t).__name__}) has no closed form; "
                          f"expected a PlaceCellTarget or a cartesian kind")
    mask = getattr(t, "field_mask", None)
    if mask is not None and bool(mask.sum(-1).max() > 1):
        return None
    se = _scalar(t.sigma_e[..., :1])
    si = _scalar(t.sigma_i[..., :1])
    if se is None or (kind != "gaussian" and si is None):
        return None
    ae, ai = _scalar(t.alpha_e), _scalar(t.alpha_i)
    if ae is None or ai is None:
        return None
    return closed_form(kind, se, si if kind != "gaussian" else None, ae, ai, box_size=L)
