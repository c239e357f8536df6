"""Parity of gridsweep.optim with numpy transcriptions of each convention's update rule.

The references below are written from the documented equations, not from any library:
- torch: torch.optim.Adam / RMSprop / SGD documentation (Algorithm boxes).
- keras (tf.keras 2.8, optimizer_v2, what NFL's trainer.py:43-50 builds with defaults):
  Adam -> tf.raw_ops.ResourceApplyAdam ("lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t);
  variable -= lr_t m_t / (sqrt(v_t) + epsilon)"), epsilon 1e-7; RMSprop rho 0.9,
  epsilon 1e-7, momentum 0: "var -= lr g / (sqrt(ms) + epsilon)"; momentum > 0 ->
  tf.raw_ops.ResourceApplyRMSProp ("mom = momentum mom + lr g / sqrt(ms + epsilon);
  var -= mom"); SGD "velocity = momentum velocity - lr g; w += velocity".
- tf1 (tf.train, Banino et al.'s train.py:88-92): RMSPropOptimizer(decay 0.9, epsilon
  1e-10) with its mean-square slot initialised to ones and ApplyRMSProp's update; Adam
  as ApplyAdam with epsilon 1e-8; MomentumOptimizer "accum = momentum accum + g;
  var -= lr accum".
- Adagrad: torch.optim.Adagrad (documented algorithm: state_sum starts at
  initial_accumulator_value 0, "state_sum += g^2; theta -= gamma~ g / (sqrt(state_sum) +
  eps)" with gamma~ = gamma / (1 + (t - 1) eta), lr_decay eta 0, eps 1e-10); tf.keras 2.8
  Adagrad (NFL's trainer.py:45-46): accumulator slot initialised to 0.1, epsilon 1e-7,
  tf.raw_ops.ResourceApplyAdagradV2 "accum += grad * grad; var -= lr * grad * (1 /
  (sqrt(accum) + epsilon))"; tf.train.AdagradOptimizer: accumulator 0.1,
  tf.raw_ops.ApplyAdagrad "var -= lr * grad * (1 / sqrt(accum))" (no epsilon).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridsweep.config import TrainingConfig, validate_config
from gridsweep.errors import ConfigError
from gridsweep.optim import CONVENTIONS, EnsembleOptimizer, optimizer_settings

F64 = torch.float64
B1, B2 = 0.9, 0.999


class NumpyRule:
    """One network's optimiser state and update, per convention, in plain numpy."""

    def __init__(self, kind, convention, lr, momentum, adam_eps, rms_decay, rms_eps, shape, ada_a0=0.0, ada_eps=0.0):
        self.kind, self.conv, self.lr, self.mu = kind, convention, lr, momentum
        self.adam_eps, self.rho, self.rms_eps, self.ada_eps = adam_eps, rms_decay, rms_eps, ada_eps
        self.t = 0
        self.a = np.zeros(shape)  # Adam m / RMSProp mean square / SGD buffer / Adagrad accumulator
        self.b = np.zeros(shape)  # Adam v / RMSProp momentum buffer
        if kind == "rmsprop" and convention == "tf1":
            self.a = np.ones(shape)  # tf.train.RMSPropOptimizer's "rms" slot starts at 1
        if kind == "adagrad":
            self.a = np.full(shape, float(ada_a0))

    def step(self, p, g, lr_scale):
        lr = self.lr * lr_scale
        self.t += 1
        t = self.t
        if self.kind == "adam":
            self.a = B1 * self.a + (1 - B1) * g
            self.b = B2 * self.b + (1 - B2) * g * g
            if self.conv == "torch":
                m_hat = self.a / (1 - B1 ** t)
                v_hat = self.b / (1 - B2 ** t)
                return p - lr * m_hat / (np.sqrt(v_hat) + self.adam_eps)
            lr_t = lr * math.sqrt(1 - B2 ** t) / (1 - B1 ** t)
            return p - lr_t * self.a / (np.sqrt(self.b) + self.adam_eps)
        if self.kind == "adagrad":
            self.a = self.a + g * g
            if self.conv == "torch":
                clr = lr / (1 + (t - 1) * 0.0)  # lr_decay 0
                return p - clr * g / (np.sqrt(self.a) + self.ada_eps)
            if self.conv == "keras":  # ResourceApplyAdagradV2
                return p - lr * g * (1 / (np.sqrt(self.a) + self.ada_eps))
            return p - lr * g * (1 / np.sqrt(self.a))  # tf1 ApplyAdagrad: no epsilon
        if self.kind == "rmsprop":
            self.a = self.rho * self.a + (1 - self.rho) * g * g
            if self.conv == "torch":
                self.b = self.mu * self.b + g / (np.sqrt(self.a) + self.rms_eps)
                return p - lr * self.b
            if self.conv == "keras" and self.mu == 0:
                return p - lr * g / (np.sqrt(self.a) + self.rms_eps)
            self.b = self.mu * self.b + lr * g / np.sqrt(self.a + self.rms_eps)
            return p - self.b
        if self.conv == "keras":
            self.a = self.mu * self.a - lr * g
            return p + self.a
        self.a = self.mu * self.a + g
        return p - lr * self.a


CASES = [(k, c) for k in ("adam", "rmsprop", "sgd", "adagrad") for c in ("torch", "keras", "tf1")]


def _run(kind, convention, steps=20, overrides=None, schedule=True, freeze=True):
    """E = 3 networks (lr, momentum per network), two tensors with gradient scales 1 and 1e-6."""
    lrs, moms = [1e-2, 3e-3, 2e-2], [0.0, 0.9, 0.5]
    consts = {**CONVENTIONS[convention], **(overrides or {})}
    g = np.random.default_rng(11)
    shapes = [(3, 4, 5), (3, 6)]
    scales = [1.0, 1e-6]  # small gradients make epsilon's size and placement matter
    p0 = [g.normal(size=s) for s in shapes]
    ours = [torch.tensor(p, dtype=F64, requires_grad=True) for p in p0]
    opt = EnsembleOptimizer(ours, kind, torch.tensor(lrs, dtype=F64), torch.tensor(moms, dtype=F64),
                            convention=convention, **(overrides or {}))
    refs = [[NumpyRule(kind, convention, lrs[e], moms[e], consts["adam_epsilon"], consts["rmsprop_decay"],
                       consts["rmsprop_epsilon"], s[1:], consts["adagrad_initial_accumulator"],
                       consts["adagrad_epsilon"]) for s in shapes] for e in range(3)]
    theirs = [[p[e].copy() for p in p0] for e in range(3)]
    for step in range(steps):
        lr_scale = (0.3 ** ((step >= 7) + (step >= 15))) if schedule else 1.0
        active = np.array([True, True, not (freeze and 5 <= step < 9)])
        grads = [sc * g.normal(size=s) for s, sc in zip(shapes, scales)]
        for q, gr in zip(ours, grads):
            q.grad = torch.tensor(np.where(active.reshape(-1, *[1] * (gr.ndim - 1)), gr, np.nan), dtype=F64)
        opt.step(torch.tensor(active), lr_scale=lr_scale)
        for e in range(3):
            if active[e]:
                theirs[e] = [r.step(p, gr[e], lr_scale) for r, p, gr in zip(refs[e], theirs[e], grads)]
    return [q.detach().numpy() for q in ours], theirs, p0


@pytest.mark.parametrize("kind,convention", CASES)
def test_update_rule_equals_numpy_transcription(kind, convention):
    """20 steps, per-network lr and momentum, an LR schedule and a frozen network: equal to 1e-10."""
    ours, theirs, p0 = _run(kind, convention)
    for i, q in enumerate(ours):
        for e in range(3):
            assert np.abs(q[e] - theirs[e][i]).max() <= 1e-10 * max(1.0, np.abs(theirs[e][i]).max())
    assert np.abs(ours[0] - p0[0]).max() > 1e-3  # it moved


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_conventions_really_differ(kind):
    """torch, keras and tf1 give measurably different weights on the small-gradient tensor."""
    runs = {c: _run(kind, c, schedule=False, freeze=False)[0][1] for c in ("torch", "keras", "tf1")}
    assert np.abs(runs["torch"] - runs["keras"]).max() > 1e-6
    assert np.abs(runs["keras"] - runs["tf1"]).max() > 1e-6


def test_explicit_constants_override_the_convention():
    over = {"adam_epsilon": 1e-3, "rmsprop_decay": 0.95, "rmsprop_epsilon": 1e-4,
            "adagrad_initial_accumulator": 0.5, "adagrad_epsilon": 1e-3}
    for kind in ("adam", "rmsprop", "adagrad"):
        ours, theirs, _ = _run(kind, "keras", overrides=over)
        assert np.abs(ours[1][1] - theirs[1][1]).max() <= 1e-10


def test_optimizer_settings_from_config():
    assert optimizer_settings(TrainingConfig()) == {"convention": "torch", **CONVENTIONS["torch"]}
    k = optimizer_settings(TrainingConfig(optimizer_convention="keras"))
    assert k == {"convention": "keras", "adam_epsilon": 1e-7, "rmsprop_decay": 0.9, "rmsprop_epsilon": 1e-7,
                 "adagrad_initial_accumulator": 0.1, "adagrad_epsilon": 1e-7}
    t = optimizer_settings(TrainingConfig(optimizer_convention="tf1", rmsprop_epsilon=1e-6))
    assert t == {"convention": "tf1", "adam_epsilon": 1e-8, "rmsprop_decay": 0.9, "rmsprop_epsilon": 1e-6,
                 "adagrad_initial_accumulator": 0.1, "adagrad_epsilon": 0.0}
    a = optimizer_settings(TrainingConfig(optimizer="adagrad", adagrad_initial_accumulator=0.0))
    assert (a["adagrad_initial_accumulator"], a["adagrad_epsilon"]) == (0.0, 1e-10)


@pytest.mark.parametrize("field,value", [("adam_epsilon", float("inf")), ("adam_epsilon", float("nan")),
                                         ("rmsprop_epsilon", 0.0), ("rmsprop_decay", 1.0),
                                         ("rmsprop_decay", float("nan")), ("optimizer_convention", "jax"),
                                         ("adagrad_initial_accumulator", -0.1), ("adagrad_epsilon", 0.0),
                                         ("adagrad_epsilon", float("inf")), ("optimizer", "adadelta")])
def test_bad_optimizer_fields_fail_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^training\.{field}: ") as err:
        validate_config({"training": {field: value}})
    assert "\n" not in str(err.value)


def test_checkpoint_of_another_convention_is_refused():
    p = torch.zeros(1, 3, dtype=F64, requires_grad=True)
    a = EnsembleOptimizer([p], "rmsprop", torch.tensor([1e-3], dtype=F64), convention="tf1")
    p.grad = torch.ones_like(p)
    a.step()
    sd = a.state_dict()
    assert sd["convention"] == "tf1" and float(sd["state"][0]["square_avg"][0, 0]) == pytest.approx(0.9 + 0.1)
    b = EnsembleOptimizer([p], "rmsprop", torch.tensor([1e-3], dtype=F64), convention="torch")
    with pytest.raises(ConfigError, match="optimizer_convention"):
        b.load_state_dict(sd)
    c = EnsembleOptimizer([p], "rmsprop", torch.tensor([1e-3], dtype=F64), convention="tf1")
    c.load_state_dict(EnsembleOptimizer.stack_states([a.select_state([0])]))
    assert torch.equal(c.state[0]["square_avg"], a.state[0]["square_avg"])


def test_training_builds_the_configured_convention():
    """Ensemble passes training.optimizer_convention and the constants to its optimiser."""
    from gridsweep.config import RunConfig
    from gridsweep.training import Ensemble

    cfg = RunConfig.model_validate({"target": {"kind": "gaussian", "n_cells": 8},
                                    "model": {"hidden_size": 8},
                                    "trajectory": {"batch_size": 2, "sequence_length": 3},
                                    "training": {"optimizer": "rmsprop", "optimizer_convention": "tf1",
                                                 "rmsprop_decay": 0.8}})
    opt = Ensemble([cfg]).optimizer
    assert (opt.convention, opt.rmsprop_decay, opt.rmsprop_epsilon, opt.adam_epsilon) == ("tf1", 0.8, 1e-10, 1e-8)


# --------------------------------------------------------------------------------------
# Adagrad
# --------------------------------------------------------------------------------------
def test_adagrad_torch_convention_equals_torch_optim_adagrad():
    """torch convention vs torch.optim.Adagrad itself (one optimiser per network, its own lr):
    20 steps, float64, a schedule and a frozen network, equal to 1e-10."""
    lrs = [1e-2, 3e-3, 2e-2]
    g = np.random.default_rng(5)
    p0 = g.normal(size=(3, 4, 5))
    ours = torch.tensor(p0, dtype=F64, requires_grad=True)
    opt = EnsembleOptimizer([ours], "adagrad", torch.tensor(lrs, dtype=F64), convention="torch")
    theirs = [torch.tensor(p0[e], dtype=F64, requires_grad=True) for e in range(3)]
    refs = [torch.optim.Adagrad([theirs[e]], lr=lrs[e]) for e in range(3)]
    assert refs[0].defaults["initial_accumulator_value"] == CONVENTIONS["torch"]["adagrad_initial_accumulator"]
    assert refs[0].defaults["eps"] == CONVENTIONS["torch"]["adagrad_epsilon"]
    for step in range(20):
        scale = 0.3 ** ((step >= 7) + (step >= 15))
        active = [True, not 5 <= step < 9, True]
        grad = g.normal(size=(3, 4, 5)) * np.array([1.0, 1e-3, 1e-6])[:, None, None]
        ours.grad = torch.tensor(grad, dtype=F64)
        opt.step(torch.tensor(active), lr_scale=scale)
        for e in range(3):
            if active[e]:
                for group in refs[e].param_groups:
                    group["lr"] = lrs[e] * scale
                theirs[e].grad = torch.tensor(grad[e], dtype=F64)
                refs[e].step()
    for e in range(3):
        ref = theirs[e].detach().numpy()
        assert np.abs(ours.detach().numpy()[e] - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max())
    assert np.abs(ours.detach().numpy() - p0).max() > 1e-3


def test_adagrad_keras_first_step_known_answer():
    """Keras: the accumulator starts at 0.1, so g = 1, lr = 0.1 moves p by 0.1 / (sqrt(1.1) + 1e-7);
    torch (accumulator 0) moves it by 0.1 / (1 + 1e-10); tf1 by 0.1 / sqrt(1.1)."""
    want = {"keras": 0.1 / (math.sqrt(1.1) + 1e-7), "torch": 0.1 / (1 + 1e-10), "tf1": 0.1 / math.sqrt(1.1)}
    for conv, step in want.items():
        p = torch.zeros(1, 2, dtype=F64, requires_grad=True)
        opt = EnsembleOptimizer([p], "adagrad", torch.tensor([0.1], dtype=F64), convention=conv)
        p.grad = torch.ones_like(p)
        opt.step()
        assert float(p.detach()[0, 0]) == pytest.approx(-step, rel=1e-15, abs=0), conv


def test_adagrad_conventions_really_differ():
    runs = {c: _run("adagrad", c, schedule=False, freeze=False)[0][0] for c in ("torch", "keras")}
    assert np.abs(runs["torch"] - runs["keras"]).max() > 1e-4


def test_adagrad_zero_accumulator_without_epsilon_is_refused():
    with pytest.raises(ConfigError, match=r"^training: .*adagrad_initial_accumulator=0"):
        validate_config({"training": {"optimizer": "adagrad", "optimizer_convention": "tf1",
                                      "adagrad_initial_accumulator": 0.0}})
    with pytest.raises(ConfigError, match="adagrad_initial_accumulator=0"):
        EnsembleOptimizer([torch.zeros(1, 2)], "adagrad", torch.ones(1), convention="tf1",
                          adagrad_initial_accumulator=0.0)
    ok = validate_config({"training": {"optimizer": "adagrad", "optimizer_convention": "tf1",
                                       "adagrad_initial_accumulator": 0.0, "adagrad_epsilon": 1e-8}})
    assert ok.training.adagrad_epsilon == 1e-8


def test_adagrad_state_survives_select_stack_and_checkpoint():
    p = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    a = EnsembleOptimizer([p], "adagrad", torch.tensor([1e-2, 2e-2], dtype=F64), convention="keras")
    p.grad = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=F64)
    a.step()
    assert torch.allclose(a.state[0]["sum"], 0.1 + p.grad ** 2)
    b = EnsembleOptimizer([p], "adagrad", torch.tensor([1e-2, 2e-2], dtype=F64), convention="keras")
    b.load_state_dict(EnsembleOptimizer.stack_states([a.select_state([0]), a.select_state([1])]))
    assert torch.equal(b.state[0]["sum"], a.state[0]["sum"]) and torch.equal(b.step_count, a.step_count)


def test_adagrad_place_cell_mse_run_resumes_exactly(tiny_cfg, tmp_path):
    """A tiny NFL-style run (Keras Adagrad, Gaussian cells without softmax, MSE) stopped at a
    checkpoint and resumed ends with the weights of the uninterrupted run."""
    from gridsweep.training import train

    cfg = tiny_cfg.with_overrides({"training.optimizer": "adagrad", "training.optimizer_convention": "keras",
                                   "training.lr_milestones": [12], "training.n_steps": 14, "target.kind": "gaussian",
                                   "target.surround_variance_ratio": None, "target.loss": "mse",
                                   "target.normalization": "none"})
    full, _ = train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "part", progress=False, stop_after=10)
    resumed, r = train(cfg, tmp_path / "part", progress=False)
    assert r.status == "done"
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.optimizer.kind == "adagrad" and full.optimizer.adagrad_initial_accumulator == 0.1
