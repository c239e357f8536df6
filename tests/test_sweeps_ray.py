"""The Ray executor gives the same results table as the local executor (same seeds)."""

from __future__ import annotations

import pytest
from sweep_helpers import tiny_grid_spec

from gridsweep.sweeps import load_results, run_sweep

pytestmark = pytest.mark.slow

SPEC = tiny_grid_spec("raycheck", 20, 10, 5)

METRICS = ["decoding_error_cm", "recurrent_weight_norm", "mean_abs_activation", "n_active_units", "steps"]


def test_ray_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    spec = tmp_path / "raycheck.yaml"
    spec.write_text(SPEC)
    common = dict(workers=2, ensemble_size=2, analysis="weight_stats", progress=False)
    loc = run_sweep(spec, tmp_path / "local", executor="local", threads=1, **common)
    rep = run_sweep(spec, tmp_path / "ray", executor="ray", **common)
    assert not ray.is_initialized()  # the local Ray started for the run was shut down
    assert rep.executor.startswith("ray") and loc.executor.startswith("local")
    assert rep.counts["done"] == loc.counts["done"] == 8
    a = load_results(tmp_path / "local").set_index("trial_id").sort_index()
    b = load_results(tmp_path / "ray").set_index("trial_id").sort_index()
    assert list(a.index) == list(b.index)
    assert (a["status"] == b["status"]).all() and (a["ensemble_size"] == b["ensemble_size"]).all()
    for m in METRICS:
        assert (a[m].to_numpy() == b[m].to_numpy()).all(), m  # tolerance 0
    assert list(a.columns) == list(b.columns)
