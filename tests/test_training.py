import json

import pytest
import torch

from gridsweep.config import ModelConfig, RunConfig, load_config
from gridsweep.models import CELLS, build_model
from gridsweep.training import Ensemble, ensemble_key, load_run, train


def params(ens):
    return {k: v.detach().clone() for k, v in ens.model.state_dict().items()}


def test_same_seed_same_numbers_and_different_seed_differs(tiny_cfg):
    a, ra = train(tiny_cfg, progress=False)
    b, rb = train(tiny_cfg, progress=False)
    c, _ = train(tiny_cfg.with_overrides({"seed": 1}), progress=False)
    pa, pb, pc = params(a), params(b), params(c)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["W_hh"], pc["W_hh"])
    assert ra.metrics["decoding_error_cm"] == rb.metrics["decoding_error_cm"]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_resume_equals_uninterrupted(tiny_cfg, tmp_path, cell):
    cfg = tiny_cfg.with_overrides({"model.cell": cell, "model.dropout": 0.2, "training.weight_decay_start": 7})
    full, _ = train(cfg, tmp_path / "full", progress=False)
    _, r1 = train(cfg, tmp_path / "part", progress=False, stop_after=10)
    assert r1.status == "stopped" and r1.step == 10
    resumed, r2 = train(cfg, tmp_path / "part", progress=False)
    assert r2.status == "done" and r2.step == 20
    pf, pr = params(full), params(resumed)
    for k in pf:
        assert torch.equal(pf[k], pr[k]), k
    # metrics.csv of the resumed run has each logged step once
    rows = (tmp_path / "part" / "metrics.csv").read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert steps == sorted(set(steps))
    assert steps == [int(r.split(",")[0]) for r in (tmp_path / "full" / "metrics.csv").read_text().splitlines()[1:]]


def test_resume_across_a_learning_rate_milestone(tiny_cfg, tmp_path):
    """The schedule is a function of the step, so a resumed run decays at the same step."""
    cfg = tiny_cfg.with_overrides({"training.lr_milestones": [12], "training.lr_gamma": 0.1})
    full, _ = train(cfg, tmp_path / "full", progress=False)
    train(cfg, tmp_path / "part", progress=False, stop_after=10)
    resumed, _ = train(cfg, tmp_path / "part", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(params(full).values(), params(resumed).values()))
    constant, _ = train(tiny_cfg, progress=False)
    assert not torch.equal(params(full)["W_hh"], params(constant)["W_hh"])  # the milestone changed training


def test_resume_from_a_checkpoint_between_saves_redoes_the_lost_steps(tiny_cfg, tmp_path):
    """Stopping at step 12 with checkpoints every 5 resumes from step 10, not 12."""
    full, _ = train(tiny_cfg, tmp_path / "full", progress=False)
    train(tiny_cfg, tmp_path / "part", progress=False, stop_after=12)
    ck = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 10
    resumed, _ = train(tiny_cfg, tmp_path / "part", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(params(full).values(), params(resumed).values()))


def test_run_directory_contents(tiny_cfg, tmp_path):
    _, res = train(tiny_cfg, tmp_path / "run", progress=False)
    d = tmp_path / "run"
    assert load_config(d / "config.yaml").hash() == tiny_cfg.hash()
    assert json.loads((d / "status.json").read_text())["status"] == "done"
    summary = json.loads((d / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["decoding_error_cm"] == res.metrics["decoding_error_cm"]
    header = (d / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("step,loss")
    ens = load_run(d)
    assert ens.step == 20


def test_run_directory_refuses_a_different_config(tiny_cfg, tmp_path):
    from gridsweep.errors import ConfigError

    train(tiny_cfg, tmp_path / "run", progress=False, stop_after=5)
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_cfg.with_overrides({"seed": 9}), tmp_path / "run", progress=False)


def test_divergence_is_detected_and_reported(tiny_cfg, tmp_path):
    cfg = tiny_cfg.with_overrides({"training.learning_rate": 1e30, "model.activation": "linear"})
    _, res = train(cfg, tmp_path / "run", progress=False)
    assert res.status == "diverged" and res.diverged_at is not None
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "diverged"


def test_l2_penalty_hits_only_the_recurrent_matrix():
    for cell in (c for c, spec in CELLS.items() if "bare" in spec.families):  # srnn exists in family nfl only
        m = build_model(ModelConfig(cell=cell, hidden_size=8, bias=True, bottleneck=4), 6, 6, [0, 1])
        m.recurrent_penalty().sum().backward()
        for name, p in m.named_parameters():
            g = p.grad
            if name == "W_hh":
                assert torch.allclose(g, 2 * p.detach())
            else:
                assert g is None or torch.count_nonzero(g) == 0, (cell, name)


def test_penalty_schedule_switches_on(tiny_cfg):
    """With weight_decay_start beyond the run, a huge decay changes nothing."""
    base = tiny_cfg.with_overrides({"training.weight_decay": 0.0})
    late = tiny_cfg.with_overrides({"training.weight_decay": 10.0, "training.weight_decay_start": 1000})
    early = tiny_cfg.with_overrides({"training.weight_decay": 10.0})
    pb, pl, pe = (params(train(c, progress=False)[0]) for c in (base, late, early))
    assert torch.equal(pb["W_hh"], pl["W_hh"])
    assert not torch.equal(pb["W_hh"], pe["W_hh"])


def test_ensemble_key_groups_only_compatible_configs(tiny_cfg):
    a = tiny_cfg
    assert ensemble_key(a) == ensemble_key(a.with_overrides({"seed": 4, "target.sigma": 0.2,
                                                              "training.learning_rate": 0.1}))
    assert ensemble_key(a) != ensemble_key(a.with_overrides({"model.hidden_size": 17}))
    from gridsweep.errors import ConfigError

    with pytest.raises(ConfigError, match="must agree"):
        Ensemble([a, a.with_overrides({"model.hidden_size": 17})])


def test_head_direction_readout_and_bottleneck_train(tiny_cfg):
    cfg = tiny_cfg.with_overrides({"head_direction": {"n_cells": 6, "kappa": 20.0},
                                   "model.cell": "lstm", "model.bottleneck": 8, "model.dropout": 0.5})
    ens, res = train(cfg, progress=False)
    assert res.status == "done"
    assert ens.model.W_dec.shape == (1, 8, 16 + 6)


@pytest.mark.slow
def test_a_small_network_learns_to_path_integrate():
    """Cartesian readout, 600 steps: the decoding error must fall well below chance (~100 cm)."""
    cfg = RunConfig().with_overrides({
        "target": {"kind": "cartesian", "n_cells": 2}, "model.hidden_size": 64, "model.activation": "tanh",
        "training.learning_rate": 3e-3, "training.weight_decay": 0.0, "training.n_steps": 600,
        "training.eval_every": 600, "trajectory.batch_size": 64, "evaluation.n_trajectories": 100,
        "evaluation.sequence_length": 20,
    })
    ens0 = Ensemble([cfg])
    before = float(ens0.evaluate()[0])
    _, res = train(cfg, progress=False)
    assert res.metrics["decoding_error_cm"] < 0.5 * before
    assert res.metrics["decoding_error_cm"] < 25.0
