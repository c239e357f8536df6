"""Gradient clipping: by global norm (torch) and by value (Banino et al.'s tf.clip_by_value)."""

import pytest
import torch

from gridsweep.config import RunConfig, validate_config
from gridsweep.errors import ConfigError
from gridsweep.optim import clip_grad_norm_per_network, clip_grad_value_per_network


def _params(E=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.zeros(E, 4, 5, dtype=torch.float64, requires_grad=True),
          torch.zeros(E, 7, dtype=torch.float64, requires_grad=True)]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64) * 3
    return ps


def test_clip_by_value_equals_elementwise_clamp_per_network():
    ps = _params()
    before = [p.grad.clone() for p in ps]
    c = torch.tensor([0.5, 2.0, float("inf")], dtype=torch.float64)
    clip_grad_value_per_network(ps, c)
    for p, b in zip(ps, before):
        for e in range(3):
            torch.testing.assert_close(p.grad[e], b[e].clamp(-c[e].item(), c[e].item()), rtol=0, atol=0)
    assert ps[0].grad[0].abs().max() == 0.5                      # something was clipped
    torch.testing.assert_close(ps[0].grad[2], before[0][2], rtol=0, atol=0)  # inf leaves it alone


def test_clip_by_norm_matches_torch_per_network():
    ps = _params(seed=1)
    ref = [p.grad.clone() for p in ps]
    c = torch.tensor([1.0, 1e6, 0.1], dtype=torch.float64)
    clip_grad_norm_per_network(ps, c)
    for e in range(3):
        q = [torch.zeros_like(r[e], requires_grad=True) for r in ref]
        for qq, r in zip(q, ref):
            qq.grad = r[e].clone()
        torch.nn.utils.clip_grad_norm_(q, c[e].item())
        for qq, p in zip(q, ps):
            torch.testing.assert_close(p.grad[e], qq.grad)


def test_one_sgd_step_moves_no_weight_more_than_the_clip_value():
    from gridsweep.training import Ensemble

    cfg = validate_config({
        "trajectory": {"batch_size": 8, "sequence_length": 5},
        "target": {"kind": "dos", "n_cells": 16, "surround_variance_ratio": 2.0},
        "model": {"hidden_size": 12},
        "training": {"optimizer": "sgd", "learning_rate": 1.0, "weight_decay": 0.0, "n_steps": 1,
                     "grad_clip": 1e-4, "grad_clip_mode": "value", "dtype": "float64"},
    })
    ens = Ensemble([cfg])
    before = [p.detach().clone() for p in ens.model.parameters()]
    ens.train_step()
    moves = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(ens.model.parameters(), before)])
    assert moves.max() <= 1e-4 * (1 + 1e-12)
    assert moves.max() >= 1e-4 * (1 - 1e-12)      # at least one element hit the clip


def test_grad_clip_mode_is_validated():
    with pytest.raises(ConfigError, match="training.grad_clip_mode"):
        validate_config({"training": {"grad_clip_mode": "elementwise"}})
    assert RunConfig().training.grad_clip_mode == "norm"
