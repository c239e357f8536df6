"""Typed, validated run configuration.

A :class:`RunConfig` holds everything that determines a training run: the box, the
motion model, the readout targets, the network, the optimiser and the evaluation. It is
validated once, at the edge (YAML file, CLI ``--set`` overrides, sweep expansion), so the
science code never sees an invalid value. Unknown keys, wrong types and impossible
combinations raise :class:`gridsweep.errors.ConfigError` with one line naming the field.

Defaults follow the "Sorscher ideal" setup of ``docs/science.md`` section 3.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from gridsweep.errors import ConfigError, format_validation_error, format_yaml_error

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


#: Keys that older configs carry but that never changed a run, per section class. They are
#: dropped on load with a DeprecationWarning, so old ``config.yaml`` files (run
#: directories, sweep stores) still load; new configs should not set them.
RETIRED_KEYS: dict[str, tuple[str, ...]] = {
    "TargetConfig": ("decoder",),  # the top-k decoder was always used
    "EvaluationConfig": ("n_batches_during_training",),  # training evaluated one batch regardless
}


class _Section(BaseModel):
    # allow_inf_nan=False: no float field accepts inf or NaN (a field that gives them a
    # meaning must say so and override this)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, data: Any) -> Any:
        """Drop :data:`RETIRED_KEYS` of this section, with a DeprecationWarning."""
        retired = RETIRED_KEYS.get(cls.__name__, ())
        if isinstance(data, dict) and any(k in data for k in retired):
            import warnings

            found = [k for k in retired if k in data]
            warnings.warn(f"{cls.__name__}: {', '.join(found)} is retired and ignored (it never changed a run); "
                          "remove it from the config", DeprecationWarning, stacklevel=2)
            data = {k: v for k, v in data.items() if k not in retired}
        return data


class BoxConfig(_Section):
    """The arena, centred at the origin (docs/science.md section 2; docs/arenas.md).

    ``shape`` is ``rectangle`` (``width`` x ``height``, the original box), ``circle``
    (``radius``), ``polygon`` (``vertices``, a simple polygon whose bounding box is centred
    on the origin) or ``krupic_trapezoid`` (Krupic et al. 2015, 1.9 m long, 0.9 m and
    0.2 m wide). ``holes`` are polygons inside the arena the animal cannot enter. For
    shapes other than the rectangle, ``width`` and ``height`` are always set to the
    bounding box (given values are replaced, so ``--set box.shape=circle box.radius=1``
    works on a square config). The arena fields are left out of ``to_dict`` (and so of the run hash)
    while they hold their defaults, so configs of the square box hash as before.
    Geometry: :mod:`gridsweep.arenas`.
    """

    width: float = Field(2.2, gt=0, description="side along x, metres (bounding box for non-rectangles)")
    height: float = Field(2.2, gt=0, description="side along y, metres (bounding box for non-rectangles)")
    boundary: Literal["solid", "periodic"] = "solid"
    shape: Literal["rectangle", "circle", "polygon", "krupic_trapezoid"] = "rectangle"
    radius: float | None = Field(None, gt=0, description="circle radius, metres")
    vertices: tuple[tuple[float, float], ...] | None = Field(None, description="polygon vertices [x, y], metres")
    holes: tuple[tuple[tuple[float, float], ...], ...] = Field(
        (), description="obstacles: polygons strictly inside the arena, metres")

    @model_validator(mode="before")
    @classmethod
    def _bounding_box(cls, data: Any) -> Any:
        """Fill ``width``/``height`` of a non-rectangular arena from its bounding box."""
        if isinstance(data, dict) and data.get("shape", "rectangle") != "rectangle":
            ext = _shape_extent(data)
            if ext is not None:
                data = {**data, "width": ext[1] - ext[0], "height": ext[3] - ext[2]}
        return data

    @model_validator(mode="after")
    def _geometry(self) -> "BoxConfig":
        from gridsweep.arenas import arena_problem

        if self.boundary == "periodic" and (self.shape != "rectangle" or self.holes):
            raise ValueError(f"box.boundary='periodic' needs box.shape='rectangle' without holes (got shape "
                             f"{self.shape!r}, {len(self.holes)} holes)")
        problem = arena_problem(self.shape, self.width, self.height, self.radius,
                                None if self.vertices is None else [list(v) for v in self.vertices],
                                [[list(v) for v in h] for h in self.holes])
        if problem:
            raise ValueError(problem)
        return self

    @model_serializer(mode="wrap")
    def _drop_default_arena(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        for key, default in (("shape", "rectangle"), ("radius", None), ("vertices", None), ("holes", ())):
            if key in out and (out[key] == default or (default == () and not out[key])):
                del out[key]
        return out

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` in metres (the bounding box, centred on the origin)."""
        return (-self.width / 2, self.width / 2, -self.height / 2, self.height / 2)


def _shape_extent(data: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """Bounding box of a non-rectangular arena description, or None when it cannot be read."""
    shape = data.get("shape", "rectangle")
    try:
        if shape == "circle" and data.get("radius") is not None:
            r = float(data["radius"])
            return (-r, r, -r, r)
        if shape == "krupic_trapezoid":
            from gridsweep.arenas import krupic_trapezoid_vertices

            v: Sequence[tuple[float, float]] = krupic_trapezoid_vertices()
        elif shape == "polygon" and data.get("vertices") is not None:
            v = [(float(p[0]), float(p[1])) for p in data["vertices"]]
        else:
            return None
        xs, ys = [p[0] for p in v], [p[1] for p in v]
        if not xs:
            return None
        return (min(xs), max(xs), min(ys), max(ys))
    except (TypeError, ValueError, IndexError, KeyError):
        return None


class TrajectoryConfig(_Section):
    """Motion model and batch shape (docs/science.md section 2).

    ``sorscher`` is the published generator: i.i.d. turn rate ~ N(0, turn_rate_std),
    i.i.d. speed ~ Rayleigh(speed_scale), wall avoidance within ``wall_distance``.
    ``ou`` is a RatInABox-style Ornstein-Uhlenbeck model of speed and rotation with wall
    repulsion; ``ou_speed_model="ratinabox"`` makes its speed RatInABox's 2D speed (an OU
    process mapped onto a Rayleigh distribution of scale ``ou_speed_mean``), the default
    ``"normal"`` keeps gridsweep's original |OU(mean, std)| speed (docs/arenas.md).

    ``source`` says where trajectories come from (:mod:`gridsweep.external`):
    ``simulated`` (the motion model above), ``ratinabox`` (RatInABox's own Agent, with
    the ``ou_*`` parameters, ``ratinabox_duration`` seconds per network, windows drawn
    from it) or ``file`` (recorded positions in ``file``: NWB or npz, resampled to
    ``dt``). The new fields are left out of ``to_dict`` (and the run hash) at their
    defaults, so existing configs hash as before.
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
    ou_speed_model: Literal["normal", "ratinabox"] = Field(
        "normal", description="ou speed: 'normal' |OU(ou_speed_mean, ou_speed_std)| (gridsweep's original); "
                              "'ratinabox' RatInABox's 2D speed, OU mapped to Rayleigh(scale ou_speed_mean), "
                              "ou_speed_std = 0 meaning constant speed")
    source: Literal["simulated", "ratinabox", "file"] = Field(
        "simulated", description="where trajectories come from (gridsweep.external)")
    file: str | None = Field(None, description="recorded positions for source 'file': .nwb or .npz (times, "
                                               "positions in metres)")
    ratinabox_duration: float = Field(600.0, gt=0, description="s of RatInABox motion simulated per network and "
                                                               "stream, source 'ratinabox'")

    @model_validator(mode="after")
    def _source(self) -> "TrajectoryConfig":
        if self.source == "file" and not self.file:
            raise ValueError("trajectory.source='file' needs trajectory.file: a .nwb or .npz path of recorded positions")
        if self.source != "file" and self.file is not None:
            raise ValueError(f"trajectory.file={self.file!r} is only read with trajectory.source='file' "
                             f"(got source {self.source!r})")
        return self

    @model_serializer(mode="wrap")
    def _drop_default_source(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        for key, default in (("ou_speed_model", "normal"), ("source", "simulated"), ("file", None),
                             ("ratinabox_duration", 600.0)):
            if key in out and out[key] == default:
                del out[key]
        return out


class HeterogeneityConfig(_Section):
    """Multi-field, heterogeneous place cells (docs/science.md section 3, claim R6).

    Each cell has ``1 + Poisson(fields_lambda)`` fields (or exactly one when
    ``fields_lambda`` is 0); each field draws its own width from ``sigma_range`` and its
    own surround *width* ratio from ``surround_width_ratio_range`` when given.

    At each position a cell responds through one of its fields, chosen by ``field_rule``:
    ``"max_response"`` (NFL's rule, the only original of multi-field cells) takes the field
    whose centre Gaussian responds most, argmin_f d_f^2 / (2 sigma_f^2), with per-field
    widths; ``"nearest"`` takes the nearest centre, argmin_f d_f^2. The two agree when
    all of a cell's fields share one width. The surround uses the same chosen field.
    """

    fields_lambda: float = Field(3.0, ge=0)
    sigma_range: tuple[float, float] | None = None
    surround_width_ratio_range: tuple[float, float] | None = None
    max_fields: int = Field(16, ge=1, description="cap on fields per cell (padding size)")
    field_rule: Literal["max_response", "nearest"] = Field(
        "max_response", description="which field a multi-field cell responds through (NFL: max_response)")

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
    """Readout encoding (docs/science.md section 3).

    The surround of centre-surround kinds is given under exactly one explicit convention:
    ``surround_width_ratio`` (NFL: sigma_I = s * sigma_E) or ``surround_variance_ratio``
    (Sorscher: sigma_I^2 = s * sigma_E^2). There is no bare ``surround_scale``.

    ``loss`` is the readout's loss: ``"default"`` is the kind's own (softmax
    cross-entropy for place cells, squared error for cartesian / polar readouts);
    ``"mse"`` fits the raw readout of place cells to their code with a squared error,
    NFL's ``place_field_loss: mse`` (model.py:15-16, 41-42, 181), reduced by
    ``mse_reduction``. ``normalization`` is NFL's ``place_field_normalization`` of
    Gaussian cells: ``"global"`` a softmax over cells, ``"none"`` the plain exponential
    exp(-d^2 / 2 sigma^2) (helper_classes.py:374-377), which NFL pairs only with the
    squared error (it refuses cross-entropy without ``global``, model.py:19-23).
    docs/science.md section 3.
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
    mse_reduction: Literal["mean", "sum"] = Field(
        "mean", description="MSE readouts: mean over batch, time and outputs (NFL) or sum over outputs")
    loss: Literal["default", "crossentropy", "mse"] = Field(
        "default", description="readout loss; default: the kind's (crossentropy for place cells, mse for "
                               "cartesian/polar); mse on place cells is NFL's place_field_loss: mse")
    normalization: Literal["global", "none"] = Field(
        "global", description="gaussian cells: softmax over cells (global) or plain exp(-d^2/2 sigma^2) (none, "
                              "NFL's place_field_normalization: none; needs loss mse)")
    decode_k: int = Field(3, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _default_surround(cls, data: Any) -> Any:
        """A centre-surround kind given no surround takes Sorscher's variance ratio 2.

        docs/science.md section 3: the canonical setup's surround is sigma_I^2 = 2 sigma_E^2.
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
        problem = _loss_problem(self.kind, self.loss, self.normalization)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def loss_name(self) -> str:
        """The loss resolved: ``"cross_entropy"`` or ``"mse"`` (``loss="default"``: the kind's)."""
        if self.loss == "default":
            return "cross_entropy" if self.kind in PLACE_CELL_KINDS else "mse"
        return "cross_entropy" if self.loss == "crossentropy" else "mse"

    @property
    def sigma_i(self) -> float | None:
        """Surround width sigma_I in metres under whichever convention was given."""
        if self.surround_width_ratio is not None:
            return self.surround_width_ratio * self.sigma
        if self.surround_variance_ratio is not None:
            return math.sqrt(self.surround_variance_ratio) * self.sigma
        return None


def _loss_problem(kind: str, loss: str, normalization: str) -> str | None:
    """One line naming the fields when ``target.loss`` / ``target.normalization`` do not fit ``kind``, or None.

    NFL's own code is the reference (docs/science.md section 3): cross-entropy needs
    softmax-normalised cells (model.py:19-23 raises otherwise), and the normalisation is
    read by Gaussian (and difference-of-softmax) cells only (helper_classes.py:373-379,
    452-458).
    """
    place = kind in PLACE_CELL_KINDS
    if loss == "crossentropy" and not place:
        return (f"target.loss='crossentropy' with target.kind={kind!r}: cross-entropy needs place-cell targets (a "
                f"distribution over cells); use loss 'mse' or 'default'")
    if normalization == "global":
        return None
    if kind == "dos":
        return ("target.normalization='none' with target.kind='dos' is exp - exp, shifted and normalised: NFL's "
                "true_difference_of_gaussians; use target.kind='dog_equinorm' (helper_classes.py:385-402, 452-465)")
    if kind != "gaussian":
        return (f"target.normalization={normalization!r} with target.kind={kind!r}: only gaussian cells read it "
                f"(helper_classes.py:373-383); leave it 'global'")
    if loss != "mse":
        return (f"target.normalization={normalization!r} with target.loss={loss!r} (cross-entropy for gaussian "
                f"cells): NFL's code refuses cross-entropy without global normalization (model.py:19-23); set "
                f"target.loss='mse'")
    return None


class HeadDirectionConfig(_Section):
    """An extra readout of head-direction cells with von Mises tuning (Banino et al. 2018)."""

    n_cells: int = Field(12, ge=1)
    kappa: float = Field(20.0, gt=0)
    loss_weight: float = Field(1.0, ge=0)


class ModelConfig(_Section):
    """Recurrent path integrator (docs/science.md sections 3-4).

    ``family`` chooses whose architecture the cell sits in (gridsweep.models):
    ``bare`` gridsweep's own (encoder, cell, optional bottleneck and readout dropout,
    readout); ``nfl`` exactly Schaeffer, Khona & Fiete's Keras models (M layer on the
    velocity, biases, post-RNN dense layer whose outputs are the scored units, Keras
    initialisers and dropout); ``sorscher`` Sorscher et al.'s torch ReLU RNN.
    ``cell="srnn"`` is NFL's VanillaRNN (a SimpleRNN without bias in the three-layer
    model; family nfl only). Combinations that no original expresses are rejected.
    """

    family: Literal["bare", "nfl", "sorscher"] = "bare"
    cell: Literal["rnn", "lstm", "gru", "ugrnn", "srnn"] = Field(
        "rnn", description="srnn: NFL's VanillaRNN (rnn_type SRNN), family nfl only")
    activation: Literal["relu", "tanh", "sigmoid", "linear"] = "relu"
    hidden_size: int = Field(4096, ge=1, description="Ng")
    bias: bool | None = Field(None, description="biases in the recurrent layer and readout; None: the family's "
                                                 "choice (bare, sorscher: none; nfl: NFL's, i.e. only its "
                                                 "three-layer models lstm/gru/ugrnn/srnn, srnn's SimpleRNN itself "
                                                 "having none); nfl/sorscher accept only their original's value")
    init: Literal["glorot_uniform", "glorot_normal", "orthogonal", "torch_default"] = Field(
        "glorot_uniform", description="bare: every weight matrix; nfl: the recurrent kernel only (Keras "
                                      "recurrent_initializer, NFL's `initializer`); sorscher: torch_default")
    dropout: float = Field(0.0, ge=0, lt=1, description="gridsweep's/Banino's dropout on the readout input "
                                                        "(family bare only)")
    input_dropout: float = Field(0.0, ge=0, lt=1, description="Keras `dropout=` on the recurrent layer's input "
                                                              "(NFL's readout_dropout; family nfl only)")
    recurrent_dropout: float = Field(0.0, ge=0, lt=1, description="Keras `recurrent_dropout=` on h_{t-1} "
                                                                  "(NFL's recurrent_dropout; family nfl only)")
    bottleneck: int | None = Field(None, ge=1, description="linear bottleneck before the readout (Banino; "
                                                           "family bare only)")

    @model_validator(mode="after")
    def _family(self) -> "ModelConfig":
        problem = _family_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def uses_bias(self) -> bool:
        """``bias`` resolved: an explicit value, else the family's (True only for NFL's gated cells)."""
        return self.bias if self.bias is not None else (self.family == "nfl" and self.cell != "rnn")


def _family_problem(m: ModelConfig) -> str | None:
    """One line naming the fields of ``m`` that its family's original cannot express, or None."""
    fam = f"model.family={m.family!r}"
    keras_dropout = m.input_dropout > 0 or m.recurrent_dropout > 0
    if m.cell == "srnn" and m.family != "nfl":
        return (f"model.cell='srnn' with {fam}: NFL's VanillaRNN exists only in its three-layer Keras model; "
                f"set model.family='nfl' (or model.cell='rnn')")
    if m.family == "bare":
        if keras_dropout:
            return (f"model.input_dropout={m.input_dropout}, model.recurrent_dropout={m.recurrent_dropout}: "
                    f"Keras-style dropout inside the recurrent layer needs model.family='nfl' "
                    f"(family 'bare' has model.dropout on the readout input)")
        return None
    if m.family == "sorscher":
        if m.cell != "rnn" or m.activation not in ("relu", "tanh"):
            return (f"{fam} with model.cell={m.cell!r}, model.activation={m.activation!r}: Sorscher's torch.nn.RNN "
                    f"needs cell 'rnn' and activation 'relu' or 'tanh'")
        if m.bias is True or m.bottleneck is not None or m.dropout > 0 or keras_dropout:
            return (f"{fam} with model.bias={m.bias}, model.bottleneck={m.bottleneck}, model.dropout={m.dropout}, "
                    f"model.input_dropout={m.input_dropout}, model.recurrent_dropout={m.recurrent_dropout}: "
                    f"Sorscher's model has no biases, bottleneck or dropout")
        if m.init != "torch_default":
            return f"{fam} with model.init={m.init!r}: Sorscher's model uses torch's default init; set 'torch_default'"
        return None
    # nfl
    gated = m.cell != "rnn"  # NFL's LSTM and three-layer models (GRU, UGRNN, VanillaRNN)
    if m.bias is not None and m.bias != gated:
        return (f"{fam} with model.cell={m.cell!r} needs model.bias={str(gated).lower()} (NFL's "
                f"{'three-layer models have biased Dense layers' if gated else 'RNN has no biases'})")
    if m.bottleneck is not None or m.dropout > 0:
        return (f"{fam} with model.bottleneck={m.bottleneck}, model.dropout={m.dropout}: NFL's models have no "
                f"bottleneck or readout dropout (use model.input_dropout / model.recurrent_dropout)")
    if m.init == "torch_default":
        return f"{fam} with model.init='torch_default': not a Keras initialiser; allowed glorot_uniform, glorot_normal, orthogonal"
    if m.cell == "ugrnn" and (m.init != "glorot_uniform" or keras_dropout):
        return (f"{fam} with model.cell='ugrnn', model.init={m.init!r}, model.input_dropout={m.input_dropout}, "
                f"model.recurrent_dropout={m.recurrent_dropout}: NFL's UGRNN cell is always glorot_uniform and has "
                f"no dropout")
    return None


class TrainingConfig(_Section):
    """Optimiser and schedule (docs/science.md section 3).

    ``optimizer_convention`` picks whose update rules and default constants the
    optimiser follows (:mod:`gridsweep.optim`): ``"torch"`` (torch.optim: Adam eps 1e-8
    added to the bias-corrected sqrt(v); RMSprop decay 0.99, eps 1e-8 outside the sqrt,
    the momentum buffer holds g / denominator), ``"keras"`` (tf.keras 2.8 as NFL used:
    Adam eps 1e-7 added to the uncorrected sqrt(v); RMSprop rho 0.9, eps 1e-7 outside
    the sqrt without momentum and inside it with momentum, the buffer holds lr * g /
    denominator) or ``"tf1"`` (tf.train as Banino used: Adam eps 1e-8 as Keras;
    RMSProp decay 0.9, eps 1e-10 inside the sqrt, mean square started at 1). Adagrad
    (a += g^2; p -= lr g / (sqrt(a) + eps)) starts its accumulator at 0 with eps 1e-10
    (torch), at 0.1 with eps 1e-7 (keras, NFL's ``optimizer: adagrad``) or at 0.1
    without eps (tf1). ``adam_epsilon``, ``rmsprop_decay``, ``rmsprop_epsilon``,
    ``adagrad_initial_accumulator`` and ``adagrad_epsilon`` override the convention's
    constants; None keeps them.
    """

    optimizer: Literal["adam", "rmsprop", "sgd", "adagrad"] = "adam"
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty on the recurrent matrix only: wd * sum(W_hh^2)")
    weight_decay_start: int = Field(0, ge=0, description="step at which the recurrent L2 penalty switches on")
    lr_milestones: list[int] = Field(default_factory=list,
                                     description="steps at which the learning rate is multiplied by lr_gamma "
                                                 "(torch's MultiStepLR); empty keeps it constant")
    lr_gamma: float = Field(0.1, gt=0, le=1, description="factor applied at each of lr_milestones")
    momentum: float = Field(0.0, ge=0, lt=1)
    optimizer_convention: Literal["torch", "keras", "tf1"] = Field(
        "torch", description="update rules and default constants of torch.optim, tf.keras (NFL) or tf.train (Banino)")
    adam_epsilon: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                       description="Adam epsilon; None: the convention's (torch 1e-8, keras 1e-7, tf1 1e-8)")
    rmsprop_decay: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                        description="RMSProp decay of the mean square; None: the convention's "
                                                    "(torch 0.99, keras 0.9, tf1 0.9)")
    rmsprop_epsilon: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                          description="RMSProp epsilon; None: the convention's "
                                                      "(torch 1e-8, keras 1e-7, tf1 1e-10)")
    adagrad_initial_accumulator: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="Adagrad's starting sum of squared gradients; None: the convention's (torch 0, keras 0.1, tf1 0.1)")
    adagrad_epsilon: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                          description="Adagrad epsilon; None: the convention's "
                                                      "(torch 1e-10, keras 1e-7, tf1 none)")
    grad_clip: float | None = Field(None, gt=0, description="gradient clipping threshold of each network (see grad_clip_mode)")
    grad_clip_mode: Literal["norm", "value"] = Field(
        "norm", description="'norm': scale each network's gradients so their global L2 norm is at most grad_clip "
                            "(torch.nn.utils.clip_grad_norm_); 'value': clip every gradient element to "
                            "[-grad_clip, grad_clip] (tf.clip_by_value, as Banino et al.'s code does)")
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
        if (self.optimizer == "adagrad" and self.optimizer_convention == "tf1" and self.adagrad_epsilon is None
                and self.adagrad_initial_accumulator == 0):
            raise ValueError("training.adagrad_initial_accumulator=0 with optimizer_convention 'tf1' (no epsilon) "
                             "divides 0 by 0 where a gradient is 0; tf.train.AdagradOptimizer requires a positive "
                             "value (default 0.1), or set training.adagrad_epsilon")
        return self

    def lr_factor(self, step: int) -> float:
        """The schedule's learning-rate multiplier for optimisation step ``step`` (0-based)."""
        return self.lr_gamma ** sum(step >= s for s in self.lr_milestones)


class EvaluationConfig(_Section):
    """Held-out evaluation (docs/science.md section 6)."""

    n_trajectories: int = Field(500, ge=1, description="trajectories for decoding error")
    sequence_length: int = Field(50, ge=1, description="NFL evaluates with sequence length 50")
    ratemap_samples: int = Field(100_000, ge=1, description="positions sampled for rate maps")
    bins: int = Field(20, ge=2)
    protocol: Literal["dense", "nfl"] = Field(
        "dense", description="primary grid-score protocol of `gridsweep score` (both are always computed; "
        "docs/analysis.md): 'dense' = ratemap_samples positions on training-length trajectories, `bins` bins; "
        "'nfl' = NFL's one batch of batch_size x sequence_length steps, 44 bins, <= 1024 units, NaN -> 0")


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
        if self.box.boundary == "periodic" and self.trajectory.source != "simulated":
            raise ValueError(f"trajectory.source={self.trajectory.source!r} needs box.boundary='solid' (external "
                             "trajectories are not wrapped)")
        if self.target.kind in PLACE_CELL_KINDS:
            from gridsweep.arenas import arena_of

            field_area = math.pi * self.target.sigma**2
            if arena_of(self.box).area < field_area:
                raise ValueError(f"box: the arena's free area {arena_of(self.box).area:.4g} m^2 is smaller than one "
                                 f"place field (pi sigma^2 = {field_area:.4g} m^2 with target.sigma="
                                 f"{self.target.sigma}); enlarge the arena or narrow the fields")
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


def validate_config(data: dict[str, Any] | RunConfig, source: str = "") -> RunConfig:
    """Validate a nested dict into a :class:`RunConfig`, raising one-line ConfigErrors."""
    if isinstance(data, RunConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


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
    """Read a YAML run config (missing keys take defaults) and apply overrides.

    ``path`` is a file or the name of a shipped preset (``load_config("demo_small")``),
    resolved by :func:`gridsweep.presets.resolve_config_path` exactly as the command
    line resolves it.
    """
    from gridsweep.presets import resolve_config_path

    path = resolve_config_path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {format_yaml_error(err)}") from None
    if data is None:  # empty or comments only: never train the 4,096-unit default by accident
        raise ConfigError(f"{path}: the config file is empty; give at least one section "
                          "(write '{}' to mean every default)")
    if overrides:
        data = apply_overrides(data, overrides)
    return validate_config(data, source=str(path))


def config_hash(data: dict[str, Any]) -> str:
    """A stable hash of a JSON-able dict (sorted keys), 16 hex digits."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
