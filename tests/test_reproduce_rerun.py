"""The tiny preset trained twice gives the same results.json (minutes; marked slow)."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.slow

#: Fields that record when or how long, not what: left out of the comparison.
TIME_FIELDS = {"generated", "seconds", "wall_seconds"}


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in TIME_FIELDS}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def test_tiny_preset_rerun_gives_identical_results(tmp_path):
    from gridsweep.reproduce.run import reproduce

    out = tmp_path / "tiny"  # the same path both times, so sweep_dir matches too
    first = reproduce("tiny", out, workers=2, progress=False)
    assert first.report_html is not None
    a = json.loads((out / "report" / "results.json").read_text())
    shutil.rmtree(out)
    reproduce("tiny", out, workers=2, progress=False)
    b = json.loads((out / "report" / "results.json").read_text())
    assert a["reproducibility"]["commit"] and a["reproducibility"]["versions"]["torch"]
    assert _strip(a) == _strip(b)
