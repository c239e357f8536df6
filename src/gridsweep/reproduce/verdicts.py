"""Verdict rules: one explicit function per claim, from stored numbers to a verdict.

Every rule reads a table of runs (one row per run and group membership; see
:func:`gridsweep.reproduce.data.load_runs`) and returns a :class:`ClaimResult`: what
was measured (bootstrap 95% intervals over seeds), the verdict ``reproduced``,
``not reproduced`` or ``inconclusive`` and the reason, with the numbers that decided
it. Nothing is hand-written: change a stored metric and the verdict follows.

Shared definitions (parameters in :class:`gridsweep.reproduce.presets.RuleParams`):

* a run *path-integrates* (``low_error``) when it finished and its held-out decoding
  error is below ``low_error_cm`` (NeurIPS: 10 cm); diverged runs count as runs that do
  not; failed or unfinished trials are left out and counted;
* a run *has grid units* (``has_grid``) when its maximum grid score (variant
  ``deepmind_minmax``, NFL's) exceeds ``grid_threshold`` (0.8), or, when the preset
  sets ``grid_min_fraction``, when at least that fraction of its units do (see
  :func:`grid_label`);
* ``P(grid | low error)`` of a condition is ``#(has_grid & low_error) / #low_error``;
* two estimates are *separated* when their intervals do not overlap; a condition
  *gives grids* when the lower end of its ``P(grid | low error)`` interval is above 0;
* a condition with fewer than ``min_runs`` low-error runs makes a comparison that
  needs it inconclusive.

The rule of each claim is in the docstring of its function and in docs/reproduce.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from gridsweep.reproduce.presets import CONDITION_LABELS, RuleParams
from gridsweep.reproduce.stats import (
    NAN_EST,
    Estimate,
    bootstrap_mean,
    bootstrap_ratio,
    bootstrap_stat,
    fmt_est,
)

__all__ = ["ClaimResult", "Measured", "REPRODUCED", "NOT_REPRODUCED", "INCONCLUSIVE", "RULES", "evaluate_all",
           "prepare_runs", "p_grid", "p_low", "RULE_TEXT", "grid_criterion", "grid_label"]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)

SCORE_COL = "max_score60_deepmind_minmax"
ERR_COL = "decoding_error_cm"
SPACING_COL = "median_spacing_m_above_0.8"


@dataclass
class Measured:
    """One measured quantity: a bootstrap estimate or a plain value, with its label."""

    label: str
    estimate: Estimate | None = None
    value: Any = None
    pct: bool = False

    def text(self) -> str:
        if self.estimate is not None:
            return fmt_est(self.estimate, pct=self.pct)
        if isinstance(self.value, float):
            return "n/a" if not np.isfinite(self.value) else f"{self.value:.3g}"
        return str(self.value)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "text": self.text()}
        if self.estimate is not None:
            d.update(self.estimate.to_dict())
        elif isinstance(self.value, (int, float, str, bool)) or self.value is None:
            d["value"] = None if isinstance(self.value, float) and not np.isfinite(self.value) else self.value
        else:
            d["value"] = str(self.value)
        return d


@dataclass
class ClaimResult:
    """The outcome of one claim's rule."""

    claim_id: str
    verdict: str
    reason: str
    rule: str
    measured: list[Measured] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim_id, "verdict": self.verdict, "reason": self.reason, "rule": self.rule,
                "measured": [m.to_dict() for m in self.measured], "notes": list(self.notes)}


# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------
def prepare_runs(runs: pd.DataFrame, rules: RuleParams) -> pd.DataFrame:
    """Runs that count (finished or diverged) with ``low_error`` and ``has_grid`` columns."""
    df = runs[runs["status"].isin(["done", "diverged"])].copy()
    for col in (ERR_COL, SCORE_COL, SPACING_COL, *(f"frac_units_above_{t:g}" for t in (0.3, 0.37, 0.8, 1.15))):
        if col not in df.columns:
            df[col] = np.nan
    err = pd.to_numeric(df.get(ERR_COL, pd.Series(np.nan, index=df.index)), errors="coerce")
    score = pd.to_numeric(df.get(SCORE_COL, pd.Series(np.nan, index=df.index)), errors="coerce")
    df[ERR_COL] = err
    df[SCORE_COL] = score
    df["low_error"] = (df["status"] == "done") & (err < rules.low_error_cm)
    col, cut = grid_criterion(rules)
    value = pd.to_numeric(df[col], errors="coerce")
    met = value > cut if rules.grid_min_fraction is None else value >= cut
    df["has_grid"] = (df["status"] == "done") & met
    df["max_rule_grid"] = (df["status"] == "done") & (score > rules.grid_threshold)
    df["grid_and_low"] = df["low_error"] & df["has_grid"]
    return df


def grid_criterion(rules: RuleParams) -> tuple[str, float]:
    """(column, cut) the 'has grid units' criterion thresholds: a run's max score (> cut,
    NFL) or, with ``grid_min_fraction``, its fraction of units above ``grid_threshold`` (>= cut)."""
    if rules.grid_min_fraction is None:
        return SCORE_COL, rules.grid_threshold
    return f"frac_units_above_{rules.grid_threshold:g}", rules.grid_min_fraction


def grid_label(rules: RuleParams) -> str:
    """What 'has grid units' means under ``rules``, for labels: NFL's any-unit rule or a unit fraction.

    NFL count a network as having grid cells when one unit scores above 0.8. With a few
    hundred units and coarse rate maps the best unit of an *untrained* network already
    scores about 1 (docs/quick-preset.md), so small presets require a fraction of units
    above the threshold instead (``grid_min_fraction``).
    """
    if rules.grid_min_fraction is None:
        return f"max score > {rules.grid_threshold:g}"
    return f">= {100 * rules.grid_min_fraction:g}% of units > {rules.grid_threshold:g}"


def _boot(rules: RuleParams, salt: str) -> dict[str, Any]:
    # One stream per estimate, derived from the rule seed and a fixed label.
    s = int(np.random.SeedSequence([rules.bootstrap_seed, *map(ord, salt)]).generate_state(1)[0])
    return {"n_boot": rules.n_boot, "seed": s, "ci": rules.ci}


def p_grid(df: pd.DataFrame, rules: RuleParams, salt: str = "") -> Estimate:
    """P(has grid units | low error) with a seed-bootstrap interval (criterion: :func:`grid_label`)."""
    return bootstrap_ratio(df, "grid_and_low", "low_error", **_boot(rules, "pgrid" + salt))


def p_low(df: pd.DataFrame, rules: RuleParams, salt: str = "") -> Estimate:
    """P(decoding error < low_error_cm) over finished runs."""
    return bootstrap_ratio(df, "low_error", None, **_boot(rules, "plow" + salt))


def _label(cond: str) -> str:
    return CONDITION_LABELS.get(cond, cond)


def _few(est: Estimate, rules: RuleParams) -> bool:
    return est.n < rules.min_runs


def _gives_grids_like(x: Estimate, ref: Estimate) -> bool:
    """x gives grids (interval above 0) and is not separated below ref."""
    return x.defined and x.lo > 0 and not (ref.defined and x.hi < ref.lo)


def _below(x: Estimate, ref: Estimate) -> bool:
    """x's interval lies entirely below ref's."""
    return x.defined and ref.defined and x.hi < ref.lo


def _cond(df: pd.DataFrame, group: str, cond: str) -> pd.DataFrame:
    return df[(df["group"] == group) & (df["condition"] == cond)]


def _fmt_short(e: Estimate) -> str:
    return "n/a" if not e.defined else f"{e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}]"


def _missing(claim: str, rule: str, what: str) -> ClaimResult:
    return ClaimResult(claim, INCONCLUSIVE, f"no runs for this claim in the sweep ({what}).", rule)


# --------------------------------------------------------------------------------------
# R1
# --------------------------------------------------------------------------------------
RULE_R1 = ("Over the runs of the target sweep: reproduced if P(low error) has its interval above 0.5 and "
           "P(grid | low error) has its interval below 0.5; not reproduced if P(low error) lies below 0.5 or "
           "P(grid | low error) above 0.5; inconclusive otherwise or with fewer than min_runs low-error runs.")


def rule_r1(runs: pd.DataFrame, rules: RuleParams, *, untrained: pd.DataFrame | None = None,
            **_: Any) -> ClaimResult:
    """R1: most networks path-integrate, few of those have grid units."""
    df = runs[runs["group"] == "targets"]
    if df.empty:
        return _missing("R1", RULE_R1, "group 'targets'")
    pl, pg = p_low(df, rules, "r1"), p_grid(df, rules, "r1")
    all_grid = bootstrap_ratio(df, "grid_and_low", None, **_boot(rules, "r1all"))
    meas = [Measured("networks (finished or diverged)", value=len(df)),
            Measured(f"P(decoding error < {rules.low_error_cm:g} cm)", pl),
            Measured(f"P({grid_label(rules)} | low error)", pg),
            Measured(f"P(low error and {grid_label(rules)}) over all networks", all_grid),
            *_null_measures(untrained, rules)]
    why = f"P(low error) = {_fmt_short(pl)}, P(grid | low error) = {_fmt_short(pg)}"
    if pg.n < rules.min_runs:
        return ClaimResult("R1", INCONCLUSIVE, f"only {pg.n} low-error runs (< min_runs = {rules.min_runs}); {why}.",
                           RULE_R1, meas)
    if pl.lo > 0.5 and pg.hi < 0.5:
        v = REPRODUCED
    elif pl.hi < 0.5 or pg.lo > 0.5:
        v = NOT_REPRODUCED
    else:
        v = INCONCLUSIVE
    return ClaimResult("R1", v, why + ".", RULE_R1, meas,
                       notes=["The fractions depend on the mix of the sweep (here: equal numbers of networks per "
                              "target kind), unlike NFL's broad hyperparameter sweep."])


# --------------------------------------------------------------------------------------
# R2
# --------------------------------------------------------------------------------------
RULE_R2 = ("P(grid | low error) per target kind (target sweep). Reproduced if DoS's interval lies above the "
           "interval of every other kind (Cartesian, polar, Gaussian, equi-norm DoG, ...); not reproduced if some "
           "other kind gives grids (interval above 0) without lying below DoS; inconclusive otherwise, when DoS "
           "has fewer than min_runs low-error runs, when no kind gives grids at this scale, or when the same "
           "networks untrained meet the grid criterion as often as DoS (intervals not separated). Other kinds "
           "with fewer than min_runs low-error runs are left out of the comparison and named (their networks "
           "do not path-integrate, so they say nothing about which readouts give grids); with none left, "
           "inconclusive.")

R2_OTHERS = ("cartesian", "cartesian_highdim", "polar_highdim", "gaussian", "dog_equinorm", "sod")


def per_kind(df: pd.DataFrame, group: str, rules: RuleParams) -> dict[str, tuple[Estimate, Estimate]]:
    """``{condition: (P(low error), P(grid | low error))}`` of one group."""
    out = {}
    for cond in dict.fromkeys(df.loc[df["group"] == group, "condition"]):
        sub = _cond(df, group, cond)
        out[cond] = (p_low(sub, rules, group + cond), p_grid(sub, rules, group + cond))
    return out


def untrained_null(untrained: pd.DataFrame | None, rules: RuleParams) -> tuple[Estimate, Estimate]:
    """P(grid criterion) and P(NFL's any-unit rule) over untrained networks (no error condition)."""
    if untrained is None or len(untrained) == 0:
        return NAN_EST, NAN_EST
    u = prepare_runs(untrained, rules)
    return (bootstrap_ratio(u, "has_grid", None, **_boot(rules, "untrained")),
            bootstrap_ratio(u, "max_rule_grid", None, **_boot(rules, "untrained_max")))


def _null_measures(untrained: pd.DataFrame | None, rules: RuleParams) -> list[Measured]:
    crit, anyunit = untrained_null(untrained, rules)
    if not crit.defined:
        return []
    out = [Measured(f"untrained networks (same configs at step 0): P({grid_label(rules)})", crit)]
    if rules.grid_min_fraction is not None:
        out.append(Measured(f"untrained networks: P(max score > {rules.grid_threshold:g}) (NFL's any-unit rule)",
                            anyunit))
    return out


def rule_r2(runs: pd.DataFrame, rules: RuleParams, *, untrained: pd.DataFrame | None = None,
            **_: Any) -> ClaimResult:
    """R2: only DoS targets give grids."""
    kinds = per_kind(runs, "targets", rules)
    if "dos" not in kinds:
        return _missing("R2", RULE_R2, "no DoS runs in group 'targets'")
    others = {k: v for k, v in kinds.items() if k in R2_OTHERS}
    if not others:
        return _missing("R2", RULE_R2, "no non-DoS kinds in group 'targets'")
    meas = []
    for k, (pl, pg) in kinds.items():
        meas.append(Measured(f"{_label(k)}: P(low error)", pl))
        meas.append(Measured(f"{_label(k)}: P({grid_label(rules)} | low error)", pg))
    if rules.grid_min_fraction is not None:
        for k in kinds:
            sub = _cond(runs, "targets", k)
            sub = sub[sub["low_error"]]
            meas.append(Measured(f"{_label(k)}: P(max score > {rules.grid_threshold:g} | low error) (NFL's "
                                 "any-unit rule)", bootstrap_ratio(sub, "max_rule_grid", None,
                                                                   **_boot(rules, "anyunit" + k))))
    meas += _null_measures(untrained, rules)
    null = untrained_null(untrained, rules)[0]
    dos = kinds["dos"][1]
    summary = "; ".join(f"{_label(k)} {_fmt_short(v[1])}" for k, v in kinds.items())
    if _few(dos, rules):
        return ClaimResult("R2", INCONCLUSIVE, f"fewer than min_runs = {rules.min_runs} low-error DoS runs; "
                           f"P(grid | low error): {summary}.", RULE_R2, meas)
    # a kind whose networks do not path-integrate says nothing about which readouts give grids
    few = [k for k, (_, pg) in others.items() if _few(pg, rules)]
    others = {k: v for k, v in others.items() if k not in few}
    left_out = (f" Left out with fewer than min_runs = {rules.min_runs} low-error runs: "
                f"{', '.join(_label(k) for k in few)}." if few else "")
    summary += "." + left_out
    if not others:
        return ClaimResult("R2", INCONCLUSIVE, f"no other target kind has min_runs = {rules.min_runs} low-error "
                           f"runs; P(grid | low error): {summary}", RULE_R2, meas)
    if null.defined and not _below(null, dos):
        return ClaimResult("R2", INCONCLUSIVE, f"the grid criterion ({grid_label(rules)}) does not separate DoS "
                           f"networks from untrained ones (untrained {_fmt_short(null)}); P(grid | low error): "
                           f"{summary}", RULE_R2, meas)
    rivals = [k for k, (_, pg) in others.items() if _gives_grids_like(pg, dos)]
    if all(_below(pg, dos) for _, pg in others.values()):
        return ClaimResult("R2", REPRODUCED, f"DoS lies above every other kind; P(grid | low error): {summary}",
                           RULE_R2, meas)
    if rivals:
        return ClaimResult("R2", NOT_REPRODUCED, f"{', '.join(_label(k) for k in rivals)} give(s) grids without "
                           f"lying below DoS; P(grid | low error): {summary}", RULE_R2, meas)
    if not any(pg.defined and pg.value > 0 for _, pg in kinds.values()):
        return ClaimResult("R2", INCONCLUSIVE, f"no target kind gave a run with "
                           f"{grid_label(rules)} at this scale; P(grid | low error): {summary}", RULE_R2, meas)
    return ClaimResult("R2", INCONCLUSIVE, f"intervals overlap; P(grid | low error): {summary}", RULE_R2, meas)


# --------------------------------------------------------------------------------------
# R3
# --------------------------------------------------------------------------------------
RULE_R3 = ("Sigma sweep at the base surround ratio. The period of a run is the median spacing of its units "
           "with score > 0.8; the slope of period against sigma gets a seed-bootstrap interval. Per sigma, the "
           "spacings of all grid units (pooled over seeds) are tested for multimodality; a sigma has 'modules' "
           "when the test rejects at multimodality_alpha / (number of sigmas) and two adjacent modes differ by a "
           "ratio >= mode_ratio_max. Reproduced if the slope interval is above 0 and every sigma was tested and has no "
           "modules; not "
           "reproduced if the slope interval is at or below 0 or some sigma has modules; inconclusive otherwise "
           "or with fewer than 3 sigmas having min_units grid units.")


def _slope(df: pd.DataFrame) -> float:
    x = df["sigma"].to_numpy(float)
    y = df[SPACING_COL].to_numpy(float)
    if np.unique(x).size < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def rule_r3(runs: pd.DataFrame, rules: RuleParams, *, modules: pd.DataFrame | None = None, **_: Any) -> ClaimResult:
    """R3: period set by sigma, unimodal per setting.

    ``modules``: one row per sigma with ``sigma, n_units, n_modes, modes_m (list),
    mode_ratios (list), p_multimodal`` (from :func:`gridsweep.reproduce.data.spacing_table`).
    """
    df = runs[(runs["group"] == "sigma") & (runs["status"] == "done")].copy()
    if df.empty:
        return _missing("R3", RULE_R3, "group 'sigma'")
    if "base_ratio" in df.columns:
        df = df[df["base_ratio"]]
    meas: list[Measured] = []
    mod = modules if modules is not None else pd.DataFrame(columns=["sigma", "n_units"])
    elig = mod[mod["n_units"] >= rules.min_units] if len(mod) else mod
    for _, r in mod.iterrows():
        modes = ", ".join(f"{m:.2f}" for m in (r.get("modes_m") or []))
        ratios = ", ".join(f"{q:.2f}" for q in (r.get("mode_ratios") or []))
        p = r.get("p_multimodal", np.nan)
        meas.append(Measured(f"sigma {r['sigma']:.3f} m: grid units, modes (m), adjacent ratios, p(multimodal)",
                             value=f"{int(r['n_units'])} units; modes [{modes}]; ratios [{ratios}]; "
                                   f"p = {p:.3g}" if np.isfinite(p) else f"{int(r['n_units'])} units; modes [{modes}]"))
    with_spacing = df[np.isfinite(pd.to_numeric(df.get(SPACING_COL, np.nan), errors="coerce"))]
    with_spacing = with_spacing[with_spacing["sigma"].isin(elig["sigma"])] if len(elig) else with_spacing.iloc[:0]
    slope = bootstrap_stat(with_spacing, _slope, **{**_boot(rules, "r3"), "n_boot": min(rules.n_boot, 1000)}) \
        if len(with_spacing) else NAN_EST
    meas.insert(0, Measured("slope of grid period against sigma (m per m)", slope))
    if len(elig) < 3:
        return ClaimResult("R3", INCONCLUSIVE, f"only {len(elig)} sigma value(s) have >= min_units = "
                           f"{rules.min_units} units with score > 0.8; 3 are needed.", RULE_R3, meas)
    n = len(elig)
    modular = []
    for _, r in elig.iterrows():
        ratios = list(r.get("mode_ratios") or [])
        p = r.get("p_multimodal", np.nan)
        if np.isfinite(p) and p < rules.multimodality_alpha / n and any(q >= rules.mode_ratio_max for q in ratios):
            modular.append(float(r["sigma"]))
    all_ratios = [q for rs in elig.get("mode_ratios", []) for q in (rs or [])]
    meas.append(Measured("sigmas with modules", value=", ".join(f"{s:.3f}" for s in modular) or "none"))
    meas.append(Measured("adjacent mode ratios (all sigmas)",
                         value=", ".join(f"{q:.2f}" for q in all_ratios) or "single mode everywhere"))
    untested = [float(r["sigma"]) for _, r in elig.iterrows() if not np.isfinite(r.get("p_multimodal", np.nan))]
    why = f"slope {_fmt_short(slope)} m/m; sigmas with modules: {', '.join(f'{s:.3f}' for s in modular) or 'none'}"
    if untested:
        why += f"; no multimodality test at sigma {', '.join(f'{s:.3f}' for s in untested)}"
    if slope.defined and slope.lo > 0 and not modular and not untested:
        return ClaimResult("R3", REPRODUCED, why + ".", RULE_R3, meas)
    if (slope.defined and slope.hi <= 0) or modular:
        return ClaimResult("R3", NOT_REPRODUCED, why + ".", RULE_R3, meas)
    return ClaimResult("R3", INCONCLUSIVE, why + (" (slope undefined)" if not slope.defined else "") + ".",
                       RULE_R3, meas)


# --------------------------------------------------------------------------------------
# R4
# --------------------------------------------------------------------------------------
RULE_R4 = ("(a) Ring vs grids: kinds whose numerical readout spectrum has a ring (theory.predict) must lie above "
           "the kinds without one in P(grid | low error) (intervals separated); they disagree when some ring-less "
           "kind lies above a ring kind; kinds with fewer than min_runs low-error runs are left out and named. (b) Spacing: over runs with a measured period, the median ratio "
           "measured/predicted spacing gets a seed-bootstrap interval; it agrees when the point lies in "
           "spacing_ratio_band and, with >= 3 distinct predictions, the Spearman correlation between predicted "
           "and measured spacing has its interval above 0; it disagrees when the ratio interval lies outside the "
           "band or the correlation interval below 0. Reproduced if (a) and (b) agree, not reproduced if either "
           "disagrees, inconclusive otherwise.")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import rankdata

    rx, ry = rankdata(np.asarray(x, float)), rankdata(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _spearman(df: pd.DataFrame) -> float:
    if df["predicted_spacing_m"].nunique() < 3:
        return float("nan")
    return spearman(df["predicted_spacing_m"].to_numpy(), df[SPACING_COL].to_numpy())


def rule_r4(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """R4: the Turing-instability theory explains R2 and R3 (needs ``has_ring``/``predicted_spacing_m`` columns)."""
    if "has_ring" not in runs.columns:
        return _missing("R4", RULE_R4, "no theory predictions attached")
    meas: list[Measured] = []
    conds = runs[runs["group"].isin(["targets", "dog"]) & (runs["condition"] != "amplitude_ratio")]
    ring_est: dict[str, Estimate] = {}
    flat_est: dict[str, Estimate] = {}
    for cond in dict.fromkeys(conds["condition"]):
        sub = conds[conds["condition"] == cond].drop_duplicates("trial_id")
        ring = bool(sub["has_ring"].astype(float).mean() >= 0.5) if len(sub) else False
        est = p_grid(sub, rules, "r4" + cond)
        (ring_est if ring else flat_est)[cond] = est
        meas.append(Measured(f"{_label(cond)}: ring predicted = {'yes' if ring else 'no'}; P(grid | low error)", est))
    verdict_a: str
    # kinds whose networks do not path-integrate are left out (as in R2) and named
    few = [c for c, e in {**ring_est, **flat_est}.items() if _few(e, rules)]
    ring_est = {c: e for c, e in ring_est.items() if c not in few}
    flat_est = {c: e for c, e in flat_est.items() if c not in few}
    left_out = f" (left out, fewer than min_runs low-error runs: {', '.join(_label(c) for c in few)})" if few else ""
    if not ring_est or not flat_est:
        verdict_a, why_a = INCONCLUSIVE, f"needs kinds with and without a predicted ring{left_out}"
    elif any(_below(r, f) for r in ring_est.values() for f in flat_est.values()):
        verdict_a, why_a = NOT_REPRODUCED, "a kind without a ring gives more grids than a kind with one"
    elif all(_below(f, r) for r in ring_est.values() for f in flat_est.values()):
        verdict_a, why_a = REPRODUCED, "every ring kind lies above every ring-less kind"
    else:
        verdict_a, why_a = INCONCLUSIVE, "ring and ring-less kinds overlap"
    why_a += left_out if ring_est and flat_est else ""
    # (b) spacing
    sp = runs[runs["group"].isin(["sigma", "targets", "dog"]) & (runs["status"] == "done")].drop_duplicates("trial_id")
    sp = sp[np.isfinite(pd.to_numeric(sp.get(SPACING_COL), errors="coerce"))
            & np.isfinite(pd.to_numeric(sp.get("predicted_spacing_m"), errors="coerce"))].copy()
    lo_b, hi_b = rules.spacing_ratio_band
    if len(sp):
        sp["spacing_ratio"] = sp[SPACING_COL] / sp["predicted_spacing_m"]
        ratio = bootstrap_stat(sp, lambda d: float(np.median(d["spacing_ratio"])),
                               **{**_boot(rules, "r4ratio"), "n_boot": min(rules.n_boot, 1000)})
        rho = bootstrap_stat(sp, _spearman, **{**_boot(rules, "r4rho"), "n_boot": min(rules.n_boot, 1000)})
    else:
        ratio = rho = NAN_EST
    meas.append(Measured("median measured / predicted spacing", ratio))
    meas.append(Measured("Spearman correlation, predicted vs measured spacing", rho))
    if len(sp) < rules.min_runs:
        verdict_b, why_b = INCONCLUSIVE, f"only {len(sp)} runs with a measured period and a predicted ring"
    elif (ratio.hi < lo_b or ratio.lo > hi_b) or (rho.defined and rho.hi < 0):
        verdict_b, why_b = NOT_REPRODUCED, (f"spacing ratio {_fmt_short(ratio)} outside [{lo_b:g}, {hi_b:g}] "
                                            f"or correlation {_fmt_short(rho)} below 0")
    elif lo_b <= ratio.value <= hi_b and (not rho.defined and sp["predicted_spacing_m"].nunique() < 3
                                          or rho.defined and rho.lo > 0):
        verdict_b, why_b = REPRODUCED, f"spacing ratio {_fmt_short(ratio)}, correlation {_fmt_short(rho)}"
    else:
        verdict_b, why_b = INCONCLUSIVE, f"spacing ratio {_fmt_short(ratio)}, correlation {_fmt_short(rho)}"
    meas.append(Measured("(a) ring vs grids", value=f"{verdict_a}: {why_a}"))
    meas.append(Measured("(b) predicted vs measured spacing", value=f"{verdict_b}: {why_b}"))
    if verdict_a == REPRODUCED and verdict_b == REPRODUCED:
        v = REPRODUCED
    elif NOT_REPRODUCED in (verdict_a, verdict_b):
        v = NOT_REPRODUCED
    else:
        v = INCONCLUSIVE
    return ClaimResult("R4", v, f"(a) {verdict_a}: {why_a}; (b) {verdict_b}: {why_b}.", RULE_R4, meas)


# --------------------------------------------------------------------------------------
# R5
# --------------------------------------------------------------------------------------
RULE_R5 = ("Sigma sweep at the base surround ratio: the mean over seeds of the fraction of units with score > "
           "unit_threshold, per sigma, with seed-bootstrap intervals. A 'dip' is an interior sigma whose interval "
           "lies below the intervals of both neighbours. Reproduced if there is a dip; not reproduced if there is "
           "none although the sweep has >= 3 consecutive sigmas spaced <= 0.01 m inside 0.10-0.15 m (the "
           "published dips' resolution) whose intervals are all above 0 (Sorscher et al.'s robustness); "
           "inconclusive otherwise or with fewer than 3 sigmas having min_runs runs.")


def rule_r5(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """R5: grid emergence is very sensitive to sigma."""
    col = f"frac_units_above_{rules.unit_threshold:g}"
    df = runs[(runs["group"] == "sigma") & (runs["status"] == "done")]
    if "base_ratio" in df.columns:
        df = df[df["base_ratio"]]
    if df.empty:
        return _missing("R5", RULE_R5, "group 'sigma'")
    if col not in df.columns:
        return ClaimResult("R5", INCONCLUSIVE, f"metric {col} is not stored for these runs.", RULE_R5)
    ests = []
    for s in sorted(df["sigma"].unique()):
        sub = df[df["sigma"] == s]
        e = bootstrap_mean(sub, col, **_boot(rules, f"r5{s:.4f}"))
        ests.append((float(s), e))
    meas = [Measured(f"sigma {s:.3f} m: % units with score > {rules.unit_threshold:g}", e, pct=True) for s, e in ests]
    ok = [(s, e) for s, e in ests if e.n >= rules.min_runs]
    if len(ok) < 3:
        return ClaimResult("R5", INCONCLUSIVE, f"only {len(ok)} sigma value(s) have >= min_runs = {rules.min_runs} "
                           "runs; 3 are needed.", RULE_R5, meas)
    dips = [ok[i][0] for i in range(1, len(ok) - 1) if _below(ok[i][1], ok[i - 1][1]) and _below(ok[i][1], ok[i + 1][1])]
    # consecutive fine-resolution run inside 0.10-0.15 m with grids everywhere
    fine = [(s, e) for s, e in ok if 0.10 - 1e-9 <= s <= 0.15 + 1e-9]
    best = cur = 1 if fine else 0
    for i in range(1, len(fine)):
        cur = cur + 1 if fine[i][0] - fine[i - 1][0] <= 0.01 + 1e-9 else 1
        best = max(best, cur)
    robust = best >= 3 and all(e.lo > 0 for _, e in fine)
    meas.append(Measured("dips (sigma, m)", value=", ".join(f"{s:.3f}" for s in dips) or "none"))
    meas.append(Measured("consecutive sigmas <= 0.01 m apart in 0.10-0.15 m", value=best))
    if dips:
        return ClaimResult("R5", REPRODUCED, f"significant dip(s) at sigma = {', '.join(f'{s:.3f}' for s in dips)} m.",
                           RULE_R5, meas)
    if robust:
        return ClaimResult("R5", NOT_REPRODUCED, f"no dip, and grid units appear at every sigma of a {best}-point run "
                           "at 0.01 m resolution inside 0.10-0.15 m.", RULE_R5, meas)
    why = "sigma grid coarser than 0.01 m inside 0.10-0.15 m" if best < 3 else \
        "some sigma in 0.10-0.15 m has no significant grid units"
    return ClaimResult("R5", INCONCLUSIVE, f"no significant dip; {why}.", RULE_R5, meas)


# --------------------------------------------------------------------------------------
# R6, B2
# --------------------------------------------------------------------------------------
RULE_R6 = ("Multi-field group: heterogeneous vs homogeneous (single-field DoS) cells. Grids vanish when the "
           "heterogeneous P(grid | low error) interval lies below the homogeneous one; path integration is "
           "affected when the heterogeneous mean decoding error interval lies above the homogeneous one plus "
           "pi_tolerance_cm. Inconclusive when the homogeneous cells have fewer than min_runs low-error runs. "
           "Reproduced if grids vanish and path integration is not affected; not reproduced if path integration is "
           "affected or heterogeneous cells give grids (interval above 0); inconclusive otherwise or with fewer "
           "than min_runs low-error heterogeneous runs.")


def _mf_measures(runs: pd.DataFrame, rules: RuleParams) -> tuple[dict[str, tuple[Estimate, Estimate, Estimate]],
                                                                   list[Measured]]:
    out, meas = {}, []
    for cond in dict.fromkeys(runs.loc[runs["group"] == "multifield", "condition"]):
        sub = _cond(runs, "multifield", cond)
        pl, pg = p_low(sub, rules, "mf" + cond), p_grid(sub, rules, "mf" + cond)
        err = bootstrap_mean(sub[sub["status"] == "done"], ERR_COL, **_boot(rules, "mferr" + cond))
        out[cond] = (pl, pg, err)
        meas += [Measured(f"{_label(cond)}: mean decoding error (cm)", err),
                 Measured(f"{_label(cond)}: P(low error)", pl),
                 Measured(f"{_label(cond)}: P({grid_label(rules)} | low error)", pg)]
    return out, meas


def rule_r6(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """R6: heterogeneous multi-field cells keep path integration and lose grids."""
    mf, meas = _mf_measures(runs, rules)
    if "homogeneous" not in mf or "heterogeneous" not in mf:
        return _missing("R6", RULE_R6, "needs 'homogeneous' and 'heterogeneous' in group 'multifield'")
    _, hom_g, hom_e = mf["homogeneous"]
    _, het_g, het_e = mf["heterogeneous"]
    affected = het_e.defined and hom_e.defined and het_e.lo > hom_e.hi + rules.pi_tolerance_cm
    why = (f"P(grid | low error) heterogeneous {_fmt_short(het_g)} vs homogeneous {_fmt_short(hom_g)}; mean error "
           f"{_fmt_short(het_e)} vs {_fmt_short(hom_e)} cm")
    if _few(hom_g, rules):
        return ClaimResult("R6", INCONCLUSIVE, f"the homogeneous baseline has fewer than min_runs = {rules.min_runs} "
                           f"low-error runs, so neither effect can be judged; {why}.", RULE_R6, meas)
    if affected:
        return ClaimResult("R6", NOT_REPRODUCED, "path integration is affected: " + why + ".", RULE_R6, meas)
    if _few(het_g, rules):
        return ClaimResult("R6", INCONCLUSIVE, f"fewer than min_runs = {rules.min_runs} low-error runs with "
                           f"heterogeneous cells; {why}.", RULE_R6, meas)
    if _below(het_g, hom_g):
        return ClaimResult("R6", REPRODUCED, "grids vanish, path integration unaffected: " + why + ".", RULE_R6, meas)
    if het_g.lo > 0:
        return ClaimResult("R6", NOT_REPRODUCED, "heterogeneous cells still give grids: " + why + ".", RULE_R6, meas)
    if not (hom_g.defined and hom_g.value > 0):
        return ClaimResult("R6", INCONCLUSIVE, "the homogeneous baseline has no grid runs at this scale: " + why + ".",
                           RULE_R6, meas)
    return ClaimResult("R6", INCONCLUSIVE, "intervals overlap: " + why + ".", RULE_R6, meas)


RULE_B2 = ("Multi-field group: multi-field cells of one scale vs homogeneous cells. Reproduced if the single-scale "
           "P(grid | low error) gives grids (interval above 0) without lying below the homogeneous interval; not "
           "reproduced if it lies below; inconclusive otherwise or with fewer than min_runs low-error runs.")


def rule_b2(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """B2 (rebuttal): multi-field cells with a single-scale centre-surround keep grids."""
    mf, meas = _mf_measures(runs, rules)
    if "homogeneous" not in mf or "multifield_single_scale" not in mf:
        return _missing("B2", RULE_B2, "needs 'homogeneous' and 'multifield_single_scale' in group 'multifield'")
    hom, ss = mf["homogeneous"][1], mf["multifield_single_scale"][1]
    keep = {"homogeneous", "multifield_single_scale"}
    meas = [m for m in meas if any(m.label.startswith(_label(c) + ":") for c in keep)]
    why = f"P(grid | low error) single-scale multi-field {_fmt_short(ss)} vs single field {_fmt_short(hom)}"
    return _rebuttal_verdict("B2", RULE_B2, ss, hom, why, meas, rules)


def _rebuttal_verdict(claim: str, rule: str, candidate: Estimate, reference: Estimate, why: str,
                      meas: list[Measured], rules: RuleParams) -> ClaimResult:
    """Shared rule of the rebuttal checks: does ``candidate`` give grids like ``reference``?"""
    if _few(candidate, rules) or _few(reference, rules):
        return ClaimResult(claim, INCONCLUSIVE, f"fewer than min_runs = {rules.min_runs} low-error runs; {why}.",
                           rule, meas)
    if _gives_grids_like(candidate, reference):
        return ClaimResult(claim, REPRODUCED, why + ".", rule, meas)
    if _below(candidate, reference):
        return ClaimResult(claim, NOT_REPRODUCED, why + ".", rule, meas)
    return ClaimResult(claim, INCONCLUSIVE, why + ".", rule, meas)


# --------------------------------------------------------------------------------------
# R7, B1
# --------------------------------------------------------------------------------------
RULE_R7 = ("DoG group: reproduced if the equi-norm DoG P(grid | low error) interval lies below DoS's; not "
           "reproduced if equi-norm DoG gives grids (interval above 0) without lying below DoS; inconclusive "
           "otherwise, with fewer than min_runs low-error runs, or when DoS gives no grids. The amplitude-ratio "
           "runs reaching DoS-level scores (max score >= the median max score of DoS runs) are reported.")


def _dog_measures(runs: pd.DataFrame, rules: RuleParams) -> tuple[dict[str, Estimate], list[Measured]]:
    out, meas = {}, []
    for cond in ("dos", "dog_equinorm", "dog_unit_integral"):
        sub = _cond(runs, "dog", cond)
        if sub.empty:
            continue
        out[cond] = p_grid(sub, rules, "dog" + cond)
        meas.append(Measured(f"{_label(cond)}: P({grid_label(rules)} | low error)", out[cond]))
    return out, meas


def rule_r7(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """R7: grids need the softmax normalisation: equi-norm DoG gives none."""
    d, meas = _dog_measures(runs, rules)
    meas = [m for m in meas if not m.label.startswith(_label("dog_unit_integral"))]
    amp = _cond(runs, "dog", "amplitude_ratio")
    dos_runs = _cond(runs, "dog", "dos")
    if len(amp) and len(dos_runs):
        level = float(np.nanmedian(dos_runs[SCORE_COL])) if dos_runs[SCORE_COL].notna().any() else np.nan
        n_hit = int((amp[SCORE_COL] >= level).sum()) if np.isfinite(level) else 0
        meas.append(Measured("amplitude-ratio runs reaching DoS-level scores", value=f"{n_hit} of {len(amp)}"))
    if "dos" not in d or "dog_equinorm" not in d:
        return _missing("R7", RULE_R7, "needs 'dos' and 'dog_equinorm' in group 'dog'")
    dos, eq = d["dos"], d["dog_equinorm"]
    why = f"P(grid | low error) equi-norm DoG {_fmt_short(eq)} vs DoS {_fmt_short(dos)}"
    if _few(dos, rules) or _few(eq, rules):
        return ClaimResult("R7", INCONCLUSIVE, f"fewer than min_runs = {rules.min_runs} low-error runs; {why}.",
                           RULE_R7, meas)
    if _below(eq, dos):
        return ClaimResult("R7", REPRODUCED, why + ".", RULE_R7, meas)
    if _gives_grids_like(eq, dos):
        return ClaimResult("R7", NOT_REPRODUCED, why + ".", RULE_R7, meas)
    if not (dos.value > 0):
        return ClaimResult("R7", INCONCLUSIVE, f"DoS gives no grid runs at this scale; {why}.", RULE_R7, meas)
    return ClaimResult("R7", INCONCLUSIVE, why + ".", RULE_R7, meas)


RULE_B1 = ("DoG group: reproduced if the unit-integral DoG gives grids (P(grid | low error) interval above 0) "
           "without lying below DoS; not reproduced if its interval lies below DoS's; inconclusive otherwise or "
           "with fewer than min_runs low-error runs.")


def rule_b1(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """B1 (rebuttal): a unit-integral DoG gives grids like DoS."""
    d, meas = _dog_measures(runs, rules)
    if "dos" not in d or "dog_unit_integral" not in d:
        return _missing("B1", RULE_B1, "needs 'dos' and 'dog_unit_integral' in group 'dog'")
    dos, ui = d["dos"], d["dog_unit_integral"]
    why = f"P(grid | low error) unit-integral DoG {_fmt_short(ui)} vs DoS {_fmt_short(dos)}"
    return _rebuttal_verdict("B1", RULE_B1, ui, dos, why, meas, rules)


# --------------------------------------------------------------------------------------
# P
# --------------------------------------------------------------------------------------
RULE_P = ("Trained networks and their participation-ratio-matched null models scored on synthetic MEC "
          "recordings (ridge regression, held-out bins). Over models and nulls, the Spearman correlation between "
          "participation ratio and predictivity (median r) gets a bootstrap interval over trained networks (each "
          "resampled with its matched nulls), and "
          "so does the mean difference model minus its matched nulls. Models 'beat' their nulls when the lower end "
          "of that difference exceeds p_margin. Reproduced if the correlation interval is above 0 and models do not "
          "beat their nulls; not reproduced if the correlation interval is at or below 0 or models beat their "
          "nulls; inconclusive otherwise or with fewer than min_runs models.")


def _rho_pr(d: pd.DataFrame) -> float:
    if len(d) < 3:
        return float("nan")
    return spearman(d["participation_ratio"].to_numpy(), d["median_r"].to_numpy())


def _model_minus_null(d: pd.DataFrame) -> float:
    r = d["median_r"].to_numpy(float)
    is_model = (d["role"] == "model").to_numpy()
    _, codes = np.unique(d["model"].astype(str).to_numpy(), return_inverse=True)
    k = codes.max() + 1 if len(codes) else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.bincount(codes[is_model], r[is_model], k) / np.bincount(codes[is_model], minlength=k)
        n = np.bincount(codes[~is_model], r[~is_model], k) / np.bincount(codes[~is_model], minlength=k)
    diff = m - n
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def rule_p(runs: pd.DataFrame, rules: RuleParams, *, predictivity: pd.DataFrame | None = None, **_: Any) -> ClaimResult:
    """P: predictivity rises with dimensionality; trained models do not beat matched nulls.

    ``predictivity``: :func:`gridsweep.neural.predictivity_vs_dimension` rows plus a
    ``seed`` column (the model's seed, shared by its nulls).
    """
    if predictivity is None or predictivity.empty:
        return _missing("P", RULE_P, "no predictivity table (no rate maps, or the step was disabled)")
    df = predictivity[np.isfinite(predictivity["median_r"].astype(float))
                      & np.isfinite(predictivity["participation_ratio"].astype(float))]
    models = df[df["role"] == "model"]
    # resampling unit: one trained network together with its matched nulls
    b = {**_boot(rules, "p"), "n_boot": min(rules.n_boot, 1000), "seed_col": "model"}
    rho = bootstrap_stat(df, _rho_pr, **b)
    diff = bootstrap_stat(df, _model_minus_null, **b)
    meas = [Measured("models scored", value=len(models)),
            Measured("null populations scored", value=int((df["role"] != "model").sum())),
            Measured("Spearman correlation, participation ratio vs predictivity", rho),
            Measured("mean predictivity, model minus matched nulls", diff)]
    for cond, g in models.groupby("condition", sort=False) if "condition" in models else []:
        meas.append(Measured(f"{_label(str(cond))}: median PR, median predictivity",
                             value=f"{g['participation_ratio'].median():.2f}, {g['median_r'].median():.3f}"))
    why = f"correlation {_fmt_short(rho)}, model minus null {_fmt_short(diff)}"
    if len(models) < rules.min_runs:
        return ClaimResult("P", INCONCLUSIVE, f"only {len(models)} models (< min_runs = {rules.min_runs}); {why}.",
                           RULE_P, meas)
    beat = diff.defined and diff.lo > rules.p_margin
    if rho.defined and rho.lo > 0 and not beat:
        return ClaimResult("P", REPRODUCED, why + ".", RULE_P, meas)
    if (rho.defined and rho.hi <= 0) or beat:
        return ClaimResult("P", NOT_REPRODUCED, why + ".", RULE_P, meas)
    return ClaimResult("P", INCONCLUSIVE, why + ".", RULE_P, meas)


RULES: dict[str, Callable[..., ClaimResult]] = {
    "R1": rule_r1, "R2": rule_r2, "R3": rule_r3, "R4": rule_r4, "R5": rule_r5, "R6": rule_r6, "R7": rule_r7,
    "B1": rule_b1, "B2": rule_b2, "P": rule_p,
}
RULE_TEXT = {"R1": RULE_R1, "R2": RULE_R2, "R3": RULE_R3, "R4": RULE_R4, "R5": RULE_R5, "R6": RULE_R6,
             "R7": RULE_R7, "B1": RULE_B1, "B2": RULE_B2, "P": RULE_P}


def evaluate_all(runs: pd.DataFrame, rules: RuleParams, **extra: Any) -> dict[str, ClaimResult]:
    """Every claim's verdict from a table of runs (``extra``: ``modules``, ``predictivity``)."""
    df = prepare_runs(runs, rules)
    return {cid: fn(df, rules, **extra) for cid, fn in RULES.items()}
