import math

import pytest
import torch
from scipy import stats

from gridsweep.config import BoxConfig, TrajectoryConfig
from gridsweep.trajectories import generate, integrate

CFG = TrajectoryConfig()
BOX = BoxConfig()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shapes_and_seed_reproducibility():
    a = generate(gen(1), CFG, BOX, batch=7, steps=11)
    b = generate(gen(1), CFG, BOX, batch=7, steps=11)
    c = generate(gen(2), CFG, BOX, batch=7, steps=11)
    assert a.velocities.shape == (7, 11, 2) and a.positions.shape == (7, 11, 2)
    assert a.start.shape == (7, 2) and a.headings.shape == (7, 11)
    assert torch.equal(a.positions, b.positions)
    assert not torch.equal(a.positions, c.positions)


def test_global_rng_untouched():
    state = torch.random.get_rng_state()
    generate(gen(0), CFG, BOX, batch=4, steps=3)
    assert torch.equal(state, torch.random.get_rng_state())


def test_positions_are_start_plus_cumulative_velocity():
    t = generate(gen(3), CFG, BOX, batch=50, steps=30)
    recon = t.start[:, None, :] + torch.cumsum(t.velocities, dim=1)
    assert torch.allclose(recon, t.positions, atol=1e-5)


def test_ensemble_generators_match_single():
    gens = [gen(s) for s in (5, 6, 7)]
    ens = generate(gens, CFG, BOX, batch=4, steps=6)
    alone = generate(gen(6), CFG, BOX, batch=4, steps=6)
    assert ens.positions.shape == (3, 4, 6, 2)
    assert torch.equal(ens.positions[1], alone.positions)


def test_speed_is_rayleigh_and_turns_gaussian_without_walls():
    """In a periodic box no wall acts: speeds ~ Rayleigh(b), turns ~ N(0, sigma dt)."""
    cfg = TrajectoryConfig()
    box = BoxConfig(boundary="periodic")
    t = generate(gen(0), cfg, box, batch=2000, steps=10, dtype=torch.float64)
    speed = (t.velocities.norm(dim=-1) / cfg.dt).numpy().ravel()
    ks = stats.kstest(speed, stats.rayleigh(scale=cfg.speed_scale).cdf)
    assert ks.pvalue > 1e-3
    assert abs(speed.mean() - cfg.speed_scale * math.sqrt(math.pi / 2)) < 0.02
    dh = torch.remainder(torch.diff(t.headings, dim=1) + math.pi, 2 * math.pi) - math.pi
    assert abs(float(dh.std()) - cfg.turn_rate_std * cfg.dt) < 0.01
    assert float(t.positions.abs().max()) <= 1.1 + 1e-9


def test_wall_turns_heading_parallel_and_slows():
    """An agent 1 cm from the +x wall heading into it turns parallel and slows by 0.25."""
    cfg = TrajectoryConfig()
    noise = {
        "start": torch.tensor([[1.09, 0.0]], dtype=torch.float64),
        "heading": torch.tensor([0.3], dtype=torch.float64),
        "turn": torch.zeros(1, 2, dtype=torch.float64),
        "speed": torch.full((1, 2), 0.5, dtype=torch.float64),
    }
    t = integrate(noise, cfg, BOX)
    step0 = t.velocities[0, 0]
    assert math.isclose(float(step0.norm()), 0.5 * cfg.dt * 0.25, rel_tol=1e-12)
    # heading after the wall turn: 0.3 + (pi/2 - 0.3) = pi/2, parallel to the wall
    assert math.isclose(float(t.headings[0, 1]), math.pi / 2, abs_tol=1e-12)
    assert abs(float(t.velocities[0, 1, 0])) < 1e-12  # no more motion into the wall


def test_published_model_slips_a_few_cm_and_contain_keeps_inside():
    """docs/science.md 2: the published generator lets positions slip past the wall (1.151 m
    reported at B = 20,000, T = 20). We document a bound of 0.1 m past the wall."""
    t = generate(gen(0), CFG, BOX, batch=20000, steps=20)
    m = float(t.positions.abs().max())
    assert 1.1 < m < 1.2
    c = generate(gen(0), TrajectoryConfig(contain=True), BOX, batch=20000, steps=20)
    assert float(c.positions.abs().max()) <= 1.1 + 1e-6


def test_periodic_wraps_positions_but_not_velocities():
    box = BoxConfig(boundary="periodic", width=1.0, height=1.0)
    t = generate(gen(0), CFG, box, batch=200, steps=100)
    assert float(t.positions.abs().max()) <= 0.5 + 1e-6
    assert float(t.velocities.norm(dim=-1).max()) < 0.2  # raw displacements, no wrap jumps


def test_ou_model_stays_inside_and_has_coherent_speed():
    cfg = TrajectoryConfig(motion="ou")
    t = generate(gen(0), cfg, BOX, batch=500, steps=500, dtype=torch.float64)
    assert float(t.positions.abs().max()) <= 1.1 + 1e-9
    speed = (t.velocities.norm(dim=-1) / cfg.dt)
    assert 0.05 < float(speed.mean()) < 0.2
    # speed is temporally correlated (coherence time 0.7 s = 35 steps)
    s = speed[:, 100:].numpy()
    s = s - s.mean()
    lag1 = (s[:, 1:] * s[:, :-1]).mean() / (s * s).mean()
    assert lag1 > 0.8


def test_reject_bad_config():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TrajectoryConfig(dt=-1)
