"""Stand-in reproduction sweep directories for the reproduce tests (no training).

``make_fake_sweep`` writes what ``gridsweep reproduce`` would leave behind: the
manifest, a real results store (``gridsweep.sweeps.TrialStore``) with one row per trial
and the metrics ``metric_fn`` chooses, and per-trial ``analysis/units.parquet`` and
``analysis/ratemaps.npz``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from gridsweep.reproduce.data import write_manifest
from gridsweep.reproduce.presets import load_preset
from gridsweep.reproduce.run import build_spec


def ideal_metrics(mem: dict[str, Any], seed: int) -> dict[str, Any]:
    """Numbers as NFL reports them: everything path-integrates, only DoS (and the
    rebuttal's unit-integral DoG and single-scale multi-field cells) has grid units."""
    cond = mem["condition"]
    grid = cond in ("dos", "dog_unit_integral", "homogeneous", "multifield_single_scale", "rnn", "gru")
    sigma = mem.get("sigma") or 0.12
    rng = np.random.default_rng(seed)
    return {
        "decoding_error_cm": 5.0 + rng.random(),
        "max_score60_deepmind_minmax": 1.1 + 0.1 * rng.random() if grid else 0.2 + 0.1 * rng.random(),
        "frac_units_above_0.3": (0.4 if grid else 0.02) + 0.05 * rng.random(),
        "frac_units_above_0.37": 0.3 if grid else 0.01, "frac_units_above_0.8": 0.2 if grid else 0.0,
        "frac_units_above_1.15": 0.05 if grid else 0.0,
        "median_spacing_m_above_0.8": 6.3 * sigma * (1 + 0.02 * rng.standard_normal()) if grid else float("nan"),
        "score_variant": "deepmind_minmax",
    }


def _unit_files(trial_dir: Path, m: dict[str, Any], seed: int, n_units: int = 12, bins: int = 20) -> None:
    rng = np.random.default_rng(seed)
    a = trial_dir / "analysis"
    a.mkdir(parents=True, exist_ok=True)
    top = m["max_score60_deepmind_minmax"]
    scores = np.sort(rng.uniform(-0.3, top, n_units))[::-1]
    scores[0] = top
    sp = m["median_spacing_m_above_0.8"]
    spacing = np.where(scores > 0.8, (sp if np.isfinite(sp) else 0.5) * (1 + 0.03 * rng.standard_normal(n_units)),
                       np.nan)
    pd.DataFrame({"unit": np.arange(n_units), "score60_deepmind_minmax": scores, "spacing_m": spacing}).to_parquet(
        a / "units.parquet")
    x = np.linspace(-1.1, 1.1, bins)
    X, Y = np.meshgrid(x, x)
    maps = np.stack([np.cos(X * (3 + u)) + np.cos(Y * (2 + u)) + 0.1 * rng.standard_normal(X.shape)
                     for u in range(n_units)])
    np.savez_compressed(a / "ratemaps.npz", maps=maps.astype(np.float32), occupancy=np.ones((bins, bins)),
                        extent=np.array([-1.1, 1.1, -1.1, 1.1]), bin_size_m=np.array(2.2 / bins))


def make_fake_sweep(root: Path, preset: str = "tiny",
                    metric_fn: Callable[[dict[str, Any], int], dict[str, Any]] = ideal_metrics,
                    status_fn: Callable[[dict[str, Any]], str] | None = None, seeds: int | None = None,
                    rules: dict[str, Any] | None = None) -> Path:
    """A reproduction sweep directory for ``preset`` filled with stand-in results.

    ``seeds`` overrides the preset's number of seeds (verdicts other than inconclusive
    need ``min_networks`` = 4 networks per condition); ``rules`` updates its rule parameters.
    """
    from gridsweep.sweeps import TrialStore

    p = load_preset(preset)
    if seeds is not None:
        p = p.model_copy(update={"seeds": seeds})
    if rules:
        p = p.model_copy(update={"rules": p.rules.model_copy(update=rules)})
    spec, memberships, base, text = build_spec(p)
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, p, base, memberships, text)
    first = {}
    for mem in memberships:
        first.setdefault(mem["trial_id"], mem)
    with TrialStore(root) as store:
        store.add_trials({"trial_id": t.trial_id, "config": t.config.to_dict(), "params": t.params,
                          "ensemble_key": "k", "spec_index": t.index} for t in spec.expand())
        ids = [t.trial_id for t in spec.expand()]
        store.claim(ids)
        results = []
        for i, tid in enumerate(ids):
            mem = first[tid]
            m = metric_fn(mem, 1000 * int(mem["seed"]) + i)
            status = status_fn(mem) if status_fn else "done"
            _unit_files(root / "trials" / tid, m, i)
            results.append({"trial_id": tid, "status": status, "metrics": m if status == "done" else {},
                            "seconds": 1.0, "ensemble_size": 1})
        store.record(results)
    return root


def set_metric(sweep_dir: Path, where: Callable[[dict[str, Any]], bool], metric: str, value: float) -> int:
    """Overwrite a stored metric of the trials whose first membership matches ``where``."""
    import sqlite3

    man = json.loads((sweep_dir / "reproduce" / "manifest.json").read_text())
    ids = sorted({m["trial_id"] for m in man["memberships"] if where(m)})
    con = sqlite3.connect(sweep_dir / "sweep.db")
    with con:
        for tid in ids:
            con.execute(f'UPDATE trials SET "m_{metric}" = ? WHERE trial_id = ?', (value, tid))
    con.close()
    return len(ids)
