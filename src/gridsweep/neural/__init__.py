"""Neural data and predictivity: datasets, NWB loaders, synthetic MEC recordings,
linear-map predictivity with noise ceilings, and dimension-matched null models.

See docs/neural.md and docs/science.md section 7.
"""

from gridsweep.neural.comparison import (
    NullSpec,
    compare_predictivity,
    predictivity_vs_dimension,
)
from gridsweep.neural.dataset import NeuralDataset, concat_datasets, from_arrays
from gridsweep.neural.io import (
    PositionUnitWarning,
    dataset_from_spikes,
    load_dataset,
    load_nayebi,
    load_npz,
    load_nwb,
    save_nayebi,
    save_npz,
    write_nwb,
)
from gridsweep.neural.nulls import NULL_MODELS, generate_null, matched_null
from gridsweep.neural.plots import plot_predictivity_vs_pr
from gridsweep.neural.predictivity import (
    CEILINGS,
    MAPPINGS,
    NoiseCeiling,
    PredictivityResult,
    SplitSpec,
    align_to_dataset,
    neural_predictivity,
    noise_ceiling,
    resample_maps,
)
from gridsweep.neural.synthetic import (
    MECPopulationSpec,
    make_population,
    random_walk,
    simulate_animals,
    simulate_recording,
)

__all__ = [
    "CEILINGS",
    "MAPPINGS",
    "NULL_MODELS",
    "MECPopulationSpec",
    "NeuralDataset",
    "NoiseCeiling",
    "NullSpec",
    "PositionUnitWarning",
    "PredictivityResult",
    "SplitSpec",
    "align_to_dataset",
    "compare_predictivity",
    "concat_datasets",
    "dataset_from_spikes",
    "from_arrays",
    "generate_null",
    "load_dataset",
    "load_nayebi",
    "load_npz",
    "load_nwb",
    "make_population",
    "matched_null",
    "neural_predictivity",
    "noise_ceiling",
    "plot_predictivity_vs_pr",
    "predictivity_vs_dimension",
    "random_walk",
    "resample_maps",
    "save_nayebi",
    "save_npz",
    "simulate_animals",
    "simulate_recording",
    "write_nwb",
]
