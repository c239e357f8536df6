"""External trajectory sources (gridsweep.external): recorded positions and RatInABox."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridsweep.arenas import arena_of
from gridsweep.config import BoxConfig, RunConfig, TrajectoryConfig, validate_config
from gridsweep.errors import ConfigError, DataError
from gridsweep.external import (
    MAX_SPEED_M_S,
    OutsideArenaError,
    Recording,
    TrackingGapError,
    TrackingJumpError,
    load_recording,
    ratinabox_environment_params,
    resample_positions,
    sample_trajectories,
    sample_windows,
)
from gridsweep.trajectories import generate


def _circle_walk(rate_hz: float, seconds: float, r: float = 0.5, omega: float = 0.4):
    """Uniform circular motion: speed omega r, heading angle + pi/2 (known answers)."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return t, np.stack([r * np.cos(omega * t), r * np.sin(omega * t)], -1)


def _tiny(**traj) -> RunConfig:
    return validate_config({
        "trajectory": {"batch_size": 4, "sequence_length": 10, **traj},
        "model": {"hidden_size": 16}, "target": {"n_cells": 16},
        "training": {"n_steps": 2}, "evaluation": {"n_trajectories": 4, "sequence_length": 10},
    })


# --------------------------------------------------------------------------- resampling
def test_resample_known_answers():
    t, p = _circle_walk(100.0, 6.0)
    rec = resample_positions(t, p, 0.02, arena=arena_of(BoxConfig()))
    grid = 0.02 * np.arange(len(rec.positions))
    assert len(rec.positions) == 300  # 0, 0.02, ..., 5.98 s: the last sample is at 5.99 s
    # linear interpolation of a sampled circle: within the chord sagitta r (omega / rate)^2 / 8
    exact = np.stack([0.5 * np.cos(0.4 * grid), 0.5 * np.sin(0.4 * grid)], -1)
    assert np.abs(rec.positions - exact).max() < 0.5 * (0.4 / 100) ** 2 / 8 + 1e-12
    np.testing.assert_allclose(rec.velocities, np.diff(rec.positions, axis=0))
    np.testing.assert_allclose(rec.speeds, 0.5 * 0.4, rtol=1e-3)  # chord / dt ~ omega r
    mid = grid[:-1] + 0.01
    want = np.angle(np.exp(1j * (0.4 * mid + np.pi / 2)))
    np.testing.assert_allclose(np.angle(np.exp(1j * (rec.headings - want))), 0, atol=1e-6)


def test_zero_steps_keep_the_previous_heading():
    rec = Recording(positions=np.array([[0, 0], [0, 0], [1, 0], [1, 0], [1, 1.0]]), dt=1.0, source="x")
    np.testing.assert_allclose(rec.headings, [0.0, 0.0, 0.0, np.pi / 2])


def test_short_gap_is_interpolated_long_gap_is_an_error():
    t = np.arange(300) / 100.0
    p = np.stack([0.1 * t - 0.1, np.zeros_like(t)], -1)  # straight line at 0.1 m/s
    short = p.copy()
    short[100:130] = np.nan  # 0.31 s between valid samples
    rec = resample_positions(t, short, 0.01)
    np.testing.assert_allclose(rec.positions, p, atol=1e-12)  # a line is interpolated exactly
    long = p.copy()
    long[100:180] = np.nan  # 0.81 s
    with pytest.raises(TrackingGapError, match=r"tracking lost for 0\.81 s from t = 0\.990 s.*max_gap"):
        resample_positions(t, long, 0.01)
    resample_positions(t, long, 0.01, max_gap=1.0)  # allowed when asked
    edges = p.copy()
    edges[:50] = edges[-20:] = np.nan  # leading / trailing NaN: dropped, not extrapolated
    rec = resample_positions(t, edges, 0.01)
    assert len(rec.positions) == 230 and rec.positions[0, 0] == pytest.approx(p[50, 0])


def test_jump_faster_than_a_rat_is_an_error():
    t, p = _circle_walk(100.0, 2.0)
    p[120] += [0.05, 0.0]  # 5 cm in 10 ms: 5 m/s
    with pytest.raises(TrackingJumpError, match=r"a jump of 5\.\d m/s between t = 1\.(190|200) s.*max_speed 1\.5 m/s"):
        resample_positions(t, p, 0.02)
    assert MAX_SPEED_M_S == 1.5


def test_positions_outside_the_arena_are_an_error():
    t, p = _circle_walk(50.0, 2.0, r=0.6)
    circle = arena_of(BoxConfig(shape="circle", radius=0.5))
    with pytest.raises(OutsideArenaError, match=r"100 of 100 positions lie outside the arena"):
        resample_positions(t, p, 0.02, arena=circle)
    holed = arena_of(BoxConfig(holes=[[[0.55, -0.1], [0.65, -0.1], [0.65, 0.1], [0.55, 0.1]]]))
    with pytest.raises(OutsideArenaError, match="outside the arena"):  # through the hole at angle 0
        resample_positions(t, p, 0.02, arena=holed)


def test_bad_inputs():
    with pytest.raises(DataError, match="strictly increasing"):
        resample_positions([0, 1, 1], np.zeros((3, 2)), 0.02)
    with pytest.raises(DataError, match="fewer than 2 valid"):
        resample_positions([0, 1, 2], np.full((3, 2), np.nan), 0.02)
    with pytest.raises(DataError, match="expected times"):
        resample_positions([0, 1], np.zeros((3, 2)), 0.02)


# --------------------------------------------------------------------------- files
def test_npz_and_nwb_files(tmp_path):
    t, p = _circle_walk(50.0, 3.0)
    np.savez(tmp_path / "walk.npz", times=t, positions=p)
    rec = load_recording(tmp_path / "walk.npz", 0.02)
    np.testing.assert_allclose(rec.positions, p, atol=1e-12)
    pytest.importorskip("pynwb")
    from gridsweep.neural.io import write_nwb

    write_nwb(tmp_path / "walk.nwb", t, p * 100.0, [np.array([0.5, 1.0])], position_unit="cm")
    rec_nwb = load_recording(tmp_path / "walk.nwb", 0.02)  # unit read from the file: cm -> m
    np.testing.assert_allclose(rec_nwb.positions, p, atol=1e-9)
    with pytest.raises(DataError, match="unknown trajectory file type"):
        (tmp_path / "walk.csv").write_text("t,x,y\n")
        load_recording(tmp_path / "walk.csv", 0.02)
    np.savez(tmp_path / "bad.npz", t=t)
    with pytest.raises(DataError, match=r"missing array\(s\) \['times', 'positions'\]"):
        load_recording(tmp_path / "bad.npz", 0.02)


# --------------------------------------------------------------------------- config
def test_config_fields_and_hash():
    assert "source" not in RunConfig().to_dict()["trajectory"]  # defaults leave the hash unchanged
    assert TrajectoryConfig().source == "simulated" and TrajectoryConfig().ou_speed_model == "normal"
    with pytest.raises(ConfigError, match="needs trajectory.file"):
        validate_config({"trajectory": {"source": "file"}})
    with pytest.raises(ConfigError, match="only read with trajectory.source='file'"):
        validate_config({"trajectory": {"file": "x.npz"}})
    with pytest.raises(ConfigError, match="needs box.boundary='solid'"):
        validate_config({"trajectory": {"source": "ratinabox"}, "box": {"boundary": "periodic"}})
    with pytest.raises(ConfigError, match="source"):
        validate_config({"trajectory": {"source": "camera"}})
    cfg = validate_config({"trajectory": {"source": "file", "file": "a.npz"}})
    assert cfg.to_dict()["trajectory"]["file"] == "a.npz" and cfg.hash() != RunConfig().hash()


# --------------------------------------------------------------------------- sampling
def test_simulated_source_is_generate_bit_for_bit():
    cfg = _tiny(motion="ou")
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    again = [torch.Generator().manual_seed(s) for s in (0, 1)]
    a = sample_trajectories([cfg, cfg], gens)
    b = generate(again, cfg.trajectory, cfg.box)
    for f in ("velocities", "start", "positions", "headings"):
        assert torch.equal(getattr(a, f), getattr(b, f))


def test_windows_are_pieces_of_the_recording():
    pool = torch.as_tensor(_circle_walk(50.0, 4.0)[1])
    rec = Recording(positions=pool.numpy(), dt=0.02, source="x")
    hd = torch.as_tensor(rec.headings)
    tr = sample_windows(pool, hd, torch.Generator().manual_seed(5), 6, 12)
    assert tr.velocities.shape == (6, 12, 2) and tr.headings.shape == (6, 12)
    for b in range(6):
        i = int(torch.argmin((pool - tr.start[b]).norm(dim=-1)))
        assert torch.equal(tr.positions[b], pool[i + 1:i + 13])
        assert torch.equal(tr.headings[b], hd[i:i + 12])
    assert torch.allclose(tr.start[:, None] + tr.velocities.cumsum(1), tr.positions, atol=1e-12)
    same = sample_windows(pool, hd, torch.Generator().manual_seed(5), 6, 12)
    assert torch.equal(same.positions, tr.positions)
    with pytest.raises(DataError, match="cannot hold a window of 200 steps"):
        sample_windows(pool, hd, torch.Generator(), 2, 200)


def test_training_and_evaluation_on_a_file(tmp_path):
    from gridsweep.training import Ensemble

    t, p = _circle_walk(50.0, 6.0)
    np.savez(tmp_path / "walk.npz", times=t, positions=p)
    cfg = _tiny(source="file", file=str(tmp_path / "walk.npz"))
    ens = Ensemble([cfg, cfg.with_overrides({"seed": 3})])
    tr = ens.sample()
    assert tr.positions.shape == (2, 4, 10, 2)
    assert float(tr.positions.norm(dim=-1).sub(0.5).abs().max()) < 1e-6  # on the recorded circle
    metrics = ens.train_step()
    assert torch.isfinite(metrics["loss"]).all()
    assert torch.isfinite(ens.evaluate()).all()
    outside = _tiny(source="file", file=str(tmp_path / "walk.npz")).with_overrides(
        {"box.shape": "circle", "box.radius": 0.45})
    with pytest.raises(OutsideArenaError):
        Ensemble([outside]).sample()


def test_ratinabox_source_stays_in_the_arena():
    pytest.importorskip("ratinabox")
    from gridsweep.external import recording_for

    box = {"shape": "circle", "radius": 0.5, "holes": [[[-0.1, -0.1], [0.1, -0.1], [0.1, 0.1], [-0.1, 0.1]]]}
    cfg = validate_config({**_tiny(source="ratinabox", ratinabox_duration=3.0).to_dict(), "box": box})
    rec = recording_for(cfg)
    assert rec.positions.shape == (151, 2)
    assert bool(np.all(arena_of(cfg.box).contains(rec.positions)))
    assert recording_for(cfg) is rec  # cached
    other = recording_for(cfg.with_overrides({"seed": 1}))
    assert not np.array_equal(other.positions, rec.positions)  # one pool per network seed
    state = np.random.get_state()[1].copy()
    recording_for(cfg.with_overrides({"seed": 2}))
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global state restored
    params, shift = ratinabox_environment_params(cfg.box)
    assert len(params["boundary"]) == 256 and len(params["holes"]) == 1
    np.testing.assert_allclose(shift, [0.5, 0.5])
    assert math.isfinite(float(sample_trajectories([cfg], [torch.Generator()]).positions.sum()))
