"""Scoring protocols: gridsweep's ``nfl`` protocol equals an independent transcription of NFL's pipeline.

The oracle below is written from FieteLab/NeurIPS-2022-No-Free-Lunch (commit d9edec2),
``mec_hpc_investigations/models/``: the rate map of ``GridScorer.calculate_ratemap``
(scores.py:80-88, a ``scipy.stats.binned_statistic_2d`` mean, written out here with
numpy), the SAC of ``calculate_sac`` (scores.py:105-149), the rings and scores of
``get_grid_scores_for_mask`` / ``get_scores`` (scores.py:32-44, 90-103, 181-215) with the
ring parameters and bins of ``Trainer.create_grid_scorer`` (trainer.py:73-93), the per-unit
loop of ``compute_and_log_rate_maps`` (trainer.py:481-535) and the summaries of
analyze.py:11-23 (fractions above thresholds) and the notebooks' per-run ``max``.
"""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.signal
from scipy import ndimage

from gridsweep.evaluation import (
    NFL_BINS,
    NFL_THRESHOLDS,
    SCORE_THRESHOLDS,
    nfl_rate_maps,
    nfl_summary_metrics,
    nfl_unit_scores,
    score_run,
)
from gridsweep.training import train

ANGLES = (30, 45, 60, 90, 120, 135, 150)
EXTENT = (-1.1, 1.1, -1.1, 1.1)


# ------------------------------------------------------------------ oracle: NFL's pipeline
def nfl_oracle_ratemap(xs, ys, act, nbins, coords_range):
    """binned_statistic_2d(xs, ys, act, bins=nbins, statistic='mean', range=...) (scores.py:82-88),
    by hand: edges linspace(lo, hi, nbins + 1); np.digitize; a value on the last edge goes in
    the last bin; values outside the range are dropped. Indexed [x bin, y bin] like scipy."""
    out_sum = np.zeros((nbins, nbins))
    out_cnt = np.zeros((nbins, nbins))
    idx = []
    for v, (lo, hi) in zip((xs, ys), coords_range):
        edges = np.linspace(lo, hi, nbins + 1)
        k = np.digitize(v, edges)                      # 0: below, nbins + 1: above
        k[v == edges[-1]] -= 1                         # right edge belongs to the last bin
        idx.append(k - 1)
    ix, iy = idx
    keep = (ix >= 0) & (ix < nbins) & (iy >= 0) & (iy < nbins)
    np.add.at(out_sum, (ix[keep], iy[keep]), act[keep])
    np.add.at(out_cnt, (ix[keep], iy[keep]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(out_cnt > 0, out_sum / out_cnt, np.nan)


def nfl_oracle_sac(rate_map):
    """scores.py:105-149. NaNs are zeroed first (:113-114), so the 'ones' masks (:116-119) are all 1."""
    z = np.nan_to_num(np.array(rate_map, dtype=float))
    ones = np.ones_like(z)

    def filt(b, x):                                    # filter2, :109-111
        return scipy.signal.convolve2d(x, np.rot90(b, 2), mode="full")

    n = filt(ones, ones)
    s1, s2 = filt(z, ones), filt(ones, z)
    q1, q2 = filt(z ** 2, ones), filt(ones, z ** 2)
    cross = filt(z, z)
    with np.errstate(all="ignore"):
        std1 = np.power(q1 / n - s1 ** 2 / n ** 2, 0.5)
        std2 = np.power(q2 / n - s2 ** 2 / n ** 2, 0.5)
        coef = (cross / n - s1 * s2 / n ** 2) / (std1 * std2)
    return np.nan_to_num(np.real(coef))


def nfl_oracle_scores(rate_map, nbins):
    """get_scores (scores.py:197-215) with min_max=True (:50, 95-98), rings 0.2 / linspace(0.4, 1, 10)."""
    sac = nfl_oracle_sac(rate_map)
    size = 2 * nbins - 1
    half = size // 2
    axis = np.linspace(-half, half, size)              # circle_mask, :32-44
    r = np.sqrt(axis[None, :] ** 2 + axis[:, None] ** 2)
    rotated = [ndimage.rotate(sac, a, reshape=False) for a in ANGLES]   # :175-179
    s60, s90 = [], []
    for end in np.linspace(0.4, 1.0, 10):
        mask = ((r <= end * nbins) & ~(r <= 0.2 * nbins)).astype(float)   # _get_ring_mask, :90-93
        area = mask.sum()
        mean = (sac * mask).sum() / area
        centred = (sac - mean) * mask
        var = (centred ** 2).sum() / area + 1e-5
        c = {a: (centred * ((rot - mean) * mask)).sum() / area / var for a, rot in zip(ANGLES, rotated)}
        s60.append(min(c[60], c[120]) - max(c[30], c[90], c[150]))
        s90.append(c[90] - (c[45] + c[135]) / 2.0)
    return s60[int(np.argmax(s60))], s90[int(np.argmax(s90))]


def nfl_oracle_pipeline(pos, act, units, nbins=44, coords=((-1.1, 1.1), (-1.1, 1.1))):
    """trainer.py:481-535 for the given unit indices (NFL draws them with np.random.choice)."""
    s60 = np.zeros(len(units))
    s90 = np.zeros(len(units))
    maps = np.zeros((len(units), nbins, nbins))
    for k, u in enumerate(units):
        rm = nfl_oracle_ratemap(pos[:, 0], pos[:, 1], act[:, u], nbins, coords)
        s60[k], s90[k] = nfl_oracle_scores(rm, nbins)
        maps[k] = rm
    frac = {t: float(pd.Series(s60).gt(t).mean()) for t in NFL_THRESHOLDS}    # analyze.py:17-22 (/100)
    return maps, s60, s90, frac, float(pd.Series(s60).max())


# ------------------------------------------------------------------ synthetic network activity
def synthetic_batch(seed, batch=200, steps=50, units=12):
    """Random-walk positions (some slip past the walls) and ReLU units: grids, noise, a dead unit."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-1.1, 1.1, size=(batch, 1, 2))
    pos = (start + np.cumsum(rng.normal(scale=0.04, size=(batch, steps, 2)), axis=1)).reshape(-1, 2)
    pos = np.clip(pos, -1.13, 1.13)                              # a few samples outside the box
    pos[0] = (1.1, 1.1)                                          # on the upper edges
    x, y = pos[:, 0], pos[:, 1]
    cols = []
    for k in range(units):
        if k == 0:
            cols.append(np.zeros(len(x)))                        # dead unit: constant map
            continue
        if k % 3 == 1:                                           # hexagonal grid cell
            kk = 4 * np.pi / (np.sqrt(3) * rng.uniform(0.4, 0.9))
            th = np.deg2rad(rng.uniform(0, 60) + np.array([0, 60, 120]))
            f = sum(np.cos(kk * (np.cos(t) * x + np.sin(t) * y) + rng.uniform(0, 6)) for t in th)
        else:                                                    # random smooth tuning
            w = rng.normal(size=(6, 2)) * 3
            f = sum(np.cos(w[j, 0] * x + w[j, 1] * y + rng.uniform(0, 6)) for j in range(6))
        cols.append(np.maximum(f + rng.normal(scale=0.3, size=len(x)) - 0.5, 0.0))
    return pos, np.stack(cols, axis=1).astype(np.float32).astype(np.float64)


# ------------------------------------------------------------------ tests
def test_nfl_protocol_equals_transcribed_pipeline():
    pos, act = synthetic_batch(0)
    assert (np.abs(pos) > 1.1).any()                             # exercises NFL's dropping
    units = np.array([3, 0, 7, 1, 10, 4, 5])
    maps_o, s60_o, s90_o, frac_o, max_o = nfl_oracle_pipeline(pos, act, units)
    rm = nfl_rate_maps(pos, act[:, units], EXTENT)
    np.testing.assert_allclose(rm.maps, np.swapaxes(maps_o, 1, 2), rtol=0, atol=1e-12, equal_nan=True)
    assert np.isnan(rm.maps).any()                               # ~10,000 samples leave bins unvisited
    got = nfl_unit_scores(rm.maps)
    np.testing.assert_allclose(got["score60"], s60_o, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["score90"], s90_o, rtol=0, atol=1e-10)
    assert got["score60"][1] == 0.0                              # the dead unit scores 0, as in NFL
    m = nfl_summary_metrics(got["score60"], got["period_bins"] * rm.bin_size[0], units=units)
    assert m["nfl_max_score60_deepmind_minmax"] == pytest.approx(max_o, abs=1e-10)
    assert m["nfl_best_unit"] == units[int(np.argmax(s60_o))]
    for t in NFL_THRESHOLDS:
        assert m[f"nfl_frac_units_above_{t}"] == frac_o[t]
    assert m["nfl_n_units"] == len(units)


def test_nfl_protocol_scores_differ_from_dense_sampling():
    """The two protocols are different measurements: sparse NFL maps versus dense maps."""
    from gridsweep.analysis import grid_scores, rate_maps

    pos, act = synthetic_batch(1, units=6)
    sparse = nfl_unit_scores(nfl_rate_maps(pos, act, EXTENT).maps)["score60"]
    dense = grid_scores(rate_maps(pos, act, extent=EXTENT, bins=NFL_BINS).maps, "deepmind_minmax")["score60"]
    assert np.isnan(dense[0]) and sparse[0] == 0.0               # constant map: NaN here, 0 in NFL
    assert np.abs(sparse[1:] - dense[1:]).max() > 1e-3           # clip-vs-drop and NaN handling differ


def test_nfl_summary_known_answer():
    s = np.array([0.1, 0.5, 0.9, 1.3, 0.0])
    period = np.array([np.nan, 0.4, 0.5, 0.7, np.nan])
    m = nfl_summary_metrics(s, period, units=np.array([10, 11, 12, 13, 14]), score90=s / 2)
    assert m["nfl_max_score60_deepmind_minmax"] == 1.3 and m["nfl_best_unit"] == 13
    assert m["nfl_frac_units_above_0.3"] == 3 / 5 and m["nfl_frac_units_above_1.0"] == 1 / 5
    assert m["nfl_median_period_m_above_0.3"] == 0.5 and m["nfl_n_units_for_period"] == 3
    assert m["nfl_median_spacing_m_above_0.8"] == 0.6 and m["nfl_n_units_for_spacing"] == 2
    assert m["nfl_median_score60_deepmind_minmax"] == 0.5 and m["nfl_max_score90_deepmind_minmax"] == 0.65
    assert set(f"nfl_frac_units_above_{t}" for t in SCORE_THRESHOLDS + NFL_THRESHOLDS) <= set(m)


def test_score_run_writes_both_protocols(tiny_cfg, tmp_path):
    protocol = "nfl"                       # the dense default's keys: tests/test_evaluation.py
    cfg = tiny_cfg.with_overrides({"evaluation.protocol": protocol, "training.n_steps": 5})
    ens, _ = train(cfg, tmp_path / "run", progress=False)
    m = score_run(tmp_path / "run", ens, figures=False)
    assert m["score_protocol"] == protocol
    assert "max_score60_deepmind_minmax" in m and "nfl_max_score60_deepmind_minmax" in m
    src = "nfl_" if protocol == "nfl" else ""
    assert m["primary_max_score60"] == m[f"{src}max_score60_deepmind_minmax"]
    assert m["primary_frac_units_above_0.3"] == m[f"{src}frac_units_above_0.3"]
    keys = list(m)
    assert keys.index(f"{src}max_score60_deepmind_minmax") < keys.index(
        ("" if src else "nfl_") + "max_score60_deepmind_minmax")              # primary first
    t = pd.read_parquet(tmp_path / "run" / "analysis" / "units_nfl.parquet")
    assert m["nfl_n_units"] == len(t) == cfg.model.hidden_size                   # Ng < 1024: all units
    assert (np.diff(t["unit"]) > 0).all()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["nfl_n_units"] == len(t)


def test_protocol_field_validated():
    from gridsweep.config import RunConfig
    from gridsweep.errors import ConfigError

    assert RunConfig().evaluation.protocol == "dense"
    with pytest.raises(ConfigError, match="evaluation.protocol"):
        RunConfig().with_overrides({"evaluation.protocol": "banino"})
