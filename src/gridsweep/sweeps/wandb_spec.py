"""Weights & Biases sweep files as gridsweep specs.

A W&B sweep YAML (``method: grid|random``, ``parameters: {name: {...}}``, ``run_cap``)
expands like a native spec. Parameter names are translated to dotted RunConfig keys by
``parameter_map:`` (a gridsweep extension key in the same file) on top of
:data:`DEFAULT_PARAMETER_MAP`, which knows the flag names of the No Free Lunch code
(Schaeffer et al. 2022). A name that is already a dotted RunConfig key needs no entry.

Mapping entries::

    parameter_map:
      Ng: model.hidden_size                 # rename
      rnn_type: {to: model.cell, values: {RNN: rnn, LSTM: lstm}}   # rename + value table
      wandb_only_flag: null                 # ignore this parameter

Parameter forms accepted: ``value``, ``values`` (grid: crossed; random: uniform choice),
``distribution: categorical`` (values), ``uniform`` / ``int_uniform`` /
``log_uniform_values`` (``min``, ``max`` as values) / ``log_uniform`` (``min``, ``max``
as natural-log exponents, W&B's convention). ``method: random`` needs ``run_cap`` (the
number of trials); its sampler seed is ``random_seed:`` (default 0). ``seeds:`` may give
network seeds when ``seed`` is not itself a parameter. ``metric``, ``program``,
``command``, ``project``, ``entity``, ``description`` and ``early_terminate`` are read
and ignored (gridsweep runs every trial to completion).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

from gridsweep.sweeps.spec import (
    Param,
    SpecError,
    SweepSpec,
    YamlDoc,
    _load_base,
    _parse_seeds,
    check_key,
)

__all__ = ["DEFAULT_PARAMETER_MAP", "parse_wandb", "mapping_table"]


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _boundary(v: Any) -> Any:
    if isinstance(v, bool):
        return "periodic" if v else "solid"
    return v


#: NFL flag name -> (dotted RunConfig key, value translation or None, note).
DEFAULT_PARAMETER_MAP: dict[str, tuple[str, Callable[[Any], Any] | None, str]] = {
    "rnn_type": ("model.cell", _lower, "RNN/LSTM/GRU/UGRNN -> lower case (SRNN is not implemented)"),
    "activation": ("model.activation", _lower, ""),
    "initializer": ("model.init", _lower, "glorot_uniform / glorot_normal / orthogonal"),
    "Ng": ("model.hidden_size", None, ""),
    "readout_dropout": ("model.dropout", None, "dropout on the readout input"),
    "optimizer": ("training.optimizer", _lower, ""),
    "learning_rate": ("training.learning_rate", None, ""),
    "weight_decay": ("training.weight_decay", None, "L2 on the recurrent matrix"),
    "Np": ("target.n_cells", None, ""),
    "place_cell_rf": ("target.sigma", None, "metres"),
    "surround_scale": ("target.surround_width_ratio", None,
                       "NFL's convention is the WIDTH ratio sigma_I = s sigma_E (Sorscher's is the variance ratio)"),
    "batch_size": ("trajectory.batch_size", None, ""),
    "sequence_length": ("trajectory.sequence_length", None, ""),
    "box_width_in_m": ("box.width", None, ""),
    "box_height_in_m": ("box.height", None, ""),
    "is_periodic": ("box.boundary", _boundary, "true -> periodic, false -> solid"),
    "seed": ("seed", None, "network seed"),
}

#: NFL flags that combine into one field (see :func:`_derived_rules`).
DERIVED_NOTES = {
    "n_epochs, n_grad_steps_per_epoch": "training.n_steps = n_epochs * n_grad_steps_per_epoch "
                                        "(NFL defaults 100 and 1000 fill a missing one)",
    "bin_side_in_m": "evaluation.bins = round(box.width / bin_side_in_m)",
}

WANDB_KEYS = {"method", "parameters", "run_cap", "metric", "program", "command", "project", "entity",
              "description", "early_terminate", "name"}
EXTENSION_KEYS = {"base", "parameter_map", "seeds", "random_seed"}


def mapping_table() -> str:
    """The default W&B/NFL name mapping as a Markdown table (used in docs/sweeps.md)."""
    rows = ["| W&B / NFL name | gridsweep key | note |", "|---|---|---|"]
    for name, (key, _, note) in DEFAULT_PARAMETER_MAP.items():
        rows.append(f"| `{name}` | `{key}` | {note} |")
    for name, note in DERIVED_NOTES.items():
        rows.append(f"| `{name}` | derived | {note} |")
    return "\n".join(rows)


def _derived_rules(names: set[str]) -> list[Callable[[dict[str, Any]], dict[str, Any]]]:
    rules = []
    if names & {"n_epochs", "n_grad_steps_per_epoch"}:
        def steps(raw: dict[str, Any]) -> dict[str, Any]:
            return {"training.n_steps": int(raw.get("n_epochs", 100)) * int(raw.get("n_grad_steps_per_epoch", 1000))}
        rules.append(steps)
    if "bin_side_in_m" in names:
        def bins(raw: dict[str, Any]) -> dict[str, Any]:
            width = float(raw.get("box_width_in_m", raw.get("box.width", 2.2)))
            return {"evaluation.bins": max(2, int(round(width / float(raw["bin_side_in_m"]))))}
        rules.append(bins)
    return rules


DERIVED_NAMES = {"n_epochs", "n_grad_steps_per_epoch", "bin_side_in_m"}


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


def _resolve(name: str, user: dict, doc: YamlDoc, path: tuple) -> tuple[str | None, Callable | None]:
    if name in user:
        return user[name]
    if name in DEFAULT_PARAMETER_MAP:
        key, fn, _ = DEFAULT_PARAMETER_MAP[name]
        return key, fn
    if name in DERIVED_NAMES:
        return "", None
    ok, info = check_key(name)
    if ok:
        return name, None
    raise SpecError(f"{doc.where(*path)}: unknown parameter '{name}': not an NFL flag gridsweep knows nor a "
                    f"config key ({info}); add it to parameter_map (or map it to null to ignore it)")


def _num(v: Any, doc: YamlDoc, path: tuple) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"{doc.where(*path)}: expected a number (got {v!r})")
    return v


def parse_wandb(doc: YamlDoc, path: Path | None, name_default: str | None) -> SweepSpec:
    """Translate a W&B sweep document into a :class:`SweepSpec`."""
    data = doc.data
    unknown = [k for k in data if k not in WANDB_KEYS | EXTENSION_KEYS]
    if unknown:
        raise SpecError(f"{doc.where(unknown[0])}: unknown W&B sweep key '{unknown[0]}'")
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
    if method == "random" and run_cap is None:
        raise SpecError(f"{doc.where('method')}: method 'random' needs run_cap (the number of trials)")
    user = _user_map(doc)
    grid: list[Param] = []
    rand: list[Param] = []
    names: set[str] = set()
    keys_seen: dict[str, str] = {}
    for name, pspec in params_block.items():
        name = str(name)
        ppath = ("parameters", name)
        key, fn = _resolve(name, user, doc, ppath)
        if key is None:  # ignored
            continue
        names.add(name)
        if key:
            if key in keys_seen:
                raise SpecError(f"{doc.where(*ppath)}: '{name}' and '{keys_seen[key]}' both map to '{key}'")
            keys_seen[key] = name
        if not isinstance(pspec, dict):
            raise SpecError(f"{doc.where(*ppath)}: parameter '{name}' must be a mapping "
                            f"(value/values/distribution), got {type(pspec).__name__}")
        if "parameters" in pspec:
            raise SpecError(f"{doc.where(*ppath)}: nested parameters are not supported")
        line = doc.line(*ppath)
        dist = pspec.get("distribution")
        if "value" in pspec:
            grid.append(Param(key, line, values=[pspec["value"]], value_lines=[doc.line(*ppath, "value")],
                              label=name, transform=fn))
            continue
        if "values" in pspec and dist in (None, "categorical"):
            vals = pspec["values"]
            if not isinstance(vals, list) or not vals:
                raise SpecError(f"{doc.where(*ppath, 'values')}: values must be a non-empty list")
            vlines = [doc.line(*ppath, "values", i) for i in range(len(vals))]
            if "probabilities" in pspec:
                raise SpecError(f"{doc.where(*ppath, 'probabilities')}: weighted choices are not supported")
            p = Param(key, line, values=list(vals), value_lines=vlines, label=name, transform=fn)
            if method == "random":
                p.dist = "choice"
                rand.append(p)
            else:
                grid.append(p)
            continue
        if method == "grid":
            raise SpecError(f"{doc.where(*ppath)}: method 'grid' needs 'values' or 'value' for '{name}' "
                            f"(got distribution {dist!r})")
        if dist not in ("uniform", "int_uniform", "log_uniform_values", "log_uniform"):
            raise SpecError(f"{doc.where(*ppath)}: unsupported distribution {dist!r} for '{name}' "
                            "(uniform, int_uniform, log_uniform_values, log_uniform, categorical)")
        for k in ("min", "max"):
            if k not in pspec:
                raise SpecError(f"{doc.where(*ppath)}: distribution {dist} needs '{k}'")
        lo, hi = _num(pspec["min"], doc, ppath + ("min",)), _num(pspec["max"], doc, ppath + ("max",))
        if dist == "log_uniform":
            lo, hi = math.exp(lo), math.exp(hi)
        if hi < lo:
            raise SpecError(f"{doc.where(*ppath)}: max < min")
        if dist == "log_uniform_values" and lo <= 0:
            raise SpecError(f"{doc.where(*ppath, 'min')}: log_uniform_values needs min > 0")
        kind = {"uniform": "uniform", "int_uniform": "int_uniform"}.get(dist, "log_uniform")
        rand.append(Param(key, line, dist=kind, low=lo, high=hi, label=name, transform=fn))
    if not grid and not rand:
        raise SpecError(f"{doc.where('parameters')}: every parameter is ignored by parameter_map")
    seed_swept = "seed" in keys_seen
    if "seeds" in data:
        if seed_swept:
            raise SpecError(f"{doc.where('seeds')}: 'seed' is a parameter and seeds: is also given")
        seeds: list[int] | None = _parse_seeds(data["seeds"], doc)
    else:
        seeds = None if seed_swept else [0]
    rseed = data.get("random_seed", 0)
    if not isinstance(rseed, int) or isinstance(rseed, bool) or rseed < 0:
        raise SpecError(f"{doc.where('random_seed')}: random_seed must be a non-negative integer")
    name = data.get("name", name_default) or "sweep"
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(name)).strip("_") or "sweep"
    base, bdoc = _load_base(data.get("base"), doc, path)
    n_seeds = len(seeds) if seeds else 1
    random_n = -(-run_cap // n_seeds) if method == "random" else 0  # type: ignore[operator]
    return SweepSpec(name=name, base=base, source=doc.source, grid=grid, random=rand, random_n=random_n,
                     random_seed=rseed, seeds=seeds, seeds_line=doc.line("seeds"), base_line=doc.line("base"),
                     base_doc=bdoc, doc=doc, fmt="wandb", run_cap=run_cap, run_cap_line=doc.line("run_cap"),
                     derived=_derived_rules(names), description=str(data.get("description", "")))
