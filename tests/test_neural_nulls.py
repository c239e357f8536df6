"""gridsweep.neural.nulls: null models of matched dimension, and the NFL effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from gridsweep.errors import DataError
from gridsweep.neural.nulls import (
    NullSpec,
    compare_predictivity,
    generate_null,
    matched_null,
    plot_predictivity_vs_pr,
    population_pr,
    predictivity_vs_dimension,
)
from gridsweep.neural.synthetic import make_population, simulate_recording

SHAPE = (20, 20)
EXT = (-0.5, 0.5, -0.5, 0.5)


@pytest.fixture(scope="module")
def rec():
    return simulate_recording(duration_s=600.0, seed=2)


@pytest.fixture(scope="module")
def other_mec(rec):
    """A structured, MEC-like model that is not the recorded population (another animal's cells)."""
    return make_population(extent=rec.dataset.extent, seed=102).expected_maps(rec.dataset.shape)


def test_population_pr_known_answers():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((3, 400))
    # 30 units that are copies of 3 orthogonal-ish equal-variance patterns: PR ~ 3
    maps = np.repeat(basis, 10, axis=0).reshape(30, *SHAPE)
    assert population_pr(maps) == pytest.approx(3.0, rel=0.05)
    scaled = maps * np.linspace(1, 100, 30)[:, None, None]
    assert population_pr(scaled) < 2.5  # covariance PR is dominated by loud units ...
    assert population_pr(scaled, standardize=True) == pytest.approx(3.0, rel=0.05)  # ... z-scored PR is not


@pytest.mark.parametrize("kind", ["smooth_fields", "random_fourier"])
def test_nulls_are_seeded_and_pr_is_monotone_in_smoothness(kind):
    a = generate_null(kind, n_features=40, shape=SHAPE, extent=EXT, seed=1)
    b = generate_null(kind, n_features=40, shape=SHAPE, extent=EXT, seed=1)
    c = generate_null(kind, n_features=40, shape=SHAPE, extent=EXT, seed=2)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.allclose(a.maps, c.maps)
    assert a.maps.shape == (40, *SHAPE)
    params = {"smooth_fields": [0.3, 1, 2, 4, 8, 16], "random_fourier": [0.02, 0.05, 0.1, 0.2, 0.4, 1.0]}[kind]
    prs = [generate_null(kind, n_features=40, shape=SHAPE, extent=EXT, param=p, seed=1).participation_ratio for p in params]
    assert np.all(np.diff(prs) < 0), prs


@pytest.mark.parametrize("kind", ["smooth_fields", "random_fourier", "pca_truncated"])
def test_matched_null_has_the_model_features_and_pr(kind, other_mec):
    model = other_mec
    model = model.copy()
    model[:, 0, 0] = np.nan  # an unvisited bin stays unvisited in the null
    nm = matched_null(kind, model, extent=EXT, seed=0, tol=0.03)
    assert nm.matched
    assert nm.participation_ratio == pytest.approx(population_pr(model, standardize=True), rel=0.03)
    if kind == "pca_truncated":  # matched to itself it keeps (almost) every component
        assert model.shape[0] / 2 < nm.param <= model.shape[0]
    assert nm.maps.shape == model.shape
    assert np.all(np.isnan(nm.maps[:, 0, 0])) and np.isfinite(nm.maps[:, 1:, 1:]).all()
    cov = matched_null("smooth_fields", model, extent=EXT, seed=0, standardize_pr=False)
    assert cov.participation_ratio == pytest.approx(population_pr(model), rel=0.05)


def test_untrained_null_and_unreachable_targets():
    rng = np.random.default_rng(0)
    untrained = generate_null("smooth_fields", n_features=60, shape=SHAPE, extent=EXT, param=1.0, seed=5).maps
    model = generate_null("smooth_fields", n_features=30, shape=SHAPE, extent=EXT, param=4.0, seed=6).maps
    nm = matched_null("untrained", model, source=untrained, seed=0, tol=0.1)
    assert nm.maps.shape == model.shape and nm.matched
    with pytest.raises(DataError, match="needs source maps"):
        matched_null("untrained", model)
    with pytest.raises(DataError, match="allowed"):
        matched_null("gaussian_process", model)
    # three copies of one map have PR 1, below what 3 smooth random fields reach (~2):
    # the nearest null is returned and flagged as unmatched
    copies = np.repeat(rng.standard_normal((1, *SHAPE)), 3, axis=0)
    nm = matched_null("smooth_fields", copies, extent=EXT, seed=0)
    assert not nm.matched and nm.participation_ratio > 1.5


def test_random_basis_of_growing_dimension_scores_increasingly_high(rec):
    """The NFL effect: predictivity grows with the dimension of a random basis."""
    sizes = (2, 8, 32, 128)
    models = {f"rff{k}": generate_null("random_fourier", n_features=k, shape=rec.dataset.shape,
                                       extent=rec.dataset.extent, seed=k).maps for k in sizes}
    df = predictivity_vs_dimension(models, rec.dataset, nulls=[], seed=0)
    r = df.set_index("name").loc[list(models), "median_r"].to_numpy()
    pr = df.set_index("name").loc[list(models), "participation_ratio"].to_numpy()
    assert np.all(np.diff(r) > 0), r
    assert np.all(np.diff(pr) > 0), pr
    assert r[-1] > 0.6 and r[0] < 0.3


def test_dimension_matched_comparison_exposes_the_effect(rec, other_mec):
    """A structured MEC-like model does not beat random nulls of the same PR, and across
    random bases of growing size the score is monotone in PR."""
    models = {"other_mec": other_mec}
    for k in (4, 16, 64):
        models[f"smooth{k}"] = generate_null("smooth_fields", n_features=k, shape=rec.dataset.shape,
                                             extent=rec.dataset.extent, param=3.0, seed=k).maps
    comp = compare_predictivity(
        models, rec.dataset,
        [NullSpec("smooth_fields", n_draws=2), NullSpec("random_fourier", n_draws=2)],
        seed=0,
    )
    df = comp.summary
    model = df[df.name == "other_mec"].iloc[0]
    matched = df[(df.role == "null_model") & df.pr_matched & (df.model == "other_mec")]
    assert len(matched) == 4
    np.testing.assert_allclose(matched.participation_ratio, model.participation_ratio, rtol=0.05)
    assert (matched.n_features == model.n_features).all()
    assert model.median_r - matched.median_r.mean() < 0.05  # no advantage beyond what its dimension buys
    bases = df[(df.role == "model") & df.name.str.startswith("smooth")].sort_values("participation_ratio")
    assert spearmanr(bases.participation_ratio, bases.median_r).statistic == pytest.approx(1.0)
    assert {"name", "role", "model", "cell_id", "r", "ceiling"} <= set(comp.cells.columns)
    assert len(comp.cells) == len(df) * rec.dataset.n_cells
    fig, ax = plot_predictivity_vs_pr(df)
    assert ax.get_xlabel() == "participation ratio (z-scored rate maps)"
    assert len(ax.collections) >= 3
    import matplotlib.pyplot as plt

    plt.close(fig)
