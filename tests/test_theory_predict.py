"""predict(): every way of naming targets, the Prediction record, phase diagrams."""

import json
import math

import numpy as np
import pytest
import torch

from gridsweep.config import BoxConfig, RunConfig
from gridsweep.errors import ConfigError
from gridsweep.targets import build_target
from gridsweep.theory import (
    PhaseDiagram,
    amplitude_phase_diagram,
    closed_form,
    phase_diagram,
    plot_phase_diagram,
    plot_spectrum,
    predict,
    sigma_i_from_ratio,
)

SMALL = {"kind": "dos", "n_cells": 128, "sigma": 0.12, "surround_width_ratio": 2.0}


def test_every_input_form_gives_the_same_prediction(tmp_path):
    over = {f"target.{k}": v for k, v in SMALL.items()} | {"target.surround_variance_ratio": None}
    cfg = RunConfig().with_overrides(over)
    ref = predict(cfg, resolution=0.04)
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    run = tmp_path / "run"
    run.mkdir()
    cfg.to_yaml(run / "config.yaml")
    target = build_target(cfg.target, cfg.seed, cfg.box, dtype=torch.float64)
    for spec in (cfg.target, SMALL, {"target": SMALL}, path, str(path), run, target):
        p = predict(spec, resolution=0.04)
        assert p.kind == "dos" and p.n_cells == 128
        assert p.k_star == pytest.approx(ref.k_star, rel=1e-9)
        assert p.closed_form_k_star == pytest.approx(closed_form("dos", 0.12, 0.24).k_star)


def test_prediction_is_dict_like_and_json_able():
    p = predict(SMALL, resolution=0.04)
    assert p["k_star"] == p.k_star and "spacing_m" in p.keys() and "has_ring" in list(p)
    d = p.to_dict()
    assert "spectrum" not in d and d["closed_form_name"] == "unit-integral DoG"
    json.dumps(d, default=str)
    assert p.has_ring and p.spacing_m == pytest.approx(4 * math.pi / (math.sqrt(3) * p.k_star))
    assert "predicted spacing" in p.summary()
    with pytest.raises(KeyError):
        p["nope"]


def test_closed_form_only_and_box_override():
    p = predict(SMALL, numeric=False)
    assert p.spectrum is None and p.k_star == pytest.approx(closed_form("dos", 0.12, 0.24).k_star)
    small_box = BoxConfig(width=0.5, height=0.5)  # 2 pi / L = 12.6 rad/m > k* ~ 8
    q = predict(SMALL, numeric=False, box=small_box)
    assert not q.has_ring and q.box_size_m == 0.5


def test_bad_inputs_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="target.kind"):
        predict({"kind": "banana"})
    with pytest.raises(ConfigError, match="surround"):
        predict({"kind": "dos", "surround_width_ratio": 2.0, "surround_variance_ratio": 2.0})
    with pytest.raises(ConfigError, match="expected a Target"):
        predict(3.5)
    with pytest.raises(ConfigError, match="does not exist"):
        predict(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not a run directory"):
        predict(tmp_path)


def test_plot_spectrum_returns_fig_and_axes():
    p = predict(SMALL, resolution=0.04)
    fig, axes = plot_spectrum(p.spectrum, p)
    assert len(axes) == 2 and fig.axes


# --- phase diagrams --------------------------------------------------------------------
def test_phase_diagram_conventions_agree_on_the_same_widths():
    sig = np.array([0.08, 0.12, 0.2, 0.3])
    w = phase_diagram(sig, [1.5, 2.0, 3.0], convention="width")
    v = phase_diagram(sig, [2.25, 4.0, 9.0], convention="variance")  # same sigma_I
    np.testing.assert_allclose(w.k_star, v.k_star)
    assert w.k_star.shape == (3, 4) and isinstance(w, PhaseDiagram)
    k = closed_form("dos", 0.12, sigma_i_from_ratio(0.12, 2.0, "width")).k_star
    assert w.k_star[1, 1] == pytest.approx(k)
    assert np.isnan(w.spacing_m[~w.has_ring]).all() and np.isfinite(w.spacing_m[w.has_ring]).all()
    # wide centre + wide surround: the ring falls inside 2 pi / L
    assert w.has_ring[0, 0] and not w.has_ring[2, 3]


def test_amplitude_diagram_ring_band_contains_the_unit_integral_line():
    ratios = np.array([1.5, 2.0, 3.0])
    alphas = np.logspace(-1, 2.5, 36)
    pd = amplitude_phase_diagram(alphas, ratios, sigma_e=0.12)
    for i, s in enumerate(ratios):
        j = int(np.argmin(np.abs(np.log(alphas) - np.log(s**2))))
        assert pd.has_ring[i, j]
        assert not pd.has_ring[i, 0]  # equi-norm-like (alpha_E << alpha_I): surround dominates k = 0
    # equi-norm (alpha ratio 1) never has a ring
    eq = amplitude_phase_diagram([1.0], ratios, sigma_e=0.12)
    assert not eq.has_ring.any()
    fig, ax = plot_phase_diagram(pd, mark=(4.0, 2.0))
    assert ax.get_xscale() == "log"


def test_numeric_phase_diagram_matches_closed_form_where_it_applies():
    num = phase_diagram([0.12], [2.0], method="numeric", n_cells=128, resolution=0.04,
                        kind="dog_general", alpha_e=4.0)
    cf = phase_diagram([0.12], [2.0], kind="dog_general", alpha_e=4.0)
    assert num.has_ring.all() and cf.has_ring.all()
    assert num.k_star[0, 0] == pytest.approx(cf.k_star[0, 0], rel=0.03)


def test_phase_errors():
    with pytest.raises(ConfigError, match="convention"):
        phase_diagram([0.1], [2.0], convention="scale")
    with pytest.raises(ConfigError, match="ratios"):
        phase_diagram([0.1], [0.5])
    with pytest.raises(ConfigError, match="sigmas"):
        phase_diagram([], [2.0])
    with pytest.raises(ConfigError, match="method"):
        phase_diagram([0.1], [2.0], method="magic")
