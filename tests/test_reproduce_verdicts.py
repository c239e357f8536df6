"""Verdict rules on hand-made tables of runs: each rule's three outcomes."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from gridsweep.reproduce.presets import RuleParams
from gridsweep.reproduce.stats import bootstrap_ratio, bootstrap_stat
from gridsweep.reproduce.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    RULES,
    evaluate_all,
    prepare_runs,
)

RULE = RuleParams(n_boot=400)
_ids = itertools.count()


def runs(group, condition, n_seeds=4, err=5.0, score=0.2, status="done", sigma=0.12, frac=0.0, spacing=np.nan,
         per_seed=1, **extra):
    rows = []
    for s in range(n_seeds):
        for _ in range(per_seed):
            e = err(s) if callable(err) else err
            sc = score(s) if callable(score) else score
            rows.append({"trial_id": f"t{next(_ids)}", "group": group, "condition": condition, "seed": s,
                         "sigma": sigma, "surround_width_ratio": 2.0, "base_ratio": True, "status": status,
                         "decoding_error_cm": e, "max_score60_deepmind_minmax": sc,
                         "frac_units_above_0.3": frac(s) if callable(frac) else frac,
                         "median_spacing_m_above_0.8": spacing, **extra})
    return pd.DataFrame(rows)


def decide(cid, *frames, **extra):
    df = prepare_runs(pd.concat(frames, ignore_index=True), RULE)
    return RULES[cid](df, RULE, **extra)


def targets(dos_score=1.2, polar_score=0.2, n=4, dos_err=5.0):
    return [runs("targets", "dos", n, score=dos_score, err=dos_err), runs("targets", "cartesian", n),
            runs("targets", "polar_highdim", n, score=polar_score), runs("targets", "gaussian", n),
            runs("targets", "dog_equinorm", n)]


# ---------------------------------------------------------------------------- stats
def test_bootstrap_is_seeded_and_brackets_the_estimate():
    df = runs("g", "c", 6, score=lambda s: 1.2 if s % 2 else 0.1)
    df = prepare_runs(df, RULE)
    a = bootstrap_ratio(df, "has_grid", None, n_boot=500, seed=3)
    b = bootstrap_ratio(df, "has_grid", None, n_boot=500, seed=3)
    assert a == b and a.value == 0.5 and a.lo < 0.5 < a.hi and a.n == 6 and a.n_seeds == 6
    c = bootstrap_stat(df, lambda d: float(d["has_grid"].mean()), n_boot=300, seed=1)
    assert c.lo <= c.value <= c.hi


def test_bootstrap_resamples_seeds_not_runs():
    """Several runs per seed move together: a seed with all grids vs a seed with none."""
    df = pd.concat([runs("g", "c", 2, score=lambda s: 1.2 if s == 0 else 0.1, per_seed=5)])
    e = bootstrap_ratio(prepare_runs(df, RULE), "has_grid", None, n_boot=500, seed=0)
    assert e.n == 10 and e.n_seeds == 2 and e.lo == 0.0 and e.hi == 1.0


# ---------------------------------------------------------------------------- R1, R2
def test_r1():
    assert decide("R1", *targets()).verdict == REPRODUCED
    assert decide("R1", *[f.assign(decoding_error_cm=50.0) for f in targets()]).verdict == INCONCLUSIVE
    many = [f.assign(max_score60_deepmind_minmax=1.5) for f in targets()]
    assert decide("R1", *many).verdict == NOT_REPRODUCED


def test_r2_reproduced_not_reproduced_and_too_few_low_error_runs():
    assert decide("R2", *targets()).verdict == REPRODUCED
    res = decide("R2", *targets(polar_score=1.3))
    assert res.verdict == NOT_REPRODUCED and "polar" in res.reason
    res = decide("R2", *targets(dos_err=40.0))
    assert res.verdict == INCONCLUSIVE and "fewer than 3 DoS networks path-integrate" in res.reason
    # a kind that does not path-integrate is left out and named; the others still decide
    fr = targets()
    fr[2] = runs("targets", "polar_highdim", 4, err=40.0, score=1.3)
    res = decide("R2", *fr)
    assert res.verdict == REPRODUCED and "Left out" in res.reason and "polar" in res.reason.split("Left out")[1]
    only_dos = [runs("targets", "dos", 4, score=1.2), runs("targets", "gaussian", 4, err=40.0)]
    assert "no other target kind" in decide("R2", *only_dos).reason
    res = decide("R2", *targets(dos_score=0.1))
    assert res.verdict == INCONCLUSIVE and "no target kind" in res.reason
    # overlapping intervals: DoS has grids in half its seeds, polar in a quarter
    mixed = targets(dos_score=lambda s: 1.2 if s % 2 else 0.1, polar_score=lambda s: 1.2 if s == 0 else 0.1)
    assert decide("R2", *mixed).verdict == INCONCLUSIVE


def test_failed_and_pending_runs_are_left_out_and_diverged_count_as_not_path_integrating():
    extra = runs("targets", "dos", 4, status="failed", score=0.0)
    assert decide("R2", *targets(), extra).verdict == REPRODUCED
    div = runs("targets", "cartesian", 4, status="diverged", err=np.nan)
    r = decide("R1", *targets(), div)
    pl = next(m for m in r.measured if m.key == "p_low")
    assert pl.estimate.value == pytest.approx(20 / 24)


# ---------------------------------------------------------------------------- R3
def sigma_runs(slope=6.0, n=4):
    return [runs("sigma", "dos", n, sigma=s, score=1.2, spacing=slope * s) for s in (0.08, 0.12, 0.16, 0.20)]


def modules(ratios=None, p=0.8, n_units=20):
    return pd.DataFrame([{"sigma": s, "n_units": n_units, "modes_m": [6 * s], "mode_ratios": ratios or [],
                          "p_multimodal": p, "median_spacing_m": 6 * s} for s in (0.08, 0.12, 0.16, 0.20)])


def test_r3():
    assert decide("R3", *sigma_runs(), modules=modules()).verdict == REPRODUCED
    assert decide("R3", *sigma_runs(), modules=modules([1.42], p=1e-4)).verdict == NOT_REPRODUCED
    assert decide("R3", *sigma_runs(slope=-3.0), modules=modules()).verdict == NOT_REPRODUCED
    res = decide("R3", *sigma_runs(), modules=modules(p=np.nan))
    assert res.verdict == INCONCLUSIVE and "no multimodality test" in res.reason
    res = decide("R3", *sigma_runs(), modules=modules(n_units=1))
    assert res.verdict == INCONCLUSIVE and "at least 5 units" in res.reason


# ---------------------------------------------------------------------------- R4
def test_r4():
    ring = {"dos": True, "cartesian": False, "polar_highdim": False, "gaussian": False, "dog_equinorm": False}

    def attach(frames, ratio=1.0):
        out = []
        for f in frames:
            c = f["condition"].iloc[0]
            f = f.assign(has_ring=ring.get(c, True))
            pred = 6.0 * f["sigma"] / ratio if ring.get(c, True) else np.nan
            out.append(f.assign(predicted_spacing_m=pred))
        return out

    good = attach(targets() + sigma_runs())
    assert decide("R4", *good).verdict == REPRODUCED
    assert decide("R4", *attach(targets() + sigma_runs(), ratio=3.0)).verdict == NOT_REPRODUCED
    flipped = attach(targets(dos_score=0.1, polar_score=1.3) + sigma_runs())
    assert decide("R4", *flipped).verdict == NOT_REPRODUCED
    assert decide("R4", *targets()).verdict == INCONCLUSIVE  # no theory attached
    # a ring-less kind that never path-integrates is left out of (a), and named
    fr = targets()
    fr[2] = runs("targets", "polar_highdim", 4, err=40.0)
    res = decide("R4", *attach(fr + sigma_runs()))
    assert res.verdict == REPRODUCED and "left out" in res.reason and "polar" in res.reason


# ---------------------------------------------------------------------------- R5
def _frac(v):
    return lambda seed: v + 0.01 * seed


def pct(values, sigmas, n=4):
    return [runs("sigma", "dos", n, sigma=s, frac=_frac(v)) for s, v in zip(sigmas, values, strict=True)]


def test_r5():
    fine = [0.10, 0.11, 0.12, 0.13, 0.14]
    assert decide("R5", *pct([0.3, 0.05, 0.3, 0.05, 0.3], fine)).verdict == REPRODUCED
    res = decide("R5", *pct([0.3, 0.3, 0.3, 0.3, 0.3], fine))
    assert res.verdict == NOT_REPRODUCED
    res = decide("R5", *pct([0.3, 0.3, 0.3], [0.08, 0.12, 0.16]))
    assert res.verdict == INCONCLUSIVE and "coarser" in res.reason


# ---------------------------------------------------------------------------- R6, B2
def mf(het_score=0.1, het_err=6.0, single_score=1.2, hom_score=1.2):
    return [runs("multifield", "homogeneous", score=hom_score, err=lambda s: 5.0 + 0.3 * s),
            runs("multifield", "heterogeneous", score=het_score, err=lambda s: het_err + 0.3 * s),
            runs("multifield", "multifield_single_scale", score=single_score)]


def test_r6_and_b2():
    assert decide("R6", *mf()).verdict == REPRODUCED
    assert decide("R6", *mf(het_score=1.2)).verdict == NOT_REPRODUCED
    res = decide("R6", *mf(het_err=9.9 + 30))
    assert res.verdict == NOT_REPRODUCED and "path integration is affected" in res.reason
    assert decide("R6", *mf(hom_score=0.1)).verdict == INCONCLUSIVE
    nobody = [f.assign(decoding_error_cm=90.0) for f in mf(het_err=120.0)]
    assert decide("R6", *nobody).verdict == INCONCLUSIVE  # nothing path-integrates: nothing to compare
    assert decide("B2", *mf()).verdict == REPRODUCED
    assert decide("B2", *mf(single_score=0.1)).verdict == NOT_REPRODUCED


# ---------------------------------------------------------------------------- R7, B1
def dog(eq=0.1, ui=1.2, dos=1.2):
    return [runs("dog", "dos", score=dos), runs("dog", "dog_equinorm", score=eq), runs("dog", "dog_unit_integral", score=ui)]


def test_r7_and_b1():
    assert decide("R7", *dog()).verdict == REPRODUCED
    assert decide("R7", *dog(eq=1.2)).verdict == NOT_REPRODUCED
    assert decide("R7", *dog(dos=0.1)).verdict == INCONCLUSIVE
    assert decide("B1", *dog()).verdict == REPRODUCED
    assert decide("B1", *dog(ui=0.1)).verdict == NOT_REPRODUCED
    amp = runs("dog", "amplitude_ratio", 2, score=lambda s: 1.3 if s == 0 else 0.1, amplitude_ratio=4.0)
    res = decide("R7", *dog(), amp)
    assert any(m.value == "1 of 2" for m in res.measured)


# ---------------------------------------------------------------------------- P
def pred_table(slope=0.05, model_bonus=0.0, n=4):
    rows = []
    for s in range(n):
        pr = 2.0 + 3 * s
        rows.append({"role": "model", "model": f"m{s}", "seed": s, "condition": "rnn", "participation_ratio": pr,
                     "median_r": 0.2 + slope * pr + model_bonus})
        for k, f in enumerate((0.9, 1.1)):
            rows.append({"role": "null_model", "model": f"m{s}", "seed": s, "condition": "rnn",
                         "participation_ratio": pr * f, "median_r": 0.2 + slope * pr * f + 0.001 * k})
    return pd.DataFrame(rows)


def test_p():
    assert decide("P", *targets(), predictivity=pred_table()).verdict == REPRODUCED
    assert decide("P", *targets(), predictivity=pred_table(model_bonus=0.3)).verdict == NOT_REPRODUCED
    assert decide("P", *targets(), predictivity=pred_table(model_bonus=0.02)).verdict == REPRODUCED  # < p_margin
    assert decide("P", *targets(), predictivity=pred_table(slope=-0.05)).verdict == NOT_REPRODUCED
    assert decide("P", *targets(), predictivity=pred_table(n=2)).verdict == INCONCLUSIVE
    assert decide("P", *targets()).verdict == INCONCLUSIVE


def test_evaluate_all_decides_every_claim():
    res = evaluate_all(pd.concat(targets() + mf() + dog(), ignore_index=True), RULE)
    assert set(res) == {"R1", "R2", "R3", "R4", "R5", "R6", "R7", "B1", "B2", "P"}
    for r in res.values():
        assert r.verdict in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE) and r.reason and r.rule


def test_docs_print_every_rule_verbatim():
    """docs/reproduce.md states the rules the code applies (regenerate the section when a rule changes)."""
    from pathlib import Path

    from gridsweep.reproduce.verdicts import RULE_TEXT

    doc = Path(__file__).parent.parent / "docs" / "reproduce.md"
    if not doc.exists():
        pytest.skip("docs/reproduce.md not in this checkout")
    text = " ".join(doc.read_text().split())
    for cid, rule in RULE_TEXT.items():
        assert " ".join(rule.split()) in text, cid


# ---------------------------------------------------------------------------- grid criterion and its null
def test_fraction_criterion_counts_units_not_the_best_unit():
    """grid_min_fraction: a run has grid units when >= that fraction of units score above grid_threshold."""
    rules = RuleParams(n_boot=400, grid_min_fraction=0.02)
    df = pd.concat([runs("targets", "dos", 2, score=1.3, **{"frac_units_above_0.8": 0.05}),
                    runs("targets", "gaussian", 2, score=1.0, **{"frac_units_above_0.8": 0.004})],
                   ignore_index=True)
    p = prepare_runs(df, rules)
    assert p.loc[p["condition"] == "dos", "has_grid"].all()
    assert not p.loc[p["condition"] == "gaussian", "has_grid"].any()  # best unit 1.0, but 1 unit in 256
    assert p["max_rule_grid"].all()  # NFL's any-unit rule would count both
    from gridsweep.reproduce.verdicts import grid_label
    assert grid_label(rules) == ">= 2% of units > 0.8" and grid_label(RULE) == "max score > 0.8"
    with pytest.raises(ValueError, match="grid_threshold"):
        RuleParams(grid_min_fraction=0.02, grid_threshold=0.5)


def test_r2_is_inconclusive_when_untrained_networks_meet_the_criterion():
    frames = targets(n=4)
    base = decide("R2", *frames)
    assert base.verdict == REPRODUCED
    null_like_dos = runs("targets", "dos", 4, score=1.2)[["trial_id", "group", "condition", "seed", "status",
                                                           "max_score60_deepmind_minmax"]]
    res = decide("R2", *frames, untrained=null_like_dos)
    assert res.verdict == INCONCLUSIVE and "untrained" in res.reason
    assert any("untrained" in m.label for m in res.measured)
    quiet = null_like_dos.assign(max_score60_deepmind_minmax=0.3)
    assert decide("R2", *frames, untrained=quiet).verdict == REPRODUCED


# ---------------------------------------------------------------------------- too few networks
@pytest.mark.parametrize("cid, frames", [
    ("R1", lambda n: targets(n=n)),
    ("R2", lambda n: targets(n=n)),
    ("R3", lambda n: sigma_runs(n=n)),
    ("R5", lambda n: pct([0.3, 0.05, 0.3, 0.05, 0.3], [0.10, 0.11, 0.12, 0.13, 0.14], n=n)),
    ("R6", lambda n: [f[f["seed"] < n] for f in mf()]),
    ("R7", lambda n: [f[f["seed"] < n] for f in dog()]),
    ("B1", lambda n: [f[f["seed"] < n] for f in dog()]),
    ("B2", lambda n: [f[f["seed"] < n] for f in mf()]),
])
def test_a_decided_verdict_needs_min_networks_per_condition(cid, frames):
    """With 4 networks per condition these tables decide; with 2 the verdict is 'inconclusive (too few networks)'."""
    extra = {"modules": modules()} if cid == "R3" else {}
    decided = decide(cid, *frames(4), **extra)
    assert decided.verdict in (REPRODUCED, NOT_REPRODUCED), decided.reason
    res = decide(cid, *frames(2), **extra)
    assert res.verdict == INCONCLUSIVE and res.qualifier == "too few networks: n=2"
    assert res.display == "inconclusive (too few networks: n=2)" and "at least 4" in res.reason


def test_p_needs_min_networks_models():
    res = decide("P", *targets(), predictivity=pred_table(n=3))
    assert res.display == "inconclusive (too few networks: n=3)"


def test_reasons_are_plain_words_with_the_deciding_numbers():
    res = decide("R1", *targets())
    assert res.reason.startswith("most path-integrate") and "20 of 20 networks path-integrate" in res.reason
    assert "min_runs" not in res.reason
    res = decide("R7", *dog())
    assert "equi-norm DoG 0 of 4, 0.00 [0.00, 0.49] vs DoS 4 of 4, 1.00 [0.51, 1.00]" in res.reason


# ---------------------------------------------------------------------------- fragility
def test_fragility_robust_and_fragile_cases():
    from gridsweep.reproduce.verdicts import fragility

    # robust: 6 networks per kind, errors far from the 10 cm cut, DoS well above any grid cut
    frames = targets(n=6)
    df = pd.concat(frames, ignore_index=True)
    base = evaluate_all(df, RULE, claims=["R2"])
    assert base["R2"].verdict == REPRODUCED
    rob = fragility(df, RULE, base)["R2"]
    assert rob["robust"] and not rob["flips"] and rob["text"].startswith("robust")
    assert len(rob["checks"]) == 6 + 4  # six seeds left out one at a time, two cuts moved both ways
    assert "any one of its 6 seeds (0, 1, 2, 3, 4, 5) is left out" in rob["text"]
    # seeds that only other groups have do not bear on R2 and are not counted as its seeds
    other = df[df["seed"] < 2].assign(group="sigma", seed=lambda d: d["seed"] + 10,
                                      trial_id=lambda d: d["trial_id"].astype(str) + "x")
    rob = fragility(pd.concat([df, other], ignore_index=True), RULE, base)["R2"]
    assert len(rob["checks"]) == 8 + 4 and sum(c["bears"] for c in rob["checks"] if "bears" in c) == 6
    assert "any one of its 6 seeds (0, 1, 2, 3, 4, 5) is left out" in rob["text"]
    # a claim without networks in the sweep (R3 reads the sigma group) is not called robust
    r3 = fragility(df, RULE, evaluate_all(df, RULE, claims=["R3"]))["R3"]
    assert r3["text"] == "not tested (no networks for this claim)" and not r3["flips"]
    # fragile (a): DoS errors at 9.5 cm: the 9 cm error cut leaves DoS without low-error networks
    df = pd.concat(targets(n=6, dos_err=9.5), ignore_index=True)
    rob = fragility(df, RULE, evaluate_all(df, RULE, claims=["R2"]))["R2"]
    assert not rob["robust"] and rob["flips"] == [{"change": "error cut 9 cm", "verdict": INCONCLUSIVE}]
    assert "becomes inconclusive with error cut 9 cm" in rob["text"]
    # fragile (b): exactly min_networks per kind: leaving out any seed makes it too few
    df = pd.concat(targets(n=4), ignore_index=True)
    rob = fragility(df, RULE, evaluate_all(df, RULE, claims=["R2"]))["R2"]
    assert {c["change"] for c in rob["flips"]} == {f"seed {s} left out" for s in range(4)}
    assert rob["text"] == "fragile: becomes inconclusive when seed 0 or 1 or 2 or 3 is left out"
    # fragile (c): DoS max scores at 0.85 pass the 0.8 cut but not 0.88
    df = pd.concat(targets(n=6, dos_score=0.85), ignore_index=True)
    rob = fragility(df, RULE, evaluate_all(df, RULE, claims=["R2"]))["R2"]
    assert [c["change"] for c in rob["flips"]] == ["score cut 0.88"]


def test_fraction_criterion_moves_the_fraction_cut():
    from gridsweep.reproduce.verdicts import perturbations

    names = [n for n, _ in perturbations(RuleParams(grid_min_fraction=0.02))]
    assert names == ["error cut 9 cm", "error cut 11 cm", "fraction cut 1.8%", "fraction cut 2.2%"]
    moved = dict(perturbations(RuleParams()))
    assert moved["score cut 0.72"].grid_threshold == pytest.approx(0.72)


# ---------------------------------------------------------------------------- scoring protocols
def test_grid_claims_under_either_protocol():
    from gridsweep.reproduce.verdicts import has_protocol

    frames = targets()
    df = pd.concat(frames, ignore_index=True)
    assert not has_protocol(df, "nfl")
    assert evaluate_all(df, RULE, "nfl", claims=["R2"])["R2"].verdict == INCONCLUSIVE  # no NFL columns: no grids
    # under NFL's protocol every kind scores like DoS: the same runs, another verdict
    df["nfl_max_score60_deepmind_minmax"] = 1.3
    assert has_protocol(df, "nfl")
    dm = evaluate_all(df, RULE, "deepmind", claims=["R2"])["R2"]
    nfl = evaluate_all(df, RULE, "nfl", claims=["R2"])["R2"]
    assert (dm.verdict, dm.protocol) == (REPRODUCED, "deepmind")
    assert (nfl.verdict, nfl.protocol) == (NOT_REPRODUCED, "nfl")
    # each protocol reads its own untrained null
    null = runs("targets", "dos", 4, score=0.3).assign(nfl_max_score60_deepmind_minmax=1.3)
    res = evaluate_all(df.assign(nfl_max_score60_deepmind_minmax=np.where(df["condition"] == "dos", 1.3, 0.1)),
                       RULE, "nfl", claims=["R2"], untrained=null)["R2"]
    assert res.verdict == INCONCLUSIVE and "untrained" in res.reason
