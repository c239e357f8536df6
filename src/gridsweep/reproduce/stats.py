"""Confidence intervals that stay valid with few networks: Wilson intervals for
proportions over networks, seed-bootstrap intervals only with enough seeds.

Proportions (P(low error), P(grid | low error)) count networks: each trained network
is one independent Bernoulli draw, and :func:`proportion` gives the Wilson score
interval (Wilson 1927; docs/science.md section 6), which never collapses to a single
point for k = 0 or k = n (0 of 2 networks: [0, 0.66]).

For other statistics (means, slopes, medians, correlations):

Runs of one condition are grouped by seed (a seed is one independent network draw:
its initial weights, place-cell centres and trajectories). A bootstrap replicate
resamples the seeds with replacement and recomputes the statistic from all runs of
the drawn seeds, so conditions holding several configs per seed (a sigma sweep) keep
their structure. Every replicate set comes from an explicit ``numpy`` generator seeded
by the caller, so a report computed twice prints the same intervals.

A bootstrap over fewer than ``min_groups`` seeds is not used: with 2 seeds there are 3
distinct replicates and a percentile interval such as [1.00, 1.00] claims a certainty
the data do not carry. Below that the estimators fall back to an interval over
networks (Student t for a mean, OLS t for a slope, order statistics for a median,
Fisher z for a Spearman correlation) or report the interval as undefined, with a
``note`` saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["Estimate", "bootstrap_ratio", "bootstrap_mean", "bootstrap_stat", "overlap", "fmt_est", "wilson",
           "proportion", "t_mean", "ols_slope", "median_ci", "spearman_ci"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with an interval.

    ``n`` counts the runs (networks) behind the estimate (for a conditional probability:
    the runs in the denominator), ``k`` the successes of a proportion, ``n_seeds`` the
    distinct seeds. ``method`` names how the interval was made (``Wilson``,
    ``seed bootstrap``, ``t over networks``, ...). ``lo``/``hi`` are NaN when there is no
    valid interval (``note`` says why) and ``value`` NaN when the estimate is undefined.
    """

    value: float
    lo: float
    hi: float
    n: int
    n_seeds: int
    unit: str = "seed"  # what was resampled
    method: str = "seed bootstrap"
    k: int | None = None
    note: str = ""

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.value))

    def to_dict(self) -> dict[str, Any]:
        d = {"value": _f(self.value), "ci_low": _f(self.lo), "ci_high": _f(self.hi), "n": self.n,
             "n_seeds": self.n_seeds, "interval": self.method}
        if self.k is not None:
            d["k"] = self.k
        if self.note:
            d["note"] = self.note
        return d


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


NAN_EST = Estimate(float("nan"), float("nan"), float("nan"), 0, 0, method="none", note="no networks")
NAN = float("nan")


def _z(ci: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - ci) / 2)


def wilson(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``.

    Parameters
    ----------
    k, n : int
        Successes and trials (``0 <= k <= n``).
    ci : float
        Coverage (0.95: z = 1.96).

    Returns
    -------
    (lo, hi) : floats in [0, 1]; NaN for ``n = 0``.

    Notes
    -----
    Wilson (1927), "Probable inference, the law of succession, and statistical
    inference": ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``. Unlike
    the normal (Wald) interval and a bootstrap over networks it does not collapse for
    ``k = 0`` or ``k = n``; the end at 0 (1) is exact there. Same as
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    if n <= 0:
        return NAN, NAN
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k={k} must lie in [0, n={n}]")
    z = _z(ci)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def proportion(df: pd.DataFrame, num: str | np.ndarray, den: str | np.ndarray | None = None, *,
               seed_col: str = "seed", ci: float = 0.95, **_: Any) -> Estimate:
    """``#(num & den) / #den`` over networks with a Wilson interval (see :func:`wilson`).

    ``num`` and ``den`` are boolean columns (or arrays aligned with ``df``); without
    ``den`` the denominator is every run. Extra keyword arguments (bootstrap settings)
    are accepted and ignored, so callers can pass one set of interval options.
    """
    if len(df) == 0:
        return NAN_EST
    a = np.asarray(df[num] if isinstance(num, str) else num, dtype=bool)
    b = np.ones(len(df), bool) if den is None else np.asarray(df[den] if isinstance(den, str) else den, dtype=bool)
    n, k = int(b.sum()), int((a & b).sum())
    seeds = int(pd.Series(np.asarray(df[seed_col])[b]).nunique()) if seed_col in df else 0
    if n == 0:
        return Estimate(NAN, NAN, NAN, 0, seeds, "network", "Wilson", 0, "no networks in the denominator")
    lo, hi = wilson(k, n, ci)
    return Estimate(k / n, lo, hi, n, seeds, "network", "Wilson", k)


def t_mean(values: np.ndarray, ci: float = 0.95, n_seeds: int = 0) -> Estimate:
    """Mean with a Student-t interval over networks (each value one network).

    Undefined interval for fewer than 2 values or no spread between them (a zero-width
    interval would claim certainty).
    """
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return NAN_EST
    m = float(v.mean())
    if v.size < 2:
        return Estimate(m, NAN, NAN, 1, n_seeds, "network", "none", note="one network: no interval")
    sd = float(v.std(ddof=1))
    if sd == 0:
        return Estimate(m, NAN, NAN, int(v.size), n_seeds, "network", "none",
                        note="no spread between networks: no interval")
    h = float(student_t.ppf(1 - (1 - ci) / 2, v.size - 1)) * sd / math.sqrt(v.size)
    return Estimate(m, m - h, m + h, int(v.size), n_seeds, "network", "t over networks")


def ols_slope(x: np.ndarray, y: np.ndarray, ci: float = 0.95, n_seeds: int = 0) -> Estimate:
    """Least-squares slope of ``y`` on ``x`` with its t interval (``n - 2`` degrees of freedom)."""
    from scipy.stats import t as student_t

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.unique(x).size < 2:
        return Estimate(NAN, NAN, NAN, int(x.size), n_seeds, "network", "none", note="fewer than 2 distinct x")
    b, a = np.polyfit(x, y, 1)
    if x.size < 3:
        return Estimate(float(b), NAN, NAN, int(x.size), n_seeds, "network", "none", note="2 networks: no interval")
    resid = y - (a + b * x)
    se = math.sqrt(float(resid @ resid) / (x.size - 2) / float(((x - x.mean()) ** 2).sum()))
    h = float(student_t.ppf(1 - (1 - ci) / 2, x.size - 2)) * se
    return Estimate(float(b), float(b - h), float(b + h), int(x.size), n_seeds, "network", "OLS t over networks")


def median_ci(values: np.ndarray, ci: float = 0.95, n_seeds: int = 0) -> Estimate:
    """Median with a distribution-free interval from order statistics (binomial(n, 1/2)).

    The interval ``[x_(j), x_(n-j+1)]`` with the largest ``j`` whose coverage
    ``1 - 2 P(Bin(n, 1/2) < j)`` is still >= ``ci``; undefined when even the full range
    covers less (n <= 5 at 95%).
    """
    from scipy.stats import binom

    v = np.sort(np.asarray(values, float)[np.isfinite(np.asarray(values, float))])
    if v.size == 0:
        return NAN_EST
    med = float(np.median(v))
    n = v.size
    j = 0
    for cand in range(1, n // 2 + 1):
        if 1 - 2 * binom.cdf(cand - 1, n, 0.5) >= ci:
            j = cand
    if j == 0:
        return Estimate(med, NAN, NAN, n, n_seeds, "network", "none",
                        note=f"{n} networks: too few for a {100 * ci:g}% interval of a median")
    return Estimate(med, float(v[j - 1]), float(v[n - j]), n, n_seeds, "network", "order statistics")


def spearman_ci(rho: float, n: int, ci: float = 0.95, n_seeds: int = 0) -> Estimate:
    """Interval of a Spearman correlation by Fisher's z with variance 1.06 / (n - 3).

    Notes
    -----
    Fieller, Hartley & Pearson (1957), Biometrika 44, 470-481. Undefined for n < 4.
    """
    if not np.isfinite(rho) or n < 4:
        return Estimate(rho, NAN, NAN, n, n_seeds, "network", "none", note=f"{n} networks: no interval")
    r = float(np.clip(rho, -0.999999, 0.999999))
    h = _z(ci) * math.sqrt(1.06 / (n - 3))
    return Estimate(float(rho), math.tanh(math.atanh(r) - h), math.tanh(math.atanh(r) + h), n, n_seeds, "network",
                    "Fisher z over networks")


def _too_few(value: float, n: int, n_groups: int, min_groups: int, unit: str) -> Estimate:
    return Estimate(value, NAN, NAN, n, n_groups, unit, "none",
                    note=f"too few {unit}s for a bootstrap ({n_groups} < {min_groups})")


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
                    seed_col: str = "seed", n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
                    min_groups: int = 1) -> Estimate:
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
    if len(uniq) < min_groups:
        return _too_few(float(value), int(round(total_b)), len(uniq), min_groups, seed_col)
    idx = _draws(len(uniq), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = sa[idx].sum(1) / sb[idx].sum(1)
    lo, hi = _interval(reps, ci)
    return Estimate(float(value), lo, hi, int(round(total_b)), int(len(uniq)))


def bootstrap_mean(df: pd.DataFrame, col: str, *, seed_col: str = "seed", n_boot: int = 2000, seed: int = 0,
                   ci: float = 0.95, min_groups: int = 1) -> Estimate:
    """Mean of a column over runs (finite values only) with a seed-bootstrap interval;
    with fewer than ``min_groups`` seeds a Student-t interval over networks (:func:`t_mean`)."""
    vals = np.asarray(df[col], dtype=float) if len(df) else np.zeros(0)
    ok = np.isfinite(vals)
    if not ok.any():
        return NAN_EST
    sub = df.loc[ok]
    n_seeds = int(sub[seed_col].nunique())
    if n_seeds < min_groups:
        return t_mean(vals[ok], ci, n_seeds)
    return bootstrap_ratio(sub, vals[ok], None, seed_col=seed_col, n_boot=n_boot, seed=seed, ci=ci)


def bootstrap_stat(df: pd.DataFrame, stat: Callable[[pd.DataFrame], float], *, seed_col: str = "seed",
                   n_boot: int = 1000, seed: int = 0, ci: float = 0.95, min_groups: int = 1,
                   fallback: Callable[[pd.DataFrame], Estimate] | None = None) -> Estimate:
    """Any statistic of a table of runs, with a seed-bootstrap interval (a loop; keep ``stat`` cheap).

    With fewer than ``min_groups`` distinct ``seed_col`` values the bootstrap is not
    run: ``fallback(df)`` gives the estimate (an interval over networks), or the interval
    is undefined with a note.
    """
    if len(df) == 0:
        return NAN_EST
    value = float(stat(df))
    _, codes = np.unique(df[seed_col].to_numpy(), return_inverse=True)
    if codes.max() + 1 < min_groups:
        if fallback is not None:
            return fallback(df)
        return _too_few(value, len(df), int(codes.max() + 1), min_groups, seed_col)
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
    return Estimate(value, lo, hi, len(df), len(groups), seed_col, f"{seed_col} bootstrap")


def overlap(a: Estimate, b: Estimate) -> bool:
    """Whether two intervals overlap (undefined intervals count as overlapping)."""
    if not (a.has_interval and b.has_interval):
        return True
    return not (a.hi < b.lo or b.hi < a.lo)


def fmt_est(e: Estimate, digits: int = 2, pct: bool = False) -> str:
    """``0.50 [0.15, 0.85] (2 of 4 networks, Wilson)``, ``1.21 [1.10, 1.30] (n=12, 4 seeds)``,
    ``0.95 (no interval: too few seeds for a bootstrap (2 < 5); n=2)`` or ``n/a (n=0)``."""
    if not e.defined:
        return f"n/a (n={e.n})"
    k = 100.0 if pct else 1.0
    u = "%" if pct else ""
    d = max(0, digits - 2) if pct else digits
    if not e.has_interval:
        return f"{e.value * k:.{d}f}{u} (no interval: {e.note or 'undefined'}; n={e.n})"
    if e.k is not None:
        return f"{e.value * k:.{d}f}{u} [{e.lo * k:.{d}f}, {e.hi * k:.{d}f}] ({e.k} of {e.n} networks, {e.method})"
    if e.unit == "network":
        return f"{e.value * k:.{d}f}{u} [{e.lo * k:.{d}f}, {e.hi * k:.{d}f}] (n={e.n} networks, {e.method})"
    return (f"{e.value * k:.{d}f}{u} [{e.lo * k:.{d}f}, {e.hi * k:.{d}f}] "
            f"(n={e.n}, {e.n_seeds} {e.unit}{'s' if e.n_seeds != 1 else ''})")


def seeds_of(df: pd.DataFrame, seed_col: str = "seed") -> Sequence[int]:
    return sorted(df[seed_col].unique().tolist()) if len(df) else []
