"""Numerical readout spectrum (gridsweep.theory.spectrum) against known answers."""

import math

import numpy as np
import pytest
import torch

from gridsweep.config import BoxConfig, HeterogeneityConfig, TargetConfig
from gridsweep.errors import AnalysisError, ConfigError
from gridsweep.targets import build_target
from gridsweep.theory import closed_form, find_ring, predict, radial_profile, readout_spectrum, spectrum, target_maps

BOX = BoxConfig()


def _plane_waves(k0, n=64, L=2.0, n_dirs=12):
    """Cells cos(k0 u.x + phase): all their power sits on the circle |k| = k0."""
    h = L / n
    xs = -L / 2 + (np.arange(n) + 0.5) * h
    X, Y = np.meshgrid(xs, xs)
    rng = np.random.default_rng(0)
    maps = []
    for j in range(n_dirs):
        th = np.pi * j / n_dirs
        for ph in rng.uniform(0, 2 * np.pi, 4):
            maps.append(np.cos(k0 * (np.cos(th) * X + np.sin(th) * Y) + ph))
    return np.array(maps), h, L


def test_plane_waves_put_the_ring_at_their_wave_number():
    k0 = 15.0
    maps, h, L = _plane_waves(k0)
    spec = readout_spectrum(maps, h)
    ring = spec.ring()
    assert ring.has_ring
    assert ring.k_star == pytest.approx(k0, rel=0.01)
    assert ring.spacing_m == pytest.approx(4 * math.pi / (math.sqrt(3) * k0), rel=0.01)


def test_wiener_khinchin_parseval_and_translation_average():
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((5, 12, 10))
    h = 0.1
    spec = readout_spectrum(maps, h, center=False, pad=3)
    c = maps
    # lag 0 of the summed autocorrelation = total energy; kernel = A / N(delta)
    assert spec.autocorr[11, 9] == pytest.approx(np.sum(c**2))
    assert spec.kernel[11, 9] == pytest.approx(np.sum(c**2) / 120)
    # one explicit lag (dy = 2, dx = -3): sum_x p(x) p(x + delta)
    a = np.sum(c[:, 0:10, 3:10] * c[:, 2:12, 0:7])
    assert spec.autocorr[11 + 2, 9 - 3] == pytest.approx(a)
    assert spec.kernel[11 + 2, 9 - 3] == pytest.approx(a / (10 * 7))
    # Parseval: sum over the FFT grid of the power = (M h^2)... energy relation
    M = spec.power.size
    assert spec.power.sum() == pytest.approx(M * h**4 * np.sum(c**2))
    # the exact radial average at k = 0 equals the power at the FFT origin
    iy, ix = np.argmin(np.abs(spec.ky)), np.argmin(np.abs(spec.kx))
    assert spec.radial(0.0) == pytest.approx(spec.power[iy, ix])
    # and the centred spectrum has no power at k = 0
    assert readout_spectrum(maps, h).radial(0.0) == pytest.approx(0.0, abs=1e-9)


def test_radial_profile_matches_angular_average_of_the_fft_image():
    t = build_target(TargetConfig(kind="dos", n_cells=256, surround_variance_ratio=2.0), 0, BOX, dtype=torch.float64)
    maps, _, h = target_maps(t, BOX, resolution=0.04)
    spec = readout_spectrum(maps, h, box_size=(2.2, 2.2), pad=4)
    KX, KY = np.meshgrid(spec.kx, spec.ky)
    kk = np.hypot(KX, KY)
    for k0 in (5.0, 10.0, 15.0):
        band = np.abs(kk - k0) < 0.25
        assert spec.radial(k0) == pytest.approx(spec.power[band].mean(), rel=0.03)
    k, prof = radial_profile(spec, normalise=True)
    assert prof.max() == pytest.approx(1.0) and k[0] == 0


UNIT_DOG_GRID = [(s, r) for s in (0.08, 0.12, 0.16) for r in (1.25, 1.5, 2.0, 2.5)]
UNIT_DOG_FAST = [(0.08, 2.5), (0.12, 1.5), (0.16, 2.0)]


def _unit_integral_dog_check(sigma, ratio):
    # dog_general with alpha_E / alpha_I = sigma_I^2 / sigma_E^2 is a unit-integral DoG
    cfg = TargetConfig(kind="dog_general", n_cells=256, sigma=sigma, surround_width_ratio=ratio, alpha_e=ratio**2)
    ring = spectrum(cfg, box=BOX, resolution=sigma / 3).ring()
    cf = closed_form("dos", sigma, sigma * ratio)
    assert ring.has_ring
    assert ring.k_star == pytest.approx(cf.k_star, rel=0.03)


@pytest.mark.parametrize("sigma, ratio", UNIT_DOG_FAST)
def test_unit_integral_dog_targets_match_the_closed_form_within_3_percent(sigma, ratio):
    _unit_integral_dog_check(sigma, ratio)


@pytest.mark.slow
@pytest.mark.parametrize("sigma, ratio", UNIT_DOG_GRID)
def test_unit_integral_dog_closed_form_full_grid(sigma, ratio):
    _unit_integral_dog_check(sigma, ratio)


@pytest.mark.parametrize("sigma, cfg_kw", [
    (0.12, {"surround_width_ratio": 2.0}),
    pytest.param(0.08, {"surround_width_ratio": 2.0}, marks=pytest.mark.slow),
    pytest.param(0.12, {"surround_width_ratio": 1.5}, marks=pytest.mark.slow),
])
def test_dos_targets_are_close_to_the_unit_integral_dog(sigma, cfg_kw):
    cfg = TargetConfig(kind="dos", sigma=sigma, **cfg_kw)
    ring = spectrum(cfg, box=BOX).ring()
    assert ring.has_ring
    assert ring.k_star == pytest.approx(closed_form("dos", sigma, cfg.sigma_i).k_star, rel=0.03)


def test_sorscher_default_dos_has_a_ring():
    p = predict(TargetConfig(kind="dos", n_cells=512, sigma=0.12, surround_variance_ratio=2.0), box=BOX)
    assert p.has_ring and p.ring_ratio > 2
    assert p.k_star > 2 * math.pi / 2.2
    assert p.spacing_m == pytest.approx(4 * math.pi / (math.sqrt(3) * p.k_star))
    assert p.spacing_m == pytest.approx(p.closed_form_spacing_m, rel=0.03)


@pytest.mark.parametrize("sigma", [0.12, pytest.param(0.08, marks=pytest.mark.slow),
                                   pytest.param(0.2, marks=pytest.mark.slow)])
def test_gaussian_spectrum_peaks_at_zero(sigma):
    cfg = TargetConfig(kind="gaussian", n_cells=256, sigma=sigma)
    raw = spectrum(cfg, box=BOX, center=False, resolution=sigma / 3).ring()
    assert raw.k_peak == pytest.approx(0.0, abs=1e-6)  # uncentred: the maximum is k = 0 itself
    assert not raw.has_ring
    cen = spectrum(cfg, box=BOX, resolution=sigma / 3).ring()  # centred: the peak stays in box-sized modes
    assert cen.k_peak < 1.5 * cen.k_min and not cen.has_ring


def test_equinorm_dog_ring_is_dominated_by_long_wavelengths():
    cfg = TargetConfig(kind="dog_equinorm", n_cells=256, sigma=0.12, surround_width_ratio=2.0)
    p = predict(cfg, box=BOX, resolution=0.04)
    assert not p.has_ring and p.ring_ratio < 0.1 and p.k_peak <= p.k_min
    assert math.isnan(p.spacing_m)
    assert p.k_star == pytest.approx(p.closed_form_k_star, rel=0.05)  # the subdominant ring is still located


@pytest.mark.parametrize("kind, kw", [("cartesian", {"n_cells": 2}), ("polar_highdim", {"n_cells": 32}),
                                      ("cartesian_highdim", {"n_cells": 16}),
                                      ("sod", {"n_cells": 256, "surround_width_ratio": 2.0})])
def test_targets_without_centre_surround_have_no_ring(kind, kw):
    p = predict(TargetConfig(kind=kind, **kw), box=BOX, resolution=0.05)
    assert not p.has_ring and p.k_peak <= p.k_min


def test_multifield_heterogeneous_targets():
    box = BoxConfig(width=1.2, height=1.2)
    het = HeterogeneityConfig(fields_lambda=3.0, sigma_range=(0.06, 0.18), surround_width_ratio_range=(1.5, 2.5))
    cfg = TargetConfig(kind="dos", n_cells=64, sigma=0.12, surround_width_ratio=2.0, heterogeneity=het)
    p = predict(cfg, box=box, resolution=0.03)
    assert p.closed_form is None and math.isnan(p.closed_form_k_star)
    assert p.spectrum.n_cells == 64 and p.spectrum.kernel.shape == (79, 79)
    assert np.isfinite(p.spectrum.power).all()


def test_target_maps_layout_rows_are_y():
    t = build_target(TargetConfig(kind="cartesian", n_cells=2), 3, BOX, dtype=torch.float64)
    maps, extent, h = target_maps(t, BOX, resolution=0.05)
    assert maps.shape == (2, 44, 44) and extent == (-1.1, 1.1, -1.1, 1.1) and h == pytest.approx(0.05)
    centres = -1.1 + (np.arange(44) + 0.5) * 0.05
    np.testing.assert_allclose(maps[0], np.broadcast_to(centres[None, :], (44, 44)))  # x along columns
    np.testing.assert_allclose(maps[1], np.broadcast_to(centres[:, None], (44, 44)))  # y along rows


def test_find_ring_on_known_profiles():
    k = np.linspace(0, 30, 301)
    ring = find_ring(k, np.exp(-((k - 12) ** 2) / 8), box_size=2.2, profile_fn=lambda q: np.exp(-((q - 12) ** 2) / 8))
    assert ring.has_ring and ring.k_star == pytest.approx(12.0, abs=1e-4)
    mono = find_ring(k, np.exp(-k**2 / 50), box_size=2.2)
    assert not mono.has_ring and math.isnan(mono.k_star) and mono.k_peak == 0


def test_errors_name_what_is_wrong():
    with pytest.raises(AnalysisError, match="shape"):
        readout_spectrum(np.zeros((3, 4)), 0.1)
    with pytest.raises(AnalysisError, match="bin_size"):
        readout_spectrum(np.zeros((3, 4, 4)), 0.0)
    with pytest.raises(AnalysisError, match="pad"):
        readout_spectrum(np.zeros((3, 4, 4)), 0.1, pad=1)
    with pytest.raises(AnalysisError, match="NaN"):
        readout_spectrum(np.full((3, 4, 4), np.nan), 0.1)
    with pytest.raises(AnalysisError, match="increasing"):
        find_ring(np.array([0.0, 2.0, 1.0]), np.ones(3), 2.2)
    t = build_target(TargetConfig(kind="gaussian", n_cells=4), 0, BOX)
    with pytest.raises(ConfigError, match="network=3"):
        target_maps(t, BOX, network=3)
    with pytest.raises(ConfigError, match="resolution"):
        target_maps(t, BOX, resolution=-1.0)
    with pytest.raises(ConfigError, match="Target object"):
        target_maps("not a target", BOX)
