"""Trajectories of K training steps generated at once change no number (issue #18).

:meth:`gridsweep.training.Ensemble._training_trajectories` draws K steps' noise from each
network's generator in the order K single steps would and integrates them as one batch
(gridsweep.runtime.prefetch_steps). These tests check the premise (an agent's trajectory
does not depend on the batch it is integrated in, bit for bit, whichever vector-body /
scalar-tail position it lands in), that training with and without the prefetch gives
the same losses and weights, and that checkpoints taken inside a prefetch window resume
to the uninterrupted run.
"""

import numpy as np
import pytest
import torch

import gridsweep.training as training
from gridsweep.config import BoxConfig, RunConfig, TrajectoryConfig
from gridsweep.runtime import SERIAL_AGENTS, prefetch_steps
from gridsweep.trajectories import integrate, sample_noise
from gridsweep.training import Ensemble, train, train_ensemble

FIELDS = ("velocities", "start", "positions", "headings")
BOXES = {"square": BoxConfig(), "circle": BoxConfig(shape="circle", radius=1.0),
         "trapezoid": BoxConfig(shape="krupic_trapezoid")}


def _premise(cfg: TrajectoryConfig, box: BoxConfig, B: int, K: int, E: int, T: int, dtype=torch.float32) -> None:
    """Integrate K steps of E x B agents one step at a time and as one (K, E, B) batch; compare bits."""
    gens = [torch.Generator().manual_seed(11 + e) for e in range(E)]
    noise = [[sample_noise(g, B, T, cfg, box, dtype=dtype) for g in gens] for _ in range(K)]  # [k][e]
    big = integrate({key: torch.stack([torch.stack([n[key] for n in step]) for step in noise])
                     for key in noise[0][0]}, cfg, box)
    for k, step in enumerate(noise):
        one = integrate({key: torch.stack([n[key] for n in step]) for key in step[0]}, cfg, box)
        for f in FIELDS:
            a, b = getattr(one, f), getattr(big, f)[k]
            assert torch.equal(a, b), (f, k, int((a != b).sum()), float((a - b).abs().max()))


@pytest.mark.parametrize("motion", ["sorscher", "ou"])
@pytest.mark.parametrize("box", list(BOXES))
@pytest.mark.parametrize("B", [7, 100])
def test_an_agent_is_integrated_the_same_in_any_batch(motion, box, B):
    # B = 7 and E = 2: every step's agents straddle the 16/32-lane vector bodies and tails differently
    _premise(TrajectoryConfig(motion=motion), BOXES[box], B, K=4, E=2, T=20)


@pytest.mark.parametrize("cfg,box", [
    (TrajectoryConfig(motion="ou", ou_speed_model="ratinabox"), BoxConfig(shape="circle", radius=1.0)),
    (TrajectoryConfig(motion="sorscher"), BoxConfig(boundary="periodic")),
    (TrajectoryConfig(motion="sorscher", contain=False), BoxConfig()),
])
def test_the_premise_in_float64_and_other_motion_settings(cfg, box):
    _premise(cfg, box, 33, K=4, E=2, T=10, dtype=torch.float64)


def test_the_premise_when_only_the_big_batch_skips_far_agents():
    # 2 x 10 x 1000 agents x 1 wall >= NEAR_WALLS_MIN_ELEMENTS: the (K, E, B) batch measures only the
    # agents near the wall (gridsweep.trajectories._NearWalls), each single step measures all of them
    _premise(TrajectoryConfig(motion="sorscher"), BOXES["circle"], 1000, K=10, E=2, T=5)


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_the_premise_under_other_cpu_kernels(capability):
    """The same check with torch's AVX2 or scalar kernels (vector widths 8 / 1 instead of 16)."""
    import os
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1); import tests.test_trajectory_prefetch as t\n"
            "for m in ('sorscher', 'ou'):\n"
            "    for b in t.BOXES.values():\n"
            "        t._premise(t.TrajectoryConfig(motion=m), b, 7, K=4, E=2, T=20)\n"
            "print(torch.backends.cpu.get_cpu_capability())")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1].lower() in (capability, "default")  # a CPU without AVX2 falls back


def test_prefetch_steps(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("GRIDSWEEP_TRAJ_PREFETCH", raising=False)
    assert prefetch_steps(200, 1000, cpu, 3000) == 15
    assert prefetch_steps(200, 4, cpu, 3000) == 4  # never past the last step
    assert prefetch_steps(200, 0, cpu, 3000) == 1
    assert prefetch_steps(5000, 1000, cpu, 3000) == 1  # one step is already big enough
    assert prefetch_steps(SERIAL_AGENTS // 2, 1000, cpu, 10 * SERIAL_AGENTS) == 1  # stays on one thread
    assert prefetch_steps(200, 1000, cuda, 3000) == 1  # not checked bit for bit on a GPU: off by default
    monkeypatch.setenv("GRIDSWEEP_TRAJ_PREFETCH", "1")
    assert prefetch_steps(200, 1000, cuda, 3000) == 15
    monkeypatch.setenv("GRIDSWEEP_TRAJ_PREFETCH", "0")
    assert prefetch_steps(200, 1000, cpu, 3000) == 1


def _pair(tiny_cfg: RunConfig, **over) -> list[RunConfig]:
    cfg = tiny_cfg.with_overrides(over)
    return [cfg, cfg.with_overrides({"seed": 7, "training.learning_rate": 3e-3})]


def _run(cfgs, monkeypatch, prefetch: bool, out=None, **kw):
    """Train; returns the ensemble, per-step losses and per-step prefetch buffer lengths."""
    monkeypatch.setenv("GRIDSWEEP_TRAJ_PREFETCH", "1" if prefetch else "0")
    monkeypatch.setattr(training, "PREFETCH_ROWS", 48)  # E 2 x B 8: K = 3, windows do not divide 20 steps
    losses, pending = [], []

    def cb(ens, m):
        losses.append(m.loss.clone())
        pending.append(len(ens._traj_buffer))

    ens, res = train_ensemble(cfgs, out, progress=False, callback=cb, **kw)
    return ens, torch.stack(losses), pending, res


def _params(ens):
    return {k: v.detach().clone() for k, v in ens.model.state_dict().items()}


@pytest.mark.parametrize("over", [{}, {"trajectory.motion": "ou", "box.shape": "circle", "box.radius": 1.0,
                                       "model.dropout": 0.2}])
def test_training_with_and_without_prefetch_is_the_same(tiny_cfg, monkeypatch, over):
    cfgs = _pair(tiny_cfg, **over)
    on, loss_on, pending, res_on = _run(cfgs, monkeypatch, True)
    off, loss_off, none, res_off = _run(cfgs, monkeypatch, False)
    assert pending[:6] == [2, 1, 0, 2, 1, 0] and set(none) == {0}  # the prefetch ran, in windows of 3
    assert torch.equal(loss_on, loss_off)
    p_on, p_off = _params(on), _params(off)
    assert all(torch.equal(p_on[k], p_off[k]) for k in p_on)
    assert [r.metrics["decoding_error_cm"] for r in res_on] == [r.metrics["decoding_error_cm"] for r in res_off]
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(on.traj_gens, off.traj_gens))


def test_resume_inside_a_prefetch_window_equals_an_uninterrupted_run(tiny_cfg, monkeypatch, tmp_path):
    cfgs = _pair(tiny_cfg)
    dirs = lambda name: [tmp_path / name / "a", tmp_path / name / "b"]  # noqa: E731
    full, loss_full, _, _ = _run(cfgs, monkeypatch, False, dirs("full"), stop_after=10)
    # windows of 3 steps (steps 1-3, ..., 10-12): the checkpoint at step 10 is taken with 11 and 12 prefetched
    _, _, pending, _ = _run(cfgs, monkeypatch, True, dirs("part"), stop_after=10)
    assert pending[-1] == 2
    for a, b in zip(dirs("full"), dirs("part")):
        ca, cb = (torch.load(d / "checkpoints" / "last.pt", weights_only=True) for d in (a, b))
        assert ca["step"] == cb["step"] == 10
        assert torch.equal(ca["traj_rng"], cb["traj_rng"])  # the state before step 10's draws
    full, loss_full, _, _ = _run(cfgs, monkeypatch, False, dirs("full"))
    resumed, loss_resumed, _, _ = _run(cfgs, monkeypatch, True, dirs("part"))
    assert torch.equal(loss_full, loss_resumed)  # steps 11-20
    p_full, p_res = _params(full), _params(resumed)
    assert all(torch.equal(p_full[k], p_res[k]) for k in p_full)


def test_sample_and_evaluate_between_steps_leave_training_unchanged(tiny_cfg, monkeypatch):
    cfgs = _pair(tiny_cfg)
    monkeypatch.setattr(training, "PREFETCH_ROWS", 48)
    monkeypatch.setenv("GRIDSWEEP_TRAJ_PREFETCH", "0")
    ref = Ensemble(cfgs)
    ref_losses = [ref.train_step().loss for _ in range(2)]
    ref_next = ref.sample()
    ref_losses += [ref.train_step().loss for _ in range(3)]
    monkeypatch.setenv("GRIDSWEEP_TRAJ_PREFETCH", "1")
    ens = Ensemble(cfgs)
    losses = [ens.train_step().loss for _ in range(2)]
    assert len(ens._traj_buffer) == 1
    err = ens.evaluate()  # its own generators: the prefetch stays
    assert len(ens._traj_buffer) == 1 and torch.isfinite(err).all()
    nxt = ens.sample()  # the networks' generators: the prefetch is dropped, the generators rewound
    assert len(ens._traj_buffer) == 0
    assert all(torch.equal(getattr(nxt, f), getattr(ref_next, f)) for f in FIELDS)
    losses += [ens.train_step().loss for _ in range(3)]
    assert torch.equal(torch.stack(losses), torch.stack(ref_losses))


def test_recorded_trajectories_are_not_prefetched(tiny_cfg, monkeypatch, tmp_path):
    t = np.arange(300) / 50.0
    np.savez(tmp_path / "walk.npz", times=t, positions=np.stack([0.5 * np.cos(0.4 * t), 0.5 * np.sin(0.4 * t)], -1))
    cfg = tiny_cfg.with_overrides({"trajectory.source": "file", "trajectory.file": str(tmp_path / "walk.npz"),
                                   "training.n_steps": 3})
    monkeypatch.setenv("GRIDSWEEP_TRAJ_PREFETCH", "1")
    ens, _ = train(cfg, progress=False, callback=lambda e, m: pytest.fail("prefetched") if e._traj_buffer else None)
    assert ens.step == 3
