"""Weights & Biases sweep files, including the No Free Lunch lab's own, as gridsweep specs.

A W&B sweep YAML (``method: grid|random``, ``parameters: {name: {...}}``, ``run_cap``)
expands like a native spec. The 30 sweep files of the No Free Lunch code (Schaeffer,
Khona & Fiete 2022; FieteLab/NeurIPS-2022-No-Free-Lunch, ``sweeps/``) run unchanged:
every flag they use is translated by :func:`translate_nfl` (table
:data:`DEFAULT_PARAMETER_MAP`, rendered by :func:`mapping_table` into docs/sweeps.md)
into RunConfig fields, or is documented as having no effect here and why. See
docs/science.md sections 3-4 for the readouts and models the flags select.

Semantics
---------
* ``method: grid``: the product of the value lists (``run_cap`` truncates).
* ``method: random``: every parameter is drawn (``values``: uniform choice;
  ``distribution: uniform | int_uniform | log_uniform_values | log_uniform``) from
  ``numpy.random.default_rng(random_seed)`` (gridsweep extension key, default 0) until
  ``run_cap`` distinct trials exist. Without ``run_cap`` a W&B random search runs until
  stopped: gridsweep then needs the number of trials when it runs
  (``sweep run --max-trials N`` draws N more each call; ``sweep expand --trials N``).
* NFL flag combinations that NFL's own code refuses (e.g. ``place_field_normalization:
  local``) or that have no gridsweep equivalent are *skipped points*: counted with their
  reason in :attr:`SweepSpec.skipped`, never silently changed into something else.
* Files that use NFL flags get NFL's conventions under their ``base:``
  (:data:`NFL_CONVENTIONS`: model family ``nfl``, Keras optimiser constants, NFL's
  scoring protocol); a ``base:`` that sets those fields wins.
* All unknown parameters and bad NFL values of a file are reported in ONE error, each
  with its line.

gridsweep extension keys in the same file: ``base:``, ``seeds:`` (when ``seed`` is not
a parameter), ``random_seed:`` and ``parameter_map:``::

    parameter_map:
      Ng: model.hidden_size                 # rename
      arch: {to: model.cell, values: {vanilla: rnn, gated: gru}}   # rename + value table
      wandb_only_flag: null                 # ignore this parameter
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gridsweep.config import SURROUND_KINDS, apply_overrides
from gridsweep.sweeps.spec import SweepSpec
from gridsweep.sweeps.specfile import (
    Param,
    SkipPoint,
    SpecError,
    YamlDoc,
    allowed_values,
    check_key,
    load_base,
    parse_seeds,
)

__all__ = ["DEFAULT_PARAMETER_MAP", "WANDB_KEYS", "NFL_CONVENTIONS", "FlagMapping", "parse_wandb",
           "translate_nfl", "nfl_floats", "mapping_table", "is_nfl_file"]

#: Where the file:line citations of this module point.
NFL_REPO = "FieteLab/NeurIPS-2022-No-Free-Lunch@d9edec2, mec_hpc_investigations/models/"

#: Fields every trial from an NFL file gets unless its ``base:`` sets them.
NFL_CONVENTIONS: dict[str, Any] = {
    "model.family": "nfl",  # NFL's per-cell architectures (model.py: RNN, LSTM, ThreeLayerRNNBase)
    "training.optimizer_convention": "keras",  # tf.keras optimisers (trainer.py:43-50)
    "evaluation.protocol": "nfl",  # NFL's scoring (trainer.py, run_scoring_rylan.py)
}


@dataclass(frozen=True)
class FlagMapping:
    """Where an NFL flag goes: ``fields`` it sets (empty: no effect here) and why."""

    fields: tuple[str, ...]
    note: str


def _m(fields: str, note: str = "") -> FlagMapping:
    return FlagMapping(tuple(f for f in fields.split() if f), note)


#: NFL flag -> config fields it sets and how. Every flag in the lab's 30 sweep files is
#: here (a test checks it); an entry without fields has no effect, with the reason.
DEFAULT_PARAMETER_MAP: dict[str, FlagMapping] = {
    "activation": _m("model.activation", "relu/tanh/sigmoid/linear"),
    "batch_size": _m("trajectory.batch_size"),
    "bin_side_in_m": _m("", "no effect here because NFL never reads it: stored at utils.py:837, its bin formula "
                            "is commented out (trainer.py:88) and NFL scores rate maps with 44, 20 and 32 bins "
                            "(trainer.py:90-93); bins come from evaluation.protocol / evaluation.bins"),
    "box_height_in_m": _m("box.height"),
    "box_width_in_m": _m("box.width"),
    "initializer": _m("model.init", "Keras recurrent_initializer name (model.py:116, 242, 517)"),
    "is_periodic": _m("box.boundary", "true -> periodic, false -> solid"),
    "learning_rate": _m("training.learning_rate"),
    "n_epochs": _m("training.n_steps training.eval_every",
                   "n_steps = n_epochs x n_grad_steps_per_epoch (trainer.py:241-245); NFL evaluates after each "
                   "epoch, so eval_every = n_grad_steps_per_epoch"),
    "n_grad_steps_per_epoch": _m("training.n_steps training.eval_every", "see n_epochs"),
    "n_place_fields_per_cell": _m("target.heterogeneity",
                                  "1 (or 1.0): one field per cell; 'Poisson( r )': 1 + Poisson(r) fields "
                                  "(helper_classes.py:158-166) -> heterogeneity.fields_lambda = r, field_rule "
                                  "max_response"),
    "Ng": _m("model.hidden_size"),
    "Np": _m("target.n_cells"),
    "optimizer": _m("training.optimizer training.optimizer_convention",
                    "adam/adagrad/rmsprop/sgd with Keras constants (trainer.py:43-50; Adagrad: accumulator "
                    "from 0.1, epsilon 1e-7)"),
    "place_cell_alpha_e": _m("target.alpha_e", "general_difference_of_gaussians only (helper_classes.py:416)"),
    "place_cell_alpha_i": _m("target.alpha_i", "general_difference_of_gaussians only (helper_classes.py:417)"),
    "place_cell_rf": _m("target.sigma target.heterogeneity.sigma_range",
                        "metres; 'Uniform( a , b )' draws a width per field (helper_classes.py:254-262) -> "
                        "heterogeneity.sigma_range; no effect on cartesian/polar readouts (never read there)"),
    "place_field_loss": _m("target.kind target.loss target.mse_reduction",
                           "with place_field_values and place_field_normalization: see the target table"),
    "place_field_normalization": _m("target.kind target.normalization", "see the target table"),
    "place_field_values": _m("target.kind target.alpha_e target.alpha_i", "see the target table"),
    "readout_dropout": _m("model.input_dropout",
                          "despite its name, Keras dropout= on the recurrent layer's inputs (model.py:117, 241, 529)"),
    "recurrent_dropout": _m("model.recurrent_dropout", "Keras recurrent_dropout= (model.py:118, 242, 530)"),
    "rnn_type": _m("model.cell model.family model.bias",
                   "RNN/LSTM/GRU/UGRNN -> rnn/lstm/gru/ugrnn and SRNN/VanillaRNN (NFL's VanillaRNN, "
                   "model.py:511-521) -> srnn in family nfl (utils.py:918-953), bias as NFL (none for RNN, "
                   "biased Dense layers for the others; srnn's SimpleRNN has none); NFL's UGRNN ignores "
                   "initializer and both dropouts (model.py:497-501), so those points are merged"),
    "seed": _m("seed", "network seed"),
    "sequence_length": _m("trajectory.sequence_length"),
    "surround_scale": _m("target.surround_width_ratio target.heterogeneity.surround_width_ratio_range",
                         "NFL's convention is a WIDTH ratio, sigma_I = s sigma_E (helper_classes.py:389, 444); "
                         "'Uniform( a , b )' -> heterogeneity.surround_width_ratio_range; no effect on readouts "
                         "without a surround (gaussian, cartesian, polar)"),
    "weight_decay": _m("training.weight_decay", "L2 on the recurrent matrix (model.py:185, 291, 482)"),
}

#: Top-level W&B keys: what each does here.
WANDB_KEYS: dict[str, str] = {
    "method": "grid (product of the value lists) or random (seeded draws); bayes is refused",
    "parameters": "the swept flags",
    "run_cap": "number of trials (random) or truncation (grid); absent on a random search: state it when running",
    "program": "no effect here because gridsweep trains every trial itself (NFL: run_trainer_rylan.py)",
    "command": "no effect here because gridsweep trains every trial itself",
    "project": "no effect here because results go to the sweep directory, not a W&B project",
    "entity": "no effect here because results go to the sweep directory, not a W&B project",
    "metric": "no effect here because grid and random searches do not use it (W&B uses it for bayes and "
              "early termination); every trial is scored on decoding error and grid scores",
    "early_terminate": "no effect here because every trial runs to completion",
    "description": "kept as the sweep's description",
    "name": "the sweep name (default: the file name)",
}
EXTENSION_KEYS = {"base", "parameter_map", "seeds", "random_seed"}

#: NFL's vocabularies (helper_classes.py:91-124, utils.py:918-953, trainer.py:43-50).
NFL_LOSSES = ("mse", "polarmse", "crossentropy", "binarycrossentropy")
NFL_VALUES = ("cartesian", "high_dim_cartesian", "polar", "high_dim_polar", "gaussian", "difference_of_gaussians",
              "true_difference_of_gaussians", "general_difference_of_gaussians", "softmax_of_differences")
NFL_NORMALIZATIONS = ("none", "local", "global")
NFL_OPTIMIZERS = ("adam", "adagrad", "sgd", "rmsprop")
NFL_CELLS = {"rnn": "rnn", "lstm": "lstm", "ugrnn": "ugrnn", "gru": "gru", "srnn": "srnn", "vanillarnn": "srnn"}
#: place_field_values -> target.kind (place_field_loss / normalization permitting)
NFL_KINDS = {
    "gaussian": "gaussian",  # softmax(-d^2/2 sigma^2), helper_classes.py:377, 381-383
    "difference_of_gaussians": "dos",  # softmax - softmax, shift, normalise: 439-465
    "true_difference_of_gaussians": "dog_equinorm",  # exp - exp, shift, normalise: 385-402
    "general_difference_of_gaussians": "dog_general",  # alpha_E exp - alpha_I exp: 404-422
    "softmax_of_differences": "sod",  # softmax(-d^2/2 sE^2 + d^2/2 sI^2): 424-437
    "cartesian": "cartesian",  # the position: 299-302
    "high_dim_cartesian": "cartesian_highdim",  # A x + b: 209-221, 304-307
    "high_dim_polar": "polar_highdim",  # r slopes + von Mises kappa 1: 222-246, 318-339
}
PLACE_VALUES = {"gaussian", "difference_of_gaussians", "true_difference_of_gaussians",
                "general_difference_of_gaussians", "softmax_of_differences"}

# reasons a point is skipped (one line each, citing NFL's code)
SKIP_LOCAL = ("place_field_normalization 'local' is refused by NFL's own code (helper_classes.py:373-379 raises "
              "'Impermissible normalization'), so these runs never trained there")
SKIP_CE_NORM = ("crossentropy with place_field_normalization other than 'global' is refused by NFL's own code "
                "(model.py:19-23)")
SKIP_DOG_S = ("difference_of_gaussians with surround_scale <= 1 is refused by NFL's own code (assert at "
              "helper_classes.py:287-289)")


def _skip_other(what: str) -> str:
    return f"{what} has no gridsweep equivalent"


# --------------------------------------------------------------------------------------
# NFL value parsing
# --------------------------------------------------------------------------------------
def nfl_floats(text: str) -> tuple[float, ...]:
    """The numbers NFL reads from a string such as ``'Uniform( 0.06 , 0.24 )'``.

    A transcription of ``PlaceCells.extract_floats_from_str`` (helper_classes.py:584-593):
    split on whitespace, keep the tokens that parse as floats. NFL therefore needs the
    spaces: ``'Uniform(0.06,0.24)'`` yields no numbers (and crashes NFL).
    """
    out = []
    for tok in str(text).split():
        try:
            out.append(float(tok))
        except ValueError:
            pass
    return tuple(out)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_dist_string(v: Any, prefix: str, n: int) -> str | None:
    if not isinstance(v, str):
        return None
    if not v.startswith(prefix):
        return f"{v!r}: NFL reads numbers or '{prefix}( ... )' here (helper_classes.py:158-190, 254-286)"
    if len(nfl_floats(v)) != n:
        return (f"{v!r}: NFL reads {n} number(s) separated by spaces (helper_classes.py:584-593), "
                f"e.g. '{prefix}( {' , '.join(['0.1', '0.3'][:n])} )'")
    lo_hi = nfl_floats(v)
    if prefix == "Uniform" and not 0 < lo_hi[0] <= lo_hi[1]:
        return f"{v!r}: needs 0 < low <= high"
    return None


def _check_value(name: str, v: Any) -> str | None:
    """A problem with one value of an NFL flag, or None."""
    if name == "place_field_loss":
        return None if v in NFL_LOSSES else f"{v!r} is not an NFL loss {NFL_LOSSES} (helper_classes.py:91-95)"
    if name == "place_field_values":
        return None if v in NFL_VALUES else f"{v!r} is not NFL place_field_values (helper_classes.py:98-108)"
    if name == "place_field_normalization":
        return None if v in NFL_NORMALIZATIONS else (
            f"{v!r} is not in {NFL_NORMALIZATIONS} (helper_classes.py:120-124)")
    if name == "optimizer":
        return None if str(v).lower() in NFL_OPTIMIZERS else (
            f"{v!r} is not an NFL optimizer {NFL_OPTIMIZERS} (trainer.py:43-52)")
    if name == "rnn_type":
        return None if str(v).lower() in NFL_CELLS else (
            f"{v!r}: gridsweep runs NFL's RNN, LSTM, GRU, UGRNN and SRNN/VanillaRNN only (utils.py:918-953)")
    if name == "activation":
        return None if v in ("relu", "tanh", "sigmoid", "linear") else f"{v!r} is not relu/tanh/sigmoid/linear"
    if name == "initializer":
        ok = allowed_values("model.init") or ()
        return None if str(v).lower() in ok else f"{v!r}: model.init takes {ok}"
    if name == "is_periodic":
        return None if isinstance(v, bool) else f"{v!r}: expected true or false"
    if name == "n_place_fields_per_cell":
        if _num(v):
            return None if float(v).is_integer() and v >= 1 else f"{v!r}: a number of fields must be an integer >= 1"
        return _check_dist_string(v, "Poisson", 1) if isinstance(v, str) else f"{v!r}: expected 1 or 'Poisson( r )'"
    if name in ("place_cell_rf", "surround_scale"):
        if _num(v):
            return None if v >= 0 else f"{v!r}: must be >= 0"
        if not isinstance(v, str):
            return f"{v!r}: expected a number or 'Uniform( a , b )'"
        return _check_dist_string(v, "Uniform", 2)
    if name in ("n_epochs", "n_grad_steps_per_epoch"):
        is_count = isinstance(v, int) and not isinstance(v, bool) and v >= 1
        return None if is_count else f"{v!r}: must be an integer >= 1"
    if name == "bin_side_in_m":
        return None if _num(v) and v > 0 else f"{v!r}: must be a positive number"
    return None


# --------------------------------------------------------------------------------------
# the translation
# --------------------------------------------------------------------------------------
def _target(raw: dict[str, Any], base_kind: str) -> dict[str, Any]:
    """target.* overrides for NFL's place_field_* / place_cell_* / surround flags."""
    loss = raw.get("place_field_loss")
    values = raw.get("place_field_values")
    norm = raw.get("place_field_normalization")
    out: dict[str, Any] = {}
    if values is None and loss is None and norm is None:
        kind = base_kind
    else:
        # a flag missing from the file takes run_trainer_rylan.py's default (lines 35-51)
        loss = "mse" if loss is None else loss
        values = "general_difference_of_gaussians" if values is None else values
        norm = "none" if norm is None else norm
        if loss in ("polarmse", "binarycrossentropy"):
            raise SkipPoint(_skip_other(f"place_field_loss {loss!r}"))
        if values not in NFL_KINDS:
            raise SkipPoint(_skip_other(f"place_field_values {values!r}"))
        kind = NFL_KINDS[values]
        if values in PLACE_VALUES:
            if norm == "local":
                raise SkipPoint(SKIP_LOCAL)
            if loss == "crossentropy" and norm != "global":
                raise SkipPoint(SKIP_CE_NORM)
            if loss == "mse":  # raw readout vs the cells' code: (x - y)^2, reduce_mean (model.py:15-16, 41-42, 181)
                out["target.loss"] = "mse"
                out["target.mse_reduction"] = "mean"
                if norm == "none" and values == "gaussian":  # exp instead of softmax (helper_classes.py:374-375)
                    out["target.normalization"] = "none"
                elif norm == "none" and values == "difference_of_gaussians":
                    kind = "dog_equinorm"  # exp - exp, shifted and normalised (:452-465) = true DoG (:385-402)
                # other place-cell values never read the normalisation (helper_classes.py:385-437)
        else:  # cartesian / polar readouts never read the normalisation (helper_classes.py:299-339)
            if loss != "mse":
                raise SkipPoint(_skip_other(f"place_field_loss {loss!r} with place_field_values {values!r}"))
            out["target.mse_reduction"] = "mean"  # tf.reduce_mean over batch, time and outputs (model.py:181)
        out["target.kind"] = kind
    place = kind in ("gaussian", "dos", "dog_equinorm", "dog_general", "sod")
    if not place:
        fields = raw.get("n_place_fields_per_cell", 1)
        if not (_num(fields) and float(fields) == 1):  # NFL asserts one field (helper_classes.py:210, 223)
            raise SkipPoint(_skip_other(f"n_place_fields_per_cell {fields!r} with a {kind} readout"))
        return out
    het: dict[str, Any] = {}
    fields = raw.get("n_place_fields_per_cell")
    if isinstance(fields, str):
        het["fields_lambda"] = nfl_floats(fields)[0]
    elif fields is not None and float(fields) != 1:
        raise SkipPoint(_skip_other(f"n_place_fields_per_cell = {fields!r} (exactly k fields per cell, "
                                    "helper_classes.py:139-156)"))
    rf = raw.get("place_cell_rf")
    if isinstance(rf, str):
        het["sigma_range"] = list(nfl_floats(rf))
    elif rf is not None:
        out["target.sigma"] = float(rf)
    s = raw.get("surround_scale")
    if kind in SURROUND_KINDS and s is not None:
        if isinstance(s, str):
            het["surround_width_ratio_range"] = list(nfl_floats(s))
            low = nfl_floats(s)[0]
        else:
            out["target.surround_width_ratio"] = float(s)
            low = float(s)
        if values == "difference_of_gaussians" and low <= 1:
            raise SkipPoint(SKIP_DOG_S)
    if het:
        het.setdefault("fields_lambda", 0.0)  # one field per cell unless 'Poisson( r )'
        het["field_rule"] = "max_response"  # NFL's argmin over fields of d^2 / 2 sigma^2 (helper_classes.py:367-371)
        out["target.heterogeneity"] = het
    return out


def translate_nfl(raw: dict[str, Any], base_kind: str = "dos", family: str = "nfl") -> dict[str, Any]:
    """Dotted RunConfig overrides for one point of an NFL sweep (flag name -> value as written).

    Parameters
    ----------
    raw : dict
        NFL flag values of one sweep point, e.g. ``{"rnn_type": "LSTM", "place_cell_rf": 0.12}``.
        Flags absent from ``raw`` leave the base config's values.
    base_kind : str
        ``target.kind`` of the base config, used when no ``place_field_*`` flag is given.
    family : str
        ``model.family`` of the trial. Under ``nfl`` the cell fixes ``model.bias`` (NFL's
        RNN has none, its gated models have biases), and a UGRNN point takes
        ``glorot_uniform`` and no dropout whatever its flags say: NFL builds
        ``UGRNNCell(Ng, activation)`` without them (model.py:497-501), so such points
        are one network and expansion merges them.

    Returns
    -------
    dict
        Dotted keys -> values.

    Raises
    ------
    SkipPoint
        For combinations NFL's own code refuses or gridsweep has no equivalent for; the
        message says which and cites NFL's code.

    Notes
    -----
    The target table (docs/science.md section 3; NFL's ``PlaceCells``, helper_classes.py):
    crossentropy + global + gaussian -> ``gaussian``; + difference_of_gaussians -> ``dos``
    (difference of softmaxes); + true_difference_of_gaussians -> ``dog_equinorm``
    (unnormalised exponentials); + general_difference_of_gaussians -> ``dog_general`` with
    ``alpha_e``/``alpha_i``; + softmax_of_differences -> ``sod``; mse + cartesian /
    high_dim_cartesian / high_dim_polar -> ``cartesian`` / ``cartesian_highdim`` /
    ``polar_highdim`` with the mean-reduced squared error. mse + place-cell values ->
    the same kinds with ``target.loss: mse`` (mean-reduced); with normalization none,
    gaussian -> ``normalization: none`` (plain exponentials) and
    difference_of_gaussians -> ``dog_equinorm`` (then exp - exp, the same targets).
    """
    out: dict[str, Any] = {}
    if "activation" in raw:
        out["model.activation"] = raw["activation"]
    if "initializer" in raw:
        out["model.init"] = str(raw["initializer"]).lower()
    if "rnn_type" in raw:
        cell = NFL_CELLS[str(raw["rnn_type"]).lower()]
        if cell not in (allowed_values("model.cell") or ()):
            raise SkipPoint(_skip_other(f"rnn_type {raw['rnn_type']!r}"))
        out["model.cell"] = cell
    if "optimizer" in raw:
        opt = str(raw["optimizer"]).lower()
        if opt not in (allowed_values("training.optimizer") or ()):
            raise SkipPoint(_skip_other(f"optimizer {opt!r}"))
        out["training.optimizer"] = opt
    if "n_epochs" in raw or "n_grad_steps_per_epoch" in raw:
        # run_trainer_rylan.py:23-25 defaults fill a missing one
        per_epoch = int(raw.get("n_grad_steps_per_epoch", 100))
        out["training.n_steps"] = int(raw.get("n_epochs", 200)) * per_epoch
        out["training.eval_every"] = per_epoch
    if "is_periodic" in raw:
        out["box.boundary"] = "periodic" if raw["is_periodic"] else "solid"
    for flag, key in (("batch_size", "trajectory.batch_size"), ("sequence_length", "trajectory.sequence_length"),
                      ("box_width_in_m", "box.width"), ("box_height_in_m", "box.height"),
                      ("learning_rate", "training.learning_rate"), ("weight_decay", "training.weight_decay"),
                      ("Ng", "model.hidden_size"), ("Np", "target.n_cells"), ("seed", "seed"),
                      ("readout_dropout", "model.input_dropout"), ("recurrent_dropout", "model.recurrent_dropout"),
                      ("place_cell_alpha_e", "target.alpha_e"), ("place_cell_alpha_i", "target.alpha_i")):
        if flag in raw and raw[flag] is not None:
            out[key] = raw[flag]
    out.update(_target(raw, base_kind))
    if family == "nfl" and "model.cell" in out:
        out["model.bias"] = out["model.cell"] != "rnn"
        if out["model.cell"] == "ugrnn":
            out.update({"model.init": "glorot_uniform", "model.input_dropout": 0.0, "model.recurrent_dropout": 0.0})
    return out


# --------------------------------------------------------------------------------------
# documentation
# --------------------------------------------------------------------------------------
def mapping_table() -> str:
    """Every NFL flag and W&B key -> config fields or 'no effect here because ...' (Markdown)."""
    rows = ["| W&B / NFL name | gridsweep field(s) | meaning here |", "|---|---|---|"]
    for name, m in sorted(DEFAULT_PARAMETER_MAP.items(), key=lambda kv: kv[0].lower()):
        fields = ", ".join(f"`{f}`" for f in m.fields) or "none"
        rows.append(f"| `{name}` | {fields} | {m.note} |")
    for name, note in WANDB_KEYS.items():
        rows.append(f"| `{name}` (top level) | none | {note} |")
    return "\n".join(rows)


#: Flag names common to many W&B sweeps; they are translated, but alone do not make a
#: file an NFL file.
GENERIC_FLAGS = frozenset({"activation", "batch_size", "initializer", "learning_rate", "optimizer", "seed",
                           "sequence_length", "weight_decay"})


def is_nfl_file(names: set[str]) -> bool:
    """Whether a W&B file uses NFL-specific flags (then :data:`NFL_CONVENTIONS` apply).

    Every flag of :data:`DEFAULT_PARAMETER_MAP` but the generic ones
    (:data:`GENERIC_FLAGS`: learning_rate, batch_size, ...) marks an NFL file.
    """
    return bool((set(names) & set(DEFAULT_PARAMETER_MAP)) - GENERIC_FLAGS)


# --------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------
def _user_map(doc: YamlDoc) -> dict[str, tuple[str | None, Callable[[Any], Any] | None]]:
    block = doc.data.get("parameter_map") or {}
    if not isinstance(block, dict):
        raise SpecError(f"{doc.where('parameter_map')}: parameter_map must be a mapping of W&B names to dotted keys")
    out: dict[str, tuple[str | None, Callable[[Any], Any] | None]] = {}
    for name, entry in block.items():
        path = ("parameter_map", name)
        if entry is None:
            out[str(name)] = (None, None)
            continue
        if isinstance(entry, str):
            key, table = entry, None
        elif isinstance(entry, dict) and "to" in entry and set(entry) <= {"to", "values"}:
            key, table = entry["to"], entry.get("values")
            if table is not None and not isinstance(table, dict):
                raise SpecError(f"{doc.where(*path, 'values')}: values must map W&B values to config values")
        else:
            raise SpecError(f"{doc.where(*path)}: a mapping entry is a dotted key, null (ignore) or "
                            "{to: dotted.key, values: {from: to}}")
        if not isinstance(key, str):
            raise SpecError(f"{doc.where(*path)}: 'to' must be a dotted config key (got {key!r})")
        ok, info = check_key(key)
        if not ok:
            raise SpecError(f"{doc.where(*path)}: parameter_map target '{key}' is not a config field ({info})")
        fn = None
        if table is not None:
            tbl = dict(table)
            fn = lambda v, tbl=tbl: tbl.get(v, v)  # noqa: E731
        out[str(name)] = (key, fn)
    return out


def _number(v: Any, problems: list[tuple[int, str]], line: int) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        problems.append((line, f"expected a number (got {v!r})"))
        return 0.0
    return v


def parse_wandb(doc: YamlDoc, path: Path | None, name_default: str | None) -> SweepSpec:
    """Translate a W&B sweep document into a :class:`SweepSpec`.

    Every unknown key or parameter and every bad NFL value is collected and raised as
    one :class:`SpecError` that lists each with its line.
    """
    data = doc.data
    problems: list[tuple[int, str]] = []
    unknown_keys = [k for k in data if k not in set(WANDB_KEYS) | EXTENSION_KEYS]
    for k in unknown_keys:
        close = difflib.get_close_matches(str(k), sorted(set(WANDB_KEYS) | EXTENSION_KEYS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append((doc.line(k), f"unknown W&B sweep key '{k}'{hint}"))
    method = data.get("method")
    if method not in ("grid", "random"):
        raise SpecError(f"{doc.where('method')}: method must be 'grid' or 'random' (got {method!r}; "
                        "bayes needs results as it goes and is not supported)")
    params_block = data.get("parameters")
    if not isinstance(params_block, dict) or not params_block:
        raise SpecError(f"{doc.where('parameters')}: parameters must be a non-empty mapping")
    run_cap = data.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or isinstance(run_cap, bool) or run_cap < 1):
        raise SpecError(f"{doc.where('run_cap')}: run_cap must be a positive integer (got {run_cap!r})")
    user = _user_map(doc)
    grid: list[Param] = []
    rand: list[Param] = []
    nfl_names: set[str] = set()
    keys_seen: dict[str, str] = {}
    unknown: list[tuple[int, str]] = []
    for name, pspec in params_block.items():
        name = str(name)
        ppath = ("parameters", name)
        line = doc.line(*ppath)
        transform: Callable[[Any], Any] | None = None
        if name in user:
            key, transform = user[name]
            if key is None:  # ignored
                continue
        elif name in DEFAULT_PARAMETER_MAP:
            key = ""  # read by translate_nfl
            nfl_names.add(name)
        else:
            ok, info = check_key(name)
            if not ok:
                close = difflib.get_close_matches(name, list(DEFAULT_PARAMETER_MAP), n=1)
                hint = f"did you mean '{close[0]}'?" if close else info
                unknown.append((line, f"'{name}' (line {line}; {hint})"))
                continue
            key = name
        if key:
            if key in keys_seen:
                problems.append((line, f"'{name}' and '{keys_seen[key]}' both map to '{key}'"))
            keys_seen[key] = name
        if not isinstance(pspec, dict):
            problems.append((line, f"parameter '{name}' must be a mapping (value/values/distribution), "
                                   f"got {type(pspec).__name__}"))
            continue
        if "parameters" in pspec:
            problems.append((line, f"'{name}': nested parameters are not supported"))
            continue
        dist = pspec.get("distribution")
        if "value" in pspec or ("values" in pspec and dist in (None, "categorical")):
            if "value" in pspec:
                vals, vlines = [pspec["value"]], [doc.line(*ppath, "value")]
            else:
                vals = pspec["values"]
                if not isinstance(vals, list) or not vals:
                    problems.append((doc.line(*ppath, "values"), f"'{name}': values must be a non-empty list"))
                    continue
                vlines = [doc.line(*ppath, "values", i) for i in range(len(vals))]
                if "probabilities" in pspec:
                    problems.append((doc.line(*ppath, "probabilities"),
                                     f"'{name}': weighted choices are not supported"))
            if not key:
                for v, vl in zip(vals, vlines):
                    why = _check_value(name, v)
                    if why:
                        problems.append((vl, f"{name}: {why}"))
            p = Param(key, line, values=list(vals), value_lines=vlines, label=name, transform=transform)
            if method == "random" and "value" not in pspec:
                p.dist = "choice"
                rand.append(p)
            else:
                grid.append(p)
            continue
        if method == "grid":
            problems.append((line, f"method 'grid' needs 'values' or 'value' for '{name}' "
                                   f"(got distribution {dist!r})"))
            continue
        if dist not in ("uniform", "int_uniform", "log_uniform_values", "log_uniform"):
            problems.append((line, f"unsupported distribution {dist!r} for '{name}' "
                                   "(uniform, int_uniform, log_uniform_values, log_uniform, categorical)"))
            continue
        if "min" not in pspec or "max" not in pspec:
            problems.append((line, f"'{name}': distribution {dist} needs 'min' and 'max'"))
            continue
        lo = _number(pspec["min"], problems, doc.line(*ppath, "min"))
        hi = _number(pspec["max"], problems, doc.line(*ppath, "max"))
        if dist == "log_uniform":
            lo, hi = math.exp(lo), math.exp(hi)
        if hi < lo:
            problems.append((line, f"'{name}': max < min"))
        elif dist == "log_uniform_values" and lo <= 0:
            problems.append((doc.line(*ppath, "min"), f"'{name}': log_uniform_values needs min > 0"))
        kind = {"uniform": "uniform", "int_uniform": "int_uniform"}.get(dist, "log_uniform")
        rand.append(Param(key, line, dist=kind, low=lo, high=hi, label=name, transform=transform))
    if unknown:
        problems.insert(0, (unknown[0][0], f"{len(unknown)} unknown parameter(s) " + ", ".join(u for _, u in unknown)
                            + ": neither NFL flags gridsweep knows nor config keys; map them in parameter_map "
                              "(null ignores one)"))
    if problems:
        problems.sort(key=lambda lp: lp[0])
        first = problems[0][0]
        if len(problems) == 1:
            raise SpecError(f"{doc.source}:{first}: {problems[0][1]}")
        raise SpecError(f"{doc.source}:{first}: {len(problems)} problems: "
                        + "; ".join(f"line {ln}: {msg}" for ln, msg in problems))
    if not grid and not rand:
        raise SpecError(f"{doc.where('parameters')}: every parameter is ignored by parameter_map")
    seed_swept = "seed" in keys_seen or "seed" in nfl_names
    if "seeds" in data:
        if seed_swept:
            raise SpecError(f"{doc.where('seeds')}: 'seed' is a parameter and seeds: is also given")
        seeds: list[int] | None = parse_seeds(data["seeds"], doc)
    else:
        seeds = None if seed_swept else [0]
    rseed = data.get("random_seed", 0)
    if not isinstance(rseed, int) or isinstance(rseed, bool) or rseed < 0:
        raise SpecError(f"{doc.where('random_seed')}: random_seed must be a non-negative integer")
    name = data.get("name", name_default) or "sweep"
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(name)).strip("_") or "sweep"
    base, bdoc = load_base(data.get("base"), doc, path)
    derived: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
    derived_lines: dict[str, int] = {}
    if nfl_names:
        if is_nfl_file(nfl_names):
            base = apply_overrides(base, {k: v for k, v in NFL_CONVENTIONS.items() if not _has(base, k)})
        tgt_raw = base.get("target")
        tgt = tgt_raw if isinstance(tgt_raw, dict) else {}
        base_kind = str(tgt.get("kind", "dos"))
        mdl_raw = base.get("model")
        mdl = mdl_raw if isinstance(mdl_raw, dict) else {}
        family = str(mdl.get("family", "bare"))
        names = frozenset(nfl_names)

        def nfl_rule(raw: dict[str, Any]) -> dict[str, Any]:
            return translate_nfl({k: v for k, v in raw.items() if k in names}, base_kind, family)

        derived.append(nfl_rule)
        for flag in nfl_names:
            for f in DEFAULT_PARAMETER_MAP[flag].fields:
                derived_lines.setdefault(f, doc.line("parameters", flag))
    return SweepSpec(name=name, base=base, source=doc.source, grid=grid, random=rand, random_n=0,
                     random_seed=rseed, seeds=seeds, seeds_line=doc.line("seeds"), base_line=doc.line("base"),
                     base_doc=bdoc, doc=doc, fmt="wandb", run_cap=run_cap, run_cap_line=doc.line("run_cap"),
                     derived=derived, derived_lines=derived_lines, description=str(data.get("description", "")),
                     random_distinct=method == "random", open_ended=method == "random" and run_cap is None,
                     method_line=doc.line("method"))


def _has(base: dict[str, Any], dotted: str) -> bool:
    node: Any = base
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
