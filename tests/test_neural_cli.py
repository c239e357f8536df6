"""gridsweep neural CLI (``fit``, ``simulate``) through typer's CliRunner on the sub-app."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridsweep.neural.cli import app
from gridsweep.neural.io import save_npz
from gridsweep.neural.predictivity import resample_maps
from gridsweep.neural.synthetic import MECPopulationSpec, make_population, simulate_recording

pytest.importorskip("pynwb")
runner = CliRunner()
SPEC = MECPopulationSpec(n_grid_per_module=(6, 5), n_border=2, n_head_direction=1, n_spatial=3)


@pytest.fixture(scope="module")
def rec():
    return simulate_recording(SPEC, duration_s=300.0, seed=4)


def _write_run(run, maps, n=16):
    (run / "analysis").mkdir(parents=True)
    coarse = resample_maps(maps, (n, n))  # a model on its own, coarser grid
    np.savez_compressed(run / "analysis" / "ratemaps.npz", maps=coarse.astype(np.float32),
                        occupancy=np.ones((n, n)), extent=np.array([-1.1, 1.1, -1.1, 1.1]), bin_size_m=np.array(2.2 / n))
    return run


def test_fit_run_directory_against_nwb(rec, tmp_path):
    model = make_population(SPEC, extent=rec.dataset.extent, seed=50).expected_maps(rec.dataset.shape)
    run = _write_run(tmp_path / "run", model)
    nwb = rec.write_nwb(tmp_path / "data.nwb")
    result = runner.invoke(app, ["fit", "--model", str(run), "--data", str(nwb), "--seed", "3"])
    assert result.exit_code == 0, result.output
    out = run / "analysis" / "neural"
    assert "resampled to the data grid" in result.output and "rescaled" in result.output
    cells = pd.read_parquet(out / "cells.parquet")
    assert set(cells["role"]) == {"model", "null_model"}
    assert len(cells) == 3 * rec.dataset.n_cells  # model + 2 matched nulls
    pd.testing.assert_frame_equal(cells, pd.read_csv(out / "cells.csv", dtype={"cell_id": str}), check_dtype=False)
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[summary.role == "null_model", "pr_matched"].all()
    assert (out / "predictivity_vs_pr.png").stat().st_size > 1000


def test_fit_sweep_directory_with_method_and_untrained_null(rec, tmp_path):
    sweep = tmp_path / "sweep"
    for i, seed in enumerate((51, 52)):
        maps = make_population(SPEC, extent=rec.dataset.extent, seed=seed).expected_maps(rec.dataset.shape)
        _write_run(sweep / "trials" / f"t{i:03d}", maps, n=rec.dataset.shape[0])
    untrained = tmp_path / "untrained"
    noise = np.random.default_rng(0).random((40, *rec.dataset.shape))
    _write_run(untrained, noise, n=rec.dataset.shape[0])
    data = save_npz(tmp_path / "data.npz", rec.dataset)
    out = tmp_path / "out"
    result = runner.invoke(app, ["fit", "--model", str(sweep), "--data", str(data), "--out", str(out),
                                 "--method", "one_to_one", "--nulls", "smooth_fields",
                                 "--untrained", str(untrained / "analysis" / "ratemaps.npz")])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.loc[summary.role == "model", "name"]) == {"t000", "t001"}
    assert set(summary["null_kind"].dropna()) == {"smooth_fields", "untrained"}
    assert set(summary["method"]) == {"one_to_one"}


def test_fit_errors_are_clear(rec, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    data = save_npz(tmp_path / "data.npz", rec.dataset)
    result = runner.invoke(app, ["fit", "--model", str(empty), "--data", str(data)])
    assert result.exit_code == 2 and "no rate maps found" in result.output  # one line, no traceback
    run = _write_run(tmp_path / "run", rec.true_maps)
    result = runner.invoke(app, ["fit", "--model", str(run), "--data", str(data), "--method", "lasso"])
    assert result.exit_code == 2 and "one_to_one" in result.output


def test_simulate_writes_a_loadable_nwb(tmp_path):
    from gridsweep.neural.io import load_nwb

    out = tmp_path / "sim.nwb"
    result = runner.invoke(app, ["simulate", "--out", str(out), "--duration", "60", "--seed", "1"])
    assert result.exit_code == 0, result.output
    ds = load_nwb(out)
    assert ds.n_cells == 50 and ds.split_maps is not None
