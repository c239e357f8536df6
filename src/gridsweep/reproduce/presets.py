"""Reproduction presets: what each of ``tiny``, ``quick`` and ``full`` trains, as data.

A preset is a YAML file in ``gridsweep/reproduce/presets/`` (or any path) validated
into a :class:`Preset`. It names one base run config (``base:``, a single field, so
switching the base is a one-line change), overrides applied to every trial, the seeds,
the verdict-rule parameters and one block per *group* of trials:

========== ==================================================== ===============
group      conditions                                           claims
========== ==================================================== ===============
targets    one network per target kind x seed                   R1, R2, R4, P
sigma      DoS at each readout width (x surround ratio) x seed  R3, R4, R5
multifield homogeneous / heterogeneous / mild / single-scale    R6, B2
dog        DoS / equi-norm DoG / unit-integral DoG (+ amplitude R7, B1, R4
           ratio sweep)
arch       the base DoS network with each recurrent cell        P
========== ==================================================== ===============

:func:`build_cases` turns a preset into explicit ``cases`` (override bundles, one per
trial, seed included) of ONE sweep spec; a config shared by several groups (the base
DoS network appears in all of them) is one trial, trained once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridsweep.config import RunConfig, load_config
from gridsweep.errors import ConfigError, format_validation_error, format_yaml_error
from gridsweep.presets import REPRODUCE_DIR, list_presets, resolve_config_path, resolve_preset

__all__ = ["Preset", "RuleParams", "PRESET_DIR", "PRESET_NAMES", "load_preset", "resolve_base", "base_config",
           "build_cases", "Membership", "CONDITION_LABELS", "TARGET_KINDS"]

PRESET_DIR = REPRODUCE_DIR  # the shipped reproduction presets (gridsweep.presets resolves names)
PRESET_NAMES = ("tiny", "quick", "quick_seeds", "full")

#: Target conditions of the ``targets`` and ``dog`` groups (kind names, plus the
#: rebuttal's unit-integral DoG).
TARGET_KINDS = ("cartesian", "cartesian_highdim", "polar_highdim", "gaussian", "dos", "dog_equinorm",
                "dog_unit_integral", "sod")
MultifieldCondition = Literal["homogeneous", "heterogeneous", "heterogeneous_mild", "multifield_single_scale"]
CellName = Literal["rnn", "lstm", "gru", "ugrnn", "srnn"]
MULTIFIELD_CONDITIONS: tuple[MultifieldCondition, ...] = ("homogeneous", "heterogeneous", "heterogeneous_mild",
                                                          "multifield_single_scale")
CELLS: tuple[CellName, ...] = ("rnn", "lstm", "gru", "ugrnn")

CONDITION_LABELS = {
    "cartesian": "Cartesian", "cartesian_highdim": "Cartesian (high-dim)", "polar_highdim": "polar",
    "gaussian": "Gaussian", "dos": "DoS", "dog_equinorm": "equi-norm DoG",
    "dog_unit_integral": "unit-integral DoG", "sod": "SoD",
    "homogeneous": "single field (DoS)", "heterogeneous": "multi-field, heterogeneous",
    "heterogeneous_mild": "multi-field, mildly heterogeneous",
    "multifield_single_scale": "multi-field, single scale",
    "rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "ugrnn": "UGRNN", "srnn": "SRNN",
}

#: NFL's heterogeneous multi-field place cells (docs/science.md section 1, R6).
HETEROGENEITY: dict[str, dict[str, Any]] = {
    "heterogeneous": {"fields_lambda": 3.0, "sigma_range": [0.06, 1.0], "surround_width_ratio_range": [1.25, 4.5]},
    "heterogeneous_mild": {"fields_lambda": 3.0, "sigma_range": [0.06, 0.18], "surround_width_ratio_range": [1.5, 2.5]},
    "multifield_single_scale": {"fields_lambda": 3.0},
}


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleParams(_Block):
    """Parameters of the verdict rules (docs/reproduce.md, "How verdicts are decided")."""

    low_error_cm: float = Field(10.0, gt=0, description="a network path-integrates when its decoding error is below this (NeurIPS: 10 cm)")
    grid_threshold: float = Field(0.8, description="a run 'has grid units' when its max score exceeds this (NFL: 0.8)")
    grid_min_fraction: float | None = Field(
        None, gt=0, lt=1,
        description="when set, a run 'has grid units' when at least this fraction of its units score above "
                    "grid_threshold, instead of NFL's any-unit rule; for scales where an untrained network's best "
                    "unit already passes grid_threshold (small networks, coarse maps)")
    unit_threshold: float = Field(0.3, description="per-unit threshold for '% grid units' (R5); one of 0.3, 0.37, 0.8, 1.15")
    min_runs: int = Field(3, ge=1, description="fewest runs per compared condition for a decided verdict")
    min_networks: int = Field(
        4, ge=1, description="fewest networks (finished or diverged runs) per compared condition for a verdict of "
                             "'reproduced' or 'not reproduced'; below it the verdict is 'inconclusive (too few "
                             "networks)'. Wilson intervals of 0 of n and n of n networks separate from n = 4 on")
    min_boot_seeds: int = Field(
        5, ge=2, description="fewest seeds for a seed-bootstrap interval; below it intervals are over networks "
                             "(t, OLS, order statistics, Fisher z) or undefined, never a degenerate bootstrap")
    min_units: int = Field(5, ge=1, description="fewest grid units per sigma for a period distribution (R3)")
    n_boot: int = Field(2000, ge=100)
    bootstrap_seed: int = Field(0, ge=0)
    ci: float = Field(0.95, gt=0, lt=1)
    mode_ratio_max: float = Field(1.2, gt=1, description="R3: adjacent mode ratios below this count as one module (published 0.99-1.15; brain ~1.4)")
    multimodality_alpha: float = Field(0.05, gt=0, lt=1)
    spacing_ratio_band: tuple[float, float] = Field((0.67, 1.5), description="R4: accepted measured/predicted spacing ratio")
    pi_tolerance_cm: float = Field(5.0, ge=0, description="R6: heterogeneous cells 'unaffected' if mean decoding error rises by less than this")
    p_margin: float = Field(0.05, ge=0, description="P: trained models 'beat' matched nulls when model - null predictivity (median r) exceeds this")

    @model_validator(mode="after")
    def _check(self) -> "RuleParams":
        if self.grid_min_fraction is not None and self.grid_threshold not in (0.3, 0.37, 0.8, 1.15):
            raise ValueError(f"grid_threshold={self.grid_threshold} with grid_min_fraction: the stored unit "
                             "fractions are for thresholds 0.3, 0.37, 0.8, 1.15")
        if self.unit_threshold not in (0.3, 0.37, 0.8, 1.15):
            raise ValueError(f"unit_threshold={self.unit_threshold}: scored thresholds are 0.3, 0.37, 0.8, 1.15")
        lo, hi = self.spacing_ratio_band
        if not 0 < lo < 1 < hi:
            raise ValueError(f"spacing_ratio_band={list(self.spacing_ratio_band)} must satisfy 0 < low < 1 < high")
        return self


class GroupBase(_Block):
    enabled: bool = True
    seeds: list[int] | int | None = Field(None, description="overrides the preset's seeds for this group")
    condition_seeds: dict[str, list[int] | int] = Field(
        default_factory=dict, description="seeds of single conditions of this group (condition name -> seeds), "
        "overriding the group's; spends seeds where a claim needs them")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted config overrides for this group")


class TargetsGroup(GroupBase):
    kinds: list[Literal["cartesian", "cartesian_highdim", "polar_highdim", "gaussian", "dos", "dog_equinorm",
                        "dog_unit_integral", "sod"]] = ["cartesian", "polar_highdim", "gaussian", "dos", "dog_equinorm"]
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="extra dotted keys crossed with every kind")


class SigmaGroup(GroupBase):
    sigmas: list[float] = [0.08, 0.10, 0.12, 0.14, 0.16, 0.20]
    surround_width_ratios: list[float] | None = Field(None, description="None: the base's surround only")


class MultifieldGroup(GroupBase):
    conditions: list[MultifieldCondition] = list(MULTIFIELD_CONDITIONS)
    max_fields: int | None = Field(None, ge=1, description="cap on fields per cell (target.heterogeneity.max_fields); "
                                   "None keeps the config default. Decoding cost grows as max_fields**3.")


class DogGroup(GroupBase):
    conditions: list[Literal["dos", "dog_equinorm", "dog_unit_integral"]] = ["dos", "dog_equinorm", "dog_unit_integral"]
    amplitude_ratios: list[float] = Field(default_factory=list, description="alpha_E/alpha_I of dog_general runs (R7's amplitude-ratio sweep)")


class ArchGroup(GroupBase):
    cells: list[CellName] = Field(
        default_factory=lambda: list(CELLS), description="srnn (NFL's VanillaRNN) needs a base of model.family nfl")


class PredictivityBlock(_Block):
    enabled: bool = True
    groups: list[str] = ["arch", "targets"]
    n_animals: int = Field(2, ge=1)
    duration_s: float = Field(600.0, gt=0)
    nulls: list[str] = ["smooth_fields", "random_fourier"]
    n_draws: int = Field(1, ge=1)
    max_models: int = Field(40, ge=1)
    seed: int = 0


class Groups(_Block):
    targets: TargetsGroup = TargetsGroup()
    sigma: SigmaGroup = SigmaGroup()
    multifield: MultifieldGroup = MultifieldGroup()
    dog: DogGroup = DogGroup()
    arch: ArchGroup = ArchGroup()


class Preset(_Block):
    """A reproduction preset (see the module docstring)."""

    name: str
    scale: str = Field(..., description="one line: network size, steps, seeds, hardware and expected time")
    description: str = ""
    expected_minutes: float | None = Field(None, gt=0)
    base: str = Field(..., description="base run config: a preset name of gridsweep/configs or a YAML path")
    overrides: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | int = 3
    rules: RuleParams = RuleParams()
    groups: Groups = Groups()
    predictivity: PredictivityBlock = PredictivityBlock()
    source: str = ""

    @model_validator(mode="after")
    def _check_condition_seeds(self) -> "Preset":
        g = self.groups
        names: dict[str, list[str]] = {"targets": list(g.targets.kinds), "sigma": ["dos"],
                                       "multifield": list(g.multifield.conditions),
                                       "dog": list(g.dog.conditions) + ["amplitude_ratio"], "arch": list(g.arch.cells)}
        for gname, allowed in names.items():
            for cond, seeds in getattr(g, gname).condition_seeds.items():
                if cond not in allowed:
                    raise ValueError(f"groups.{gname}.condition_seeds: {cond!r} is not a condition of this group "
                                     f"(allowed: {', '.join(allowed)})")
                if (isinstance(seeds, int) and seeds < 1) or (isinstance(seeds, list) and not seeds):
                    raise ValueError(f"groups.{gname}.condition_seeds.{cond}={seeds!r}: give a count >= 1 or a "
                                     "non-empty list of seeds")
        return self

    def seed_list(self, group: GroupBase | None = None, condition: str | None = None) -> list[int]:
        """Seeds of a condition: its ``condition_seeds`` entry, else the group's, else the preset's."""
        s = group.seeds if group is not None and group.seeds is not None else self.seeds
        if group is not None and condition is not None and condition in group.condition_seeds:
            s = group.condition_seeds[condition]
        return list(range(s)) if isinstance(s, int) else list(s)


def load_preset(name_or_path: str | Path) -> Preset:
    """A preset by name (``tiny``, ``quick``, ``full``) or from a YAML file."""
    p = resolve_preset(name_or_path, "reproduce")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {format_yaml_error(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a preset must be a mapping")
    data.setdefault("source", str(p))
    try:
        return Preset.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(p))) from None


def resolve_base(base: str, relative_to: str | Path | None = None) -> Path:
    """Path of a base config: a file (absolute, relative to the preset file or to the
    working directory) or the name of a config shipped in ``gridsweep/configs``."""
    try:
        return resolve_config_path(base, relative_to or None)
    except ConfigError as err:
        if Path(base).is_dir():
            raise ConfigError(f"preset base: {err}") from None
        raise ConfigError(f"preset base {base!r}: no such file or shipped config "
                          f"(shipped: {', '.join(list_presets('config'))})") from None


def base_config(preset: Preset) -> RunConfig:
    """The base RunConfig of a preset with its global overrides applied."""
    cfg = load_config(resolve_base(preset.base, preset.source or None))
    return cfg.with_overrides(preset.overrides) if preset.overrides else cfg


# --------------------------------------------------------------------------------------
# conditions -> overrides
# --------------------------------------------------------------------------------------
def _surround(base: RunConfig) -> dict[str, Any]:
    t = base.target
    if t.surround_width_ratio is not None:
        return {"target.surround_width_ratio": t.surround_width_ratio, "target.surround_variance_ratio": None}
    if t.surround_variance_ratio is not None:
        return {"target.surround_width_ratio": None, "target.surround_variance_ratio": t.surround_variance_ratio}
    return {"target.surround_width_ratio": 2.0, "target.surround_variance_ratio": None}  # NFL's default


def _no_surround() -> dict[str, Any]:
    return {"target.surround_width_ratio": None, "target.surround_variance_ratio": None}


def unit_integral_alphas(sigma_e: float, sigma_i: float) -> tuple[float, float]:
    """Unit-integral DoG amplitudes ``alpha = 1 / (2 pi sigma^2)`` (docs/science.md section 5)."""
    return 1.0 / (2 * math.pi * sigma_e ** 2), 1.0 / (2 * math.pi * sigma_i ** 2)


def kind_overrides(kind: str, base: RunConfig, sigma: float | None = None,
                   surround_width_ratio: float | None = None) -> dict[str, Any]:
    """Dotted overrides that turn ``base`` into the target condition ``kind``."""
    n = base.target.n_cells
    sig = base.target.sigma if sigma is None else sigma
    sur = _surround(base) if surround_width_ratio is None else {
        "target.surround_width_ratio": surround_width_ratio, "target.surround_variance_ratio": None}
    out: dict[str, Any] = {"target.heterogeneity": None, "target.sigma": sig}
    if kind == "cartesian":
        out.update({"target.kind": "cartesian", "target.n_cells": 2, **_no_surround()})
    elif kind == "cartesian_highdim":
        out.update({"target.kind": "cartesian_highdim", "target.n_cells": max(2, n), **_no_surround()})
    elif kind == "polar_highdim":
        out.update({"target.kind": "polar_highdim", "target.n_cells": max(2, n + n % 2), **_no_surround()})
    elif kind == "gaussian":
        out.update({"target.kind": "gaussian", "target.n_cells": n, **_no_surround()})
    elif kind in ("dos", "dog_equinorm", "sod"):
        out.update({"target.kind": kind, "target.n_cells": n, **sur, "target.alpha_e": 1.0, "target.alpha_i": 1.0})
    elif kind == "dog_unit_integral":
        wr, vr = sur["target.surround_width_ratio"], sur["target.surround_variance_ratio"]
        if wr is not None:
            si = sig * wr
        elif vr is not None:
            si = sig * math.sqrt(vr)
        else:
            raise ConfigError("dog_unit_integral: target.surround_width_ratio and target.surround_variance_ratio "
                              "are both None; one is needed")
        ae, ai = unit_integral_alphas(sig, si)
        out.update({"target.kind": "dog_general", "target.n_cells": n, **sur,
                    "target.alpha_e": float(f"{ae:.10g}"), "target.alpha_i": float(f"{ai:.10g}")})
    else:
        raise ConfigError(f"unknown target condition {kind!r}; known: {', '.join(TARGET_KINDS)}")
    return out


@dataclass(frozen=True)
class Membership:
    """One (group, condition) a case belongs to; a trial may have several."""

    group: str
    condition: str
    seed: int
    sigma: float | None = None
    surround_width_ratio: float | None = None
    amplitude_ratio: float | None = None
    extra: str = ""


def _product(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    import itertools

    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*[grid[k] for k in keys])]


def build_cases(preset: Preset, base: RunConfig | None = None) -> list[tuple[dict[str, Any], Membership]]:
    """Every (overrides, membership) pair of a preset, seeds included.

    The overrides are dotted keys relative to :func:`base_config`; identical override
    bundles (the base DoS network appears in several groups) resolve to one trial.
    """
    base = base or base_config(preset)
    g = preset.groups
    out: list[tuple[dict[str, Any], Membership]] = []

    def add(group: GroupBase, name: str, cond: str, ov: dict[str, Any], **mkw: Any) -> None:
        for extra in _product(getattr(group, "grid", {}) or {}):
            for seed in preset.seed_list(group, cond):
                full = {**ov, **group.overrides, **extra, "seed": seed}
                tag = ",".join(f"{k}={v}" for k, v in extra.items())
                out.append((full, Membership(name, cond, seed, extra=tag, **mkw)))

    if g.targets.enabled:
        for kind in g.targets.kinds:
            add(g.targets, "targets", kind, kind_overrides(kind, base), sigma=base.target.sigma)
    if g.sigma.enabled:
        ratios: Sequence[float | None] = g.sigma.surround_width_ratios or [None]
        for r in ratios:
            for s in g.sigma.sigmas:
                ov = kind_overrides("dos", base, sigma=s, surround_width_ratio=r)
                add(g.sigma, "sigma", "dos", ov, sigma=s,
                    surround_width_ratio=r if r is not None else base.target.surround_width_ratio)
    if g.multifield.enabled:
        for cond in g.multifield.conditions:
            ov = kind_overrides("dos", base)
            if cond != "homogeneous":
                ov["target.heterogeneity"] = dict(HETEROGENEITY[cond])
                if g.multifield.max_fields is not None:
                    ov["target.heterogeneity"]["max_fields"] = g.multifield.max_fields
            add(g.multifield, "multifield", cond, ov, sigma=base.target.sigma)
    if g.dog.enabled:
        for dog_cond in g.dog.conditions:
            add(g.dog, "dog", dog_cond, kind_overrides(dog_cond, base), sigma=base.target.sigma)
        for ratio in g.dog.amplitude_ratios:
            ov = kind_overrides("dos", base)
            ov.update({"target.kind": "dog_general", "target.alpha_e": float(ratio), "target.alpha_i": 1.0})
            add(g.dog, "dog", "amplitude_ratio", ov, sigma=base.target.sigma, amplitude_ratio=float(ratio))
    if g.arch.enabled:
        for cell in g.arch.cells:
            ov = kind_overrides("dos", base)
            ov["model.cell"] = cell
            add(g.arch, "arch", cell, ov, sigma=base.target.sigma)
    if not out:
        raise ConfigError(f"preset {preset.name!r}: every group is disabled; nothing to train")
    return out
