"""An ensemble of E networks is E independent networks computed together (issue #5).

Known answers: the same networks trained one by one (E = 1 each), torch.optim's own
optimisers, and a from-scratch per-network implementation of each recurrent cell.
Everything runs in float64 on the CPU so that differences are rounding, not bugs.
"""

from __future__ import annotations

import math

import pytest
import torch

from gridsweep.config import ModelConfig, RunConfig
from gridsweep.models import ACTIVATIONS, CELLS, PathIntegrator, build_model
from gridsweep.optim import EnsembleOptimizer
from gridsweep.training import Ensemble, train_ensemble

F64 = torch.float64
STEPS = 50


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one intra-op thread avoids parallel-region overhead on shared cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def base_cfg(cell: str, optimizer: str) -> RunConfig:
    return RunConfig().with_overrides({
        "model.cell": cell, "model.hidden_size": 10, "model.bias": cell != "rnn",
        "model.activation": "relu" if cell == "rnn" else "tanh",
        "target.n_cells": 12, "trajectory.batch_size": 6, "trajectory.sequence_length": 5,
        "training.optimizer": optimizer, "training.dtype": "float64", "training.n_steps": STEPS,
        "training.eval_every": 10_000, "training.checkpoint_every": 10_000,
        "evaluation.n_trajectories": 4, "evaluation.sequence_length": 5,
    })


#: per-network fields that differ: seed, learning rate, weight decay, target width, dropout, momentum
PER_NETWORK = [
    {"seed": 3, "training.learning_rate": 1e-3, "training.weight_decay": 1e-4, "target.sigma": 0.12,
     "model.dropout": 0.0, "training.momentum": 0.0},
    {"seed": 7, "training.learning_rate": 3e-3, "training.weight_decay": 1e-2, "target.sigma": 0.25,
     "model.dropout": 0.3, "training.momentum": 0.9},
    {"seed": 11, "training.learning_rate": 5e-4, "training.weight_decay": 0.0, "target.sigma": 0.08,
     "model.dropout": 0.1, "training.momentum": 0.5},
]
SGD_LR_SCALE = 30.0  # plain SGD needs larger steps to move in 50 steps


def network_cfgs(cell: str, optimizer: str) -> list[RunConfig]:
    base = base_cfg(cell, optimizer)
    out = []
    for over in PER_NETWORK:
        over = dict(over)
        if optimizer == "sgd":
            over["training.learning_rate"] *= SGD_LR_SCALE
        out.append(base.with_overrides(over))
    return out


def params(ens: Ensemble) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in ens.model.state_dict().items()}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --------------------------------------------------------------------------------------
# 1. training together equals training one by one
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "ugrnn"])
def test_ensemble_training_equals_one_by_one(cell, optimizer):
    cfgs = network_cfgs(cell, optimizer)
    together = Ensemble(cfgs)
    alone = [Ensemble([c]) for c in cfgs]
    start = params(together)
    for _ in range(STEPS):
        together.train_step()
        for a in alone:
            a.train_step()
    assert bool(together.active.all()), "no network may diverge in this test"
    end = params(together)
    for e, a in enumerate(alone):
        single = params(a)
        for name, value in end.items():
            assert torch.isfinite(value[e]).all()
            assert max_abs_diff(value[e], single[name][0]) <= 1e-6, (cell, optimizer, e, name)
    moved = [name for name in end if end[name].dtype.is_floating_point and not torch.equal(end[name], start[name])]
    assert "W_hh" in moved and "W_dec" in moved  # the test trains something


def test_ensemble_metrics_equal_one_by_one():
    cfgs = network_cfgs("rnn", "adam")
    together = Ensemble(cfgs)
    alone = [Ensemble([c]) for c in cfgs]
    for _ in range(3):
        m = together.train_step()
        singles = [a.train_step() for a in alone]
    for key in ("loss", "penalty", "decoding_error_cm"):
        expected = torch.cat([s[key] for s in singles])
        torch.testing.assert_close(m[key], expected, rtol=1e-9, atol=1e-12)
    assert set(m) == {"loss", "penalty", "decoding_error_cm"}
    torch.testing.assert_close(together.evaluate(), torch.cat([a.evaluate() for a in alone]), rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------
# 2. gradients in the ensemble equal gradients alone
# --------------------------------------------------------------------------------------
def total_loss(ens: Ensemble) -> torch.Tensor:
    loss, _, _ = ens.losses(ens.sample(), train=True)
    return loss + ens.weight_decay * ens.model.recurrent_penalty()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "ugrnn"])
def test_gradients_in_ensemble_equal_gradients_alone(cell):
    cfgs = network_cfgs(cell, "adam")
    together = Ensemble(cfgs)
    alone = [Ensemble([c]) for c in cfgs]
    total_loss(together).sum().backward()
    for e, a in enumerate(alone):
        total_loss(a).sum().backward()
        for (name, p), q in zip(together.model.named_parameters(), a.model.parameters()):
            assert p.grad is not None and torch.count_nonzero(p.grad[e]) > 0, name
            torch.testing.assert_close(p.grad[e], q.grad[0], rtol=1e-9, atol=1e-12, msg=f"{cell} {name} net {e}")


def test_loss_computed_in_blocks_of_networks_equals_whole_ensemble():
    """The CPU computes targets and loss a few networks at a time; force blocks of one."""
    cfgs = [c.with_overrides({"head_direction": {"n_cells": 4}}) for c in network_cfgs("lstm", "adam")]
    whole, blocks = Ensemble(cfgs), Ensemble(cfgs)
    blocks._LOSS_BLOCK_BYTES = 1
    traj = whole.sample()
    assert blocks._loss_chunk_sizes(torch.zeros(3, 5, 6, 16, dtype=F64)) == [1, 1, 1]
    assert whole._loss_chunk_sizes(torch.zeros(3, 5, 6, 16, dtype=F64)) == [3]
    results = []
    for ens in (whole, blocks):
        loss, out, _ = ens.losses(traj, train=True)
        loss.sum().backward()
        results.append((loss.detach(), out.detach(), [p.grad for p in ens.model.parameters()]))
    (l1, o1, g1), (l2, o2, g2) = results
    assert torch.equal(o1, o2)
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------
# 3. the fused recurrence against a from-scratch implementation of each cell
# --------------------------------------------------------------------------------------
def reference_hidden(m: PathIntegrator, e: int, v: torch.Tensor, code0: torch.Tensor) -> torch.Tensor:
    """Network e's hidden states from the textbook equations, one 2-D product per step.

    v (B, T, 2), code0 (B, Np) -> (B, T, Ng). Gate order as documented in models.py:
    LSTM i, f, g, o; GRU r, z, n; UGRNN gate, candidate.
    """
    act = ACTIVATIONS[m.activation]
    sig = torch.sigmoid
    Ng = m.hidden_size
    W_ih, W_hh = m.W_ih[e], m.W_hh[e]
    b = m.b[e, 0] if m.b is not None else torch.zeros(W_hh.shape[1], dtype=W_hh.dtype)
    h = code0 @ m.W_enc[e]
    c = code0 @ m.W_enc_c[e] if m.W_enc_c is not None else None
    out = []
    for t in range(v.shape[1]):
        x = v[:, t] @ W_ih
        if m.cell == "rnn":
            h = act(x + h @ W_hh + b)
        elif m.cell == "lstm":
            pre = x + h @ W_hh + b
            i, f, g, o = (pre[:, k * Ng:(k + 1) * Ng] for k in range(4))
            c = sig(f) * c + sig(i) * act(g)
            h = sig(o) * act(c)
        elif m.cell == "gru":
            xb, hh = x + b, h @ W_hh
            r = sig(xb[:, :Ng] + hh[:, :Ng])
            z = sig(xb[:, Ng:2 * Ng] + hh[:, Ng:2 * Ng])
            n = act(xb[:, 2 * Ng:] + r * hh[:, 2 * Ng:])
            h = (1 - z) * n + z * h
        else:
            pre = x + h @ W_hh + b
            u = sig(pre[:, :Ng])
            h = u * h + (1 - u) * act(pre[:, Ng:])
        out.append(h)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "ugrnn"])
def test_fused_recurrence_matches_textbook_cells(cell, activation):
    torch.manual_seed(0)
    E, B, T, Np, Ng = 3, 4, 6, 5, 7
    m = build_model(ModelConfig(cell=cell, activation=activation, hidden_size=Ng, bias=True, init="glorot_normal"),
                    Np, Np, [0, 1, 2], dtype=F64)
    with torch.no_grad():
        m.b.normal_()  # a non-zero bias, so its gradient is tested too
    v = 0.3 * torch.randn(E, B, T, 2, dtype=F64)
    code0 = torch.rand(E, B, Np, dtype=F64)
    w = torch.randn(E, B, T, Ng, dtype=F64)  # a loss weighting every hidden state differently
    assert m.use_fused_recurrence
    hidden = m.hidden(v, code0)
    (hidden * w).sum().backward()
    got = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert set(got) >= {"W_enc", "W_ih", "W_hh", "b"}
    for e in range(E):
        m.zero_grad()
        ref = reference_hidden(m, e, v[e], code0[e])
        torch.testing.assert_close(hidden[e].detach(), ref.detach(), rtol=1e-12, atol=1e-12)
        (ref * w[e]).sum().backward()
        for n, p in m.named_parameters():
            if n not in got:
                continue
            torch.testing.assert_close(got[n][e], p.grad[e], rtol=1e-10, atol=1e-12, msg=f"{cell} {activation} {n}")
            others = [k for k in range(E) if k != e]
            assert torch.count_nonzero(p.grad[others]) == 0  # network e's loss touches slice e only


def test_unfused_path_agrees_and_custom_cells_fall_back():
    torch.manual_seed(1)
    m = build_model(ModelConfig(cell="lstm", hidden_size=6, bias=True), 4, 4, [0, 1], dtype=F64)
    v, code0 = torch.randn(2, 3, 5, 2, dtype=F64), torch.rand(2, 3, 4, dtype=F64)
    fused = m.hidden(v, code0)
    m.use_fused_recurrence = False
    torch.testing.assert_close(m.hidden(v, code0), fused, rtol=1e-12, atol=1e-12)
    m.use_fused_recurrence = True
    ACTIVATIONS["softplus_test"] = torch.nn.functional.softplus
    try:
        m.activation = "softplus_test"  # unknown to the fused kernel: the per-step path runs it
        m.hidden(v, code0).sum().backward()
        assert m.W_hh.grad is not None and torch.isfinite(m.W_hh.grad).all()
    finally:
        del ACTIVATIONS["softplus_test"]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "ugrnn"])
def test_onednn_products_agree_with_torch_bmm(cell, monkeypatch):
    """float32 CPU products by a weight may go through oneDNN; values and gradients agree with torch.bmm."""
    from gridsweep import fastpath

    if not fastpath.onednn_available():
        pytest.skip("this torch build has no working oneDNN linear")
    monkeypatch.setattr(fastpath, "ONEDNN_MIN_MACS", 0)  # send every product there
    torch.manual_seed(2)
    m = build_model(ModelConfig(cell=cell, activation="tanh", hidden_size=24, bias=True, bottleneck=8), 10, 12,
                    [0, 1, 2])
    v, code0 = torch.randn(3, 5, 6, 2), torch.rand(3, 5, 10)
    w_out, w_hidden = torch.randn(3, 5, 6, 12), torch.randn(3, 5, 6, 24)
    results = []
    for on in (True, False):
        monkeypatch.setattr(fastpath, "ONEDNN_MATMUL", on)
        m.zero_grad()
        out, hidden = m(v, code0)
        ((out * w_out).sum() + (hidden * w_hidden).sum()).backward()
        results.append([out.detach().clone()] + [p.grad.clone() for p in m.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


# --------------------------------------------------------------------------------------
# 4. a diverging network is masked out, reported, and disturbs no one
# --------------------------------------------------------------------------------------
def diverging_cfgs() -> list[RunConfig]:
    cfgs = network_cfgs("rnn", "adam")
    cfgs = [c.with_overrides({"model.activation": "linear"}) for c in cfgs]
    cfgs[1] = cfgs[1].with_overrides({"training.learning_rate": 1e200})  # weights overflow float64 in a step or two
    return cfgs


def test_huge_learning_rate_diverges_alone():
    cfgs = diverging_cfgs()
    together = Ensemble(cfgs)
    healthy = Ensemble([cfgs[0], cfgs[2]])
    for _ in range(20):
        together.train_step()
        healthy.train_step()
    assert together.active.tolist() == [True, False, True]
    at = together.diverged_at
    assert at[0] is None and at[2] is None and at[1] is not None and 0 <= at[1] < 20
    p, q = params(together), params(healthy)
    for name in p:
        assert torch.equal(p[name][[0, 2]], q[name]), name


def test_injected_nan_is_reported_frozen_and_isolated():
    cfgs = network_cfgs("gru", "rmsprop")
    together = Ensemble(cfgs)
    reference = Ensemble(cfgs)
    for step in range(12):
        if step == 5:
            with torch.no_grad():
                together.model.W_dec[1, 0, 0] = float("nan")
        m = together.train_step()
        reference.train_step()
        if step == 5:
            frozen = params(together)
            assert not torch.isfinite(m["loss"][1])
    assert together.diverged_at == [None, 5, None]
    p, q = params(together), params(reference)
    for name in p:
        assert torch.equal(p[name][[0, 2]], q[name][[0, 2]]), name
        torch.testing.assert_close(p[name][1], frozen[name][1], rtol=0, atol=0, equal_nan=True)
    state = together.optimizer.select_state([1])
    ref_state = reference.optimizer.select_state([1])
    assert state["step_count"].item() == 5  # no step was counted after divergence
    assert ref_state["step_count"].item() == 12


def test_divergence_is_reported_by_train_ensemble(tmp_path):
    cfgs = [c.with_overrides({"training.n_steps": 15}) for c in diverging_cfgs()]
    dirs = [tmp_path / f"net{e}" for e in range(3)]
    ens, results = train_ensemble(cfgs, dirs, progress=False)
    assert [r.status for r in results] == ["done", "diverged", "done"]
    assert results[1].diverged_at == ens.diverged_at[1] is not None
    # the checkpoint carries it, and an ensemble restored from checkpoints reports it too
    restored = Ensemble(cfgs)
    restored.load_network_states([torch.load(d / "checkpoints" / "last.pt", weights_only=True) for d in dirs])
    assert restored.diverged_at == ens.diverged_at
    assert restored.active.tolist() == [True, False, True]


# --------------------------------------------------------------------------------------
# 5. the L2 penalty's gradient touches only W_hh
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", sorted(c for c, spec in CELLS.items() if "bare" in spec.families))  # srnn: nfl only
def test_l2_penalty_gradient_is_2_wd_W_hh_and_nothing_else(cell):
    base = base_cfg(cell, "adam").with_overrides({"model.bias": True, "model.bottleneck": 4,
                                                   "head_direction": {"n_cells": 4}})
    grads = {}
    for wd in (0.0, 0.5):
        ens = Ensemble([base.with_overrides({"training.weight_decay": wd})])
        total_loss(ens).sum().backward()
        grads[wd] = {n: p.grad.clone() for n, p in ens.model.named_parameters()}
        W_hh = ens.model.W_hh.detach()
    for name in grads[0.0]:
        diff = grads[0.5][name] - grads[0.0][name]
        if name == "W_hh":
            torch.testing.assert_close(diff, 2 * 0.5 * W_hh, rtol=1e-9, atol=1e-12)
        else:
            assert torch.count_nonzero(diff) == 0, (cell, name)


# --------------------------------------------------------------------------------------
# 6. EnsembleOptimizer follows torch.optim
# --------------------------------------------------------------------------------------
TORCH_OPTIMIZERS = {
    "adam": (lambda ps, lr, mom: torch.optim.Adam(ps, lr=lr), 0.0),
    "rmsprop": (lambda ps, lr, mom: torch.optim.RMSprop(ps, lr=lr, momentum=mom), 0.9),
    "rmsprop_no_momentum": (lambda ps, lr, mom: torch.optim.RMSprop(ps, lr=lr), 0.0),
    "sgd": (lambda ps, lr, mom: torch.optim.SGD(ps, lr=lr, momentum=mom), 0.9),
    "sgd_no_momentum": (lambda ps, lr, mom: torch.optim.SGD(ps, lr=lr), 0.0),
}


@pytest.mark.parametrize("name", sorted(TORCH_OPTIMIZERS))
def test_single_network_optimizer_equals_torch_optim(name):
    make, momentum = TORCH_OPTIMIZERS[name]
    kind = name.split("_")[0]
    g = torch.Generator().manual_seed(0)
    shapes = [(1, 5, 3), (1, 4), (1, 2, 3, 2)]
    start = [torch.randn(s, generator=g, dtype=F64) for s in shapes]
    ours = [p.clone().requires_grad_() for p in start]
    theirs = [p.clone().requires_grad_() for p in start]
    opt = EnsembleOptimizer(ours, kind, torch.tensor([1e-2], dtype=F64), torch.tensor([momentum], dtype=F64))
    ref = make(theirs, 1e-2, momentum)
    for _ in range(40):
        grads = [torch.randn(s, generator=g, dtype=F64) for s in shapes]
        for p, q, gr in zip(ours, theirs, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert max_abs_diff(p.detach(), q.detach()) <= 1e-10
        assert max_abs_diff(p.detach(), torch.cat([s for s in start if s.shape == p.shape])) > 1e-3  # it moved


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_learning_rate_schedule_equals_torch_multisteplr(name):
    """training.lr_milestones / lr_gamma through ``lr_scale`` equal torch's MultiStepLR."""
    from gridsweep.config import TrainingConfig

    make, momentum = TORCH_OPTIMIZERS[name]
    tc = TrainingConfig(optimizer=name, lr_milestones=[7, 15], lr_gamma=0.3)
    g = torch.Generator().manual_seed(3)
    start = torch.randn(1, 6, 4, generator=g, dtype=F64)
    ours, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    opt = EnsembleOptimizer([ours], name, torch.tensor([1e-2], dtype=F64), torch.tensor([momentum], dtype=F64))
    ref = make([theirs], 1e-2, momentum)
    sched = torch.optim.lr_scheduler.MultiStepLR(ref, milestones=[7, 15], gamma=0.3)
    for step in range(25):
        gr = torch.randn(1, 6, 4, generator=g, dtype=F64)
        ours.grad, theirs.grad = gr.clone(), gr.clone()
        opt.step(lr_scale=tc.lr_factor(step))
        ref.step()
        sched.step()
        assert max_abs_diff(ours.detach(), theirs.detach()) <= 1e-10, step
    assert ref.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.09)  # both milestones passed
    assert float(opt.lr[0]) == 1e-2  # the stored rate is the base rate


@pytest.mark.parametrize("kind", ["adam", "rmsprop", "sgd"])
def test_per_network_hyperparameters_and_inactive_networks(kind):
    """Network e with lr[e] and momentum[e] equals a torch optimiser with those values; inactive ones freeze."""
    lrs, moms = [1e-2, 3e-3, 5e-2], [0.0, 0.9, 0.5]
    g = torch.Generator().manual_seed(1)
    p = torch.randn(3, 4, 5, generator=g, dtype=F64).requires_grad_()
    opt = EnsembleOptimizer([p], kind, torch.tensor(lrs, dtype=F64), torch.tensor(moms, dtype=F64))
    singles = [p[e:e + 1].detach().clone().requires_grad_() for e in range(3)]
    make = {"adam": lambda q, lr, m: torch.optim.Adam([q], lr=lr),
            "rmsprop": lambda q, lr, m: torch.optim.RMSprop([q], lr=lr, momentum=m),
            "sgd": lambda q, lr, m: torch.optim.SGD([q], lr=lr, momentum=m)}[kind]
    refs = [make(q, lr, m) for q, lr, m in zip(singles, lrs, moms)]
    active = torch.tensor([True, True, False])
    frozen = p[2].detach().clone()
    for _step in range(25):
        grad = torch.randn(3, 4, 5, generator=g, dtype=F64)
        grad[2] = float("nan")  # an inactive network's gradient may be anything
        p.grad = grad
        opt.step(active)
        for e in (0, 1):
            singles[e].grad = grad[e:e + 1].clone()
            refs[e].step()
    for e in (0, 1):
        assert max_abs_diff(p[e].detach(), singles[e][0].detach()) <= 1e-10
    assert torch.equal(p[2].detach(), frozen)
    assert opt.step_count.tolist() == [25.0, 25.0, 0.0]
    for st in opt.state:
        for buf in st.values():
            assert torch.count_nonzero(buf[2]) == 0


def test_diverged_at_and_compile_flag_are_plain_python(monkeypatch):
    cfg = base_cfg("rnn", "adam")
    ens = Ensemble([cfg, cfg.with_overrides({"seed": 1})])
    assert ens.diverged_at == [None, None] and ens.compiled is False
    ens.diverged_at = [None, 4]
    assert ens.diverged_at == [None, 4]
    monkeypatch.setenv("GRIDSWEEP_COMPILE", "1")
    assert Ensemble([cfg], compile=False).compiled is False  # the argument wins over the environment
    assert math.isfinite(float(ens.train_step()["loss"][0]))


@pytest.mark.slow
def test_compiled_loss_trains_like_eager():
    """compile=True (torch.compile of readout + loss) changes the speed, not the numbers."""
    cfgs = network_cfgs("rnn", "adam")
    eager, compiled = Ensemble(cfgs), Ensemble(cfgs, compile=True)
    assert compiled.compiled
    for _ in range(5):
        me, mc = eager.train_step(), compiled.train_step()
        torch.testing.assert_close(mc["loss"], me["loss"], rtol=1e-9, atol=1e-12)
    pe, pc = params(eager), params(compiled)
    for name in pe:
        assert max_abs_diff(pe[name], pc[name]) <= 1e-9, name
