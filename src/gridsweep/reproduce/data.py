"""From a reproduction sweep directory to the tables the verdict rules read.

A reproduction sweep directory is an ordinary sweep directory (docs/sweeps.md:
``sweep.db``, ``trials/<trial_id>/``) plus ``reproduce/``::

    reproduce/manifest.json   the preset (resolved), the base config, and one row per
                              (trial, group, condition) membership
    reproduce/spec.yaml       the generated sweep spec (one spec: base + explicit cases)

:func:`load_runs` joins the memberships with the store's rows (status and metrics), so
every number a verdict uses is read from the store at report time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from gridsweep.errors import CorruptFileError, GridsweepError
from gridsweep.files import atomic_path, load_npz, read_json, read_parquet, write_text_atomic
from gridsweep.reproduce.presets import Preset

__all__ = ["MANIFEST", "load_manifest", "write_manifest", "load_runs", "trial_configs", "spacing_table",
           "theory_table", "predictivity_table", "untrained_table", "load_unit_table", "load_ratemaps",
           "ReproductionError"]

MANIFEST = Path("reproduce") / "manifest.json"
METRICS = ("decoding_error_cm", "max_score60_deepmind_minmax", "frac_units_above_0.3", "frac_units_above_0.37",
           "frac_units_above_0.8", "frac_units_above_1.15", "median_spacing_m_above_0.8", "score_variant")


class ReproductionError(GridsweepError):
    """A reproduction sweep directory that cannot be reported on."""


def write_manifest(sweep_dir: Path, preset: Preset, base: dict[str, Any], memberships: list[dict[str, Any]],
                   spec_text: str) -> Path:
    d = Path(sweep_dir) / "reproduce"
    d.mkdir(parents=True, exist_ok=True)
    (d / "spec.yaml").write_text(spec_text)
    path = Path(sweep_dir) / MANIFEST
    man: dict[str, Any] = {"format": 1, "preset": preset.model_dump(mode="json"), "base": base,
                           "memberships": memberships}
    if path.exists():  # what earlier calls recorded about the run: who trained it, how long it took
        old = read_json(path)
        man.update({k: old[k] for k in ("environment", "timing") if k in old})
    write_text_atomic(path, json.dumps(man, indent=1), checksum=True)
    return path


def load_manifest(sweep_dir: str | Path) -> dict[str, Any]:
    path = Path(sweep_dir) / MANIFEST
    if not Path(sweep_dir).is_dir():
        raise ReproductionError(f"{sweep_dir}: no such directory")
    if not path.exists():
        raise ReproductionError(f"{sweep_dir}: not a reproduction sweep directory (no {MANIFEST}); "
                                "create one with `gridsweep reproduce --preset tiny|quick|full --out DIR`")
    try:
        return read_json(path)
    except CorruptFileError as err:
        raise ReproductionError(f"unreadable manifest: {err}") from None


def _store_results(sweep_dir: Path) -> pd.DataFrame:
    from gridsweep.sweeps import load_results

    try:
        return load_results(sweep_dir)
    except GridsweepError as err:
        raise ReproductionError(f"{sweep_dir}: cannot read the results store ({err})") from None


def load_runs(sweep_dir: str | Path, results: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per (trial, group membership) with the trial's status and metrics.

    Columns: ``trial_id, group, condition, seed, sigma, surround_width_ratio,
    amplitude_ratio, extra, base_ratio, status, trial_dir`` and the metrics of
    :data:`METRICS` (NaN where the store has none). Trials the store does not hold yet
    have status ``missing``.
    """
    sweep_dir = Path(sweep_dir)
    man = load_manifest(sweep_dir)
    mem = pd.DataFrame(man["memberships"])
    if mem.empty:
        raise ReproductionError(f"{sweep_dir}: the manifest lists no trials")
    res = _store_results(sweep_dir) if results is None else results
    keep = ["trial_id", "status", "seconds", *[m for m in METRICS if m in res.columns],
            *[c for c in res.columns if str(c).startswith("nfl_")],  # NFL's scoring protocol (verdicts.PROTOCOLS)
            *[c for c in ("ensemble_size",) if c in res.columns]]
    runs = mem.merge(res[keep], on="trial_id", how="left") if len(res) else mem.assign(status=None)
    runs["status"] = runs["status"].fillna("missing")
    for m in METRICS:
        if m not in runs.columns:
            runs[m] = np.nan if m != "score_variant" else None
        elif m != "score_variant":
            runs[m] = pd.to_numeric(runs[m], errors="coerce")
    base_ratio = (man.get("base", {}).get("target", {}) or {}).get("surround_width_ratio")
    r = pd.to_numeric(runs["surround_width_ratio"], errors="coerce")
    runs["base_ratio"] = r.isna() | (np.isclose(r.fillna(-1), base_ratio) if base_ratio is not None else r.isna())
    runs["trial_dir"] = [str(sweep_dir / "trials" / t) for t in runs["trial_id"]]
    return runs, man


def trial_configs(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{trial_id: resolved config dict}`` from the store."""
    from gridsweep.sweeps import TrialStore

    with TrialStore(sweep_dir, create=False) as store:
        return {r["trial_id"]: json.loads(r["config"]) for r in store.rows()}


def load_unit_table(trial_dir: str | Path) -> pd.DataFrame | None:
    p = Path(trial_dir) / "analysis" / "units.parquet"
    return read_parquet(p) if p.exists() else None


def load_ratemaps(trial_dir: str | Path) -> dict[str, np.ndarray] | None:
    p = Path(trial_dir) / "analysis" / "ratemaps.npz"
    if not p.exists():
        return None
    return load_npz(p)


# --------------------------------------------------------------------------------------
# the untrained null of the grid criterion (R1, R2)
# --------------------------------------------------------------------------------------
UNTRAINED_CACHE = Path("reproduce") / "untrained.csv"
#: The grid measures of :data:`METRICS` (what an untrained network has too).
GRID_METRICS = tuple(m for m in METRICS if m not in ("decoding_error_cm", "score_variant"))
#: The same under NFL's scoring protocol, kept when the scorer returns them.
GRID_METRICS = GRID_METRICS + tuple("nfl_" + m for m in GRID_METRICS)


def untrained_table(runs: pd.DataFrame, configs: dict[str, dict[str, Any]], sweep_dir: str | Path,
                    group: str = "targets", log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Grid measures of each trial's network *before training* (same config and seed).

    The null of the 'has grid units' criterion: a criterion that untrained networks
    meet says nothing about learning (docs/science.md section 6). One row per finished trial
    of ``group`` (``trial_id, group, condition, seed, status`` and the grid columns of
    :data:`METRICS`; no decoding error).
    Rows are cached in ``reproduce/untrained.csv`` (written atomically), so a report
    rebuilt later does not recompute them.
    """
    from gridsweep.evaluation import untrained_scores

    say = log or (lambda s: None)
    path = Path(sweep_dir) / UNTRAINED_CACHE
    cached = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["trial_id"])
    done = set(cached["trial_id"].astype(str))
    sel = runs[(runs["group"] == group) & (runs["status"] == "done")].drop_duplicates("trial_id")
    rows = []
    for _, r in sel.iterrows():
        if r["trial_id"] in done or r["trial_id"] not in configs:
            continue
        m = untrained_scores(configs[r["trial_id"]])
        rows.append({"trial_id": r["trial_id"], **{k: m.get(k, np.nan) for k in GRID_METRICS}})
    if rows:
        say(f"report: scored {len(rows)} untrained networks (the grid criterion's null)")
        cached = pd.concat([cached, pd.DataFrame(rows)], ignore_index=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            cached.to_csv(tmp, index=False)
    meta = sel[["trial_id", "group", "condition", "seed"]]
    out = meta.merge(cached.astype({"trial_id": str}), on="trial_id", how="inner")
    out["status"] = "done"
    return out


# --------------------------------------------------------------------------------------
# R3: spacing of grid units per sigma
# --------------------------------------------------------------------------------------
def unit_spacings(runs: pd.DataFrame, threshold: float = 0.8, variant: str = "deepmind_minmax") -> pd.DataFrame:
    """One row per grid unit (score > threshold, finite spacing) of the given runs:
    ``trial_id, seed, sigma, score, spacing_m``."""
    rows = []
    col = f"score60_{variant}"
    for _, r in runs.drop_duplicates("trial_id").iterrows():
        if r["status"] != "done":
            continue
        t = load_unit_table(r["trial_dir"])
        if t is None or col not in t.columns or "spacing_m" not in t.columns:
            continue
        s = t[col].to_numpy(float)
        sp = t["spacing_m"].to_numpy(float)
        ok = np.isfinite(s) & np.isfinite(sp) & (s > threshold)
        for a, b in zip(s[ok], sp[ok]):
            rows.append({"trial_id": r["trial_id"], "seed": r["seed"], "sigma": r["sigma"], "score": a,
                         "spacing_m": b})
    return pd.DataFrame(rows, columns=["trial_id", "seed", "sigma", "score", "spacing_m"])


def _modes(spacings: np.ndarray) -> dict[str, Any]:
    """KDE modes, adjacent mode ratios and the dip-test p-value of one set of spacings
    (:func:`gridsweep.analysis.spacing_modules`; the spacings are already those of grid units)."""
    from gridsweep.analysis import spacing_modules

    res = spacing_modules(np.asarray(spacings, dtype=float))
    p = res.get("dip_pvalue", math.nan)
    return {"modes_m": [float(m) for m in np.atleast_1d(res.get("modes", []))],
            "mode_ratios": [float(q) for q in np.atleast_1d(res.get("mode_ratios", []))],
            "p_multimodal": float(p) if p is not None else math.nan,
            "gmm_n_components": int(res.get("gmm_n_components", 0) or 0)}


def spacing_table(runs: pd.DataFrame, units: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """Per sigma of the sigma group: grid units, modes, adjacent mode ratios, p-value.

    Returns ``(table, problem)``; ``problem`` says why modes could not be computed.
    """
    sig = runs[(runs["group"] == "sigma") & runs["base_ratio"]]
    problem = None
    rows = []
    for s in sorted(sig["sigma"].dropna().unique()):
        ids = set(sig.loc[sig["sigma"] == s, "trial_id"])
        sp = units.loc[units["trial_id"].isin(ids), "spacing_m"].to_numpy(float)
        row: dict[str, Any] = {"sigma": float(s), "n_units": int(sp.size), "modes_m": [], "mode_ratios": [],
                               "p_multimodal": math.nan, "gmm_n_components": 0,
                               "median_spacing_m": float(np.median(sp)) if sp.size else math.nan}
        if sp.size >= 3:
            try:
                row.update(_modes(sp))
            except ImportError as err:
                problem = f"gridsweep.analysis.spacing_modules unavailable ({err})"
            except (GridsweepError, ValueError) as err:
                problem = f"spacing_modules failed at sigma {s:g}: {err}"
        rows.append(row)
    return pd.DataFrame(rows, columns=["sigma", "n_units", "modes_m", "mode_ratios", "p_multimodal",
                                       "gmm_n_components", "median_spacing_m"]), problem


# --------------------------------------------------------------------------------------
# R4: theory per target configuration
# --------------------------------------------------------------------------------------
def _target_key(cfg: dict[str, Any]) -> str:
    return json.dumps({"target": cfg.get("target"), "box": cfg.get("box")}, sort_keys=True)


def theory_table(runs: pd.DataFrame, configs: dict[str, dict[str, Any]], groups=("targets", "sigma", "dog"),
                 predict: Callable | None = None) -> tuple[pd.DataFrame, dict[str, Any], str | None]:
    """Theory predictions for the trials of ``groups``.

    Returns ``(table, spectra, problem)``: ``table`` has ``trial_id, has_ring, k_star,
    predicted_spacing_m, ring_ratio, closed_form_spacing_m``; ``spectra`` maps each
    condition of the ``targets`` and ``dog`` groups to ``(k, normalised radial power,
    k_star, has_ring)``; ``problem`` says what failed, if anything. One prediction per
    distinct (target, box) configuration, with the place-cell centres of the first
    trial holding it (the spectrum barely depends on the draw).
    """
    if predict is None:
        try:
            from gridsweep.theory import predict as theory_predict
        except ImportError as err:
            return pd.DataFrame(columns=["trial_id"]), {}, f"gridsweep.theory unavailable ({err})"
        predict = theory_predict
    sel = runs[runs["group"].isin(groups)].drop_duplicates(["trial_id", "group", "condition"])
    cache: dict[str, dict[str, Any]] = {}
    spectra: dict[str, Any] = {}
    rows = []
    problem = None
    for _, r in sel.iterrows():
        tid = r["trial_id"]
        cfg = configs.get(tid)
        if cfg is None:
            continue
        key = _target_key(cfg)
        if key not in cache:
            try:
                p = predict(cfg)
                cache[key] = {"has_ring": bool(p["has_ring"]), "k_star": float(p["k_star"]),
                              "predicted_spacing_m": float(p["spacing_m"]), "ring_ratio": float(p["ring_ratio"]),
                              "closed_form_spacing_m": float(getattr(p, "closed_form_spacing_m", math.nan))}
                spec = getattr(p, "spectrum", None)
                if spec is not None and r["group"] in ("targets", "dog") and r["condition"] not in spectra:
                    try:
                        from gridsweep.theory import radial_profile

                        k, prof = radial_profile(spec, normalise=True)
                        spectra[r["condition"]] = (np.asarray(k), np.asarray(prof), cache[key]["k_star"],
                                                   cache[key]["has_ring"])
                    except (ImportError, GridsweepError, ValueError):
                        pass
            except (GridsweepError, ValueError, KeyError) as err:
                problem = f"theory.predict failed for a {cfg.get('target', {}).get('kind')} target: {err}"
                cache[key] = {"has_ring": False, "k_star": math.nan, "predicted_spacing_m": math.nan,
                              "ring_ratio": math.nan, "closed_form_spacing_m": math.nan}
        rows.append({"trial_id": tid, **cache[key]})
    table = pd.DataFrame(rows, columns=["trial_id", "has_ring", "k_star", "predicted_spacing_m", "ring_ratio",
                                        "closed_form_spacing_m"]).drop_duplicates("trial_id")
    return table, spectra, problem


# --------------------------------------------------------------------------------------
# P: predictivity of trained networks and matched nulls on synthetic MEC recordings
# --------------------------------------------------------------------------------------
def predictivity_table(runs: pd.DataFrame, block: Any, log: Callable[[str], None] | None = None
                       ) -> tuple[pd.DataFrame, str | None]:
    """Rows of :func:`gridsweep.neural.predictivity_vs_dimension` with ``seed``,
    ``group`` and ``condition`` of each model (nulls inherit their model's)."""
    say = log or (lambda s: None)
    try:
        from gridsweep.neural import NullSpec, concat_datasets, predictivity_vs_dimension, simulate_animals
    except ImportError as err:
        return pd.DataFrame(), f"gridsweep.neural unavailable ({err})"
    sel = runs[runs["group"].isin(block.groups) & (runs["status"] == "done")].drop_duplicates("trial_id").copy()
    # the first seed of every condition first, so that a cap on models keeps every condition
    order = {g: i for i, g in enumerate(block.groups)}
    sel["_g"] = sel["group"].map(order)
    sel["_rank"] = sel.groupby(["group", "condition"]).cumcount()
    sel = sel.sort_values(["_rank", "_g"], kind="stable")
    model_maps: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any]] = {}
    extent = None
    for _, r in sel.head(block.max_models).iterrows():
        rm = load_ratemaps(r["trial_dir"])
        if rm is None or "maps" not in rm:
            continue
        maps = np.asarray(rm["maps"], dtype=float)  # NaN where unvisited: the fits exclude those bins
        finite = np.isfinite(maps).any(axis=(1, 2))
        with np.errstate(invalid="ignore"):
            spread = np.where(finite, np.nanstd(np.where(finite[:, None, None], maps, 0.0), axis=(1, 2)), 0.0)
        keep = finite & (spread > 0)
        if keep.sum() < 2:
            continue
        name = f"{r['group']}:{r['condition']}:s{r['seed']}:{str(r['trial_id'])[:6]}"
        model_maps[name] = maps[keep]
        info[name] = {"seed": int(r["seed"]), "group": r["group"], "condition": r["condition"],
                      "trial_id": r["trial_id"]}
        if extent is None and "extent" in rm:
            extent = tuple(float(x) for x in rm["extent"])
    if len(model_maps) == 0:
        return pd.DataFrame(), "no trained network has usable rate maps (analysis/ratemaps.npz)"
    width = (extent[1] - extent[0]) if extent else 2.2
    say(f"predictivity: {len(model_maps)} models, {block.n_animals} synthetic animals")
    recs = simulate_animals(block.n_animals, seed=block.seed, duration_s=block.duration_s, arena_size_m=width)
    ds = concat_datasets([r.dataset for r in recs])
    nulls = [NullSpec(k, n_draws=block.n_draws) for k in block.nulls]
    df = predictivity_vs_dimension(model_maps, ds, nulls=nulls, seed=block.seed)
    for k in ("seed", "group", "condition", "trial_id"):
        df[k] = [info.get(m, {}).get(k) for m in df["model"]]
    return df, None
