"""Parsing shared by both sweep-file formats (native specs and W&B sweep files).

:mod:`gridsweep.sweeps.spec` (native format, expansion) and
:mod:`gridsweep.sweeps.wandb_spec` (W&B / No Free Lunch files) both read YAML with line
numbers, check dotted config keys, parse ``seeds:`` and load ``base:`` through the
public functions here, so neither imports the other's private helpers.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel

from gridsweep.config import RunConfig
from gridsweep.errors import ConfigError

__all__ = ["SpecError", "YamlDoc", "load_yaml", "check_key", "allowed_values", "Param", "parse_seeds",
           "load_base", "SkipPoint"]


class SpecError(ConfigError):
    """An invalid sweep spec; the message starts with ``file:line:``."""


class SkipPoint(Exception):
    """Raised by a derived rule for a sweep point gridsweep does not train.

    The point is counted under ``str(reason)`` in :attr:`SweepSpec.skipped` instead of
    becoming a trial (used for No Free Lunch combinations that NFL's own code refuses or
    that have no gridsweep equivalent; see :mod:`gridsweep.sweeps.wandb_spec`).
    """


# --------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class YamlDoc:
    """A parsed YAML document and the 1-based line of every key and list item."""

    data: Any
    lines: dict[tuple, int]
    source: str

    def line(self, *path: Any, default: int | None = None) -> int:
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), default or 1)

    def where(self, *path: Any) -> str:
        return f"{self.source}:{self.line(*path)}"


def load_yaml(text: str, source: str) -> YamlDoc:
    """Parse YAML text, recording line numbers (raises SpecError on a syntax error)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise SpecError(f"{source}:{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if node is None:
        return YamlDoc(None, {(): 1}, source)
    loader = _Loader("")
    data = loader.construct_document(node)
    lines: dict[tuple, int] = {}

    def walk(n: yaml.Node, path: tuple) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(node, ())
    return YamlDoc(data, lines, source)


# --------------------------------------------------------------------------------------
# config-field introspection
# --------------------------------------------------------------------------------------
def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _field_kind(annotation: Any) -> str:
    """'int', 'float' or 'other' for a (possibly Optional) field annotation."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    args = tuple(a for a in args if a is not type(None))
    if args == (int,):
        return "int"
    if args == (float,):
        return "float"
    return "other"


def _annotation(dotted: str) -> Any:
    model: type[BaseModel] = RunConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        if i == len(parts) - 1:
            return ann
        sub = _section_model(ann)
        if sub is None:
            return None
        model = sub
    return None  # pragma: no cover


def check_key(dotted: str) -> tuple[bool, str]:
    """Whether ``dotted`` names a RunConfig field; returns (ok, reason-or-kind).

    On success the second item is ``'int'``, ``'float'``, ``'other'`` or ``'section'``.
    """
    model: type[BaseModel] = RunConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the top level"
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f"; did you mean '{'.'.join(parts[:i] + [close[0]])}'?" if close else ""
            return False, f"no field '{part}' in {where}{hint}"
        ann = fields[part].annotation
        sub = _section_model(ann)
        if i == len(parts) - 1:
            return True, "section" if sub is not None else _field_kind(ann)
        if sub is None:
            return False, f"'{'.'.join(parts[: i + 1])}' is a value, not a section"
        model = sub
    return True, "other"  # pragma: no cover


def allowed_values(dotted: str) -> tuple[Any, ...] | None:
    """The values a ``Literal`` config field accepts (None: not a Literal or no such field)."""
    ann = _annotation(dotted)
    if ann is None:
        return None
    args = typing.get_args(ann) if typing.get_origin(ann) in (typing.Union, types.UnionType) else (ann,)
    out: list[Any] = []
    for a in args:
        if typing.get_origin(a) is typing.Literal:
            out.extend(typing.get_args(a))
    return tuple(out) or None


# --------------------------------------------------------------------------------------
# swept parameters
# --------------------------------------------------------------------------------------
@dataclass
class Param:
    """One swept parameter: explicit values (grid, cases) or a distribution (random)."""

    key: str  # dotted RunConfig key ("" for a name only derived rules read)
    line: int
    values: list[Any] | None = None
    value_lines: list[int] = field(default_factory=list)
    dist: str | None = None  # "uniform" | "log_uniform" | "int_uniform" | "choice"
    low: float | None = None
    high: float | None = None
    label: str = ""  # the name as written (a W&B name, or the dotted key)
    transform: Callable[[Any], Any] | None = None  # value translation (W&B names)

    def sample(self, u: float) -> Any:
        """Map a uniform draw u in [0, 1) to a value."""
        if self.dist == "choice":
            assert self.values is not None
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.dist == "int_uniform":
            return int(min(math.floor(lo + u * (hi - lo + 1)), hi))
        if self.dist == "log_uniform":
            return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return float(lo + u * (hi - lo))


# --------------------------------------------------------------------------------------
# seeds and base
# --------------------------------------------------------------------------------------
def parse_seeds(value: Any, doc: YamlDoc) -> list[int]:
    """``seeds:`` as a list of distinct non-negative integers, or a count ``n`` -> [0..n-1]."""
    where = doc.where("seeds")
    if isinstance(value, bool):
        raise SpecError(f"{where}: seeds must be a list of integers or a count (got {value!r})")
    if isinstance(value, int):
        if value < 1:
            raise SpecError(f"{where}: a seed count must be >= 1 (got {value})")
        return list(range(value))
    if isinstance(value, list) and value:
        for i, s in enumerate(value):
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                raise SpecError(f"{doc.where('seeds', i)}: seeds must be non-negative integers (got {s!r})")
        if len(set(value)) != len(value):
            raise SpecError(f"{where}: seeds has duplicates {value}")
        return list(value)
    raise SpecError(f"{where}: seeds must be a non-empty list of integers or a count (got {value!r})")


def load_base(value: Any, doc: YamlDoc, spec_path: Path | None) -> tuple[dict[str, Any], YamlDoc | None]:
    """``base:`` as a dict of config sections: inline, or a YAML file relative to the spec."""
    if value is None:
        return {}, None
    if isinstance(value, dict):
        return value, None
    if isinstance(value, str):
        root = spec_path.parent if spec_path is not None else Path.cwd()
        path = (root / value).resolve() if not Path(value).is_absolute() else Path(value)
        if not path.exists():
            raise SpecError(f"{doc.where('base')}: base config {value!r} not found (looked for {path})")
        bdoc = load_yaml(path.read_text(), str(path))
        if bdoc.data is None:
            return {}, bdoc
        if not isinstance(bdoc.data, dict):
            raise SpecError(f"{bdoc.source}:1: a base config must be a mapping of sections")
        return bdoc.data, bdoc
    raise SpecError(f"{doc.where('base')}: base must be a mapping of config sections or a path to a config "
                    f"YAML (got {type(value).__name__})")
