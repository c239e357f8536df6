"""Theory against trained networks: predicted versus measured grid spacing.

A trained run directory holds ``config.yaml`` and ``analysis/units.parquet`` (one row per
hidden unit with ``spacing_m`` and ``score60_<variant>``; docs/architecture.md). For each
run, the *measured* spacing is the median ``spacing_m`` of the units whose grid score
exceeds a threshold (default 0.8 in the ``deepmind_minmax`` variant, NFL's convention,
the same rule as ``gridsweep.evaluation.summary_metrics``); the *predicted* spacing is
``4 pi / (sqrt(3) k*)`` from the numerical spectrum of that run's own targets (its seed's
centres), with the closed form alongside. Runs are then grouped by target setting
(kind, sigma_E, sigma_I) to compare the theory with claim R3 of docs/science.md (period set
by the readout width).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from matplotlib.figure import Figure

from gridsweep.config import load_config
from gridsweep.errors import ConfigError, DataError

__all__ = ["find_run_dirs", "collect_runs", "summarise_by_sigma", "plot_predicted_vs_measured"]


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories under the given paths.

    Each path may be a run directory (has ``config.yaml``), a sweep directory (has
    ``trials/*/config.yaml``) or a directory whose immediate subdirectories are runs.

    Returns
    -------
    list of Path
        Sorted, without duplicates.

    Raises
    ------
    ConfigError
        A path that does not exist or holds no run directory.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ConfigError(f"runs: {str(p)!r} does not exist")
        if (p / "config.yaml").is_file():
            found.append(p)
            continue
        subs = sorted(q.parent for q in (p / "trials").glob("*/config.yaml")) if (p / "trials").is_dir() else []
        subs = subs or sorted(q.parent for q in p.glob("*/config.yaml"))
        if not subs:
            raise ConfigError(f"runs: {str(p)!r} is neither a run directory (config.yaml) nor a sweep "
                              "directory (trials/*/config.yaml) nor a directory of runs")
        found.extend(subs)
    return sorted(dict.fromkeys(found))


def _measured(units_file: Path, threshold: float, variant: str) -> tuple[float, int, int]:
    from gridsweep.files import read_parquet

    table = read_parquet(units_file)
    col = f"score60_{variant}"
    for c in (col, "spacing_m"):
        if c not in table.columns:
            raise DataError(f"{units_file}: no column {c!r}; columns are {list(table.columns)}")
    scores = table[col].to_numpy(dtype=float)
    spacing = table["spacing_m"].to_numpy(dtype=float)
    sel = np.isfinite(scores) & (scores > threshold) & np.isfinite(spacing)
    med = float(np.median(spacing[sel])) if sel.any() else math.nan
    return med, int(sel.sum()), int(len(table))


def collect_runs(paths: Iterable[str | Path], *, threshold: float = 0.8, variant: str = "deepmind_minmax",
                 numeric: bool = True, resolution: float | None = None, skip_unscored: bool = True) -> Any:
    """Predicted and measured spacing of every run under ``paths``.

    Parameters
    ----------
    paths : iterable of path
        Run, sweep or parent directories (see :func:`find_run_dirs`).
    threshold : float
        Units with ``score60_<variant> > threshold`` count towards the measured spacing.
    variant : str
        Grid-score variant whose column is used.
    numeric : bool
        Predict from the numerical spectrum of each run's targets (default; cached per
        distinct target, box and seed); False uses the closed forms only.
    resolution : float, optional
        Grid step of the numerical spectrum, metres.
    skip_unscored : bool
        Skip runs without ``analysis/units.parquet`` (else raise DataError).

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run_dir, kind, sigma_e, sigma_i, seed, predicted_spacing_m,
        predicted_k_star, has_ring, closed_form_spacing_m, measured_spacing_m,
        n_units_above, n_units``.

    Notes
    -----
    docs/science.md sections 5 (prediction) and 6 (spacing from the SAC); claim R3.
    """
    import pandas as pd

    from gridsweep.theory.predict import predict

    cache: dict[str, Any] = {}
    rows = []
    for run in find_run_dirs(paths):
        units = run / "analysis" / "units.parquet"
        if not units.is_file():
            if skip_unscored:
                continue
            raise DataError(f"{run}: no analysis/units.parquet (score the run first: gridsweep score {run})")
        cfg = load_config(run / "config.yaml")
        key = json.dumps({"t": cfg.target.model_dump(mode="json"), "b": cfg.box.model_dump(mode="json"),
                          "s": cfg.seed if numeric else 0}, sort_keys=True)
        if key not in cache:
            cache[key] = predict(cfg, numeric=numeric, resolution=resolution)
        p = cache[key]
        med, n_above, n_units = _measured(units, threshold, variant)
        rows.append({"run_dir": str(run), "kind": cfg.target.kind, "sigma_e": cfg.target.sigma,
                     "sigma_i": cfg.target.sigma_i, "seed": cfg.seed, "predicted_spacing_m": p.spacing_m,
                     "predicted_k_star": p.k_star, "has_ring": p.has_ring,
                     "closed_form_spacing_m": p.closed_form_spacing_m, "measured_spacing_m": med,
                     "n_units_above": n_above, "n_units": n_units})
    cols = ["run_dir", "kind", "sigma_e", "sigma_i", "seed", "predicted_spacing_m", "predicted_k_star", "has_ring",
            "closed_form_spacing_m", "measured_spacing_m", "n_units_above", "n_units"]
    return pd.DataFrame(rows, columns=cols)


def summarise_by_sigma(runs: Any) -> Any:
    """Group :func:`collect_runs` rows by target setting.

    Parameters
    ----------
    runs : pandas.DataFrame
        Output of :func:`collect_runs`.

    Returns
    -------
    pandas.DataFrame
        One row per (kind, sigma_e, sigma_i): ``predicted_spacing_m`` (mean over runs),
        ``closed_form_spacing_m``, ``measured_spacing_m`` (median over runs of each run's
        median), ``measured_q25`` / ``measured_q75``, ``n_runs``, ``n_runs_with_grids``,
        ``n_units_above``.
    """
    import pandas as pd

    need = {"kind", "sigma_e", "sigma_i", "predicted_spacing_m", "measured_spacing_m", "n_units_above"}
    if not isinstance(runs, pd.DataFrame) or not need <= set(runs.columns):
        raise DataError(f"runs: expected the DataFrame of collect_runs with columns {sorted(need)}")
    out = []
    keyed = runs.assign(_si=runs["sigma_i"].fillna(-1.0))
    for (kind, se, si), g in keyed.groupby(["kind", "sigma_e", "_si"], sort=True):
        m = g["measured_spacing_m"].to_numpy(dtype=float)
        fin = m[np.isfinite(m)]
        out.append({"kind": kind, "sigma_e": se, "sigma_i": None if si < 0 else si,
                    "predicted_spacing_m": float(np.nanmean(g["predicted_spacing_m"].to_numpy(dtype=float)))
                    if np.isfinite(g["predicted_spacing_m"].to_numpy(dtype=float)).any() else math.nan,
                    "closed_form_spacing_m": float(g["closed_form_spacing_m"].iloc[0]),
                    "measured_spacing_m": float(np.median(fin)) if fin.size else math.nan,
                    "measured_q25": float(np.percentile(fin, 25)) if fin.size else math.nan,
                    "measured_q75": float(np.percentile(fin, 75)) if fin.size else math.nan,
                    "n_runs": int(len(g)), "n_runs_with_grids": int(fin.size),
                    "n_units_above": int(g["n_units_above"].sum())})
    return pd.DataFrame(out)


def plot_predicted_vs_measured(runs: Any, ax: Any = None, *, summary: Any = None) -> tuple[Figure, Any]:
    """Measured against predicted spacing, one point per run, medians per setting, identity line.

    Parameters
    ----------
    runs : pandas.DataFrame
        Output of :func:`collect_runs`.
    ax : Axes, optional
    summary : pandas.DataFrame, optional
        Output of :func:`summarise_by_sigma` (computed when omitted).

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : Axes
    """
    summary = summarise_by_sigma(runs) if summary is None else summary
    if ax is None:
        fig = Figure(figsize=(4.6, 4.2), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    x = runs["predicted_spacing_m"].to_numpy(dtype=float)
    y = runs["measured_spacing_m"].to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    ax.scatter(x[ok], y[ok], s=12, alpha=0.5, color="0.4", label="runs")
    sx = summary["predicted_spacing_m"].to_numpy(dtype=float)
    sy = summary["measured_spacing_m"].to_numpy(dtype=float)
    lo = summary["measured_q25"].to_numpy(dtype=float)
    hi = summary["measured_q75"].to_numpy(dtype=float)
    sok = np.isfinite(sx) & np.isfinite(sy)
    if sok.any():
        ax.errorbar(sx[sok], sy[sok], yerr=[sy[sok] - lo[sok], hi[sok] - sy[sok]], fmt="o", color="C1",
                    ms=6, capsize=2, label="median per setting")
        for xi, yi, s in zip(sx[sok], sy[sok], summary["sigma_e"].to_numpy()[sok]):
            ax.annotate(f"sE {s:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    vals = np.r_[x[ok], y[ok], sx[sok], sy[sok]]
    lim = (0.0, 1.1 * float(vals.max())) if vals.size else (0.0, 1.5)
    ax.plot(lim, lim, "k--", lw=1, label="identity")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted spacing (m)")
    ax.set_ylabel("measured spacing (m)")
    n_missing = int((~ok).sum())
    ax.set_title("theory vs networks" + (f" ({n_missing} runs without grids or ring)" if n_missing else ""),
                 fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return fig, ax
