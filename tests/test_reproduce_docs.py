"""docs/reproduce.md: its numbers are generated blocks (presets, rules, a preset's results)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridsweep.reproduce.docnumbers import DocError, preset_rows, replace_block, results_block, rules_block

DOC = Path(__file__).parent.parent / "docs" / "reproduce.md"


def test_replace_block_rewrites_only_the_block():
    text = "a\n<!-- BEGIN GENERATED: x -->\nold\n<!-- END GENERATED: x -->\nb\n"
    out = replace_block(text, "x", "new | 1")
    assert out == "a\n<!-- BEGIN GENERATED: x -->\nnew | 1\n<!-- END GENERATED: x -->\nb\n"
    with pytest.raises(DocError, match="no block 'y'"):
        replace_block(text, "y", "z")


def test_quick_row_is_read_from_the_preset_file():
    row = preset_rows(("quick",)).splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "`quick`" and cells[1] == "`quick_dos`"
    assert cells[3].startswith("6,000 steps") and cells[4] == "22" and cells[5] == "2"
    assert cells[6] == "3: 0.1, 0.12, 0.16"
    seeds5 = [c.strip() for c in preset_rows(("quick_seeds",)).splitlines()[-1].strip("|").split("|")]
    assert seeds5[4] == "35" and seeds5[5] == "5" and seeds5[6] == "1: 0.12 (no sigma sweep)"


def test_results_block_names_the_commit_and_every_network():
    res = {"preset": "quick", "generated": "2026-11-30 12:00:00",
           "reproducibility": {"commit": "abc", "trained_with": {"commit": "0123abcd", "cpu": "AMD EPYC",
                                                                 "versions": {"torch": "2.13.0"}}},
           "claims": {"R2": {"verdict": "inconclusive", "verdict_text": "inconclusive (too few networks: n=2)",
                             "reason": "too few networks to decide", "robustness": {"text": "robust: holds"}}},
           "conditions": [{"group": "targets", "condition": "dos", "label": "DoS", "seed": 0, "sigma": None,
                           "decoding_error_cm": 8.14, "max_score": 1.41, "frac_units_above_0.8": 0.078,
                           "period_m": 1.08}]}
    text = results_block(res, "x/results.json")
    assert "commit `0123abcd`" in text and "x/results.json" in text
    assert "| R2 | inconclusive (too few networks: n=2) | robust: holds |" in text
    assert "| targets | DoS | 0 | 8.1 | 1.41 | 7.8% | 1.08 |" in text
    assert "scripts/doc_numbers.py --preset quick" in results_block(None)


def test_docs_blocks_are_current():
    """The doc holds the rules and the tiny/quick rows exactly as generated (rerun scripts/doc_numbers.py)."""
    if not DOC.exists():
        pytest.skip("docs/reproduce.md not in this checkout")
    text = DOC.read_text()
    assert rules_block() in text
    for row in preset_rows(("tiny", "quick", "quick_seeds")).splitlines()[2:]:
        assert row in text
    assert "| Cartesian | 0.5 / 2.2 |" not in text  # the hand-typed table is gone
