"""Pattern formation from the readout covariance (gridsweep.theory.pattern)."""

import math

import numpy as np
import pytest

from gridsweep.config import BoxConfig, TargetConfig
from gridsweep.errors import ConfigError
from gridsweep.theory import box_covariance, predict, score_patterns, simulate_patterns, spectrum, target_maps
from gridsweep.theory.predict import resolve_target

DOS = TargetConfig(kind="dos", n_cells=512, sigma=0.12, surround_variance_ratio=2.0)
GAUSS = TargetConfig(kind="gaussian", n_cells=512, sigma=0.12)


@pytest.fixture(scope="module")
def dos_prediction():
    return predict(DOS)


def test_dos_box_patterns_are_hexagonal_at_the_predicted_spacing(dos_prediction):
    res = simulate_patterns(DOS, method="box", n_units=3, seed=0)
    assert res.maps.shape == (3, 44, 44) and res.extent == (-1.1, 1.1, -1.1, 1.1)
    assert np.all(res.maps >= 0)
    sc = score_patterns(res)
    assert np.all(sc["score60"] > 1.0), sc["score60"]
    assert np.all(np.abs(sc["spacing_m"] / dos_prediction.spacing_m - 1) < 0.10), sc["spacing_m"]
    # the objective rose from the random start
    assert np.all(res.history[-1] > res.history[0])


def test_dos_fourier_patterns_on_a_fitted_torus_are_hexagonal(dos_prediction):
    res = simulate_patterns(dos_prediction.spectrum, method="fourier", fit_lattice=True, n_units=3, seed=1)
    sc = score_patterns(res)
    assert sc["score60"].max() > 1.0, sc["score60"]
    best = int(np.argmax(sc["score60"]))
    assert abs(sc["spacing_m"][best] / dos_prediction.spacing_m - 1) < 0.10


@pytest.mark.parametrize("method", ["box", "fourier"])
def test_gaussian_covariance_forms_no_periodic_pattern(method):
    sp = spectrum(GAUSS, resolution=0.04)
    assert not sp.ring().has_ring
    res = simulate_patterns(GAUSS if method == "box" else sp, method=method, n_units=3, seed=0)
    sc = score_patterns(res)
    assert np.nanmax(sc["score60"]) < 0.3, sc["score60"]


def test_linear_dynamics_do_not_select_hexagons():
    res = simulate_patterns(DOS, method="box", nonlinearity="linear", n_units=3, seed=0)
    assert np.nanmax(score_patterns(res)["score60"]) < 0.8
    assert res.maps.min() < 0  # no constraint: signed maps


def test_tanh_runs_and_seeds_are_reproducible():
    t = TargetConfig(kind="dos", n_cells=128, sigma=0.12, surround_width_ratio=2.0)
    a = simulate_patterns(t, method="fourier", nonlinearity="tanh", n_units=2, n_steps=100, bins=32, seed=5)
    b = simulate_patterns(t, method="fourier", nonlinearity="tanh", n_units=2, n_steps=100, bins=32, seed=5)
    c = simulate_patterns(t, method="fourier", nonlinearity="tanh", n_units=2, n_steps=100, bins=32, seed=6)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.allclose(a.maps, c.maps)
    full = simulate_patterns(t, method="fourier", nonlinearity="tanh", n_units=2, n_steps=100, bins=32, seed=5)
    np.testing.assert_allclose(np.sqrt(np.mean(full.maps**2, axis=(1, 2))), 1.0, rtol=1e-9)  # unit RMS


def test_box_from_maps_and_actual_kernel():
    t, box = resolve_target(TargetConfig(kind="dos", n_cells=96, sigma=0.15, surround_width_ratio=2.0))
    maps, _, _ = target_maps(t, box, resolution=2.2 / 20)
    res = simulate_patterns(maps, method="box", box=box, box_kernel="actual", n_units=2, n_steps=30)
    assert res.maps.shape == (2, 20, 20) and res.box_kernel == "actual"
    S_act = box_covariance(maps, "actual")
    S_avg = box_covariance(maps, "averaged")
    assert S_act.shape == S_avg.shape == (400, 400)
    np.testing.assert_allclose(S_avg, S_avg.T, atol=1e-15)
    # translation averaging preserves the mean diagonal (the total variance)
    assert np.trace(S_avg) == pytest.approx(np.trace(S_act), rel=1e-9)


def test_fourier_accepts_a_closed_form_profile():
    from gridsweep.theory import closed_form_profile

    prof = lambda k: closed_form_profile("dos", k, 0.12, 0.12 * math.sqrt(2))  # noqa: E731
    res = simulate_patterns(prof, method="fourier", fit_lattice=True, k_star=9.81, n_units=2, seed=2,
                            domain_size=2.2)
    assert res.maps.shape == (2, 44, 44)
    # a torus of 3 x 2 rectangular hexagonal cells (a by sqrt(3) a), a = 4 pi / (sqrt(3) k*)
    a = 4 * math.pi / (math.sqrt(3) * 9.81)
    assert res.domain[0] == pytest.approx(3 * a, rel=1e-9)
    assert res.domain[1] == pytest.approx(2 * math.sqrt(3) * a, rel=0.02)
    assert score_patterns(res)["score60"].max() > 1.0


@pytest.mark.slow
def test_actual_covariance_of_random_centres_localises_single_units():
    """Documented finding: P^T P of 512 random softmax cells is not translation invariant and
    one non-negative unit collapses into a bump instead of a lattice (docs/theory.md)."""
    res = simulate_patterns(DOS, method="box", box_kernel="actual", n_units=2, seed=0)
    assert np.nanmax(score_patterns(res)["score60"]) < 0.5
    m = res.maps / res.maps.max(axis=(1, 2), keepdims=True)
    assert np.all((m > 0.2).mean(axis=(1, 2)) < 0.1)  # a small active area


def test_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="method='torus'"):
        simulate_patterns(DOS, method="torus")
    with pytest.raises(ConfigError, match="nonlinearity='softplus'"):
        simulate_patterns(DOS, nonlinearity="softplus")
    with pytest.raises(ConfigError, match="n_units"):
        simulate_patterns(DOS, n_units=0)
    with pytest.raises(ConfigError, match="box_kernel"):
        simulate_patterns(DOS, box_kernel="mean")
    with pytest.raises(ConfigError, match="lr"):
        simulate_patterns(DOS, lr=0)
    with pytest.raises(ConfigError, match="fit_lattice"):
        simulate_patterns(lambda k: np.exp(-k**2), method="fourier", fit_lattice=True)
    with pytest.raises(ConfigError, match="square box"):
        simulate_patterns(TargetConfig(kind="gaussian", n_cells=8), method="box", box=BoxConfig(width=2, height=1))


@pytest.mark.slow
@pytest.mark.parametrize("sigma, surround", [(0.08, {"surround_variance_ratio": 2.0}),
                                             (0.16, {"surround_width_ratio": 2.0})])
def test_simulated_spacing_tracks_the_readout_width(sigma, surround):
    cfg = TargetConfig(kind="dos", n_cells=512, sigma=sigma, **surround)
    p = predict(cfg)
    sc = score_patterns(simulate_patterns(cfg, method="box", n_units=2, seed=0))
    assert np.all(sc["score60"] > 1.0)
    assert np.all(np.abs(sc["spacing_m"] / p.spacing_m - 1) < 0.10)
