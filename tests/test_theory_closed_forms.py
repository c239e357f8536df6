"""Closed forms of the readout spectrum (gridsweep.theory.closed_forms)."""

import math

import numpy as np
import pytest

from gridsweep.errors import ConfigError
from gridsweep.theory import (
    CLOSED_FORMS,
    closed_form,
    closed_form_profile,
    dog_k_star,
    dog_transform,
    hex_spacing,
    min_ring_k,
    sigma_i_from_ratio,
)
from gridsweep.targets import TARGETS


def _argmax_k(f, kmax=60.0, n=600_001):
    k = np.linspace(0, kmax, n)
    return k[np.argmax(f(k))]


def test_registry_covers_every_target_kind():
    assert set(CLOSED_FORMS) == set(TARGETS)


@pytest.mark.parametrize("se, s", [(0.08, 1.25), (0.12, np.sqrt(2)), (0.12, 2.0), (0.2, 3.0)])
def test_unit_integral_dog_formula_is_the_extremum_of_its_transform(se, s):
    si = s * se
    k_formula = math.sqrt(2 * math.log(si**2 / se**2) / (si**2 - se**2))
    cf = closed_form("dos", se, si)
    assert cf.k_star == pytest.approx(k_formula, rel=1e-12)
    k_num = _argmax_k(lambda k: closed_form_profile("dos", k, se, si))
    assert k_num == pytest.approx(k_formula, rel=1e-4)
    assert cf.ring_ratio == math.inf  # p~(0) = 0 for a unit-integral DoG


def test_equinorm_dog_2d_and_nfl_1d_forms():
    se, s = 0.12, 2.0
    si = s * se
    cf = closed_form("dog_equinorm", se, si)
    # 2-D: maximum of 2 pi (sE^2 e^{-sE^2 k^2/2} - sI^2 e^{-sI^2 k^2/2})
    k2d = _argmax_k(lambda k: dog_transform(k, se, si))
    assert cf.k_star == pytest.approx(k2d, rel=1e-4)
    assert cf.k_star == pytest.approx(math.sqrt(8 * math.log(s) / ((s**2 - 1) * se**2)))
    # 1-D: the transform carries one power of the width
    k1d = _argmax_k(lambda k: se * np.exp(-se**2 * k**2 / 2) - si * np.exp(-si**2 * k**2 / 2))
    assert cf.extra["k_star_1d"] == pytest.approx(k1d, rel=1e-4)
    assert cf.extra["k_star_1d"] == pytest.approx(math.sqrt(6 * math.log(s) / ((s**2 - 1) * se**2)))
    # the surround dominates k = 0: the ring is never selected
    u = 4 * math.log(s) / (s**2 - 1)
    assert cf.ring_ratio == pytest.approx(math.exp(-2 * u) / s**4)
    assert cf.ring_ratio < 1 and not cf.has_ring


def test_general_dog_reduces_to_unit_integral_and_equinorm():
    se, si = 0.1, 0.25
    unit = closed_form("dog_general", se, si, alpha_e=si**2 / se**2, alpha_i=1.0)
    assert unit.k_star == pytest.approx(closed_form("dos", se, si).k_star, rel=1e-12)
    eq = closed_form("dog_general", se, si, 1.0, 1.0)
    assert eq.k_star == pytest.approx(closed_form("dog_equinorm", se, si).k_star, rel=1e-12)
    assert eq.ring_ratio == pytest.approx(closed_form("dog_equinorm", se, si).ring_ratio, rel=1e-9)
    # a weak centre: a ring exists but the surround's k = 0 power dominates it
    weak = closed_form("dog_general", se, si, alpha_e=0.1, alpha_i=1.0)
    assert weak.k_star > 0 and weak.ring_ratio < 1 and not weak.has_ring
    # a centre stronger than aI sI^4 / sE^4: the transform decays from k = 0
    strong = closed_form("dog_general", se, si, alpha_e=1.01 * si**4 / se**4, alpha_i=1.0)
    assert strong.k_star == 0 and not strong.has_ring
    # numeric extremum for an arbitrary amplitude ratio
    k_num = _argmax_k(lambda k: dog_transform(k, se, si, 5.0, 1.0))
    assert dog_k_star(se, si, 5.0, 1.0) == pytest.approx(k_num, rel=1e-4)


def test_gaussian_and_sod_peak_at_zero():
    assert closed_form("gaussian", 0.12).k_star == 0
    assert not closed_form("gaussian", 0.12).has_ring
    sod = closed_form("sod", 0.12, 0.24)
    assert sod.k_star == 0 and not sod.has_ring
    assert sod.extra["sigma_eff"] == pytest.approx(0.12 / math.sqrt(1 - 0.25))
    k = np.linspace(0, 30, 301)
    assert np.argmax(closed_form_profile("gaussian", k, 0.12)) == 0


def test_hex_spacing_and_box_limit():
    assert hex_spacing(4 * math.pi / math.sqrt(3)) == pytest.approx(1.0)
    assert math.isnan(hex_spacing(0.0))
    assert np.all(np.isnan(hex_spacing(np.array([0.0, -1.0, np.nan]))))
    assert min_ring_k(2.2) == pytest.approx(2 * math.pi / 2.2)
    # a very wide DoG has its ring inside 2 pi / L: no period fits in the box
    big = closed_form("dos", 0.4, 1.6, box_size=2.2)
    assert 0 < big.k_star < min_ring_k(2.2) and not big.has_ring


def test_surround_conventions():
    assert sigma_i_from_ratio(0.12, 2.0, "width") == pytest.approx(0.24)
    assert sigma_i_from_ratio(0.12, 2.0, "variance") == pytest.approx(0.12 * math.sqrt(2))
    np.testing.assert_allclose(sigma_i_from_ratio(np.array([0.1, 0.2]), 4.0, "variance"), [0.2, 0.4])
    with pytest.raises(ConfigError, match="convention"):
        sigma_i_from_ratio(0.12, 2.0, "scale")
    with pytest.raises(ConfigError, match="> 1"):
        sigma_i_from_ratio(0.12, 0.5, "width")


def test_closed_form_errors_name_the_field():
    with pytest.raises(ConfigError, match="kind='banana'"):
        closed_form("banana")
    with pytest.raises(ConfigError, match="sigma_i"):
        closed_form("dos", 0.12, 0.1)
    with pytest.raises(ConfigError, match="surround"):
        closed_form("dos", 0.12)
    with pytest.raises(ConfigError, match="sigma_e"):
        closed_form("gaussian", -1.0)
