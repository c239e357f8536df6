"""Parity of targets and losses with NFL's code, transcribed here as direct numpy loops.

NFL = Schaeffer, Khona & Fiete's code, FieteLab/NeurIPS-2022-No-Free-Lunch at d9edec2,
mec_hpc_investigations/models/helper_classes.py (PlaceCells) and model.py (losses).
The transcriptions below follow those lines one operation at a time, in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridsweep.config import BoxConfig, HeterogeneityConfig, TargetConfig, validate_config
from gridsweep.errors import ConfigError
from gridsweep.targets import PlaceCellTarget, build_target, cross_entropy, mean_squared_error

BOX = BoxConfig()
F64 = torch.float64

#: gridsweep kind -> NFL's place_field_values (helper_classes.py:98-108)
NFL_VALUES = {"gaussian": "gaussian", "dos": "difference_of_gaussians", "dog_equinorm": "true_difference_of_gaussians",
              "dog_general": "general_difference_of_gaussians", "sod": "softmax_of_differences"}


def _softmax_cells(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _shift_scale(out: np.ndarray) -> np.ndarray:
    """helper_classes.py:401-402: outputs += |min over cells|; outputs /= sum over cells."""
    out = out + np.abs(out.min(-1, keepdims=True))
    return out / out.sum(-1, keepdims=True)


def nfl_place_cell_activation(pos, us, delete, rf, surround, values, alpha_e=1.0, alpha_i=1.0, rule="max_response",
                              normalization="global"):
    """NFL's PlaceCells.get_activation for place-cell values, as loops.

    pos (N, 2); us (Np, F, 2) field centres; delete (Np, F) bool; rf, surround (Np, F)
    per-field width and surround scale. Returns (N, Np).

    - helper_classes.py:194-203: deleted fields are moved to 1e7 * us, never the winner.
    - :342, :361: dist_squared = sum over xy of |pos - us|^2, per (position, cell, field).
    - :362-365: divided = dist_squared / (2 rf^2).
    - :367-371: the field is argmin over fields of divided (largest centre response);
      ``rule="nearest"`` takes argmin of dist_squared instead (gridsweep's other option).
    - :387-395 (and :406-414, :427-435, :442-450): the surround distance,
      dist_squared / (2 (rf * surround)^2), is gathered with the same index.
    - :374-377: 'global' normalization is a softmax over cells of -divided; 'none' is
      exp(-divided) per cell (also the centre and surround terms of
      difference_of_gaussians, :452-458).
    """
    us = np.where(delete[..., None], 1e7 * us, us)
    N, Np = pos.shape[0], us.shape[0]
    u_e = np.empty((N, Np))
    u_i = np.empty((N, Np))
    for n in range(N):
        for i in range(Np):
            best, best_key = 0, math.inf
            for f in range(us.shape[1]):
                d2 = (abs(pos[n, 0] - us[i, f, 0])) ** 2 + (abs(pos[n, 1] - us[i, f, 1])) ** 2
                key = d2 / (2.0 * rf[i, f] ** 2) if rule == "max_response" else d2
                if key < best_key:  # argmin: the first of equal minima
                    best, best_key = f, key
            d2 = (pos[n, 0] - us[i, best, 0]) ** 2 + (pos[n, 1] - us[i, best, 1]) ** 2
            u_e[n, i] = d2 / (2.0 * rf[i, best] ** 2)
            u_i[n, i] = d2 / (2.0 * (rf[i, best] * surround[i, best]) ** 2)
    if normalization == "none":
        if values == "gaussian":  # :381-383 with :375
            return np.exp(-u_e)
        if values == "difference_of_gaussians":  # :439-465 with :454
            return _shift_scale(np.exp(-u_e) - np.exp(-u_i))
    if values == "gaussian":  # :381-383 with :377
        return _softmax_cells(-u_e)
    if values == "true_difference_of_gaussians":  # :385-402
        return _shift_scale(np.exp(-u_e) - np.exp(-u_i))
    if values == "general_difference_of_gaussians":  # :404-422
        return _shift_scale(alpha_e * np.exp(-u_e) - alpha_i * np.exp(-u_i))
    if values == "softmax_of_differences":  # :424-437
        return _softmax_cells(-u_e + u_i)
    if values == "difference_of_gaussians":  # :439-465 with 'global' (:455-456)
        return _shift_scale(_softmax_cells(-u_e) - _softmax_cells(-u_i))
    raise ValueError(values)


def _nfl_inputs(t: PlaceCellTarget, e: int):
    us = t.centres[e].numpy()
    delete = ~t.field_mask[e].numpy()
    rf = t.sigma_e[e].numpy()
    surround = (t.sigma_i[e] / t.sigma_e[e]).numpy()
    return us, delete, rf, surround


HET = dict(fields_lambda=3.0, sigma_range=(0.06, 0.24), surround_width_ratio_range=(1.5, 2.5), max_fields=8)


@pytest.mark.parametrize("kind", sorted(NFL_VALUES))
def test_multifield_targets_equal_nfl_loops(kind):
    """Random heterogeneous multi-field cells: gridsweep's targets equal NFL's rule to 1e-12."""
    cfg = TargetConfig(kind=kind, n_cells=24, alpha_e=1.3, alpha_i=0.7, heterogeneity=HeterogeneityConfig(**HET),
                       **({"surround_width_ratio": 2.0} if kind != "gaussian" else {}))
    t = build_target(cfg, 7, BOX, dtype=F64)
    assert t.n_fields > 1 and not bool(t.field_mask.all())  # real multi-field cells, with padding
    g = np.random.default_rng(3)
    pos = g.uniform(-1.1, 1.1, size=(40, 2))
    ours = t.encode(torch.from_numpy(pos)[None])[0].numpy()
    ref = nfl_place_cell_activation(pos, *_nfl_inputs(t, 0), NFL_VALUES[kind], alpha_e=1.3, alpha_i=0.7)
    assert np.abs(ours - ref).max() <= 1e-12


def test_mixed_field_rules_in_one_ensemble():
    """Each network follows its own heterogeneity.field_rule; 'nearest' equals the nearest-centre loop."""
    cfgs = [TargetConfig(kind="dos", n_cells=20, surround_width_ratio=2.0,
                         heterogeneity=HeterogeneityConfig(**HET, field_rule=rule)) for rule in ("max_response", "nearest")]
    t = build_target(cfgs, [4, 4], BOX, dtype=F64)  # same seed: same cells, different rule
    pos = np.random.default_rng(5).uniform(-1.1, 1.1, size=(30, 2))
    ours = t.encode(torch.from_numpy(pos)[None].expand(2, -1, -1)).numpy()
    for e, rule in enumerate(("max_response", "nearest")):
        ref = nfl_place_cell_activation(pos, *_nfl_inputs(t, e), "difference_of_gaussians", rule=rule)
        assert np.abs(ours[e] - ref).max() <= 1e-12
    assert np.abs(ours[0] - ours[1]).max() > 1e-3  # the rules give different targets on these cells


def test_the_two_field_rules_differ_on_a_constructed_cell():
    """A narrow near field and a wide far one: nearest takes the near field, max_response the wide one."""
    # cell 0: field A at (0.1, 0) with sigma 0.02, field B at (-0.3, 0) with sigma 0.3; cell 1: one field.
    centres = torch.tensor([[[[0.1, 0.0], [-0.3, 0.0]], [[0.5, 0.5], [0.5, 0.5]]]], dtype=F64)
    mask = torch.tensor([[[True, True], [True, False]]])
    se = torch.tensor([[[0.02, 0.3], [0.1, 0.1]]], dtype=F64)
    one = torch.ones(1, dtype=F64)
    x = torch.zeros(1, 1, 2, dtype=F64)
    out = {}
    for rule in ("max_response", "nearest"):
        t = PlaceCellTarget("gaussian", centres, mask, se, 2 * se, one, one, max_response=torch.tensor([rule == "max_response"]))
        out[rule] = (t._responding_field(x), t.encode(x)[0, 0])
    (d2_max, se_max, _), y_max = out["max_response"]
    (d2_near, se_near, _), y_near = out["nearest"]
    # d^2 / (2 sigma^2): A 0.01 / 0.0008 = 12.5, B 0.09 / 0.18 = 0.5 -> B responds more
    assert float(d2_max[0, 0, 0]) == pytest.approx(0.09) and float(se_max[0, 0, 0]) == 0.3
    assert float(d2_near[0, 0, 0]) == pytest.approx(0.01) and float(se_near[0, 0, 0]) == 0.02
    u1 = 0.5 / (2 * 0.01)  # cell 1: d^2 = 0.5, sigma 0.1
    expect_max = np.exp([-0.5, -u1]) / np.exp([-0.5, -u1]).sum()
    expect_near = np.exp([-12.5, -u1]) / np.exp([-12.5, -u1]).sum()
    assert np.abs(y_max.numpy() - expect_max).max() <= 1e-12
    assert np.abs(y_near.numpy() - expect_near).max() <= 1e-12


def test_field_rule_survives_select_and_to():
    het = HeterogeneityConfig(**HET, field_rule="nearest")
    t = build_target([TargetConfig(kind="dos", n_cells=8, heterogeneity=het), TargetConfig(kind="dos", n_cells=8)],
                     [0, 1], BOX)
    assert t.max_response.tolist() == [False, True]
    assert t.select(1).max_response.tolist() == [True] and t.to(dtype=F64).max_response.tolist() == [False, True]


def test_field_rule_config():
    assert HeterogeneityConfig().field_rule == "max_response"
    with pytest.raises(ConfigError, match=r"^target\.heterogeneity\.field_rule: .*'farthest'"):
        validate_config({"target": {"heterogeneity": {"field_rule": "farthest"}}})


# --------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------
def nfl_mse_loss(pc_outputs: np.ndarray, preds: np.ndarray) -> float:
    """model.py:41-42 pos_loss (x - y) ** 2 elementwise; :181 tf.reduce_mean over every axis."""
    return float(np.mean((pc_outputs - preds) ** 2))


def nfl_softmax_ce_loss(labels: np.ndarray, logits: np.ndarray) -> float:
    """model.py:21 tf.nn.softmax_cross_entropy_with_logits(labels, logits) per (batch, time):
    -sum_j labels_j log softmax(logits)_j; :181 tf.reduce_mean over batch and time."""
    z = logits - logits.max(-1, keepdims=True)
    log_sm = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(np.mean(-(labels * log_sm).sum(-1)))


def sorscher_ce_loss(y: np.ndarray, preds: np.ndarray) -> float:
    """grid-pattern-formation model.py:69-70: -(y * log(softmax(preds))).sum(-1).mean()."""
    sm = np.exp(preds - preds.max(-1, keepdims=True))
    sm /= sm.sum(-1, keepdims=True)
    return float((-(y * np.log(sm)).sum(-1)).mean())


@pytest.mark.parametrize("kind,n", [("cartesian", 2), ("cartesian_highdim", 16), ("polar_highdim", 16)])
def test_mse_reduction_mean_is_nfl_and_sum_is_np_times_it(kind, n):
    g = torch.Generator().manual_seed(2)
    pos = (torch.rand(2, 7, 5, 2, generator=g, dtype=F64) - 0.5) * 2.2  # (E, B, T, 2)
    t = build_target(TargetConfig(kind=kind, n_cells=n), [0, 1], BOX, dtype=F64)
    assert t.mse_reduction == "mean"
    y = t.encode(pos)
    pred = y + 0.3 * torch.randn(y.shape, generator=g, dtype=F64)
    ours = t.loss(pred, y)
    for e in range(2):
        assert abs(float(ours[e]) - nfl_mse_loss(y[e].numpy(), pred[e].numpy())) <= 1e-12
    s = build_target(TargetConfig(kind=kind, n_cells=n, mse_reduction="sum"), [0, 1], BOX, dtype=F64)
    summed = s.select([0, 1]).to(dtype=F64).loss(pred, y)  # the setting travels with select / to
    assert torch.allclose(summed, n * ours, rtol=1e-12, atol=0)


def test_cross_entropy_equals_nfl_and_sorscher():
    g = torch.Generator().manual_seed(4)
    t = build_target(TargetConfig(kind="dos", n_cells=32, surround_width_ratio=2.0), [0, 1], BOX, dtype=F64)
    y = t.encode((torch.rand(2, 6, 9, 2, generator=g, dtype=F64) - 0.5) * 2.2)
    logits = 3 * torch.randn(y.shape, generator=g, dtype=F64)
    ours = cross_entropy(logits, y)
    for e in range(2):
        assert abs(float(ours[e]) - nfl_softmax_ce_loss(y[e].numpy(), logits[e].numpy())) <= 1e-12
        assert abs(float(ours[e]) - sorscher_ce_loss(y[e].numpy(), logits[e].numpy())) <= 1e-12


def test_mse_reduction_bad_values():
    with pytest.raises(ConfigError, match=r"^target\.mse_reduction: .*'max'"):
        validate_config({"target": {"kind": "cartesian_highdim", "n_cells": 8, "mse_reduction": "max"}})
    with pytest.raises(ConfigError, match="mse_reduction"):
        build_target([TargetConfig(kind="cartesian_highdim", n_cells=8, mse_reduction=r) for r in ("mean", "sum")],
                     [0, 1], BOX)
    with pytest.raises(ConfigError, match="mse_reduction"):
        mean_squared_error(torch.zeros(1, 3), torch.zeros(1, 3), "median")


# --------------------------------------------------------------------------------------
# place-cell MSE (NFL's place_field_loss: mse) and place_field_normalization: none
# --------------------------------------------------------------------------------------
def test_gaussian_without_normalisation_equals_nfl_loops():
    """normalization 'none': exp(-d^2 / 2 sigma^2) per cell (helper_classes.py:374-375), multi-field cells too."""
    het = HeterogeneityConfig(**{**HET, "surround_width_ratio_range": None})
    cfg = TargetConfig(kind="gaussian", n_cells=24, loss="mse", normalization="none", heterogeneity=het)
    t = build_target(cfg, 7, BOX, dtype=F64)
    pos = np.random.default_rng(8).uniform(-1.1, 1.1, size=(40, 2))
    ours = t.encode(torch.from_numpy(pos)[None])[0].numpy()
    ref = nfl_place_cell_activation(pos, *_nfl_inputs(t, 0), "gaussian", normalization="none")
    assert np.abs(ours - ref).max() <= 1e-12
    soft = build_target(TargetConfig(kind="gaussian", n_cells=24, heterogeneity=het), 7, BOX, dtype=F64)
    y = soft.encode(torch.from_numpy(pos)[None])[0].numpy()
    assert np.allclose(y.sum(-1), 1.0) and not np.allclose(ours.sum(-1), 1.0)  # they really differ
    assert np.abs(ours - y / y.sum(-1, keepdims=True) * ours.sum(-1, keepdims=True)).max() <= 1e-12  # same shape


def test_dos_without_normalisation_is_nfl_true_dog():
    """difference_of_gaussians with 'none' (exp - exp, :452-465) equals gridsweep's dog_equinorm, which
    is where the W&B translation sends it."""
    cfg = TargetConfig(kind="dog_equinorm", n_cells=24, surround_width_ratio=2.0, loss="mse",
                       heterogeneity=HeterogeneityConfig(**HET))
    t = build_target(cfg, 3, BOX, dtype=F64)
    pos = np.random.default_rng(9).uniform(-1.1, 1.1, size=(40, 2))
    ours = t.encode(torch.from_numpy(pos)[None])[0].numpy()
    ref = nfl_place_cell_activation(pos, *_nfl_inputs(t, 0), "difference_of_gaussians", normalization="none")
    assert np.abs(ours - ref).max() <= 1e-12


@pytest.mark.parametrize("kind,norm", [("gaussian", "global"), ("gaussian", "none"), ("dos", "global"),
                                       ("dog_general", "global")])
def test_place_cell_mse_equals_nfl(kind, norm):
    """target.loss 'mse': (outputs - targets)^2 averaged over batch, time and cells (model.py:41-42, :181)."""
    g = torch.Generator().manual_seed(6)
    extra = {} if kind == "gaussian" else {"surround_width_ratio": 2.0}
    cfg = TargetConfig(kind=kind, n_cells=32, loss="mse", normalization=norm, **extra)
    t = build_target(cfg, [0, 1], BOX, dtype=F64)
    assert t.loss_name == "mse"
    y = t.encode((torch.rand(2, 6, 9, 2, generator=g, dtype=F64) - 0.5) * 2.2)
    out = y + 0.05 * torch.randn(y.shape, generator=g, dtype=F64)  # raw readout, no softmax
    ours = t.loss(out, y)
    for e in range(2):
        assert abs(float(ours[e]) - nfl_mse_loss(y[e].numpy(), out[e].numpy())) <= 1e-15
    assert t.select([1]).to(dtype=F64).loss(out[1:], y[1:]).item() == pytest.approx(float(ours[1]), rel=1e-15)
    summed = build_target(cfg.model_copy(update={"mse_reduction": "sum"}), [0, 1], BOX, dtype=F64).loss(out, y)
    assert torch.allclose(summed, 32 * ours, rtol=1e-12, atol=0)
    ce = build_target(TargetConfig(kind=kind, n_cells=32, **extra), [0, 1], BOX, dtype=F64)
    assert ce.loss_name == "cross_entropy" and abs(float(ce.loss(out, y)[0]) - float(ours[0])) > 1e-3


def test_place_cell_mse_decodes_by_squared_error_template():
    """decode_template of an MSE-trained place-cell readout matches the targets by squared error: the
    exact targets of a grid position decode to that position."""
    cfg = TargetConfig(kind="gaussian", n_cells=64, loss="mse", normalization="none")
    t = build_target(cfg, 0, BOX, dtype=F64)
    x = torch.tensor([[[0.21, -0.47], [-0.83, 0.65]]], dtype=F64)  # cell centres of the 0.02 m grid
    assert torch.allclose(t.decode_template(t.encode(x), BOX), x, atol=1e-9)
    t.loss_name = "cross_entropy"  # the log-likelihood template misreads unnormalised outputs
    assert not torch.allclose(t.decode_template(t.encode(x), BOX), x, atol=1e-2)


@pytest.mark.parametrize("target, words", [
    ({"kind": "cartesian", "n_cells": 2, "loss": "crossentropy"}, "target.loss='crossentropy' with target.kind"),
    ({"kind": "gaussian", "normalization": "none"}, "target.loss='default'"),
    ({"kind": "gaussian", "normalization": "none", "loss": "crossentropy"}, "model.py:19-23"),
    ({"kind": "dos", "normalization": "none", "loss": "mse"}, "dog_equinorm"),
    ({"kind": "sod", "normalization": "none", "loss": "mse"}, "target.normalization='none' with target.kind='sod'"),
    ({"kind": "polar_highdim", "n_cells": 8, "normalization": "none"}, "target.kind='polar_highdim'"),
    ({"kind": "gaussian", "normalization": "local", "loss": "mse"}, "target.normalization: "),
    ({"kind": "gaussian", "loss": "l1"}, "target.loss: "),
])
def test_bad_loss_and_normalisation_fail_in_one_line(target, words):
    with pytest.raises(ConfigError, match=r"^target") as err:
        validate_config({"target": target})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_loss_defaults_and_ensemble_consistency():
    assert TargetConfig().loss == "default" and TargetConfig().normalization == "global"
    assert TargetConfig(kind="dos").loss_name == "cross_entropy"
    assert TargetConfig(kind="cartesian_highdim", n_cells=4).loss_name == "mse"
    assert TargetConfig(kind="cartesian_highdim", n_cells=4, loss="mse").loss_name == "mse"
    assert TargetConfig(kind="dos", loss="crossentropy").loss_name == "cross_entropy"
    with pytest.raises(ConfigError, match=r"target\.loss: an ensemble needs one"):
        build_target([TargetConfig(kind="dos", n_cells=8, loss=x) for x in ("default", "mse")], [0, 1], BOX)
    with pytest.raises(ConfigError, match=r"target\.normalization: an ensemble needs one"):
        build_target([TargetConfig(kind="gaussian", n_cells=8, loss="mse", normalization=x) for x in ("global", "none")],
                     [0, 1], BOX)
    with pytest.raises(ConfigError, match="normalization"):
        PlaceCellTarget("sod", torch.zeros(1, 2, 1, 2), torch.ones(1, 2, 1, dtype=torch.bool), torch.ones(1, 2, 1),
                        torch.ones(1, 2, 1), torch.ones(1), torch.ones(1), normalization="none")
