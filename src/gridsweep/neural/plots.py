"""Figures of the neural-predictivity comparison (docs/science.md section 7)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridsweep.errors import DataError

__all__ = ["plot_predictivity_vs_pr"]


def plot_predictivity_vs_pr(
    df: pd.DataFrame,
    *,
    y: str = "median_r",
    x: str = "participation_ratio",
    ax: Any = None,
    logx: bool = True,
    title: str | None = None,
) -> tuple[Any, Any]:
    """Predictivity against participation ratio, models and nulls together.

    Parameters
    ----------
    df : pandas.DataFrame
        :func:`predictivity_vs_dimension` output.
    y : str
        ``"median_r"`` or ``"median_normalized_r"``.
    x : str
        ``"participation_ratio"`` (the matched PR), ``"pr_covariance"`` or
        ``"pr_standardized"``.
    ax : matplotlib Axes, optional
    logx : bool

    Returns
    -------
    (fig, ax)
        Models are large labelled stars; nulls are markers per family, joined to the
        model they are matched to by dotted lines (sweeps by solid lines).
    """
    import matplotlib.pyplot as plt

    for col in ("role", x, y, "name", "model", "null_kind"):
        if col not in df.columns:
            raise DataError(f"plot_predictivity_vs_pr: column {col!r} missing; columns: {list(df.columns)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.5))
    else:
        fig = ax.figure
    markers = {"smooth_fields": "o", "random_fourier": "s", "pca_truncated": "^", "untrained": "D"}
    colors = {"smooth_fields": "tab:blue", "random_fourier": "tab:orange", "pca_truncated": "tab:green", "untrained": "tab:purple"}
    models = df[df["role"] == "model"]
    nulls = df[df["role"] == "null_model"]
    seen: set[str] = set()
    for (mname, kind), grp in nulls.groupby(["model", "null_kind"], sort=False):
        grp = grp.sort_values(x)
        label = None if kind in seen else str(kind)
        seen.add(str(kind))
        c = colors.get(str(kind), "0.5")
        ax.scatter(grp[x], grp[y], marker=markers.get(str(kind), "x"), color=c, alpha=0.7, label=label, zorder=2)
        if grp["param"].nunique() > 1 and not grp["pr_matched"].any():
            ax.plot(grp[x], grp[y], "-", color=c, alpha=0.4, zorder=1)
        mrow = models[models["name"] == mname]
        if len(mrow):
            for _, r in grp[grp["pr_matched"]].iterrows():
                ax.plot([mrow[x].iloc[0], r[x]], [mrow[y].iloc[0], r[y]], ":", color=c, alpha=0.6, zorder=1)
    ax.scatter(models[x], models[y], marker="*", s=180, color="k", label="models", zorder=3)
    for _, r in models.iterrows():
        ax.annotate(str(r["name"]), (r[x], r[y]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if logx:
        from matplotlib.ticker import ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
    xlabel = {"pr_covariance": "participation ratio (covariance of rate maps)",
              "pr_standardized": "participation ratio (z-scored rate maps)"}
    if x == "participation_ratio" and "pr_standardized" in df.columns and np.allclose(df[x], df["pr_standardized"], equal_nan=True):
        x_label = xlabel["pr_standardized"]
    elif x == "participation_ratio" and "pr_covariance" in df.columns:
        x_label = xlabel["pr_covariance"]
    else:
        x_label = xlabel.get(x, x)
    ax.set_xlabel(x_label)
    ax.set_ylabel({"median_r": "predictivity (median held-out r)", "median_normalized_r": "predictivity (median r / ceiling)"}.get(y, y))
    ax.set_title(title or "Predictivity vs dimensionality (models and matched nulls)")
    ax.legend(fontsize=8, loc="best")
    return fig, ax
