"""`gridsweep theory predict` and the theory-vs-networks comparison (gridsweep.theory.compare/cli)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridsweep.config import RunConfig
from gridsweep.errors import ConfigError, DataError
from gridsweep.theory import collect_runs, find_run_dirs, plot_predicted_vs_measured, predict, summarise_by_sigma
from gridsweep.theory.cli import app

runner = CliRunner()


def _cfg(sigma=0.12, seed=0, n_cells=128, name="t"):
    return RunConfig().with_overrides({"name": name, "seed": seed, "target.n_cells": n_cells, "target.sigma": sigma})


def _write_run(path, cfg, spacings, scores):
    (path / "analysis").mkdir(parents=True)
    cfg.to_yaml(path / "config.yaml")
    table = pd.DataFrame({"spacing_m": spacings, "score60_deepmind_minmax": scores})
    table.to_parquet(path / "analysis" / "units.parquet")
    return path


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for i, (sigma, seed) in enumerate([(0.10, 0), (0.10, 1), (0.14, 0)]):
        sp = [0.5 + sigma, 0.6 + sigma, 0.7 + sigma, 3.0, np.nan]
        sc = [0.9, 1.2, 0.85, 0.1, 1.5]  # the 3.0 m unit scores low, the NaN spacing is ignored
        _write_run(root / "trials" / f"{i:04d}", _cfg(sigma, seed), sp, sc)
    (root / "trials" / "0003").mkdir()
    _cfg(0.2).to_yaml(root / "trials" / "0003" / "config.yaml")  # not scored yet
    return root


def test_collect_runs_measures_the_median_spacing_above_threshold(sweep):
    runs = find_run_dirs([sweep])
    assert len(runs) == 4
    table = collect_runs([sweep], resolution=0.04)
    assert len(table) == 3  # the unscored trial is skipped
    row = table.iloc[0]
    assert row["measured_spacing_m"] == pytest.approx(0.6 + 0.10)
    assert row["n_units_above"] == 3 and row["n_units"] == 5
    assert row["predicted_spacing_m"] == pytest.approx(predict(_cfg(0.10), resolution=0.04).spacing_m)
    strict = collect_runs([sweep], threshold=1.0, numeric=False)
    assert strict.iloc[0]["n_units_above"] == 1 and strict.iloc[0]["measured_spacing_m"] == pytest.approx(0.6 + 0.10)
    summary = summarise_by_sigma(table)
    assert list(summary["sigma_e"]) == [0.10, 0.14] and list(summary["n_runs"]) == [2, 1]
    fig, ax = plot_predicted_vs_measured(table, summary=summary)
    assert ax.get_xlabel() == "predicted spacing (m)"
    with pytest.raises(DataError, match="units.parquet"):
        collect_runs([sweep], skip_unscored=False, numeric=False)


def test_find_run_dirs_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        find_run_dirs([tmp_path / "nope"])
    with pytest.raises(ConfigError, match="neither a run directory"):
        find_run_dirs([tmp_path])


def test_cli_prints_the_prediction_for_a_config(tmp_path):
    path = tmp_path / "c.yaml"
    _cfg().to_yaml(path)
    res = runner.invoke(app, ["predict", str(path), "--resolution", "0.04"])
    assert res.exit_code == 0, res.output
    assert "predicted spacing" in res.output and "unit-integral DoG" in res.output


def test_cli_writes_every_figure(tmp_path):
    path = tmp_path / "c.yaml"
    _cfg().to_yaml(path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["predict", str(path), "--out", str(out), "--units", "2", "--resolution", "0.04"])
    assert res.exit_code == 0, res.output
    for name in ("spectrum.png", "phase_diagram.png", "patterns_box.png", "patterns_fourier.png", "prediction.json"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "prediction.json").read_text())
    assert data["has_ring"] is True and data["spacing_m"] > 0


def test_cli_compares_a_sweep_directory_with_its_trials(sweep, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["predict", str(sweep), "--out", str(out), "--no-simulate", "--resolution", "0.04"])
    assert res.exit_code == 0, res.output
    assert "theory vs networks (3 runs" in res.output
    assert (out / "predicted_vs_measured.png").exists() and (out / "comparison.csv").exists()
    assert len(pd.read_csv(out / "comparison.csv")) == 3
    # --runs with an explicit run directory
    res = runner.invoke(app, ["predict", str(sweep / "trials" / "0000"), "--runs", str(sweep / "trials" / "0002"),
                              "--resolution", "0.04"])
    assert res.exit_code == 0, res.output
    assert "theory vs networks (1 runs" in res.output


def test_cli_errors_exit_2(tmp_path):
    res = runner.invoke(app, ["predict", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "error:" in res.output
    path = tmp_path / "c.yaml"
    _cfg().to_yaml(path)
    res = runner.invoke(app, ["predict", str(path), "--runs", str(tmp_path / "nope"), "--resolution", "0.04"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_registered_in_the_main_cli():
    from gridsweep.cli import app as main_app

    res = runner.invoke(main_app, ["theory", "--help"])
    assert res.exit_code == 0 and "predict" in res.output
