"""scripts/compare_results.py: two reports agree unless a measured number or verdict differs."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("compare_results", ROOT / "scripts" / "compare_results.py")
cr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cr)

REPORT = {"preset": "quick_seeds", "generated": "2026-11-30 19:59:28",
          "reproducibility": {"commit": "aaa", "torch_threads": 2, "ensemble_sizes": {"5": 35}},
          "claims": {"B1": {"verdict": "reproduced", "reason": "3 of 3"}},
          "conditions": [{"group": "dog", "seed": 0, "decoding_error_cm": 8.14}]}


def test_provenance_differs_numbers_agree(tmp_path):
    other = json.loads(json.dumps(REPORT))
    other["generated"], other["reproducibility"] = "2026-12-01", {"commit": "bbb", "ensemble_sizes": {"2": 35}}
    assert cr.differences(REPORT, other) == {}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(REPORT))
    b.write_text(json.dumps(other))
    assert cr.main([str(a), str(b)]) == 0


def test_a_changed_number_or_verdict_is_reported(tmp_path):
    other = json.loads(json.dumps(REPORT))
    other["conditions"][0]["decoding_error_cm"] = 8.140001
    other["claims"]["B1"]["verdict"] = "inconclusive"
    diff = cr.differences(REPORT, other)
    assert set(diff) == {"claims", "conditions"}
    assert "B1" in diff["claims"][0] and diff["conditions"][0].startswith("[0]")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(REPORT))
    b.write_text(json.dumps(other))
    assert cr.main([str(a), str(b)]) == 1
    assert cr.main([str(a)]) == 2
