import json

import numpy as np
import pandas as pd
import torch

from gridsweep.analysis import rate_maps
from gridsweep.evaluation import collect_ratemaps, score_run, summary_metrics, untrained_ratemaps
from gridsweep.training import Ensemble, train


def test_chunked_ratemaps_equal_one_shot(tiny_cfg):
    """Accumulating per-chunk sums gives exactly the maps of one call on all samples."""
    ens = Ensemble([tiny_cfg])
    rm = collect_ratemaps(ens, n_samples=600, bins=8, chunk=20)[0]
    # regenerate the same samples in one go
    from gridsweep.seeding import torch_generator

    T = tiny_cfg.trajectory.sequence_length
    gens = [torch_generator(tiny_cfg.seed, "ratemaps")]
    pos, act = [], []
    for _ in range(600 // (20 * T)):
        traj = ens.sample(batch=20, steps=T, gens=gens)
        h = ens.model.hidden(traj.velocities, ens.target.encode(traj.start))
        pos.append(traj.positions.reshape(-1, 2))
        act.append(h.reshape(-1, h.shape[-1]))
    with torch.no_grad():
        ref = rate_maps(torch.cat(pos).double().numpy(), torch.cat(act).double().detach().numpy(),
                        extent=tiny_cfg.box.extent, bins=8)
    np.testing.assert_allclose(rm.maps, ref.maps, rtol=1e-6, atol=1e-7, equal_nan=True)
    np.testing.assert_array_equal(rm.occupancy, ref.occupancy)


def test_score_run_writes_analysis_and_summary(tiny_cfg, tmp_path):
    ens, _ = train(tiny_cfg, tmp_path / "run", progress=False)
    m = score_run(tmp_path / "run", ens, figures=True)
    a = tmp_path / "run" / "analysis"
    for f in ("ratemaps.npz", "units.parquet", "summary.json", "top_units.png", "score_histogram.png"):
        assert (a / f).exists(), f
    table = pd.read_parquet(a / "units.parquet")
    assert len(table) == tiny_cfg.model.hidden_size
    z = np.load(a / "ratemaps.npz")
    assert z["maps"].shape == (16, 20, 20)
    assert m["n_units"] == 16 and m["score_variant"] == "deepmind_minmax"
    merged = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert merged["max_score60_deepmind_minmax"] == m["max_score60_deepmind_minmax"]
    # the score of a reloaded run equals the in-memory one
    m2 = score_run(tmp_path / "run", figures=False)
    assert m2["max_score60_deepmind_minmax"] == m["max_score60_deepmind_minmax"]


def test_summary_metrics_known_answer():
    table = pd.DataFrame({"score60_deepmind_minmax": [0.1, 0.5, 0.9, 1.3, np.nan],
                          "score60_sargolini": [0.0, 0.2, 0.4, 0.6, np.nan],
                          "spacing_m": [0.3, 0.4, 0.5, 0.7, np.nan]})
    m = summary_metrics(table)
    assert m["max_score60_deepmind_minmax"] == 1.3 and m["max_score60_sargolini"] == 0.6
    assert m["frac_units_above_0.3"] == 3 / 5 and m["frac_units_above_0.8"] == 2 / 5
    assert m["median_spacing_m_above_0.8"] == 0.6 and m["n_units_for_spacing"] == 2


def test_untrained_ratemaps_shape_and_seed(tiny_cfg):
    a = untrained_ratemaps(tiny_cfg, n_samples=500, bins=6)
    b = untrained_ratemaps(tiny_cfg, n_samples=500, bins=6)
    c = untrained_ratemaps(tiny_cfg, n_samples=500, bins=6, seed=3)
    assert a.maps.shape == (16, 6, 6)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.allclose(np.nan_to_num(a.maps), np.nan_to_num(c.maps))


def test_score_cli(tiny_cfg, tmp_path, capsys):
    from gridsweep.cli import main

    train(tiny_cfg, tmp_path / "run", progress=False)
    assert main(["score", str(tmp_path / "run"), "--samples", "2000"]) == 0
    assert "max_score60_deepmind_minmax" in capsys.readouterr().out
    assert main(["score", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
