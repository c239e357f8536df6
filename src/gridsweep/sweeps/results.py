"""Reading a sweep's results: one table, a status summary, and the NFL-style queries.

:func:`load_results` gives one row per trial: the store's bookkeeping columns, every
final metric (the names the hooks returned), and the resolved config flattened to
dotted column names (``model.hidden_size``, ``target.sigma``, ...).
:func:`summarise` answers the study's questions directly, e.g. "fraction of trials
with decoding error < 10 cm, and among those, with a unit above grid score 0.8".
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gridsweep.errors import StoreError
from gridsweep.files import atomic_path
from gridsweep.sweeps.store import METRIC_PREFIX, TrialStore

__all__ = ["load_results", "export_results", "summarise", "sweep_status", "score_column", "flatten",
           "BOOKKEEPING_COLUMNS"]

BOOKKEEPING_COLUMNS = ["trial_id", "status", "attempts", "seconds", "ensemble_size", "error", "created", "started",
                       "finished", "ensemble_key", "spec_index", "task_id"]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> dotted keys; lists and tuples become JSON strings (one scalar per cell)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def load_results(sweep_dir: str | Path, status: str | None = None) -> pd.DataFrame:
    """One row per trial: bookkeeping, metrics, then the flattened config."""
    with TrialStore(sweep_dir, create=False) as store:
        rows = store.rows(status)
        metric_names = list(store.metric_columns)
    records = []
    mcols = [m if m not in BOOKKEEPING_COLUMNS else f"metric.{m}" for m in metric_names]
    ccols: list[str] = []
    for r in rows:
        rec: dict[str, Any] = {c: r.get(c) for c in BOOKKEEPING_COLUMNS}
        for m, mc in zip(metric_names, mcols):
            rec[mc] = r.get(METRIC_PREFIX + m)
        for k, v in flatten(json.loads(r["config"])).items():
            key = k if k not in rec else f"config.{k}"
            if key not in ccols:
                ccols.append(key)
            rec[key] = v
        records.append(rec)
    if not records:
        df = pd.DataFrame(columns=BOOKKEEPING_COLUMNS + mcols)
    else:
        df = pd.DataFrame.from_records(records)
    for m in mcols:  # SQLite NULL (e.g. a NaN metric) -> NaN for numeric columns
        if m in df and len(df) and df[m].map(lambda x: x is None or isinstance(x, (int, float))).all():
            df[m] = pd.to_numeric(df[m], errors="coerce")
    df.attrs["metric_columns"] = mcols
    df.attrs["config_columns"] = ccols
    return df


def export_results(sweep_dir: str | Path, to: str | Path) -> Path:
    """Write :func:`load_results` to ``.parquet`` or ``.csv`` (by suffix); returns the path."""
    to = Path(to)
    df = load_results(sweep_dir)
    to.parent.mkdir(parents=True, exist_ok=True)
    if to.suffix not in (".parquet", ".csv"):
        raise StoreError(f"--to {to}: expected a .parquet or .csv file")
    with atomic_path(to, checksum=True) as tmp:
        _write_table(df, to, tmp)
    return to


def _write_table(df: pd.DataFrame, to: Path, tmp: Path) -> None:
    if to.suffix == ".parquet":
        obj = [c for c in df.columns if df[c].dtype == object]
        for c in obj:  # one type per column for parquet: mixed columns as strings
            types_ = {type(x) for x in df[c] if x is not None and not (isinstance(x, float) and math.isnan(x))}
            if len(types_) > 1:
                df[c] = df[c].map(lambda x: None if x is None else str(x))
        df.to_parquet(tmp, index=False)
    elif to.suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        raise StoreError(f"--to {to}: expected a .parquet or .csv file")


def score_column(df: pd.DataFrame, variant: str | None = None) -> str | None:
    """The max-grid-score column: ``max_score60_<variant>`` (default NFL's deepmind_minmax)."""
    if variant:
        col = f"max_score60_{variant}"
        return col if col in df.columns else None
    if "max_score60_deepmind_minmax" in df.columns:
        return "max_score60_deepmind_minmax"
    cands = sorted(c for c in df.columns if c.startswith("max_score60_"))
    return cands[0] if cands else None


def summarise(df: pd.DataFrame, *, error_cm: float = 10.0, score: float = 0.8, score_col: str | None = None,
              by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The NFL queries over a results table (one row per group of ``by``, or one row ``all``).

    Columns: ``n_trials``, ``n_done``, ``n_diverged``, ``n_failed``, ``n_pending``;
    among trials that finished training (done + diverged): ``frac_low_error``
    (decoding error < ``error_cm``), ``frac_grid`` (max grid score > ``score``),
    ``frac_low_error_and_grid`` (both) and ``frac_grid_given_low_error``
    (P(grid | low error), NFL Fig. 2); plus ``median_decoding_error_cm`` and
    ``median_max_score``. Grid fractions are NaN when no score column exists (trials
    run without the grid-score analysis).

    Examples
    --------
    >>> df = pd.DataFrame({"status": ["done"] * 4, "decoding_error_cm": [5, 8, 30, 2.0],
    ...                    "max_score60_deepmind_minmax": [0.9, 0.1, 0.95, 0.2]})
    >>> s = summarise(df)
    >>> float(s.loc["all", "frac_low_error"]), float(s.loc["all", "frac_grid_given_low_error"])
    (0.75, 0.3333333333333333)
    """
    col = score_col or score_column(df)
    keys = [by] if isinstance(by, str) else list(by or [])

    def one(g: pd.DataFrame) -> dict[str, Any]:
        st = g["status"] if "status" in g else pd.Series(["done"] * len(g), index=g.index)
        fin = g[st.isin(["done", "diverged"])]
        err = pd.to_numeric(fin["decoding_error_cm"], errors="coerce") if "decoding_error_cm" in fin else \
            pd.Series(np.nan, index=fin.index)
        low = (err < error_cm).to_numpy()  # NaN (diverged) -> False
        out: dict[str, Any] = {
            "n_trials": len(g), "n_done": int((st == "done").sum()), "n_diverged": int((st == "diverged").sum()),
            "n_failed": int((st == "failed").sum()), "n_pending": int(st.isin(["pending", "running"]).sum()),
            "frac_low_error": float(low.mean()) if len(fin) else np.nan,
            "median_decoding_error_cm": float(err.median()) if len(fin) else np.nan,
        }
        if col is not None and col in fin:
            sc = pd.to_numeric(fin[col], errors="coerce")
            grid = (sc > score).to_numpy()
            out["frac_grid"] = float(grid.mean()) if len(fin) else np.nan
            out["frac_low_error_and_grid"] = float((low & grid).mean()) if len(fin) else np.nan
            out["frac_grid_given_low_error"] = float(grid[low].mean()) if low.any() else np.nan
            out["median_max_score"] = float(sc.median()) if len(fin) else np.nan
        else:
            for k in ("frac_grid", "frac_low_error_and_grid", "frac_grid_given_low_error", "median_max_score"):
                out[k] = np.nan
        return out

    if not keys:
        res = pd.DataFrame([one(df)], index=pd.Index(["all"], name="group"))
    else:
        parts = {name if len(keys) > 1 else (name[0] if isinstance(name, tuple) else name): one(g)
                 for name, g in df.groupby(keys, dropna=False, sort=True)}
        res = pd.DataFrame.from_dict(parts, orient="index")
        res.index.name = ",".join(keys)
    res.attrs.update(error_cm=error_cm, score=score, score_col=col)
    return res


def sweep_status(sweep_dir: str | Path, top: int = 10) -> dict[str, Any]:
    """Counts by status, ETA and the best trials (used by ``gridsweep sweep status``)."""
    with TrialStore(sweep_dir, create=False) as store:
        counts = store.counts()
        name = store.get_meta("name", Path(sweep_dir).name)
        last = store.get_meta("last_run", {}) or {}
    df = load_results(sweep_dir)
    fin = df[df["status"].isin(["done", "diverged"])] if len(df) else df
    secs = pd.to_numeric(fin["seconds"], errors="coerce").dropna() if len(fin) else pd.Series(dtype=float)
    remaining = counts["pending"] + counts["running"]
    workers = max(1, int(last.get("workers", 1) or 1))
    eta = float(secs.mean() * remaining / workers) if len(secs) and remaining else (0.0 if not remaining else None)
    info: dict[str, Any] = {"name": name, "counts": counts, "total": int(sum(counts.values())),
                            "mean_trial_seconds": float(secs.mean()) if len(secs) else None,
                            "eta_seconds": eta, "workers": workers, "best_by_error": None, "best_by_score": None}
    show = ["trial_id", "decoding_error_cm"]
    col = score_column(df) if len(df) else None
    if col:
        show.append(col)
    swept = _swept_columns(df)
    show += [c for c in swept if c not in show]
    done = df[df["status"] == "done"] if len(df) else df
    if len(done) and "decoding_error_cm" in done:
        info["best_by_error"] = done.sort_values("decoding_error_cm", na_position="last")[show].head(top)
    if len(done) and col:
        info["best_by_score"] = done.sort_values(col, ascending=False, na_position="last")[show].head(top)
    info["score_col"] = col
    return info


def _swept_columns(df: pd.DataFrame) -> list[str]:
    """Config columns whose value varies across trials (the swept parameters)."""
    if not len(df):
        return []
    start = df.attrs.get("config_columns") or [c for c in df.columns if "." in c]
    out = []
    for c in start:
        try:
            if df[c].nunique(dropna=False) > 1:
                out.append(c)
        except TypeError:
            pass
    return [c for c in out if c != "name"][:6]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f} days"
