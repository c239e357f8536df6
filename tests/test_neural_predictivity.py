"""gridsweep.neural.predictivity: mappings, splits, noise ceilings, scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gridsweep.errors import DataError
from gridsweep.neural.dataset import concat_datasets, from_arrays
from gridsweep.neural.predictivity import (
    SplitSpec,
    fit_predict,
    neural_predictivity,
    noise_ceiling,
    pearson_r,
    resample_maps,
    spearman_brown,
    split_bins,
)
from gridsweep.neural.synthetic import MECPopulationSpec, simulate_animals, simulate_recording


@pytest.fixture(scope="module")
def rec():
    return simulate_recording(duration_s=600.0, seed=1)


# ---------------------------------------------------------------- statistics
def test_pearson_r_known_values_and_constant_input_without_warning():
    x = np.arange(10.0)
    assert pearson_r(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson_r(x, -x) == pytest.approx(-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(pearson_r(x, np.full(10, 3.0)))
        assert np.isnan(pearson_r(np.full(10, 1e6), np.full(10, 1e6)))
    cols = pearson_r(np.stack([x, x], 1), np.stack([x, x[::-1]], 1))
    np.testing.assert_allclose(cols, [1.0, -1.0])


def test_spearman_brown_known_values():
    np.testing.assert_allclose(spearman_brown(np.array([0.5, 1.0, 0.0, -0.2, np.nan])), [2 / 3, 1.0, np.nan, np.nan, np.nan])
    assert float(spearman_brown(0.25, factor=4)) == pytest.approx(4 * 0.25 / (1 + 3 * 0.25))


def test_kfold_tests_every_bin_once_and_holdout_fraction():
    masks = split_bins((10, 12), SplitSpec(n_folds=4), seed=0)
    stacked = np.stack(masks)
    np.testing.assert_array_equal(stacked.sum(0), 1)
    assert all(abs(m.sum() - 30) <= 1 for m in masks)
    assert all(np.array_equal(a, b) for a, b in zip(masks, split_bins((10, 12), SplitSpec(n_folds=4), seed=0), strict=True))
    (test,) = split_bins((10, 10), SplitSpec(kind="holdout", test_fraction=0.3), seed=1)
    assert test.sum() == 30
    blocks = split_bins((8, 8), SplitSpec(n_folds=2, block=4), seed=0)[0].reshape(8, 8)
    for by in (0, 4):
        for bx in (0, 4):
            assert len(np.unique(blocks[by:by + 4, bx:bx + 4])) == 1
    with pytest.raises(DataError, match="allowed"):
        SplitSpec(kind="leave_one_out")


# ------------------------------------------------------------------ mappings
@pytest.mark.parametrize("method", ["ridge", "pls", "one_to_one"])
def test_mappings_recover_a_linear_readout(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6))
    w = np.zeros((6, 2))
    w[2, 0], w[4, 1] = 3.0, -2.0  # each target is one unit (so one_to_one can be exact)
    y = x @ w + 5.0
    pred = fit_predict(x[:200], y[:200], x[200:], method=method)
    np.testing.assert_allclose(pearson_r(pred, y[200:]), 1.0, atol=1e-6)
    np.testing.assert_allclose(pred, y[200:], atol=1e-2)


def test_pls_component_choice_by_cv_and_unknown_method():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 10))
    y = x[:, :3].sum(1, keepdims=True) + 0.1 * rng.standard_normal((120, 1))
    pred = fit_predict(x[:90], y[:90], x[90:], method="pls", options={"n_components": "cv"})
    assert pearson_r(pred[:, 0], y[90:, 0]) > 0.95
    with pytest.raises(DataError, match="allowed.*one_to_one"):
        fit_predict(x, y, x, method="lasso")


# ------------------------------------------------------------------- grids
def test_resample_maps_preserves_linear_ramps_and_nan():
    ny, nx = 10, 10
    ramp = np.tile((np.arange(nx) + 0.5) / nx, (ny, 1))[None]
    up = resample_maps(ramp, (20, 20))
    centres = (np.arange(20) + 0.5) / 20
    np.testing.assert_allclose(up[0, 5, 1:-1], centres[1:-1], atol=1e-12)  # exact away from the edge
    const = np.full((2, 7, 9), 4.0)
    const[:, 0, 0] = np.nan
    out = resample_maps(const, (14, 18))
    assert np.all(out[np.isfinite(out)] == pytest.approx(4.0))
    assert np.isnan(out[0, 0, 0]) and np.isfinite(out[0, 5, 5])
    np.testing.assert_array_equal(resample_maps(const, (7, 9)), const)


# ------------------------------------------------------------ known answers
def test_true_cells_reach_the_noise_ceiling(rec):
    res = neural_predictivity(rec.true_maps, rec.dataset, method="ridge", seed=0)
    cells = res.cells
    assert list(cells.columns) == ["cell_id", "animal", "session", "r", "n_bins", "split_half_r", "ceiling", "normalized_r"]
    assert res.ceiling_kind == "split_half"
    reliable = cells["ceiling"] > 0.5
    assert reliable.sum() > 30
    # a perfect model reaches the ceiling: r / ceiling ~ 1 cell by cell
    assert res.median_normalized_r == pytest.approx(1.0, abs=0.05)
    assert np.median(np.abs(cells.loc[reliable, "r"] - cells.loc[reliable, "ceiling"])) < 0.05
    # one-to-one mapping on the true cells picks the cell itself
    o2o = neural_predictivity(rec.true_maps, rec.dataset, method="one_to_one", ceiling=noise_ceiling(rec.dataset))
    assert o2o.median_normalized_r == pytest.approx(1.0, abs=0.05)


def test_noise_lowers_predictivity_and_random_maps_score_low(rec):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((5, *rec.dataset.shape))
    res = neural_predictivity(noise, rec.dataset)
    assert res.median_r < 0.3
    truth = neural_predictivity(rec.true_maps, rec.dataset)
    assert truth.median_r > res.median_r + 0.4


def test_split_half_conventions(rec):
    a = noise_ceiling(rec.dataset, "split_half")
    b = noise_ceiling(rec.dataset, "split_half_sb")
    np.testing.assert_allclose(a.values ** 2, b.values, equal_nan=True)
    assert np.all((b.values[np.isfinite(b.values)] <= 1) & (b.values[np.isfinite(b.values)] > 0))
    nosplit = from_arrays(rec.dataset.maps, rec.dataset.extent)
    with pytest.raises(DataError, match="split_maps"):
        noise_ceiling(nosplit, "split_half")
    assert noise_ceiling(nosplit).kind == "none"


def test_inter_animal_ceiling_is_finite_and_below_one():
    spec = MECPopulationSpec(n_grid_per_module=(6, 4), n_border=2, n_head_direction=1, n_spatial=2)
    recs = simulate_animals(2, spec, duration_s=300.0, seed=3)
    ds = concat_datasets([r.dataset for r in recs])
    ds = from_arrays(ds.maps, ds.extent, animal=ds.animal, cell_ids=ds.cell_ids)  # no split halves
    ceil = noise_ceiling(ds)
    assert ceil.kind == "inter_animal"
    v = ceil.values[np.isfinite(ceil.values)]
    assert v.size > ds.n_cells // 2 and np.all(v <= 1)
    with pytest.raises(DataError, match=">= 2 animals"):
        noise_ceiling(recs[0].dataset, "inter_animal")


def test_grid_mismatch_needs_resample(rec):
    coarse = resample_maps(rec.true_maps, (10, 10))
    with pytest.raises(DataError, match="resample=True"):
        neural_predictivity(coarse, rec.dataset)
    res = neural_predictivity(coarse, rec.dataset, resample=True)
    assert res.median_r > 0.5
    with pytest.raises(DataError, match="allowed"):
        neural_predictivity(rec.true_maps, rec.dataset, method="svm")


def test_min_ceiling_drops_unreliable_cells_from_normalisation(rec):
    res = neural_predictivity(rec.true_maps, rec.dataset, min_ceiling=0.6)
    low = res.cells["ceiling"] < 0.6
    assert low.any() and res.cells.loc[low, "normalized_r"].isna().all()
    assert res.cells.loc[res.cells["ceiling"] >= 0.6, "normalized_r"].notna().all()
