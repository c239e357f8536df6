"""The per-unit table: columns, values and agreement with the functions it combines."""

import numpy as np
import pandas as pd
import pytest

from gridsweep.analysis import RateMaps, grid_geometry, grid_scores, unit_table
from gridsweep.errors import AnalysisError, DataError


def hexagonal(n, spacing, orientation_deg=0.0):
    c = (np.arange(n) + 0.5) * 2.2 / n - 1.1
    x, y = np.meshgrid(c, c)
    k = 4 * np.pi / (np.sqrt(3) * spacing)
    return sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y))
               for t in np.deg2rad(orientation_deg + 30 + np.array([0, 60, 120])))


def test_unit_table(tmp_path):
    maps = np.stack([hexagonal(20, 0.6, 10), np.full((20, 20), 1.0), hexagonal(20, 0.5, 40)])
    df = unit_table(maps, 0.11)
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert list(df.columns) == [
        "unit", "score60_deepmind_minmax", "score90_deepmind_minmax", "score60_deepmind_mean",
        "score90_deepmind_mean", "score60_sargolini", "score90_sargolini", "spacing_m", "orientation_deg",
        "ellipticity", "reason"]
    for v in ("deepmind_minmax", "deepmind_mean", "sargolini"):
        np.testing.assert_allclose(df[f"score60_{v}"], grid_scores(maps, v)["score60"], equal_nan=True)
    geo = grid_geometry(maps, 0.11, kind="maps")
    np.testing.assert_allclose(df["spacing_m"], geo["spacing_m"], equal_nan=True)
    assert df["spacing_m"][0] == pytest.approx(0.6, rel=0.05) and df["spacing_m"][2] == pytest.approx(0.5, rel=0.05)
    assert df["reason"].tolist() == ["", "constant or empty map", ""]
    df.to_parquet(tmp_path / "u.parquet")
    back = pd.read_parquet(tmp_path / "u.parquet")
    assert back["reason"].tolist() == df["reason"].tolist()


def test_unit_table_from_ratemaps_and_one_variant():
    maps = np.stack([hexagonal(20, 0.6)])
    rm = RateMaps(maps=maps, occupancy=np.ones((20, 20)), extent=(-1.1, 1.1, -1.1, 1.1), bin_size=(0.11, 0.11))
    df = unit_table(rm, variants=("sargolini",))
    assert list(df.columns[1:3]) == ["score60_sargolini", "score90_sargolini"]
    assert df["spacing_m"][0] == pytest.approx(0.6, rel=0.05)


def test_unit_table_errors():
    with pytest.raises(AnalysisError, match="variants"):
        unit_table(np.zeros((1, 5, 5)), 0.1, variants=("nope",))
    with pytest.raises(DataError, match="bin_size"):
        unit_table(np.zeros((1, 5, 5)))
