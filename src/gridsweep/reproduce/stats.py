"""Bootstrap confidence intervals over seeds.

Runs of one condition are grouped by seed (a seed is one independent network draw:
its initial weights, place-cell centres and trajectories). A bootstrap replicate
resamples the seeds with replacement and recomputes the statistic from all runs of
the drawn seeds, so conditions holding several configs per seed (a sigma sweep) keep
their structure. Every replicate set comes from an explicit ``numpy`` generator seeded
by the caller, so a report computed twice prints the same intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["Estimate", "bootstrap_ratio", "bootstrap_mean", "bootstrap_stat", "overlap", "fmt_est"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap interval over seeds.

    ``n`` counts the runs behind the estimate (for a conditional probability: the runs
    in the denominator) and ``n_seeds`` the distinct seeds. ``lo``/``hi`` are NaN when
    the estimate is undefined (no runs).
    """

    value: float
    lo: float
    hi: float
    n: int
    n_seeds: int
    unit: str = "seed"  # what was resampled

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.value))

    def to_dict(self) -> dict[str, Any]:
        return {"value": _f(self.value), "ci_low": _f(self.lo), "ci_high": _f(self.hi), "n": self.n,
                "n_seeds": self.n_seeds, "resampled": self.unit}


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


NAN_EST = Estimate(float("nan"), float("nan"), float("nan"), 0, 0)


def _draws(n_seeds: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def _interval(reps: np.ndarray, ci: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    a = (1 - ci) / 2
    return float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def bootstrap_ratio(df: pd.DataFrame, num: str | np.ndarray, den: str | np.ndarray | None = None, *,
                    seed_col: str = "seed", n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Estimate:
    """``sum(num) / sum(den)`` over runs with a seed-bootstrap interval.

    ``num`` and ``den`` are boolean/numeric columns (or arrays aligned with ``df``);
    without ``den`` the denominator is the number of runs (a plain proportion). A
    conditional probability P(A | B) is ``num = A & B``, ``den = B``.
    """
    if len(df) == 0:
        return NAN_EST
    a = np.asarray(df[num] if isinstance(num, str) else num, dtype=float)
    b = np.ones(len(df)) if den is None else np.asarray(df[den] if isinstance(den, str) else den, dtype=float)
    seeds = df[seed_col].to_numpy()
    uniq, inv = np.unique(seeds, return_inverse=True)
    sa = np.bincount(inv, weights=a, minlength=len(uniq))
    sb = np.bincount(inv, weights=b, minlength=len(uniq))
    total_b = sb.sum()
    value = sa.sum() / total_b if total_b > 0 else float("nan")
    idx = _draws(len(uniq), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = sa[idx].sum(1) / sb[idx].sum(1)
    lo, hi = _interval(reps, ci)
    return Estimate(float(value), lo, hi, int(round(total_b)), int(len(uniq)))


def bootstrap_mean(df: pd.DataFrame, col: str, *, seed_col: str = "seed", n_boot: int = 2000, seed: int = 0,
                   ci: float = 0.95) -> Estimate:
    """Mean of a column over runs (finite values only) with a seed-bootstrap interval."""
    vals = np.asarray(df[col], dtype=float) if len(df) else np.zeros(0)
    ok = np.isfinite(vals)
    if not ok.any():
        return NAN_EST
    sub = df.loc[ok]
    return bootstrap_ratio(sub, vals[ok], None, seed_col=seed_col, n_boot=n_boot, seed=seed, ci=ci)


def bootstrap_stat(df: pd.DataFrame, stat: Callable[[pd.DataFrame], float], *, seed_col: str = "seed",
                   n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> Estimate:
    """Any statistic of a table of runs, with a seed-bootstrap interval (a loop; keep ``stat`` cheap)."""
    if len(df) == 0:
        return NAN_EST
    value = float(stat(df))
    _, codes = np.unique(df[seed_col].to_numpy(), return_inverse=True)
    groups = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]
    idx = _draws(len(groups), n_boot, seed)
    reps = np.empty(n_boot)
    for i, row in enumerate(idx):
        sample = df.iloc[np.concatenate([groups[j] for j in row])]
        try:
            reps[i] = float(stat(sample))
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
            reps[i] = np.nan
    lo, hi = _interval(reps, ci)
    return Estimate(value, lo, hi, len(df), len(groups), seed_col)


def overlap(a: Estimate, b: Estimate) -> bool:
    """Whether two intervals overlap (undefined intervals count as overlapping)."""
    if not (np.isfinite(a.lo) and np.isfinite(b.lo)):
        return True
    return not (a.hi < b.lo or b.hi < a.lo)


def fmt_est(e: Estimate, digits: int = 2, pct: bool = False) -> str:
    """``0.91 [0.85, 0.97] (n=40, 3 seeds)`` or ``n/a (no runs)``."""
    if not e.defined:
        return f"n/a (n={e.n})"
    k = 100.0 if pct else 1.0
    u = "%" if pct else ""
    d = max(0, digits - 2) if pct else digits
    return (f"{e.value * k:.{d}f}{u} [{e.lo * k:.{d}f}, {e.hi * k:.{d}f}] "
            f"(n={e.n}, {e.n_seeds} {e.unit}{'s' if e.n_seeds != 1 else ''})")


def seeds_of(df: pd.DataFrame, seed_col: str = "seed") -> Sequence[int]:
    return sorted(df[seed_col].unique().tolist()) if len(df) else []
