"""Typed, validated run configuration.

A :class:`RunConfig` holds everything that determines a training run: the box, the
motion model, the readout targets, the network, the optimiser and the evaluation. It is
validated once, at the edge (YAML file, CLI ``--set`` overrides, sweep expansion), so the
science code never sees an invalid value. Unknown keys, wrong types and impossible
combinations raise :class:`gridsweep.errors.ConfigError` with one line naming the field.

Defaults follow the "Sorscher ideal" setup of ``SCIENCE.md`` section 3.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridsweep.errors import ConfigError

__all__ = [
    "BoxConfig",
    "TrajectoryConfig",
    "HeterogeneityConfig",
    "TargetConfig",
    "HeadDirectionConfig",
    "ModelConfig",
    "TrainingConfig",
    "EvaluationConfig",
    "RunConfig",
    "load_config",
    "apply_overrides",
    "config_hash",
    "validate_config",
]

PLACE_CELL_KINDS = ("gaussian", "dos", "dog_equinorm", "dog_general", "sod")
SURROUND_KINDS = ("dos", "dog_equinorm", "dog_general", "sod")
TargetKind = Literal[
    "cartesian",
    "cartesian_highdim",
    "polar_highdim",
    "gaussian",
    "dos",
    "dog_equinorm",
    "dog_general",
    "sod",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoxConfig(_Section):
    """The arena: a rectangle centred at the origin (SCIENCE.md section 2)."""

    width: float = Field(2.2, gt=0, description="side along x, metres")
    height: float = Field(2.2, gt=0, description="side along y, metres")
    boundary: Literal["solid", "periodic"] = "solid"

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` in metres."""
        return (-self.width / 2, self.width / 2, -self.height / 2, self.height / 2)


class TrajectoryConfig(_Section):
    """Motion model and batch shape (SCIENCE.md section 2).

    ``sorscher`` is the published generator: i.i.d. turn rate ~ N(0, turn_rate_std),
    i.i.d. speed ~ Rayleigh(speed_scale), wall avoidance within ``wall_distance``.
    ``ou`` is a RatInABox-style Ornstein-Uhlenbeck model of speed and rotation with wall
    repulsion.
    """

    motion: Literal["sorscher", "ou"] = "sorscher"
    dt: float = Field(0.02, gt=0, description="seconds per step")
    sequence_length: int = Field(20, ge=1)
    batch_size: int = Field(200, ge=1)
    contain: bool = Field(False, description="clip positions into the box (the published model lets them slip a few cm past a wall)")
    turn_rate_std: float = Field(11.52, ge=0, description="rad/s, sorscher")
    speed_scale: float = Field(0.13 * 2 * math.pi, gt=0, description="Rayleigh scale, m/s, sorscher")
    wall_distance: float = Field(0.03, ge=0, description="m, sorscher wall-avoidance region")
    wall_speed_factor: float = Field(0.25, gt=0, le=1, description="speed multiplier near a wall, sorscher")
    ou_speed_mean: float = Field(0.08, gt=0, description="m/s, ou")
    ou_speed_std: float = Field(0.08, ge=0, description="m/s, ou")
    ou_speed_coherence_time: float = Field(0.7, gt=0, description="s, ou")
    ou_rotation_std: float = Field(2 * math.pi / 3, ge=0, description="rad/s, ou (120 deg/s)")
    ou_rotation_coherence_time: float = Field(0.08, gt=0, description="s, ou")
    ou_wall_repel_distance: float = Field(0.1, ge=0, description="m, ou")


class HeterogeneityConfig(_Section):
    """Multi-field, heterogeneous place cells (SCIENCE.md section 3, claim R6).

    Each cell has ``1 + Poisson(fields_lambda)`` fields (or exactly one when
    ``fields_lambda`` is 0); each field draws its own width from ``sigma_range`` and its
    own surround *width* ratio from ``surround_width_ratio_range`` when given. A cell
    responds through its nearest field.
    """

    fields_lambda: float = Field(3.0, ge=0)
    sigma_range: tuple[float, float] | None = None
    surround_width_ratio_range: tuple[float, float] | None = None
    max_fields: int = Field(16, ge=1, description="cap on fields per cell (padding size)")

    @model_validator(mode="after")
    def _ranges(self) -> "HeterogeneityConfig":
        for name in ("sigma_range", "surround_width_ratio_range"):
            r = getattr(self, name)
            if r is not None and not (0 < r[0] <= r[1]):
                raise ValueError(f"{name}={list(r)} must satisfy 0 < low <= high")
        if self.surround_width_ratio_range is not None and self.surround_width_ratio_range[0] <= 1:
            raise ValueError(
                f"surround_width_ratio_range={list(self.surround_width_ratio_range)}: ratios must be > 1"
            )
        return self


class TargetConfig(_Section):
    """Readout encoding (SCIENCE.md section 3).

    The surround of centre-surround kinds is given under exactly one explicit convention:
    ``surround_width_ratio`` (NFL: sigma_I = s * sigma_E) or ``surround_variance_ratio``
    (Sorscher: sigma_I^2 = s * sigma_E^2). There is no bare ``surround_scale``.
    """

    kind: TargetKind = "dos"
    n_cells: int = Field(512, ge=1, description="Np, number of readout units")
    sigma: float = Field(0.12, gt=0, description="sigma_E, metres")
    surround_width_ratio: float | None = Field(None, gt=1)
    surround_variance_ratio: float | None = Field(None, gt=1)
    alpha_e: float = Field(1.0, gt=0, description="dog_general centre amplitude")
    alpha_i: float = Field(1.0, gt=0, description="dog_general surround amplitude")
    kappa: float = Field(1.0, gt=0, description="polar_highdim angular concentration")
    heterogeneity: HeterogeneityConfig | None = None
    decoder: Literal["topk", "template"] = "topk"
    decode_k: int = Field(3, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _default_surround(cls, data: Any) -> Any:
        """A centre-surround kind given no surround takes Sorscher's variance ratio 2.

        SCIENCE.md section 3: the canonical setup's surround is sigma_I^2 = 2 sigma_E^2.
        The default is filled under its explicit name, so a config that sets
        ``surround_width_ratio`` alone is never mixed with it.
        """
        if isinstance(data, dict):
            kind = data.get("kind", "dos")
            if (kind in SURROUND_KINDS and data.get("surround_width_ratio") is None
                    and data.get("surround_variance_ratio") is None):
                data = {**data, "surround_variance_ratio": 2.0}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "TargetConfig":
        if self.kind == "cartesian" and self.n_cells != 2:
            raise ValueError(f"n_cells={self.n_cells}: kind 'cartesian' needs n_cells = 2")
        if self.kind == "polar_highdim" and (self.n_cells < 2 or self.n_cells % 2):
            raise ValueError(f"n_cells={self.n_cells}: kind 'polar_highdim' needs an even n_cells >= 2")
        if self.kind == "cartesian_highdim" and self.n_cells < 2:
            raise ValueError(f"n_cells={self.n_cells}: kind 'cartesian_highdim' needs n_cells >= 2")
        both = self.surround_width_ratio is not None and self.surround_variance_ratio is not None
        if both:
            raise ValueError(
                "surround_width_ratio and surround_variance_ratio are both set: give exactly one convention"
            )
        if self.kind not in SURROUND_KINDS and (self.surround_width_ratio or self.surround_variance_ratio):
            raise ValueError(f"kind '{self.kind}' has no surround; remove surround_*_ratio")
        if self.heterogeneity is not None and self.kind not in PLACE_CELL_KINDS:
            raise ValueError(f"heterogeneity applies to place-cell kinds {PLACE_CELL_KINDS}, not '{self.kind}'")
        return self

    @property
    def sigma_i(self) -> float | None:
        """Surround width sigma_I in metres under whichever convention was given."""
        if self.surround_width_ratio is not None:
            return self.surround_width_ratio * self.sigma
        if self.surround_variance_ratio is not None:
            return math.sqrt(self.surround_variance_ratio) * self.sigma
        return None


class HeadDirectionConfig(_Section):
    """An extra readout of head-direction cells with von Mises tuning (Banino et al. 2018)."""

    n_cells: int = Field(12, ge=1)
    kappa: float = Field(20.0, gt=0)
    loss_weight: float = Field(1.0, ge=0)


class ModelConfig(_Section):
    """Recurrent path integrator (SCIENCE.md sections 3-4)."""

    cell: Literal["rnn", "lstm", "gru", "ugrnn"] = "rnn"
    activation: Literal["relu", "tanh", "sigmoid", "linear"] = "relu"
    hidden_size: int = Field(4096, ge=1, description="Ng")
    bias: bool = False
    init: Literal["glorot_uniform", "glorot_normal", "orthogonal", "torch_default"] = "glorot_uniform"
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the readout input")
    bottleneck: int | None = Field(None, ge=1, description="linear bottleneck before the readout (Banino)")


class TrainingConfig(_Section):
    """Optimiser and schedule (SCIENCE.md section 3)."""

    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty on the recurrent matrix only: wd * sum(W_hh^2)")
    weight_decay_start: int = Field(0, ge=0, description="step at which the recurrent L2 penalty switches on")
    lr_milestones: list[int] = Field(default_factory=list,
                                     description="steps at which the learning rate is multiplied by lr_gamma "
                                                 "(torch's MultiStepLR); empty keeps it constant")
    lr_gamma: float = Field(0.1, gt=0, le=1, description="factor applied at each of lr_milestones")
    momentum: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm of each network")
    n_steps: int = Field(100_000, ge=1)
    eval_every: int = Field(1000, ge=1)
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)
    dtype: Literal["float32", "float64"] = "float32"

    @model_validator(mode="after")
    def _milestones(self) -> "TrainingConfig":
        m = self.lr_milestones
        if any(s < 1 for s in m) or any(b <= a for a, b in zip(m, m[1:])):
            raise ValueError(f"training.lr_milestones={m}: must be strictly increasing steps >= 1")
        return self

    def lr_factor(self, step: int) -> float:
        """The schedule's learning-rate multiplier for optimisation step ``step`` (0-based)."""
        return self.lr_gamma ** sum(step >= s for s in self.lr_milestones)


class EvaluationConfig(_Section):
    """Held-out evaluation (SCIENCE.md section 6)."""

    n_trajectories: int = Field(500, ge=1, description="trajectories for decoding error")
    sequence_length: int = Field(50, ge=1, description="NFL evaluates with sequence length 50")
    ratemap_samples: int = Field(100_000, ge=1, description="positions sampled for rate maps")
    bins: int = Field(20, ge=2)
    n_batches_during_training: int = Field(1, ge=1)


class RunConfig(_Section):
    """Everything that determines one training run."""

    name: str = "run"
    seed: int = Field(0, ge=0)
    box: BoxConfig = BoxConfig()
    trajectory: TrajectoryConfig = TrajectoryConfig()
    target: TargetConfig = TargetConfig()
    head_direction: HeadDirectionConfig | None = None
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _combinations(self) -> "RunConfig":
        if self.model.bottleneck is not None and self.model.bottleneck > self.model.hidden_size * 64:
            raise ValueError(f"model.bottleneck={self.model.bottleneck} is implausibly larger than hidden_size")
        if self.box.boundary == "periodic" and self.trajectory.motion == "ou":
            raise ValueError("trajectory.motion='ou' has wall repulsion; use box.boundary='solid'")
        return self

    # --- I/O -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-safe nested dict of every field (defaults included)."""
        return json.loads(self.model_dump_json())

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Serialise the full resolved config; write it to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> "RunConfig":
        """A new validated config with dotted-key overrides applied."""
        return validate_config(apply_overrides(self.to_dict(), overrides))

    def hash(self) -> str:
        """A stable 16-hex-digit hash of the resolved config."""
        return config_hash(self.to_dict())


def _format_validation_error(err: ValidationError, source: str = "") -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    value = first.get("input")
    where = f"{source}: " if source else ""
    if first["type"] == "extra_forbidden" or isinstance(value, dict):
        return f"{where}{loc}: {msg}"
    return f"{where}{loc}: {msg} (got {value!r})"


def validate_config(data: dict[str, Any] | RunConfig, source: str = "") -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, raising one-line ConfigErrors."""
    if isinstance(data, RunConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _parse_value(text: str) -> Any:
    """Parse a ``--set`` value with YAML rules (numbers, booleans, null, lists)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Apply dotted-key overrides (``{"model.hidden_size": 256}`` or ``["model.hidden_size=256"]``).

    Returns a new dict; ``data`` is not modified. Intermediate sections that are ``None``
    (for example ``target.heterogeneity``) are created as empty mappings.
    """
    out = copy.deepcopy(data)
    items: list[tuple[str, Any]]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            if "=" not in text:
                raise ConfigError(f"override {text!r}: expected key=value, e.g. model.hidden_size=256")
            key, _, value = text.partition("=")
            items.append((key.strip(), _parse_value(value.strip())))
    for key, value in items:
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise ConfigError(f"override {key}: '{'.'.join(parts[: i + 1])}' is a value, not a section")
            node = node[part]
        node[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> RunConfig:
    """Read a YAML run config (missing keys take defaults) and apply overrides."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if overrides:
        data = apply_overrides(data, overrides)
    return validate_config(data, source=str(path))


def config_hash(data: dict[str, Any]) -> str:
    """A stable hash of a JSON-able dict (sorted keys), 16 hex digits."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
