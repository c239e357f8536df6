"""Plots return (fig, axes), draw what they claim and save under Agg."""

import numpy as np
from matplotlib.figure import Figure

from gridsweep.analysis import (
    autocorrelogram,
    plot_score_histogram,
    plot_score_survival,
    plot_top_units,
)


def test_plot_top_units(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(6, 10, 10))
    scores = np.array([0.1, 1.3, np.nan, 0.5, -0.2, 0.9])
    spacing = np.array([0.3, 0.45, np.nan, 0.5, 0.6, 0.7])
    fig, axes = plot_top_units(maps, autocorrelogram(maps), scores, spacing_m=spacing, n=4, cols=2)
    assert isinstance(fig, Figure) and axes.shape == (2, 4)
    titles = [axes[0, 0].get_title(), axes[0, 2].get_title(), axes[1, 0].get_title(), axes[1, 2].get_title()]
    assert titles[0].startswith("unit 1 ") and "1.30" in titles[0] and "45 cm" in titles[0]
    assert [t.split()[1] for t in titles] == ["1", "5", "3", "0"]       # ranked by score, NaN last
    assert axes[0, 0].images[0].get_extent() == [-1.1, 1.1, -1.1, 1.1]
    fig.savefig(tmp_path / "top.png")
    assert (tmp_path / "top.png").stat().st_size > 0


def test_plot_top_units_fewer_units_than_panels():
    maps = np.random.default_rng(1).normal(size=(3, 8, 8))
    _, axes = plot_top_units(maps, autocorrelogram(maps), np.arange(3.0), n=16)
    assert sum(a.axison for a in axes.ravel()) == 6


def test_histogram_and_survival(tmp_path):
    s = np.array([0.1, 0.5, 0.9, 1.2, np.nan])
    fig, ax = plot_score_histogram(s)
    assert len(ax.lines) == 4                                      # one line per threshold
    assert "40.0% above" in ax.get_legend().get_texts()[2].get_text()   # 0.8: 2 of 5 units
    fig.savefig(tmp_path / "h.png")
    fig, ax = plot_score_survival({"trained": s, "untrained": np.array([0.0, 0.2])})
    assert len(ax.lines) == 2
    _, y = ax.lines[0].get_data()
    assert y[0] == 0.8 and y[-1] == 0.0
    fig.savefig(tmp_path / "s.png")
