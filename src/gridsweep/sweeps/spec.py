"""Sweep specs: YAML in, a deterministic list of validated trials out.

A spec names a ``base`` run config and the parameters to vary::

    name: sigma_sweep
    base: ../ideal.yaml            # or an inline mapping of config sections
    set:                           # optional: fixed dotted overrides of the base
      training.n_steps: 20000
    cases:                         # optional: bundles of overrides that go together
      - {target.kind: gaussian}
      - {target.kind: dos, target.surround_width_ratio: 2.0}
    grid:                          # cartesian product, dotted config keys
      target.sigma: {low: 0.08, high: 0.20, step: 0.01}
      model.activation: [relu, tanh]
    random:                        # n samples drawn from an explicit seed
      n: 20
      seed: 0
      training.learning_rate: {low: 1e-5, high: 1e-3, log: true}
      trajectory.batch_size: {low: 30, high: 180}      # int field -> int range
      model.init: [glorot_uniform, orthogonal]         # uniform choice
    seeds: [0, 1, 2]               # or a count: 3 -> [0, 1, 2]

Trials are ``cases x grid x random samples x seeds`` in that nesting order (seeds
innermost). Each trial's id is :meth:`RunConfig.hash` of its resolved config, so a
spec re-run, extended or reordered never duplicates work; configs that resolve to the
same thing are kept once.

W&B sweep files (``method: grid|random``, ``parameters:``) are accepted too; see
:mod:`gridsweep.sweeps.wandb_spec` for the name mapping.

Every error (unknown parameter, empty grid, wrong type, invalid resulting config) is a
:class:`SpecError` raised before anything runs, naming ``file:line``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from pydantic import ValidationError

from gridsweep.config import RunConfig, apply_overrides
from gridsweep.errors import format_validation_error, validation_error_loc
from gridsweep.sweeps.specfile import (  # shared with wandb_spec; re-exported here
    Param,
    SkipPoint,
    SpecError,
    YamlDoc,
    check_key,
    load_base,
    load_yaml,
    parse_seeds,
)

__all__ = ["SpecError", "Param", "Trial", "SweepSpec", "load_spec", "parse_spec", "expand", "check_key",
           "SkipPoint", "YamlDoc", "load_yaml"]

# --------------------------------------------------------------------------------------
# spec objects
# --------------------------------------------------------------------------------------
@dataclass
class Trial:
    """One resolved point of a sweep."""

    trial_id: str
    index: int  # position in the expansion
    config: RunConfig
    params: dict[str, Any]  # the swept values, by dotted key (after translation)


@dataclass
class SweepSpec:
    """A parsed sweep spec; :meth:`expand` gives its trials."""

    name: str
    base: dict[str, Any]
    source: str
    grid: list[Param] = field(default_factory=list)
    random: list[Param] = field(default_factory=list)
    random_n: int = 0
    random_seed: int = 0
    cases: list[tuple[dict[str, Any], dict[str, int]]] = field(default_factory=list)
    fixed: tuple[dict[str, Any], dict[str, int]] = field(default_factory=lambda: ({}, {}))
    seeds: list[int] | None = None
    seeds_line: int = 1
    base_line: int = 1
    base_doc: YamlDoc | None = None
    doc: YamlDoc | None = None
    fmt: str = "gridsweep"
    run_cap: int | None = None
    run_cap_line: int = 1
    derived: list[Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=list)
    #: line blamed for a derived key (the flag it comes from); default: the base line
    derived_lines: dict[str, int] = field(default_factory=dict)
    text: str = ""
    description: str = ""
    #: W&B random search: draw until ``run_cap`` distinct trials (skipped points do not count)
    random_distinct: bool = False
    #: W&B random search without run_cap: runs until stopped, so the number of trials is
    #: stated when it runs (:meth:`with_trials`, ``--max-trials`` / ``--trials``)
    open_ended: bool = False
    method_line: int = 1
    #: after :meth:`expand`: points not trained, by reason (each point x seed counts once)
    skipped: dict[str, int] = field(default_factory=dict)
    #: after :meth:`expand`: points that resolved to a config already in the sweep
    n_duplicates: int = 0
    _trials: list[Trial] | None = field(default=None, repr=False)

    def expand(self) -> list[Trial]:
        """The validated, de-duplicated trials (cached)."""
        if self._trials is None:
            if self.needs_count:
                raise SpecError(
                    f"{self.source}:{self.method_line}: method 'random' without run_cap runs until stopped (as in "
                    "W&B); state how many trials to draw: `gridsweep sweep expand FILE --trials N`, "
                    "`gridsweep sweep run FILE --max-trials N`, or add `run_cap: N` to the file")
            self._trials = _expand(self)
        return self._trials

    @property
    def needs_count(self) -> bool:
        """True for an open-ended random search whose number of trials is not stated yet."""
        return self.open_ended and self.run_cap is None

    def with_trials(self, n: int) -> "SweepSpec":
        """A copy of a random search that draws ``n`` trials (the first ``n`` of its seeded stream).

        The draws are a prefix-stable stream: the trials of ``with_trials(n)`` are the
        first ``n`` of ``with_trials(m)`` for every ``m >= n``.
        """
        if not self.random_distinct:
            raise SpecError(f"{self.source}:{self.method_line}: only a W&B random search takes a number of trials")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SpecError(f"{self.source}:{self.method_line}: the number of trials must be a positive integer "
                            f"(got {n!r})")
        return dataclasses.replace(self, run_cap=n, skipped={}, n_duplicates=0, _trials=None)

    @property
    def size(self) -> int:
        return len(self.expand())

    def skipped_summary(self) -> str:
        """One line: how many points were not trained and why ('' when none)."""
        if not self.skipped:
            return ""
        total = sum(self.skipped.values())
        reasons = "; ".join(f"{n} x {why}" for why, n in self.skipped.items())
        return f"{total} point(s) skipped: {reasons}"


# --------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------
SPEC_KEYS = {"name", "description", "base", "set", "grid", "random", "cases", "seeds"}
RANDOM_RESERVED = {"n", "seed"}


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _round(v: float) -> float:
    return float(f"{v:.12g}")


def _range_values(spec: dict[str, Any], kind: str, doc: YamlDoc, path: tuple) -> list[Any]:
    """Values of a grid range ``{low, high, step}`` or ``{low, high, num[, log]}``."""
    allowed = {"low", "high", "step", "num", "log"}
    extra = set(spec) - allowed
    if extra:
        raise SpecError(f"{doc.where(*path, sorted(extra)[0])}: unknown range key '{sorted(extra)[0]}' "
                        f"(a grid range is {{low, high, step}} or {{low, high, num, log}})")
    for k in ("low", "high"):
        if k not in spec:
            raise SpecError(f"{doc.where(*path)}: a range needs '{k}'")
        if not _is_num(spec[k]):
            raise SpecError(f"{doc.where(*path, k)}: {k} must be a number (got {spec[k]!r})")
    lo, hi = float(spec["low"]), float(spec["high"])
    if hi < lo:
        raise SpecError(f"{doc.where(*path)}: high ({hi}) < low ({lo})")
    log = bool(spec.get("log", False))
    if ("step" in spec) == ("num" in spec):
        raise SpecError(f"{doc.where(*path)}: a grid range needs exactly one of 'step' or 'num'")
    if "step" in spec:
        if log:
            raise SpecError(f"{doc.where(*path, 'log')}: log ranges take 'num', not 'step'")
        step = spec["step"]
        if not _is_num(step) or step <= 0:
            raise SpecError(f"{doc.where(*path, 'step')}: step must be a positive number (got {step!r})")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        vals = [lo + i * step for i in range(n)]
    else:
        num = spec["num"]
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise SpecError(f"{doc.where(*path, 'num')}: num must be a positive integer (got {num!r})")
        if log:
            if lo <= 0:
                raise SpecError(f"{doc.where(*path, 'low')}: a log range needs low > 0")
            vals = list(np.geomspace(lo, hi, num)) if num > 1 else [lo]
        else:
            vals = list(np.linspace(lo, hi, num)) if num > 1 else [lo]
    if kind == "int":
        out: list[Any] = []
        for v in vals:
            iv = int(round(v))
            if iv not in out:
                out.append(iv)
        return out
    return [_round(float(v)) for v in vals]


def _check_param_key(key: Any, doc: YamlDoc, path: tuple) -> str:
    if not isinstance(key, str):
        raise SpecError(f"{doc.where(*path)}: parameter names are dotted config keys (got {key!r})")
    ok, info = check_key(key)
    if not ok:
        raise SpecError(f"{doc.where(*path)}: unknown parameter '{key}' ({info})")
    return info


def _parse_grid(block: Any, doc: YamlDoc) -> list[Param]:
    if block is None:
        return []
    if not isinstance(block, dict):
        raise SpecError(f"{doc.where('grid')}: grid must be a mapping of dotted keys to value lists "
                        f"(got {type(block).__name__})")
    if not block:
        raise SpecError(f"{doc.where('grid')}: grid is empty; list parameters or remove it")
    params = []
    for key, spec in block.items():
        path: tuple[Any, ...] = ("grid", key)
        kind = _check_param_key(key, doc, path)
        if isinstance(spec, dict) and "values" in spec and set(spec) == {"values"}:
            spec = spec["values"]
            path = path + ("values",)
        if isinstance(spec, list):
            if not spec:
                raise SpecError(f"{doc.where(*path)}: empty list of values for '{key}'")
            params.append(Param(key, doc.line("grid", key), values=list(spec),
                                value_lines=[doc.line(*path, i) for i in range(len(spec))], label=key))
        elif isinstance(spec, dict):
            vals = _range_values(spec, kind, doc, path)
            if not vals:
                raise SpecError(f"{doc.where(*path)}: range for '{key}' has no values")
            line = doc.line(*path)
            params.append(Param(key, line, values=vals, value_lines=[line] * len(vals), label=key))
        else:
            raise SpecError(f"{doc.where(*path)}: grid values of '{key}' must be a list or a range mapping "
                            f"{{low, high, step|num}} (got {type(spec).__name__} {spec!r}); "
                            "fixed values belong in base")
    return params


def _parse_dist(key: str, spec: Any, kind: str, doc: YamlDoc, path: tuple) -> Param:
    line = doc.line(*path)
    if isinstance(spec, dict) and set(spec) == {"values"}:
        spec = spec["values"]
        path = path + ("values",)
    if isinstance(spec, list):
        if not spec:
            raise SpecError(f"{doc.where(*path)}: empty list of values for '{key}'")
        return Param(key, line, values=list(spec), dist="choice",
                     value_lines=[doc.line(*path, i) for i in range(len(spec))], label=key)
    if not isinstance(spec, dict):
        raise SpecError(f"{doc.where(*path)}: random values of '{key}' must be a list (choice) or a range "
                        f"{{low, high[, log][, int]}} (got {type(spec).__name__} {spec!r})")
    extra = set(spec) - {"low", "high", "log", "int"}
    if extra:
        raise SpecError(f"{doc.where(*path, sorted(extra)[0])}: unknown range key '{sorted(extra)[0]}' "
                        "(a random range is {low, high[, log: true][, int: true]})")
    for k in ("low", "high"):
        if k not in spec:
            raise SpecError(f"{doc.where(*path)}: a range needs '{k}'")
        if not _is_num(spec[k]):
            raise SpecError(f"{doc.where(*path, k)}: {k} must be a number (got {spec[k]!r})")
    lo, hi = spec["low"], spec["high"]
    if hi < lo:
        raise SpecError(f"{doc.where(*path)}: high ({hi}) < low ({lo})")
    log = bool(spec.get("log", False))
    is_int = bool(spec.get("int", kind == "int"))
    if log and lo <= 0:
        raise SpecError(f"{doc.where(*path, 'low')}: a log range needs low > 0")
    if is_int and log:
        raise SpecError(f"{doc.where(*path)}: integer ranges cannot be log ranges")
    if is_int and not (float(lo).is_integer() and float(hi).is_integer()):
        raise SpecError(f"{doc.where(*path)}: integer range bounds must be integers (got {lo}, {hi})")
    dist = "int_uniform" if is_int else ("log_uniform" if log else "uniform")
    return Param(key, line, dist=dist, low=lo, high=hi, label=key)


def _parse_random(block: Any, doc: YamlDoc) -> tuple[list[Param], int, int]:
    if block is None:
        return [], 0, 0
    if not isinstance(block, dict):
        raise SpecError(f"{doc.where('random')}: random must be a mapping with n, seed and parameters")
    for k in ("n", "seed"):
        if k not in block:
            raise SpecError(f"{doc.where('random')}: random needs '{k}' (number of samples and the sampler's seed)")
        v = block[k]
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if k == "n" else 0):
            raise SpecError(f"{doc.where('random', k)}: random.{k} must be an integer >= {1 if k == 'n' else 0} "
                            f"(got {v!r})")
    params = []
    for key, spec in block.items():
        if key in RANDOM_RESERVED:
            continue
        path = ("random", key)
        kind = _check_param_key(key, doc, path)
        params.append(_parse_dist(key, spec, kind, doc, path))
    if not params:
        raise SpecError(f"{doc.where('random')}: random has no parameters")
    return params, block["n"], block["seed"]


def _parse_cases(block: Any, doc: YamlDoc) -> list[tuple[dict[str, Any], dict[str, int]]]:
    if block is None:
        return []
    if not isinstance(block, list) or not block:
        raise SpecError(f"{doc.where('cases')}: cases must be a non-empty list of mappings of dotted keys")
    out = []
    for i, case in enumerate(block):
        if not isinstance(case, dict):
            raise SpecError(f"{doc.where('cases', i)}: each case is a mapping of dotted keys to values "
                            f"(got {type(case).__name__})")
        lines = {}
        for key in case:
            _check_param_key(key, doc, ("cases", i, key))
            lines[key] = doc.line("cases", i, key)
        out.append((dict(case), lines))
    return out


def parse_spec(text: str, source: str = "<spec>", path: Path | None = None,
               name_default: str | None = None) -> SweepSpec:
    """Parse spec text (gridsweep or W&B format) into a :class:`SweepSpec`.

    ``path`` locates relative ``base:`` files; ``name_default`` is used when the spec has
    no ``name:`` (the file stem).
    """
    doc = load_yaml(text, source)
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError(f"{source}:{doc.line()}: a sweep spec must be a mapping (name, base, grid, random, seeds)")
    if "method" in data or "parameters" in data:
        from gridsweep.sweeps.wandb_spec import parse_wandb

        spec = parse_wandb(doc, path, name_default)
        spec.text = text
        _check_expandable(spec)
        return spec
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), sorted(SPEC_KEYS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise SpecError(f"{doc.where(k)}: unknown spec key '{k}' (allowed: {', '.join(sorted(SPEC_KEYS))}){hint}")
    name = data.get("name", name_default)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name or ""):
        raise SpecError(f"{doc.where('name')}: name must be a simple identifier "
                        f"(letters, digits, '_', '-', '.'; got {name!r})")
    base, bdoc = load_base(data.get("base"), doc, path)
    if "grid" in data and data["grid"] is None:
        raise SpecError(f"{doc.where('grid')}: grid is empty; list parameters or remove it")
    grid = _parse_grid(data.get("grid"), doc)
    rparams, rn, rseed = _parse_random(data.get("random"), doc)
    cases = _parse_cases(data.get("cases"), doc)
    fixed: tuple[dict[str, Any], dict[str, int]] = ({}, {})
    if "set" in data:
        block = data["set"]
        if not isinstance(block, dict) or not block:
            raise SpecError(f"{doc.where('set')}: set must be a non-empty mapping of dotted keys to values")
        for key in block:
            _check_param_key(key, doc, ("set", key))
        fixed = (dict(block), {k: doc.line("set", k) for k in block})
    swept = [p.key for p in grid] + [p.key for p in rparams]
    dup = sorted({k for k in swept if swept.count(k) > 1})
    if dup:
        raise SpecError(f"{doc.where('random', dup[0])}: '{dup[0]}' is swept in both grid and random")
    seed_swept = "seed" in swept or "seed" in fixed[0] or any("seed" in c for c, _ in cases)
    seeds: list[int] | None
    if "seeds" in data:
        if seed_swept:
            raise SpecError(f"{doc.where('seeds')}: 'seed' is swept in grid/random/cases and also set by seeds:")
        seeds = parse_seeds(data["seeds"], doc)
    else:
        seeds = None if seed_swept else [int(base.get("seed", 0)) if isinstance(base.get("seed", 0), int) else 0]
    desc = data.get("description", "")
    spec = SweepSpec(name=name, base=base, source=source, grid=grid, random=rparams, random_n=rn,
                     random_seed=rseed, cases=cases, fixed=fixed, seeds=seeds, seeds_line=doc.line("seeds"),
                     base_line=doc.line("base"), base_doc=bdoc, doc=doc, text=text,
                     description=desc if isinstance(desc, str) else str(desc))
    _check_expandable(spec)
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file (expanding it once, so every error surfaces now)."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: sweep spec not found")
    return parse_spec(path.read_text(), str(path), path=path.resolve(), name_default=path.stem)


def _check_expandable(spec: SweepSpec) -> None:
    if not spec.needs_count:  # an open-ended random search is expanded once its size is stated
        spec.expand()


# --------------------------------------------------------------------------------------
# expansion
# --------------------------------------------------------------------------------------
def _random_samples(spec: SweepSpec) -> Iterator[list[tuple[Param, Any]]]:
    """Draws from ``default_rng(random_seed)``, one row of uniforms per sample.

    Row by row is the same stream as one ``rng.random((n, P))`` call, so a longer run of
    a random search starts with the samples of a shorter one. Native specs take
    ``random.n`` rows; a W&B random search (``random_distinct``) draws until it has
    ``run_cap`` trials, giving up after ``100 * run_cap + 1000`` draws (a small space).
    """
    if not spec.random:
        yield []
        return
    rng = np.random.default_rng(spec.random_seed)
    limit = spec.random_n
    if spec.random_distinct:
        limit = 100 * int(spec.run_cap or 0) + 1000
    for _ in range(limit):
        u = rng.random(len(spec.random))
        yield [(p, p.sample(float(u[j]))) for j, p in enumerate(spec.random)]


def _apply(base: dict[str, Any], assigned: list[tuple[str, Any, int, str]]) -> dict[str, Any]:
    return apply_overrides(base, {k: v for k, v, _, _ in assigned if k})


def _blame(loc: str, assigned: list[tuple[str, Any, int, str]], spec: SweepSpec) -> str:
    """``file:line`` of the spec entry most likely responsible for an error at ``loc``."""
    for key, _, line, _label in reversed(assigned):
        if loc and (key == loc or loc.startswith(key + ".")):
            return f"{spec.source}:{line}"
    # an error about a whole section: blame the base when the base alone fails there too
    if loc and _base_error_loc(spec) != loc:
        for key, _, line, _label in reversed(assigned):
            if key.startswith(loc + "."):
                return f"{spec.source}:{line}"
    if not loc:  # a cross-section combination: blame the last swept value
        for _key, _, line, label in reversed(assigned):
            if label:
                return f"{spec.source}:{line}"
    parts = tuple(loc.split(".")) if loc else ()
    if spec.base_doc is not None:
        return f"{spec.base_doc.source}:{spec.base_doc.line(*parts)}"
    if spec.doc is not None and isinstance(spec.doc.data, dict) and isinstance(spec.doc.data.get("base"), dict):
        return f"{spec.source}:{spec.doc.line('base', *parts)}"
    return f"{spec.source}:{spec.base_line}"


def _base_error_loc(spec: SweepSpec) -> str | None:
    try:
        RunConfig.model_validate(spec.base)
    except ValidationError as err:
        return validation_error_loc(err)
    return None


def _validate(data: dict[str, Any], assigned: list[tuple[str, Any, int, str]], spec: SweepSpec) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        loc = validation_error_loc(err)
        vals = ", ".join(f"{label}={v!r}" for _, v, _, label in assigned if label) or "base config"
        where = _blame(loc, assigned, spec)
        raise SpecError(f"{where}: invalid resulting config at {format_validation_error(err)} "
                        f"(trial with {vals})") from None


def _expand(spec: SweepSpec) -> list[Trial]:
    cases = spec.cases or [({}, {})]
    grid_iter = list(itertools.product(*[list(zip(p.values, p.value_lines)) for p in spec.grid]))  # type: ignore[arg-type]
    seeds: list[int | None] = list(spec.seeds) if spec.seeds is not None else [None]
    trials: list[Trial] = []
    seen: set[str] = set()
    index = 0
    spec.skipped = {}
    spec.n_duplicates = 0
    for case, case_lines in cases:
        for point in grid_iter:
            for sample in _random_samples(spec):
                assigned: list[tuple[str, Any, int, str]] = [
                    (k, v, spec.fixed[1].get(k, spec.base_line), "") for k, v in spec.fixed[0].items()]
                for k, v in case.items():
                    assigned.append((k, v, case_lines.get(k, spec.base_line), k))
                for p, (v, line) in zip(spec.grid, point):
                    assigned.append((p.key, p.transform(v) if p.transform else v, line, p.label or p.key))
                for p, v in sample:
                    assigned.append((p.key, p.transform(v) if p.transform else v, p.line, p.label or p.key))
                if spec.derived:
                    raw = {label: v for _, v, _, label in assigned}
                    try:
                        for rule in spec.derived:
                            for k, v in rule(raw).items():
                                assigned.append((k, v, spec.derived_lines.get(k, spec.base_line), ""))
                    except SkipPoint as why:
                        spec.skipped[str(why)] = spec.skipped.get(str(why), 0) + len(seeds)
                        continue
                for seed in seeds:
                    full = assigned if seed is None else assigned + [("seed", seed, spec.seeds_line, "seed")]
                    cfg = _validate(_apply(spec.base, full), full, spec)
                    tid = cfg.hash()
                    if tid in seen:
                        spec.n_duplicates += 1
                        continue
                    seen.add(tid)
                    params = {(k or label): v for k, v, _, label in full}
                    trials.append(Trial(tid, index, cfg, params))
                    index += 1
                    if spec.run_cap is not None and len(trials) >= spec.run_cap:
                        return trials
    if not trials and not spec.skipped:
        raise SpecError(f"{spec.source}:1: the spec expands to no trials")
    return trials


def expand(spec: SweepSpec | str | Path) -> list[Trial]:
    """Trials of a spec object or spec file."""
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    return spec.expand()
