"""Transfer of a trained network to another arena (gridsweep.transfer; docs/arenas.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridsweep.config import BoxConfig
from gridsweep.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from gridsweep.config import RunConfig
    from gridsweep.evaluation import score_run
    from gridsweep.training import train

    cfg = RunConfig().with_overrides({
        "model.hidden_size": 32, "target.n_cells": 16, "trajectory.batch_size": 8,
        "trajectory.sequence_length": 5, "training.n_steps": 4, "training.eval_every": 4,
        "training.checkpoint_every": 4, "training.log_every": 2, "training.learning_rate": 1e-3,
        "evaluation.n_trajectories": 8, "evaluation.sequence_length": 5, "evaluation.ratemap_samples": 3000,
        "evaluation.bins": 12,
    })
    run = tmp_path_factory.mktemp("transfer") / "run"
    train(cfg, run)
    score_run(run, figures=False)
    return run


def test_same_arena_reproduces_score_run_exactly(tiny_run):
    from gridsweep.transfer import evaluate_in_arena

    res = evaluate_in_arena(tiny_run, "training")
    units = pd.read_parquet(tiny_run / "analysis" / "units.parquet")
    for col in ("score60_deepmind_minmax", "score60_sargolini", "spacing_m", "orientation_deg", "ellipticity"):
        np.testing.assert_array_equal(res.table[f"{col}_train"].to_numpy(), units[col].to_numpy())
        np.testing.assert_array_equal(res.table[f"{col}_test"].to_numpy(), units[col].to_numpy())
    z = np.load(tiny_run / "analysis" / "ratemaps.npz")
    np.testing.assert_array_equal(res.test.maps.astype(np.float32), z["maps"])


def test_other_arena_maps_are_masked_and_written(tiny_run, tmp_path):
    from gridsweep.arenas import arena_of
    from gridsweep.transfer import evaluate_in_arena, plot_transfer, write_transfer

    res = evaluate_in_arena(tiny_run, "krupic_trapezoid", n_samples=2000)
    assert res.test_box.shape == "krupic_trapezoid" and res.test.extent == (-0.95, 0.95, -0.45, 0.45)
    inside = arena_of(res.test_box).mask(res.test.extent, 12, 12)
    assert np.isnan(res.test.maps[:, ~inside]).all() and (res.test.occupancy[~inside] == 0).all()
    assert np.isfinite(res.test.maps[:, inside & (res.test.occupancy > 0)]).all()
    assert {"score60_deepmind_minmax_test", "spacing_m_test", "orientation_deg_test", "ellipticity_test"} <= set(
        res.table.columns)
    fig, ax = plot_transfer(res, n=3)
    assert ax.shape == (2, 4)
    out = write_transfer(res, tmp_path / "t", figure=True)
    for f in ("ratemaps_train.npz", "ratemaps_test.npz", "units.parquet", "units.csv", "summary.json", "transfer.png"):
        assert (out / f).is_file()


def test_cli_and_bad_arena(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from gridsweep.transfer import resolve_arena
    from gridsweep.transfer_cli import app

    spec = tmp_path / "ring.yaml"
    spec.write_text("shape: circle\nradius: 0.8\n")
    assert resolve_arena(str(spec)) == ("ring", BoxConfig(shape="circle", radius=0.8))
    r = CliRunner().invoke(app, [str(tiny_run), "--arena", str(spec), "--samples", "1000", "--no-figure",
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "units.parquet").is_file()
    with pytest.raises(ConfigError, match="not a preset"):
        resolve_arena("hexagon")
    bad = tmp_path / "bad.yaml"
    bad.write_text("shape: polygon\nvertices: [[-1, -1], [1, 1], [1, -1], [-1, 1]]\n")
    with pytest.raises(ConfigError, match="self-intersecting"):
        resolve_arena(str(bad))
