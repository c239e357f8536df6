"""The small exception hierarchy of gridsweep.

Every error the library raises on purpose derives from :class:`GridsweepError`, so a
caller can catch the family in one clause. Messages name the field, the value and what
is allowed.
"""

from __future__ import annotations


class GridsweepError(Exception):
    """Base class of every error gridsweep raises on purpose."""


class ConfigError(GridsweepError, ValueError):
    """A configuration or sweep spec is invalid (unknown key, wrong type, bad value)."""


class DataError(GridsweepError, ValueError):
    """Input arrays or files have the wrong shape, units or content."""


class AnalysisError(GridsweepError, ValueError):
    """An analysis cannot be computed from the given input."""


class DivergedError(GridsweepError, FloatingPointError):
    """Training produced a NaN or infinite loss or parameter."""


class StoreError(GridsweepError, RuntimeError):
    """The results store is missing, corrupt or inconsistent."""
