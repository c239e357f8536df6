"""Analysis of trained networks: rate maps, autocorrelograms, grid scores, geometry, modules.

Pure functions, numpy or torch in, numpy out (docs/science.md section 6; docs/analysis.md).
"""

from gridsweep.analysis.geometry import grid_geometry
from gridsweep.analysis.gridscore import GRID_SCORE_VARIANTS, grid_scores
from gridsweep.analysis.modules import spacing_modules
from gridsweep.analysis.plots import (
    plot_score_histogram,
    plot_score_survival,
    plot_top_units,
)
from gridsweep.analysis.population import (
    compare_with_untrained,
    fraction_above,
    participation_ratio,
    shuffled_null_scores,
)
from gridsweep.analysis.ratemaps import RateMaps, rate_maps
from gridsweep.analysis.sac import autocorrelogram
from gridsweep.analysis.table import unit_table

__all__ = [
    "GRID_SCORE_VARIANTS",
    "RateMaps",
    "autocorrelogram",
    "compare_with_untrained",
    "fraction_above",
    "grid_geometry",
    "grid_scores",
    "participation_ratio",
    "plot_score_histogram",
    "plot_score_survival",
    "plot_top_units",
    "rate_maps",
    "shuffled_null_scores",
    "spacing_modules",
    "unit_table",
]
