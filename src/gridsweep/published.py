"""The published numbers gridsweep compares its runs with, read from package data.

One entry per number in ``gridsweep/data/published.yaml``: the claim it supports (R1 ...
R7, P of docs/science.md section 1; B1, B2 for the rebuttal of Sorscher et al. 2022),
what it measures, its value (a number, a ``(low, high)`` range, a set of values or a
formula), its unit and the paper and figure it comes from. docs/science.md section 1
lists the same keys and values (checked by ``tests/test_published.py``).

>>> from gridsweep.published import load_published
>>> n = load_published()["R2.p_grid.dos"]
>>> n.value, n.unit, n.paper.short, n.where
(0.91, 'probability', 'Schaeffer et al. 2022 (NeurIPS)', 'Fig. 2')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from gridsweep.errors import DataError

__all__ = ["CLAIM_IDS", "Paper", "PublishedNumber", "format_value", "load_published"]

#: Claims a published number may support (docs/science.md section 1; B1, B2: the rebuttal).
CLAIM_IDS = ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "B1", "B2", "P")

_REQUIRED = ("claim", "quantity", "value", "unit", "paper", "where")
_OPTIONAL = ("approx", "kind", "report_label", "target_kind", "architecture")


@dataclass(frozen=True)
class Paper:
    """A source: authors, title, venue, year."""

    key: str
    authors: str
    title: str
    venue: str
    year: int

    @property
    def short(self) -> str:
        """``"First et al. YEAR (venue)"``, e.g. ``"Schaeffer et al. 2022 (NeurIPS)"``."""
        first = self.authors.split(",")[0].strip()
        venue = self.venue.split("(")[-1].rstrip(")").split()[0] if "(" in self.venue else self.venue.split()[0]
        return f"{first} et al. {self.year} ({venue})"


@dataclass(frozen=True)
class PublishedNumber:
    """One published number.

    Attributes
    ----------
    key : str
        Stable id, e.g. ``"R2.p_grid.dos"``.
    claim : str
        One of :data:`CLAIM_IDS`.
    quantity : str
        What it measures.
    value : float, int, tuple or str
        A number; ``(low, high)`` for a range; a tuple of values when ``kind == "set"``;
        a string for a formula or a list of names.
    approx : bool
        The paper gives the value as approximate ("~").
    unit : str
    paper : Paper
    where : str
        Figure, table or "text" of ``paper``.
    report_label : str or None
        The label of the same number in :mod:`gridsweep.reproduce.claims`, if the report
        prints it.
    target_kind, architecture : str or None
        The target kind (R2) or architecture (P) the number is about.
    kind : {"number", "range", "set", "formula"}
    """

    key: str
    claim: str
    quantity: str
    value: Any
    approx: bool
    unit: str
    paper: Paper
    where: str
    kind: str
    report_label: str | None = None
    target_kind: str | None = None
    architecture: str | None = None

    @property
    def text(self) -> str:
        """The value as docs/science.md writes it (:func:`format_value`)."""
        return format_value(self)

    @property
    def source(self) -> str:
        """``"<paper short>, <where>"``."""
        return f"{self.paper.short}, {self.where}"


def _fmt(v: float | int) -> str:
    return f"{v:g}"


def format_value(n: PublishedNumber) -> str:
    """A number's value as text: ``0.91``, ``~0.07``, ``0.08-0.2``, ``0.1, 0.12, 0.15`` or the formula."""
    pre = "~" if n.approx else ""
    if n.kind == "number":
        return pre + _fmt(n.value)
    if n.kind == "range":
        return pre + f"{_fmt(n.value[0])}-{_fmt(n.value[1])}"
    if n.kind == "set":
        return pre + ", ".join(_fmt(v) for v in n.value)
    return pre + str(n.value)


def _kind(key: str, entry: dict[str, Any]) -> tuple[str, Any]:
    v = entry["value"]
    declared = entry.get("kind")
    if isinstance(v, bool):
        raise DataError(f"published.yaml {key}: value {v!r} is a boolean; expected a number, range, list or formula")
    if isinstance(v, (int, float)):
        kind = "number"
    elif isinstance(v, str):
        kind = "formula"
    elif isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        kind = "set" if declared == "set" else "range"
        if kind == "range" and (len(v) != 2 or not v[0] <= v[1]):
            raise DataError(f"published.yaml {key}: range {v} must be [low, high] with low <= high "
                            "(or declare kind: set)")
        v = tuple(v)
    else:
        raise DataError(f"published.yaml {key}: value {v!r} is not a number, a list of numbers or a string")
    if declared is not None and declared != kind:
        raise DataError(f"published.yaml {key}: kind {declared!r} does not fit value {entry['value']!r}")
    return kind, v


def _parse(doc: Any) -> dict[str, PublishedNumber]:
    if not isinstance(doc, dict) or not isinstance(doc.get("papers"), dict) or not isinstance(doc.get("numbers"), dict):
        raise DataError("published.yaml: expected a mapping with 'papers' and 'numbers' sections")
    papers: dict[str, Paper] = {}
    for pk, p in doc["papers"].items():
        missing = [f for f in ("authors", "title", "venue", "year") if not (isinstance(p, dict) and p.get(f))]
        if missing:
            raise DataError(f"published.yaml paper {pk}: missing {', '.join(missing)}")
        papers[pk] = Paper(pk, str(p["authors"]), str(p["title"]), str(p["venue"]), int(p["year"]))
    out: dict[str, PublishedNumber] = {}
    for key, e in doc["numbers"].items():
        if not isinstance(e, dict):
            raise DataError(f"published.yaml {key}: expected a mapping, got {type(e).__name__}")
        missing = [f for f in _REQUIRED if f not in e or (f != "unit" and e[f] in (None, ""))]
        if missing:
            raise DataError(f"published.yaml {key}: missing {', '.join(missing)}")
        extra = set(e) - set(_REQUIRED) - set(_OPTIONAL)
        if extra:
            raise DataError(f"published.yaml {key}: unknown field(s) {sorted(extra)}; allowed: {_REQUIRED + _OPTIONAL}")
        if e["claim"] not in CLAIM_IDS:
            raise DataError(f"published.yaml {key}: claim {e['claim']!r} is not one of {CLAIM_IDS}")
        if not key.startswith(f"{e['claim']}."):
            raise DataError(f"published.yaml {key}: keys start with their claim id ({e['claim']}.)")
        if e["paper"] not in papers:
            raise DataError(f"published.yaml {key}: paper {e['paper']!r} is not in 'papers' ({sorted(papers)})")
        kind, value = _kind(key, e)
        out[key] = PublishedNumber(
            key=key, claim=e["claim"], quantity=str(e["quantity"]), value=value, approx=bool(e.get("approx", False)),
            unit=str(e["unit"] or ""), paper=papers[e["paper"]], where=str(e["where"]), kind=kind,
            report_label=e.get("report_label"), target_kind=e.get("target_kind"), architecture=e.get("architecture"))
    return out


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, PublishedNumber]:
    text = resources.files("gridsweep").joinpath("data/published.yaml").read_text(encoding="utf-8")
    return _parse(yaml.safe_load(text))


def load_published() -> dict[str, PublishedNumber]:
    """Every published number, by key (file order: claim R1 first).

    Returns
    -------
    dict of str -> PublishedNumber
        A new dict each call (the entries themselves are immutable).

    Raises
    ------
    DataError
        The data file is malformed (missing field, unknown claim or paper, bad value).

    Notes
    -----
    Values as stated by the papers listed in docs/science.md section 1.
    """
    return dict(_load())
