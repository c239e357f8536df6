"""gridsweep.published: the published numbers as package data, and their agreement with docs/science.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gridsweep.errors import DataError
from gridsweep.published import _parse, load_published

SCIENCE = Path(__file__).resolve().parents[1] / "docs" / "science.md"


def _docs_table() -> dict[str, tuple[str, str, str]]:
    """Rows ``| `key` | value | unit | source |`` of docs/science.md section 1 ("Published numbers by key")."""
    text = SCIENCE.read_text()
    start = text.index("### Published numbers by key")
    end = text.index("### Sources", start)
    rows = {}
    for line in text[start:end].splitlines():
        m = re.match(r"^\| `([^`]+)` \| (.*?) \| (.*?) \| (.*?) \|$", line)
        if m:
            assert m.group(1) not in rows, f"key {m.group(1)} listed twice"
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return rows


def test_loads_and_every_entry_has_a_source():
    pub = load_published()
    assert len(pub) >= 40
    for key, n in pub.items():
        assert n.key == key and key.startswith(n.claim + ".")
        assert n.paper.authors and n.paper.title and n.paper.venue and 1990 < n.paper.year < 2030, key
        assert n.where.strip(), key
        assert n.quantity.strip(), key
    assert {n.claim for n in pub.values()} == {"R1", "R2", "R3", "R4", "R5", "R6", "R7", "B1", "B2", "P"}


def test_known_values():
    # transcribed by hand from the papers (docs/science.md section 1), independently of the file
    pub = load_published()
    expected = {
        "R1.icml.n_networks": 3547, "R1.icml.frac_low_error": 0.605, "R1.icml.frac_grid_given_low_error": 0.117,
        "R1.neurips.n_networks": 11608, "R1.neurips.low_error_threshold": 10, "R2.p_grid.dos": 0.91,
        "R2.p_grid.polar": 0.24, "R3.period_linear_sigma_range": (0.08, 0.20), "R5.peak_sigmas": (0.10, 0.12, 0.15),
        "R6.sigma_range": (0.06, 1.0), "R7.amplitude_sweep.n_runs": 1086, "P.UGRNN.participation_ratio": 16.7,
    }
    for key, value in expected.items():
        assert pub[key].value == value, key
    assert pub["R5.peak_sigmas"].kind == "set" and pub["R6.sigma_range"].kind == "range"
    assert pub["R1.icml.frac_grid_all"].approx and pub["R1.icml.frac_grid_all"].text == "~0.07"


def test_file_and_docs_science_agree_key_by_key():
    pub = load_published()
    rows = _docs_table()
    assert set(rows) == set(pub), (sorted(set(rows) ^ set(pub)))
    for key, n in pub.items():
        assert rows[key] == (n.text, n.unit or "-", n.source), key


def test_every_number_the_report_prints_has_an_entry():
    from gridsweep.reproduce.claims import CLAIMS, NAYEBI_PUBLISHED, PUBLISHED_P_GRID

    pub = load_published()
    by_label = {(n.claim, n.report_label) for n in pub.values() if n.report_label}
    for c in CLAIMS:
        for pn in c.numbers:
            assert (c.id, pn.label) in by_label, (c.id, pn.label)
    p_grid = {n.target_kind: n.value for n in pub.values() if n.claim == "R2" and n.target_kind}
    assert p_grid == PUBLISHED_P_GRID
    arch: dict[str, dict[str, float]] = {}
    for n in pub.values():
        if n.claim == "P":
            arch.setdefault(n.architecture, {})[n.key.rsplit(".", 1)[1]] = n.value
    assert {a: (v["participation_ratio"], v["predictivity"]) for a, v in arch.items()} == NAYEBI_PUBLISHED


_PAPERS = {"p": {"authors": "A, B.", "title": "T", "venue": "V", "year": 2022}}


@pytest.mark.parametrize("entry, needle", [
    ({"claim": "R1", "quantity": "q", "value": 1, "unit": "", "paper": "p"}, "missing where"),
    ({"claim": "R9", "quantity": "q", "value": 1, "unit": "", "paper": "p", "where": "Fig. 1"}, "claim 'R9'"),
    ({"claim": "R1", "quantity": "q", "value": 1, "unit": "", "paper": "nope", "where": "Fig. 1"}, "paper 'nope'"),
    ({"claim": "R1", "quantity": "q", "value": [2, 1], "unit": "", "paper": "p", "where": "Fig. 1"}, "low <= high"),
    ({"claim": "R1", "quantity": "q", "value": True, "unit": "", "paper": "p", "where": "Fig. 1"}, "boolean"),
    ({"claim": "R1", "quantity": "q", "value": 1, "unit": "", "paper": "p", "where": "Fig. 1", "figure": 2},
     "unknown field"),
])
def test_malformed_entries_are_rejected(entry, needle):
    with pytest.raises(DataError, match=re.escape(needle)):
        _parse({"papers": _PAPERS, "numbers": {"R1.x": entry}})


def test_data_file_is_plain_yaml_with_papers_and_numbers():
    from importlib import resources

    doc = yaml.safe_load(resources.files("gridsweep").joinpath("data/published.yaml").read_text())
    assert set(doc) == {"papers", "numbers"}
    with pytest.raises(DataError, match="start with their claim id"):
        _parse({"papers": _PAPERS, "numbers": {"R2.x": {"claim": "R1", "quantity": "q", "value": 1, "unit": "",
                                                        "paper": "p", "where": "Fig. 1"}}})
