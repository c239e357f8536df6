"""gridsweep: path-integrating RNNs, their grid cells, and the No Free Lunch study.

Subpackages hold one family each: ``trajectories`` (motion models), ``targets``
(readout encodings), ``models`` (recurrent path integrators), ``training``,
``analysis`` (rate maps, grid scores), ``theory`` (Fourier analysis of the readout),
``sweeps`` (many networks), ``neural`` (neural predictivity).
"""

from gridsweep.errors import (
    AnalysisError,
    ConfigError,
    DataError,
    DivergedError,
    GridsweepError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "AnalysisError",
    "ConfigError",
    "DataError",
    "DivergedError",
    "GridsweepError",
    "StoreError",
    "__version__",
]
