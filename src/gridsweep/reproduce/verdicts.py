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
* ``P(grid | low error)`` of a condition is ``#(has_grid & low_error) / #low_error``,
  with a Wilson interval over networks (:func:`gridsweep.reproduce.stats.proportion`);
  other intervals are seed-bootstrap intervals only with ``min_boot_seeds`` seeds,
  else intervals over networks or none (:mod:`gridsweep.reproduce.stats`);
* two estimates are *separated* when their intervals do not overlap; a condition
  *gives grids* when the lower end of its ``P(grid | low error)`` interval is above 0;
* a condition with fewer than ``min_runs`` low-error runs makes a comparison that
  needs it inconclusive, and so does one with fewer than ``min_networks`` networks
  ("inconclusive (too few networks: n=...)");
* every grid-unit claim (R1, R2, R5, R7, B1, B2) can be decided under either scoring
  protocol (``protocol="deepmind"`` or ``"nfl"``, :func:`with_protocol`);
* :func:`fragility` re-decides every claim with each seed left out and with the
  error and grid cuts moved by +-10%.

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
    bootstrap_stat,
    fmt_est,
    median_ci,
    ols_slope,
    proportion,
    spearman_ci,
    t_mean,
)

__all__ = ["ClaimResult", "Measured", "REPRODUCED", "NOT_REPRODUCED", "INCONCLUSIVE", "RULES", "evaluate_all",
           "prepare_runs", "p_grid", "p_low", "RULE_TEXT", "grid_criterion", "grid_label", "PROTOCOLS",
           "PROTOCOL_CLAIMS", "with_protocol", "has_protocol", "fragility", "perturbations", "COMMON_RULE"]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)

SCORE_COL = "max_score60_deepmind_minmax"
ERR_COL = "decoding_error_cm"
SPACING_COL = "median_spacing_m_above_0.8"
FRAC_COLS = tuple(f"frac_units_above_{t:g}" for t in (0.3, 0.37, 0.8, 1.15))

#: Scoring protocols: the summary columns each one writes (docs/science.md section 4).
#: ``deepmind`` is the default summary; ``nfl`` the same quantities under NFL's scoring
#: protocol, stored by ``score_run`` with an ``nfl_`` prefix.
PROTOCOLS = ("deepmind", "nfl")
PROTOCOL_LABELS = {"deepmind": "DeepMind scorer (default summary)", "nfl": "NFL's scoring protocol"}
#: The claims decided from grid-unit columns, which therefore have a verdict per protocol.
PROTOCOL_CLAIMS = ("R1", "R2", "R5", "R7", "B1", "B2")
_NFL_ALIASES = {SCORE_COL: ("nfl_max_score60_deepmind_minmax", "nfl_max_grid_score", "nfl_max_score60"),
                SPACING_COL: ("nfl_median_spacing_m_above_0.8",)}


def _protocol_source(columns: Any, canonical: str, protocol: str) -> str | None:
    """The stored column holding ``canonical`` under ``protocol`` (None when absent)."""
    if protocol == "deepmind":
        return canonical if canonical in columns else None
    if protocol != "nfl":
        raise ValueError(f"protocol {protocol!r}: one of {', '.join(PROTOCOLS)}")
    for cand in (*_NFL_ALIASES.get(canonical, ()), "nfl_" + canonical):
        if cand in columns:
            return cand
    return None


def with_protocol(runs: pd.DataFrame | None, protocol: str = "deepmind") -> pd.DataFrame | None:
    """A copy of ``runs`` whose grid columns (max score, unit fractions, spacing) hold the
    values of ``protocol``, so that every rule reads one column set.

    ``deepmind``: unchanged. ``nfl``: the ``nfl_``-prefixed summary columns replace the
    default ones (NaN where a run has none).
    """
    if runs is None or protocol == "deepmind":
        return runs
    out = runs.copy()
    for canonical in (SCORE_COL, SPACING_COL, *FRAC_COLS):
        src = _protocol_source(out.columns, canonical, protocol)
        out[canonical] = pd.to_numeric(out[src], errors="coerce") if src else np.nan
    return out


def has_protocol(runs: pd.DataFrame, protocol: str) -> bool:
    """Whether some finished run has a max grid score under ``protocol``."""
    src = _protocol_source(runs.columns, SCORE_COL, protocol)
    if src is None:
        return False
    done = runs[runs["status"] == "done"] if "status" in runs else runs
    return bool(np.isfinite(pd.to_numeric(done[src], errors="coerce")).any())


@dataclass
class Measured:
    """One measured quantity: a bootstrap estimate or a plain value, with its label."""

    label: str
    estimate: Estimate | None = None
    value: Any = None
    pct: bool = False
    key: str = ""  # joins a measured quantity with the published number of the same key (claims.py)

    def text(self) -> str:
        if self.estimate is not None:
            return fmt_est(self.estimate, pct=self.pct)
        if isinstance(self.value, float):
            return "n/a" if not np.isfinite(self.value) else f"{self.value:.3g}"
        return str(self.value)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "text": self.text()}
        if self.key:
            d["key"] = self.key
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
    qualifier: str = ""  # e.g. "too few networks: n=2" (shown as "inconclusive (too few networks: n=2)")
    protocol: str = "deepmind"
    robustness: dict[str, Any] | None = None  # from :func:`fragility`

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    @property
    def display(self) -> str:
        """The verdict with its qualifier: ``inconclusive (too few networks: n=2)``."""
        return f"{self.verdict} ({self.qualifier})" if self.qualifier else self.verdict

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"claim": self.claim_id, "verdict": self.verdict, "verdict_text": self.display, "reason": self.reason,
             "rule": self.rule, "protocol": self.protocol, "measured": [m.to_dict() for m in self.measured],
             "notes": list(self.notes)}
        if self.robustness is not None:
            d["robustness"] = self.robustness
        return d


# --------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------
def prepare_runs(runs: pd.DataFrame, rules: RuleParams, protocol: str = "deepmind") -> pd.DataFrame:
    """Runs that count (finished or diverged) with ``low_error`` and ``has_grid`` columns,
    grid columns taken from ``protocol`` (:func:`with_protocol`)."""
    runs = with_protocol(runs, protocol)
    df = runs[runs["status"].isin(["done", "diverged"])].copy()
    for col in (ERR_COL, SCORE_COL, SPACING_COL, *FRAC_COLS):
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
    return {"n_boot": rules.n_boot, "seed": s, "ci": rules.ci, "min_groups": rules.min_boot_seeds}


def p_grid(df: pd.DataFrame, rules: RuleParams, salt: str = "") -> Estimate:
    """P(has grid units | low error) over networks, Wilson interval (criterion: :func:`grid_label`)."""
    return proportion(df, "grid_and_low", "low_error", ci=rules.ci)


def p_low(df: pd.DataFrame, rules: RuleParams, salt: str = "") -> Estimate:
    """P(decoding error < low_error_cm) over finished networks, Wilson interval."""
    return proportion(df, "low_error", None, ci=rules.ci)


COMMON_RULE = ("Every rule: a verdict other than inconclusive needs at least min_networks networks (finished or "
               "diverged runs) in each compared condition, else 'inconclusive (too few networks: n=...)'; "
               "proportions over networks have Wilson intervals.")


def _n_networks(df: pd.DataFrame) -> int:
    return int(df["trial_id"].nunique()) if "trial_id" in df else len(df)


def _too_few_networks(claim: str, rule: str, counts: dict[str, int], rules: RuleParams,
                      meas: list[Measured]) -> ClaimResult | None:
    """'inconclusive (too few networks: n=...)' when a compared condition has fewer than min_networks."""
    few = {k: n for k, n in counts.items() if n < rules.min_networks}
    if not few:
        return None
    ns = sorted(set(few.values()))
    q = f"too few networks: n={', '.join(map(str, ns))}"
    names = ", ".join(f"{_label(k)} {n}" for k, n in few.items())
    return ClaimResult(claim, INCONCLUSIVE, f"too few networks to decide: {names} (at least {rules.min_networks} "
                       "per compared condition are needed).", rule, meas, qualifier=q)


def _label(cond: str) -> str:
    return CONDITION_LABELS.get(cond, cond)


def _few(est: Estimate, rules: RuleParams) -> bool:
    return est.n < rules.min_runs


def _gives_grids_like(x: Estimate, ref: Estimate) -> bool:
    """x gives grids (interval above 0) and is not separated below ref."""
    return x.defined and x.lo > 0 and not (ref.defined and x.hi < ref.lo)


def _rival(x: Estimate, ref: Estimate) -> bool:
    """x gives grids (interval above 0), is not separated below ref, and gives them at least as
    often as ref (point estimates): evidence against 'only ref gives grids'."""
    return _gives_grids_like(x, ref) and (not ref.defined or x.value >= ref.value)


def _below(x: Estimate, ref: Estimate) -> bool:
    """x's interval lies entirely below ref's."""
    return x.defined and ref.defined and x.hi < ref.lo


def _cond(df: pd.DataFrame, group: str, cond: str) -> pd.DataFrame:
    return df[(df["group"] == group) & (df["condition"] == cond)]


def _fmt_short(e: Estimate) -> str:
    if not e.defined:
        return "n/a"
    if not e.has_interval:
        return f"{e.value:.2f} (no interval)"
    return f"{e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}]"


def _frac_short(e: Estimate) -> str:
    """``2 of 4 networks, 0.50 [0.15, 0.85]`` for a proportion; :func:`_fmt_short` otherwise."""
    if e.k is None or not e.defined:
        return _fmt_short(e) if e.defined else "n/a (none path-integrate)"
    return f"{e.k} of {e.n}, {_fmt_short(e)}"


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
    all_grid = proportion(df, "grid_and_low", None, ci=rules.ci)
    meas = [Measured("networks trained", value=len(df), key="n_networks"),
            Measured(f"P(low error) (error < {rules.low_error_cm:g} cm)", pl, key="p_low"),
            Measured(f"P(grid | low error) (grid: {grid_label(rules)})", pg, key="p_grid"),
            Measured("P(low error and grid) over all networks", all_grid, key="p_grid_all"),
            *_null_measures(untrained, rules)]
    why = (f"{pl.k} of {pl.n} networks path-integrate (P(low error) = {_fmt_short(pl)}) and {pg.k} of those "
           f"{pg.n} have grid units (P(grid | low error) = {_fmt_short(pg)})")
    few = _too_few_networks("R1", RULE_R1, {k: _n_networks(d) for k, d in df.groupby("condition", sort=False)},
                            rules, meas)
    if few:
        return few
    if pg.n < rules.min_runs:
        return ClaimResult("R1", INCONCLUSIVE, f"only {pg.n} networks path-integrate, fewer than the "
                           f"{rules.min_runs} needed; {why}.", RULE_R1, meas)
    if pl.lo > 0.5 and pg.hi < 0.5:
        v, how = REPRODUCED, "most path-integrate (interval above 0.5) and few of those have grids (below 0.5)"
    elif pl.hi < 0.5 or pg.lo > 0.5:
        v, how = NOT_REPRODUCED, ("most do not path-integrate (interval below 0.5)" if pl.hi < 0.5
                                  else "most path-integrating networks have grids (interval above 0.5)")
    else:
        v, how = INCONCLUSIVE, "an interval straddles 0.5"
    return ClaimResult("R1", v, f"{how}: {why}.", RULE_R1, meas,
                       notes=["The fractions depend on the mix of the sweep (here: equal numbers of networks per "
                              "target kind), unlike NFL's broad hyperparameter sweep."])


# --------------------------------------------------------------------------------------
# R2
# --------------------------------------------------------------------------------------
RULE_R2 = ("P(grid | low error) per target kind (target sweep). Reproduced if DoS's interval lies above the "
           "interval of every other kind (Cartesian, polar, Gaussian, equi-norm DoG, ...); not reproduced if some "
           "other kind gives grids (interval above 0) at least as often as DoS (point estimates) without lying "
           "below DoS; inconclusive otherwise, when DoS "
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
    return proportion(u, "has_grid", None, ci=rules.ci), proportion(u, "max_rule_grid", None, ci=rules.ci)


def _null_measures(untrained: pd.DataFrame | None, rules: RuleParams) -> list[Measured]:
    crit, anyunit = untrained_null(untrained, rules)
    if not crit.defined:
        return []
    out = [Measured("untrained null: P(grid) of the same networks at step 0", crit, key="null_grid")]
    if rules.grid_min_fraction is not None:
        out.append(Measured(f"untrained null: P(max score > {rules.grid_threshold:g}) (NFL's any-unit rule)",
                            anyunit, key="null_anyunit"))
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
        meas.append(Measured(f"P(low error), {_label(k)}", pl, key=f"p_low:{k}"))
        meas.append(Measured(f"P(grid | low error), {_label(k)}", pg, key=f"p_grid:{k}"))
    if rules.grid_min_fraction is not None:
        for k in kinds:
            sub = _cond(runs, "targets", k)
            sub = sub[sub["low_error"]]
            meas.append(Measured(f"P(max score > {rules.grid_threshold:g} | low error) (NFL's any-unit rule), "
                                 f"{_label(k)}", proportion(sub, "max_rule_grid", None, ci=rules.ci),
                                 key=f"p_anyunit:{k}"))
    meas += _null_measures(untrained, rules)
    null = untrained_null(untrained, rules)[0]
    dos = kinds["dos"][1]
    summary = "; ".join(f"{_label(k)} {_frac_short(v[1])}" for k, v in kinds.items())
    tf = _too_few_networks("R2", RULE_R2, {k: _n_networks(_cond(runs, "targets", k))
                                           for k in ("dos", *others)}, rules, meas)
    if tf:
        return tf
    if _few(dos, rules):
        return ClaimResult("R2", INCONCLUSIVE, f"fewer than {rules.min_runs} DoS networks path-integrate; "
                           f"P(grid | low error): {summary}.", RULE_R2, meas)
    # a kind whose networks do not path-integrate says nothing about which readouts give grids
    few = [k for k, (_, pg) in others.items() if _few(pg, rules)]
    others = {k: v for k, v in others.items() if k not in few}
    left_out = (f" Left out because fewer than {rules.min_runs} of their networks path-integrate: "
                f"{', '.join(_label(k) for k in few)}." if few else "")
    summary += "." + left_out
    if not others:
        return ClaimResult("R2", INCONCLUSIVE, f"no other target kind has {rules.min_runs} networks that "
                           f"path-integrate; P(grid | low error): {summary}", RULE_R2, meas)
    if null.defined and not _below(null, dos):
        return ClaimResult("R2", INCONCLUSIVE, f"the grid criterion ({grid_label(rules)}) does not separate DoS "
                           f"networks from untrained ones (untrained {_fmt_short(null)}); P(grid | low error): "
                           f"{summary}", RULE_R2, meas)
    rivals = [k for k, (_, pg) in others.items() if _rival(pg, dos)]
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
    def _ols(d: pd.DataFrame) -> Estimate:
        return ols_slope(d["sigma"].to_numpy(float), d[SPACING_COL].to_numpy(float), rules.ci,
                         int(d["seed"].nunique()))

    slope = bootstrap_stat(with_spacing, _slope, fallback=_ols,
                           **{**_boot(rules, "r3"), "n_boot": min(rules.n_boot, 1000)}) \
        if len(with_spacing) else NAN_EST
    meas.insert(0, Measured("slope of grid period against sigma (m per m)", slope, key="slope"))
    if len(elig) < 3:
        return ClaimResult("R3", INCONCLUSIVE, f"only {len(elig)} readout width(s) have at least "
                           f"{rules.min_units} units with score > 0.8; 3 are needed.", RULE_R3, meas)
    tf = _too_few_networks("R3", RULE_R3, {f"sigma {s:.3f} m": _n_networks(df[df["sigma"] == s])
                                           for s in elig["sigma"]}, rules, meas)
    if tf:
        return tf
    n = len(elig)
    modular = []
    for _, r in elig.iterrows():
        ratio_list = list(r.get("mode_ratios") or [])
        p = r.get("p_multimodal", np.nan)
        if np.isfinite(p) and p < rules.multimodality_alpha / n and any(q >= rules.mode_ratio_max for q in ratio_list):
            modular.append(float(r["sigma"]))
    all_ratios = [q for rs in elig.get("mode_ratios", []) for q in (rs or [])]
    meas.append(Measured("sigmas with modules", value=", ".join(f"{s:.3f}" for s in modular) or "none"))
    meas.append(Measured("ratio of adjacent period modes",
                         value=", ".join(f"{q:.2f}" for q in all_ratios) or "single mode everywhere",
                         key="mode_ratios"))
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
        meas.append(Measured(f"P(grid | low error), {_label(cond)} (ring predicted: {'yes' if ring else 'no'})",
                             est, key=f"p_grid:{cond}"))
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
        ns = int(sp["seed"].nunique())
        ratio = bootstrap_stat(sp, lambda d: float(np.median(d["spacing_ratio"])),
                               fallback=lambda d: median_ci(d["spacing_ratio"].to_numpy(float), rules.ci, ns),
                               **{**_boot(rules, "r4ratio"), "n_boot": min(rules.n_boot, 1000)})
        rho = bootstrap_stat(sp, _spearman, fallback=lambda d: spearman_ci(_spearman(d), len(d), rules.ci, ns),
                             **{**_boot(rules, "r4rho"), "n_boot": min(rules.n_boot, 1000)})
    else:
        ratio = rho = NAN_EST
    meas.append(Measured("median measured / predicted spacing", ratio, key="spacing_ratio"))
    meas.append(Measured("Spearman correlation, predicted vs measured spacing", rho, key="spacing_rho"))
    if len(sp) < rules.min_runs:
        verdict_b, why_b = INCONCLUSIVE, f"only {len(sp)} runs with a measured period and a predicted ring"
    elif (ratio.hi < lo_b or ratio.lo > hi_b) or (rho.defined and rho.hi < 0):
        verdict_b, why_b = NOT_REPRODUCED, (f"spacing ratio {_fmt_short(ratio)} outside [{lo_b:g}, {hi_b:g}] "
                                            f"or correlation {_fmt_short(rho)} below 0")
    elif ratio.has_interval and lo_b <= ratio.value <= hi_b and (
            not rho.defined and sp["predicted_spacing_m"].nunique() < 3 or rho.defined and rho.lo > 0):
        verdict_b, why_b = REPRODUCED, f"spacing ratio {_fmt_short(ratio)}, correlation {_fmt_short(rho)}"
    else:
        verdict_b, why_b = INCONCLUSIVE, f"spacing ratio {_fmt_short(ratio)}, correlation {_fmt_short(rho)}"
    meas.append(Measured("(a) ring vs grids", value=f"{verdict_a}: {why_a}"))
    meas.append(Measured("(b) predicted vs measured spacing", value=f"{verdict_b}: {why_b}"))
    tf = _too_few_networks("R4", RULE_R4, {c: _n_networks(conds[conds["condition"] == c])
                                           for c in (*ring_est, *flat_est)}, rules, meas)
    if tf:
        return tf
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
    meas = [Measured(f"% units with score > {rules.unit_threshold:g} at sigma {s:.3f} m", e, pct=True,
                     key=f"pct:{s:.3f}") for s, e in ests]
    tf = _too_few_networks("R5", RULE_R5, {f"sigma {s:.3f} m": e.n for s, e in ests}, rules, meas)
    if tf:
        return tf
    ok = [(s, e) for s, e in ests if e.n >= rules.min_runs]
    if len(ok) < 3:
        return ClaimResult("R5", INCONCLUSIVE, f"only {len(ok)} readout width(s) have {rules.min_runs} finished "
                           "networks; 3 are needed.", RULE_R5, meas)
    dips = [ok[i][0] for i in range(1, len(ok) - 1) if _below(ok[i][1], ok[i - 1][1]) and _below(ok[i][1], ok[i + 1][1])]
    # consecutive fine-resolution run inside 0.10-0.15 m with grids everywhere
    fine = [(s, e) for s, e in ok if 0.10 - 1e-9 <= s <= 0.15 + 1e-9]
    best = cur = 1 if fine else 0
    for i in range(1, len(fine)):
        cur = cur + 1 if fine[i][0] - fine[i - 1][0] <= 0.01 + 1e-9 else 1
        best = max(best, cur)
    robust = best >= 3 and all(e.lo > 0 for _, e in fine)
    meas.append(Measured("dips at sigma (m)", value=", ".join(f"{s:.3f}" for s in dips) or "none", key="dips"))
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
        meas += [Measured(f"mean decoding error (cm), {_label(cond)}", err, key=f"err:{cond}"),
                 Measured(f"P(low error), {_label(cond)}", pl, key=f"p_low:{cond}"),
                 Measured(f"P(grid | low error), {_label(cond)}", pg, key=f"p_grid:{cond}")]
    return out, meas


def rule_r6(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """R6: heterogeneous multi-field cells keep path integration and lose grids."""
    mf, meas = _mf_measures(runs, rules)
    if "homogeneous" not in mf or "heterogeneous" not in mf:
        return _missing("R6", RULE_R6, "needs 'homogeneous' and 'heterogeneous' in group 'multifield'")
    hom_g, hom_e = mf["homogeneous"][1:]
    het_g, het_e = mf["heterogeneous"][1:]
    affected = het_e.defined and hom_e.defined and het_e.lo > hom_e.hi + rules.pi_tolerance_cm
    why = (f"P(grid | low error) heterogeneous {_frac_short(het_g)} vs single field {_frac_short(hom_g)}; mean "
           f"decoding error {_fmt_short(het_e)} vs {_fmt_short(hom_e)} cm")
    tf = _too_few_networks("R6", RULE_R6, {c: _n_networks(_cond(runs, "multifield", c))
                                           for c in ("homogeneous", "heterogeneous")}, rules, meas)
    if tf:
        return tf
    if _few(hom_g, rules):
        return ClaimResult("R6", INCONCLUSIVE, f"fewer than {rules.min_runs} single-field networks path-integrate, "
                           f"so neither effect can be judged; {why}.", RULE_R6, meas)
    if affected:
        return ClaimResult("R6", NOT_REPRODUCED, "path integration is affected: " + why + ".", RULE_R6, meas)
    if _few(het_g, rules):
        return ClaimResult("R6", INCONCLUSIVE, f"fewer than {rules.min_runs} networks with heterogeneous cells "
                           f"path-integrate; {why}.", RULE_R6, meas)
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
    meas = [m for m in meas if m.key.split(":", 1)[-1] in keep]
    why = f"P(grid | low error) single-scale multi-field {_frac_short(ss)} vs single field {_frac_short(hom)}"
    tf = _too_few_networks("B2", RULE_B2, {c: _n_networks(_cond(runs, "multifield", c)) for c in keep}, rules, meas)
    return tf or _rebuttal_verdict("B2", RULE_B2, ss, hom, why, meas, rules)


def _rebuttal_verdict(claim: str, rule: str, candidate: Estimate, reference: Estimate, why: str,
                      meas: list[Measured], rules: RuleParams) -> ClaimResult:
    """Shared rule of the rebuttal checks: does ``candidate`` give grids like ``reference``?"""
    if _few(candidate, rules) or _few(reference, rules):
        return ClaimResult(claim, INCONCLUSIVE, f"fewer than {rules.min_runs} networks path-integrate in a "
                           f"compared condition; {why}.", rule, meas)
    if _gives_grids_like(candidate, reference):
        return ClaimResult(claim, REPRODUCED, why + ".", rule, meas)
    if _below(candidate, reference):
        return ClaimResult(claim, NOT_REPRODUCED, why + ".", rule, meas)
    return ClaimResult(claim, INCONCLUSIVE, why + ".", rule, meas)


# --------------------------------------------------------------------------------------
# R7, B1
# --------------------------------------------------------------------------------------
RULE_R7 = ("DoG group: reproduced if the equi-norm DoG P(grid | low error) interval lies below DoS's; not "
           "reproduced if equi-norm DoG gives grids (interval above 0) at least as often as DoS (point estimates) "
           "without lying below DoS; inconclusive "
           "otherwise, with fewer than min_runs low-error runs, or when DoS gives no grids. The amplitude-ratio "
           "runs reaching DoS-level scores (max score >= the median max score of DoS runs) are reported.")


def _dog_measures(runs: pd.DataFrame, rules: RuleParams) -> tuple[dict[str, Estimate], list[Measured]]:
    out, meas = {}, []
    for cond in ("dos", "dog_equinorm", "dog_unit_integral"):
        sub = _cond(runs, "dog", cond)
        if sub.empty:
            continue
        out[cond] = p_grid(sub, rules, "dog" + cond)
        meas.append(Measured(f"P(grid | low error), {_label(cond)}", out[cond], key=f"p_grid:{cond}"))
    return out, meas


def rule_r7(runs: pd.DataFrame, rules: RuleParams, **_: Any) -> ClaimResult:
    """R7: grids need the softmax normalisation: equi-norm DoG gives none."""
    d, meas = _dog_measures(runs, rules)
    meas = [m for m in meas if m.key != "p_grid:dog_unit_integral"]
    amp = _cond(runs, "dog", "amplitude_ratio")
    dos_runs = _cond(runs, "dog", "dos")
    if len(amp) and len(dos_runs):
        level = float(np.nanmedian(dos_runs[SCORE_COL])) if dos_runs[SCORE_COL].notna().any() else np.nan
        n_hit = int((amp[SCORE_COL] >= level).sum()) if np.isfinite(level) else 0
        meas.append(Measured("amplitude-ratio runs reaching DoS-level scores", value=f"{n_hit} of {len(amp)}",
                             key="amp_hits"))
    if "dos" not in d or "dog_equinorm" not in d:
        return _missing("R7", RULE_R7, "needs 'dos' and 'dog_equinorm' in group 'dog'")
    dos, eq = d["dos"], d["dog_equinorm"]
    why = f"P(grid | low error) equi-norm DoG {_frac_short(eq)} vs DoS {_frac_short(dos)}"
    tf = _too_few_networks("R7", RULE_R7, {c: _n_networks(_cond(runs, "dog", c)) for c in ("dos", "dog_equinorm")},
                           rules, meas)
    if tf:
        return tf
    if _few(dos, rules) or _few(eq, rules):
        return ClaimResult("R7", INCONCLUSIVE, f"fewer than {rules.min_runs} networks path-integrate in a compared "
                           f"condition; {why}.", RULE_R7, meas)
    if _below(eq, dos):
        return ClaimResult("R7", REPRODUCED, why + ".", RULE_R7, meas)
    if _rival(eq, dos):
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
    why = f"P(grid | low error) unit-integral DoG {_frac_short(ui)} vs DoS {_frac_short(dos)}"
    tf = _too_few_networks("B1", RULE_B1, {c: _n_networks(_cond(runs, "dog", c))
                                           for c in ("dos", "dog_unit_integral")}, rules, meas)
    return tf or _rebuttal_verdict("B1", RULE_B1, ui, dos, why, meas, rules)


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
    diff = _model_diffs(d)
    return float(diff.mean()) if diff.size else float("nan")


def _model_diffs(d: pd.DataFrame) -> np.ndarray:
    """Per trained model: its predictivity minus the mean of its matched nulls."""
    r = d["median_r"].to_numpy(float)
    is_model = (d["role"] == "model").to_numpy()
    _, codes = np.unique(d["model"].astype(str).to_numpy(), return_inverse=True)
    k = codes.max() + 1 if len(codes) else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.bincount(codes[is_model], r[is_model], k) / np.bincount(codes[is_model], minlength=k)
        n = np.bincount(codes[~is_model], r[~is_model], k) / np.bincount(codes[~is_model], minlength=k)
    diff = m - n
    return diff[np.isfinite(diff)]


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
    n_mod = int(df["model"].nunique())
    # with fewer models than min_boot_seeds: Fisher z with the number of models as n, t over models
    rho = bootstrap_stat(df, _rho_pr, fallback=lambda d: spearman_ci(_rho_pr(d), n_mod, rules.ci), **b)
    diff = bootstrap_stat(df, _model_minus_null, fallback=lambda d: t_mean(_model_diffs(d), rules.ci), **b)
    meas = [Measured("models scored", value=len(models), key="n_models"),
            Measured("null populations scored", value=int((df["role"] != "model").sum())),
            Measured("Spearman correlation, participation ratio vs predictivity", rho, key="rho"),
            Measured("mean predictivity, model minus matched nulls", diff, key="diff")]
    for cond, g in models.groupby("condition", sort=False) if "condition" in models else []:
        meas.append(Measured(f"{_label(str(cond))}: predictivity (PR)",
                             value=f"{g['median_r'].median():.2f} ({g['participation_ratio'].median():.1f})",
                             key=f"pred:{cond}"))
    why = f"correlation {_fmt_short(rho)}, model minus null {_fmt_short(diff)}"
    tf = _too_few_networks("P", RULE_P, {"trained models": len(models)}, rules, meas)
    if tf:
        return tf
    if len(models) < rules.min_runs:
        return ClaimResult("P", INCONCLUSIVE, f"only {len(models)} models, fewer than the {rules.min_runs} "
                           f"needed; {why}.", RULE_P, meas)
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


def evaluate_all(runs: pd.DataFrame, rules: RuleParams, protocol: str = "deepmind", claims: Any = None,
                 **extra: Any) -> dict[str, ClaimResult]:
    """Every claim's verdict from a table of runs (``extra``: ``modules``, ``predictivity``,
    ``untrained``), grid columns from ``protocol`` (``claims``: a subset of ids)."""
    df = prepare_runs(runs, rules, protocol)
    if extra.get("untrained") is not None:
        extra["untrained"] = with_protocol(extra["untrained"], protocol)
    out = {}
    for cid, fn in RULES.items():
        if claims is None or cid in claims:
            out[cid] = fn(df, rules, **extra)
            out[cid].protocol = protocol
    return out


# --------------------------------------------------------------------------------------
# fragility
# --------------------------------------------------------------------------------------
#: Claims whose rules read the error or grid cuts (P does not).
THRESHOLD_CLAIMS = ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "B1", "B2")


def perturbations(rules: RuleParams, step: float = 0.1) -> list[tuple[str, RuleParams]]:
    """The criterion's cuts moved by -``step`` and +``step`` (relative), one at a time.

    The error cut ``low_error_cm`` always; the grid cut is ``grid_threshold`` (a max
    score, NFL's any-unit rule) or, with ``grid_min_fraction``, that fraction (the
    per-unit threshold then stays at a scored value).
    """
    out = []
    for f in (1 - step, 1 + step):
        out.append((f"error cut {rules.low_error_cm * f:.3g} cm", rules.model_copy(
            update={"low_error_cm": rules.low_error_cm * f})))
    for f in (1 - step, 1 + step):
        if rules.grid_min_fraction is None:
            out.append((f"score cut {rules.grid_threshold * f:.3g}",
                        rules.model_copy(update={"grid_threshold": rules.grid_threshold * f})))
        else:
            out.append((f"fraction cut {100 * rules.grid_min_fraction * f:.3g}%",
                        rules.model_copy(update={"grid_min_fraction": rules.grid_min_fraction * f})))
    return out


def _without_seed(x: pd.DataFrame | None, seed: Any) -> pd.DataFrame | None:
    if x is None or len(x) == 0 or "seed" not in x:
        return x
    return x[x["seed"] != seed]


def fragility(runs: pd.DataFrame, rules: RuleParams, base: dict[str, ClaimResult], *, protocol: str = "deepmind",
              step: float = 0.1, modules_fn: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
              **extra: Any) -> dict[str, dict[str, Any]]:
    """Whether each verdict of ``base`` survives leaving out any one seed and moving the cuts.

    Parameters
    ----------
    runs : DataFrame
        The table the verdicts were computed from (raw or prepared).
    base : dict
        ``{claim: ClaimResult}`` to test (e.g. from :func:`evaluate_all`).
    step : float
        Relative move of the error and grid cuts (0.1: 10 cm -> 9 and 11 cm; 0.8 -> 0.72,
        0.88; 2% -> 1.8, 2.2%).
    modules_fn : callable, optional
        Recomputes R3's per-sigma modes table from a table of runs (seed left out);
        without it R3 keeps the full table's.
    extra :
        ``modules``, ``predictivity``, ``untrained`` as for the rules; tables with a
        ``seed`` column lose the left-out seed's rows.

    Returns
    -------
    dict
        ``{claim: {"robust": bool, "checks": [{"change", "verdict", "bears"}], "flips": [...],
        "text": str}}``; ``flips`` lists the changes whose verdict differs from the base.
    """
    checks: dict[str, list[dict[str, Any]]] = {cid: [] for cid in base}
    base_numbers = {cid: (r.reason, [m.to_dict() for m in r.measured]) for cid, r in base.items()}
    seeds = sorted(pd.unique(runs.loc[runs["status"].isin(["done", "diverged"]), "seed"]).tolist())
    for s in seeds if len(seeds) > 1 else []:
        sub = runs[runs["seed"] != s]
        ex = {k: _without_seed(v, s) if isinstance(v, pd.DataFrame) else v for k, v in extra.items()}
        if modules_fn is not None:
            ex["modules"] = modules_fn(prepare_runs(sub, rules, protocol))
        res = evaluate_all(sub, rules, protocol, claims=list(base), **ex)
        for cid, r in res.items():
            # whether the seed bears on this claim at all: its absence changes the claim's numbers
            bears = (r.reason, [m.to_dict() for m in r.measured]) != base_numbers[cid]
            checks[cid].append({"change": f"seed {s} left out", "verdict": r.verdict, "bears": bears})
    for name, moved in perturbations(rules, step):
        res = evaluate_all(runs, moved, protocol, claims=[c for c in base if c in THRESHOLD_CLAIMS], **extra)
        for cid, r in res.items():
            checks[cid].append({"change": name, "verdict": r.verdict})
    out = {}
    for cid, r in base.items():
        flips = [c for c in checks[cid] if c["verdict"] != r.verdict]
        moved_cuts = [n for n, _ in perturbations(rules, step)] if cid in THRESHOLD_CLAIMS else []
        if flips:
            parts = []
            for v in dict.fromkeys(c["verdict"] for c in flips):
                seeds_v = [c["change"].split()[1] for c in flips if c["verdict"] == v and c["change"].startswith("seed ")]
                if seeds_v:
                    parts.append(f"becomes {v} when seed {' or '.join(seeds_v)} is left out")
                parts += [f"becomes {v} with {c['change']}" for c in flips
                          if c["verdict"] == v and not c["change"].startswith("seed ")]
            text = "fragile: " + "; ".join(parts)
        else:
            used = [c["change"].split()[1] for c in checks[cid] if c.get("bears")]
            parts = [f"any one of its {len(used)} seeds ({', '.join(used)}) is left out"] if len(used) > 1 else []
            if moved_cuts:
                parts.append("the cuts move by " + f"{100 * step:g}% ({', '.join(moved_cuts)})")
            if not used and not r.measured:  # nothing measured: no network bears on this claim
                text = "not tested (no networks for this claim)"
            else:
                text = "robust: holds when " + " and when ".join(parts) if parts else "not tested (one seed)"
        out[cid] = {"robust": not flips, "checks": checks[cid], "flips": flips, "text": text}
    return out
