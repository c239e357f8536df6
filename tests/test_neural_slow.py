"""Slower scientific checks of gridsweep.neural (run by CI; deselect with -m 'not slow')."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gridsweep.neural.nulls import NullSpec, compare_predictivity, generate_null
from gridsweep.neural.predictivity import SplitSpec, neural_predictivity, noise_ceiling
from gridsweep.neural.synthetic import make_population, simulate_recording

DOCS = Path(__file__).resolve().parents[1] / "docs" / "neural.md"


@pytest.mark.slow
def test_docs_example_runs(tmp_path, monkeypatch):
    code = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code, "docs/neural.md has no python example"
    monkeypatch.chdir(tmp_path)
    for block in code:
        exec(compile(block, str(DOCS), "exec"), {})
    assert (tmp_path / "predictivity_vs_pr.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [10, 11, 12])
def test_nfl_effect_is_robust_across_seeds(seed):
    rec = simulate_recording(duration_s=600.0, seed=seed)
    ds = rec.dataset
    models = {"other_mec": make_population(extent=ds.extent, seed=seed + 100).expected_maps(ds.shape)}
    for k in (4, 16, 64):
        models[f"smooth{k}"] = generate_null("smooth_fields", n_features=k, shape=ds.shape, extent=ds.extent,
                                             param=3.0, seed=seed + k).maps
    df = compare_predictivity(models, ds, [NullSpec("smooth_fields", n_draws=2), NullSpec("random_fourier", n_draws=2)],
                              split=SplitSpec(block=2), seed=seed).summary
    bases = df[(df.role == "model") & df.name.str.startswith("smooth")].sort_values("participation_ratio")
    assert np.all(np.diff(bases.median_r) > 0)
    model_r = df.loc[df.name == "other_mec", "median_r"].iloc[0]
    matched = df[(df.model == "other_mec") & df.pr_matched]
    assert len(matched) == 4
    assert model_r - matched.median_r.mean() < 0.05


@pytest.mark.slow
def test_pls_with_cv_components_reaches_the_ceiling_on_true_cells():
    rec = simulate_recording(duration_s=600.0, seed=5)
    ceil = noise_ceiling(rec.dataset)
    res = neural_predictivity(rec.true_maps, rec.dataset, method="pls", ceiling=ceil, options={"n_components": "cv"})
    assert res.median_normalized_r == pytest.approx(1.0, abs=0.06)
