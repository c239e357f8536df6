"""Spacing modules: KDE modes, dip test and Gaussian-mixture BIC on samples of known structure."""

import numpy as np
import pytest

from gridsweep.analysis import spacing_modules
from gridsweep.errors import AnalysisError, DataError


def test_two_modules_with_brain_like_ratio():
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(0.40, 0.015, 100), rng.normal(0.56, 0.02, 100)]
    out = spacing_modules(s)
    assert out["n_units"] == 200
    assert out["modes"].size == 2
    np.testing.assert_allclose(out["modes"], [0.40, 0.56], atol=0.02)
    assert out["mode_ratios"][0] == pytest.approx(1.4, abs=0.07)
    assert out["gmm_n_components"] == 2 and out["bic_multimodal"]
    np.testing.assert_allclose(out["gmm_means"], [0.40, 0.56], atol=0.01)
    if out["dip_available"]:
        assert out["dip_pvalue"] < 0.01 and out["dip_multimodal"]
    assert out["multimodal"] and out["reason"] == ""


def test_one_module_is_unimodal():
    s = np.random.default_rng(1).normal(0.5, 0.03, 200)
    out = spacing_modules(s)
    assert out["modes"].size == 1 and out["modes"][0] == pytest.approx(0.5, abs=0.02)
    assert out["mode_ratios"].size == 0
    assert out["gmm_n_components"] == 1
    if out["dip_available"]:
        assert out["dip_pvalue"] > 0.05
    assert not out["multimodal"]


def test_score_threshold_selects_units():
    rng = np.random.default_rng(2)
    s = np.r_[rng.normal(0.4, 0.01, 50), rng.normal(0.9, 0.01, 50), np.full(5, np.nan)]
    scores = np.r_[np.full(50, 1.2), np.full(50, 0.1), np.full(5, 1.5)]
    out = spacing_modules(s, scores, threshold=0.8)
    assert out["n_units"] == 50
    assert out["spacings"].max() < 0.5
    assert out["modes"].size == 1


def test_too_few_units_gives_nan_and_reason():
    out = spacing_modules([0.4, 0.5, np.nan], [1.0, 0.2, 1.0])
    assert out["n_units"] == 1 and "fewer than 5" in out["reason"]
    assert np.isnan(out["dip_pvalue"]) and out["modes"].size == 0 and not out["multimodal"]
    assert spacing_modules(np.full(10, 0.5))["reason"] == "all spacings are equal"


def test_errors():
    with pytest.raises(DataError, match="scores"):
        spacing_modules(np.ones(5), np.ones(4))
    with pytest.raises(DataError, match="1-D"):
        spacing_modules(np.ones((5, 2)))
    with pytest.raises(AnalysisError, match="max_components"):
        spacing_modules(np.ones(5), max_components=0)
