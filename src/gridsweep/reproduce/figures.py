"""Report figures, in the spirit of the NFL paper's.

Each ``fig_*`` function takes the prepared tables (:mod:`gridsweep.reproduce.data`,
:func:`gridsweep.reproduce.verdicts.prepare_runs`) and returns a matplotlib Figure;
:func:`save` writes it as PNG and PDF. Intervals are the same seed-bootstrap intervals
as in the verdicts (they call the same estimators).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt  # no backend forced on import: the command line sets MPLBACKEND=Agg
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gridsweep.reproduce.claims import NAYEBI_PUBLISHED, PUBLISHED_P_GRID  # noqa: E402
from gridsweep.reproduce.data import load_ratemaps, load_unit_table  # noqa: E402
from gridsweep.reproduce.presets import CONDITION_LABELS, RuleParams  # noqa: E402
from gridsweep.reproduce.stats import Estimate, bootstrap_mean  # noqa: E402
from gridsweep.reproduce.verdicts import (  # noqa: E402
    SCORE_COL,
    SPACING_COL,
    _boot,
    grid_criterion,
    grid_label,
    p_grid,
    p_low,
    prepare_runs,
)

__all__ = ["save", "fig_summary", "fig_fractions", "fig_survival", "fig_top_ratemaps", "fig_periods", "fig_pct_vs_sigma",
           "fig_theory", "fig_multifield", "fig_dog", "fig_predictivity", "placeholder"]

COLORS = {"cartesian": "#7f7f7f", "cartesian_highdim": "#bcbd22", "polar_highdim": "#17becf", "gaussian": "#2ca02c",
          "dos": "#d62728", "dog_equinorm": "#1f77b4", "dog_unit_integral": "#9467bd", "sod": "#8c564b",
          "homogeneous": "#d62728", "heterogeneous": "#1f77b4", "heterogeneous_mild": "#17becf",
          "multifield_single_scale": "#9467bd", "rnn": "#d62728", "lstm": "#1f77b4", "gru": "#2ca02c",
          "ugrnn": "#ff7f0e", "srnn": "#e377c2"}


def _label(c: str) -> str:
    return CONDITION_LABELS.get(c, c)


def save(fig: Any, out_dir: Path, name: str, dpi: int = 110) -> Path:
    """Write ``name.png`` and ``name.pdf``; returns the PNG path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    fig.savefig(out_dir / f"{name}.pdf", bbox_inches="tight")
    plt.close(fig)
    return png


def placeholder(title: str, message: str) -> Any:
    """A small figure that says why a plot is empty (the report never shows a broken image)."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.45, message, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes)
    return fig


def _err(e: Estimate) -> tuple[float, list[list[float]]]:
    if not e.defined:
        return 0.0, [[0.0], [0.0]]
    lo = e.value - e.lo if np.isfinite(e.lo) else 0.0
    hi = e.hi - e.value if np.isfinite(e.hi) else 0.0
    return e.value, [[max(lo, 0)], [max(hi, 0)]]


def _bars(ax: Any, labels: list[str], ests: list[Estimate], x0: float, width: float, color: Any,
          label: str | None = None, hatch: str | None = None) -> None:
    for i, e in enumerate(ests):
        v, yerr = _err(e)
        c = color[i] if isinstance(color, list) else color
        ax.bar(i + x0, v, width, yerr=yerr, color=c, alpha=0.85, capsize=3, hatch=hatch,
               edgecolor="k", linewidth=0.5, label=label if i == 0 else None)
        if not e.defined:
            # inside the axes, clear of the tick labels and of the neighbouring bar's count
            ax.text(i + x0, 0.04, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="0.35",
                    clip_on=True)
        elif v > 0.15:  # counts inside bars tall enough to hold them; the tick labels give every count
            ax.text(i + x0, 0.01, f"n={e.n}", ha="center", va="bottom", fontsize=6, rotation=90, color="w")


def _pl_pg_bars(ax: Any, df: pd.DataFrame, group: str, conds: list[str], rules: RuleParams, salt: str,
                published: str | None = None) -> list[pd.DataFrame]:
    """Bars of P(low error) and P(grid | low error) per condition of ``group``; returns the subsets.

    ``salt`` names the bootstrap streams (the verdicts use the same); ``published``
    labels NeurIPS Fig. 2's P(grid | low error) diamonds, when given.
    """
    subs = [df[(df["group"] == group) & (df["condition"] == c)] for c in conds]
    pl = [p_low(sub, rules, salt + c) for sub, c in zip(subs, conds)]
    pg = [p_grid(sub, rules, salt + c) for sub, c in zip(subs, conds)]
    _bars(ax, conds, pl, -0.2, 0.38, "0.75", f"P(error < {rules.low_error_cm:g} cm)")
    _bars(ax, conds, pg, 0.2, 0.38, [COLORS.get(c, "C0") for c in conds], f"P({grid_label(rules)} | low error)")
    pub = [(i, PUBLISHED_P_GRID[c]) for i, c in enumerate(conds) if c in PUBLISHED_P_GRID]
    if published and pub:
        ax.scatter([i + 0.2 for i, _ in pub], [v for _, v in pub], marker="D", color="k", zorder=5, s=25,
                   label=published)
    return subs


def _conditions(df: pd.DataFrame, group: str) -> list[str]:
    return list(dict.fromkeys(df.loc[df["group"] == group, "condition"]))


def _criterion(rules: RuleParams) -> tuple[str, float, str]:
    """(column, cut, axis label) of the 'has grid units' criterion of ``rules``."""
    col, cut = grid_criterion(rules)
    label = ("max grid score of a run (deepmind min-max)" if rules.grid_min_fraction is None
             else f"fraction of a run's units with score > {rules.grid_threshold:g}")
    return col, cut, label


VERDICT_COLORS = {"reproduced": "#2e7d32", "not reproduced": "#c62828", "inconclusive": "#616161"}


def _short(text: str, width: int = 34) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:2])


def fig_summary(claims: Any, results: dict[str, Any], rows_of: Any, max_rows: int = 6) -> Any:
    """Every claim, one panel each: published numbers (black diamonds) against this run's
    estimates (dots with 95% intervals); the panel title is the verdict.

    ``rows_of(claim, result)`` gives the comparison rows (:func:`gridsweep.reproduce.report.comparison_rows`);
    a panel shows the rows with a numeric estimate (those with a published number first).
    """
    shown = [c for c in claims if c.id in results]
    ncol = 2
    nrow = math.ceil(len(shown) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(12, 2.1 * nrow + 0.8), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, c in zip(axes.flat, shown):
        res = results[c.id]
        rows = [r for r in rows_of(c, res) if r["measured"] is not None and r["measured"].estimate is not None
                and r["measured"].estimate.defined]
        rows.sort(key=lambda r: 0 if any(n.number is not None for n in r["paper_numbers"]) else 1)
        rows = rows[:max_rows][::-1]
        ax.set_title(f"{c.id}: {res.display}", fontsize=9, color=VERDICT_COLORS.get(res.verdict, "k"), loc="left")
        if not rows:
            ax.text(0.5, 0.5, "nothing measured with an interval", ha="center", va="center", fontsize=8,
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for y, r in enumerate(rows):
            e = r["measured"].estimate
            k = 100.0 if r["measured"].pct else 1.0
            if e.has_interval:
                ax.plot([e.lo * k, e.hi * k], [y, y], color=VERDICT_COLORS.get(res.verdict, "C0"), lw=2)
            ax.plot([e.value * k], [y], "o", color=VERDICT_COLORS.get(res.verdict, "C0"), ms=5,
                    label="this run (95% interval)" if y == 0 else None)
            for n in r["paper_numbers"]:
                if n.number is not None:
                    ax.plot([n.number], [y], "D", color="k", ms=5, mfc="none" if "~" in str(n.value) else "k",
                            label="published" if y == 0 else None)
        ax.set_yticks(range(len(rows)), [_short(r["label"]) for r in rows], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(x=0.08, y=0.15)
    handles = [plt.Line2D([], [], marker="o", color="0.3", label="this run (95% interval)"),
               plt.Line2D([], [], marker="D", color="k", ls="none", label="published")]
    fig.suptitle("Paper against this run, claim by claim", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.legend(handles=handles, loc="upper right", fontsize=8, ncol=2, frameon=False)
    return fig


def fig_fractions(df: pd.DataFrame, rules: RuleParams, untrained: pd.DataFrame | None = None) -> Any:
    """R1/R2: fraction of runs with low error and with grid units, per target kind.

    Grey crosses: the same networks untrained meeting the grid criterion (its null).
    """
    conds = _conditions(df, "targets")
    if not conds:
        return placeholder("Target kinds", "no runs in group 'targets'")
    fig, ax = plt.subplots(figsize=(1.3 * len(conds) + 2.5, 3.6))
    _pl_pg_bars(ax, df, "targets", conds, rules, "targets", published="published P(grid | low error) (NeurIPS Fig. 2)")
    if untrained is not None and len(untrained):
        u = prepare_runs(untrained, rules)
        pts = [(i, float(u.loc[u["condition"] == c, "has_grid"].mean())) for i, c in enumerate(conds)
               if (u["condition"] == c).any()]
        ax.scatter([i + 0.2 for i, _ in pts], [v for _, v in pts], marker="x", color="0.35", zorder=6, s=40,
                   label=f"untrained networks: P({grid_label(rules)})")
    n_net = [int(df[(df["group"] == "targets") & (df["condition"] == c)]["trial_id"].nunique()) for c in conds]
    ax.set_xticks(range(len(conds)), [f"{_label(c)}\n({n} networks)" for c, n in zip(conds, n_net)], rotation=20,
                  ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of runs")
    ax.set_title("Path integration and grid units per target kind (95% Wilson intervals over networks)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def fig_survival(df: pd.DataFrame, rules: RuleParams, untrained: pd.DataFrame | None = None) -> Any:
    """R2: survival function of the grid criterion's quantity per target kind (low-error runs).

    The quantity is the run's max grid score (NFL) or, with ``grid_min_fraction``, its
    fraction of units above ``grid_threshold``; dashed grey: the same networks untrained.
    """
    col, thr, xlabel = _criterion(rules)
    conds = _conditions(df, "targets")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    shown = 0
    curves = [(_label(c), COLORS.get(c, None), "-",
               df.loc[(df["group"] == "targets") & (df["condition"] == c) & df["low_error"], col]) for c in conds]
    if untrained is not None and col in getattr(untrained, "columns", ()):
        curves.append(("untrained (all kinds)", "0.4", "--", untrained[col]))
    for label, color, ls, vals in curves:
        s = pd.to_numeric(vals, errors="coerce").dropna().to_numpy(float)
        if s.size == 0:
            continue
        xs = np.sort(s)
        ys = 1.0 - np.arange(xs.size) / xs.size
        pad = 0.05 * max(float(xs.max() - xs.min()), thr, 1e-3)
        ax.step(np.r_[xs.min() - pad, xs], np.r_[1.0, ys], where="post", color=color, ls=ls,
                label=f"{label} (n={xs.size})")
        shown += 1
    ax.axvline(thr, color="k", ls="--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("P(value >= x | low error)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Survival of the max grid score" if rules.grid_min_fraction is None
                 else f"Survival of the fraction of units > {rules.grid_threshold:g}", fontsize=10)
    if shown:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no low-error runs", transform=ax.transAxes, ha="center")
    return fig


def _unit_range(m: np.ndarray) -> np.ndarray:
    """A rate map scaled to its own range (0 = the unit's minimum, 1 = its maximum); NaN stays NaN."""
    m = np.asarray(m, dtype=float)
    lo, hi = np.nanmin(m), np.nanmax(m)
    return (m - lo) / (hi - lo) if np.isfinite(hi - lo) and hi > lo else np.zeros_like(m)


def _ratemap_colorbar(fig: Any, im: Any, cax: Any) -> None:
    fig.colorbar(im, cax=cax, label="activity, scaled per unit\n(0 = its minimum, 1 = its maximum)")


def _best_units(trial_dir: str, n: int) -> tuple[list[np.ndarray], list[float], tuple | None]:
    rm = load_ratemaps(trial_dir)
    t = load_unit_table(trial_dir)
    if rm is None or t is None or "score60_deepmind_minmax" not in t.columns:
        return [], [], None
    scores = t["score60_deepmind_minmax"].to_numpy(float)
    order = np.argsort(np.where(np.isfinite(scores), -scores, np.inf))[:n]
    maps = rm["maps"]
    ext = tuple(float(x) for x in rm["extent"]) if "extent" in rm else None
    return [maps[i] for i in order if i < len(maps)], [float(scores[i]) for i in order if i < len(maps)], ext


def fig_top_ratemaps(df: pd.DataFrame, group: str = "targets", n: int = 4, title: str = "") -> Any:
    """Top rate maps (by grid score) of the best run of each condition of a group.

    The best run is the one with the highest max score among low-error runs (among all
    finished runs when none path-integrates).
    """
    conds = _conditions(df, group)
    if not conds:
        return placeholder("Rate maps", f"no runs in group '{group}'")
    fig, axes = plt.subplots(len(conds), n, figsize=(1.6 * n + 2.4, 1.6 * len(conds) + 0.4), squeeze=False)
    im = None
    for row, c in enumerate(conds):
        sub = df[(df["group"] == group) & (df["condition"] == c) & (df["status"] == "done")]
        # the best run among those that path-integrate, when there are any
        low = sub["low_error"].astype(bool) if "low_error" in sub else pd.Series(False, index=sub.index)
        sub = sub.assign(_low=low).sort_values(["_low", SCORE_COL], ascending=False, na_position="last")
        maps: list[np.ndarray] = []
        scores: list[float] = []
        ext: tuple | None = None
        if len(sub):
            maps, scores, ext = _best_units(sub.iloc[0]["trial_dir"], n)
        for j in range(n):
            ax = axes[row, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(maps):
                im = ax.imshow(_unit_range(maps[j]), origin="lower", extent=ext, cmap="jet", interpolation="nearest",
                               vmin=0, vmax=1)
                ax.set_title(f"score {scores[j]:.2f}", fontsize=7, pad=2)
            else:
                ax.axis("off")
                if j == 0:
                    ax.text(0.5, 0.5, "no rate maps", ha="center", va="center", fontsize=7, transform=ax.transAxes)
        axes[row, 0].set_ylabel(_label(c), fontsize=8)
    fig.suptitle(title or "Top units (grid score) of the best run per condition", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.84, 0.97))
    if im is not None:
        _ratemap_colorbar(fig, im, fig.add_axes((0.87, 0.15, 0.025, 0.7)))
    return fig


def fig_periods(units: pd.DataFrame, table: pd.DataFrame, rules: RuleParams) -> Any:
    """R3: period distributions of grid units per sigma, with modes and adjacent-mode ratios."""
    if table is None or table.empty:
        return placeholder("Grid periods per sigma", "no sigma sweep in this reproduction")
    sig = table["sigma"].to_numpy(float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    ax = axes[0]
    cmap = plt.get_cmap("viridis")
    any_units = False
    for i, s in enumerate(sig):
        sp = units.loc[np.isclose(units["sigma"].astype(float), s), "spacing_m"].to_numpy(float) if len(units) else []
        c = cmap(i / max(1, len(sig) - 1))
        if len(sp):
            any_units = True
            ax.hist(sp, bins=np.linspace(0.1, 2.0, 39), histtype="step", color=c, lw=1.4, density=True,
                    label=f"sigma {s:.2f} m (n={len(sp)})")
            modes = table.iloc[i]["modes_m"] or []
            for m in modes:
                ax.axvline(m, color=c, ls=":", lw=1)
    ax.set_xlabel("grid period (spacing) of units with score > 0.8, m")
    ax.set_ylabel("density")
    ax.set_title("Period distributions (dotted: modes)", fontsize=10)
    if any_units:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no grid units", transform=ax.transAxes, ha="center")
    ax = axes[1]
    ok = table["n_units"] >= rules.min_units
    ax.plot(table["sigma"], table["median_spacing_m"], "o-", color="0.6", label="median period (all sigmas)")
    ax.plot(table.loc[ok, "sigma"], table.loc[ok, "median_spacing_m"], "o", color="C3",
            label=f">= {rules.min_units} grid units")
    for _, r in table.iterrows():
        ratios = r["mode_ratios"] or []
        if ratios and np.isfinite(r["median_spacing_m"]):
            ax.annotate("ratios " + ", ".join(f"{q:.2f}" for q in ratios), (r["sigma"], r["median_spacing_m"]),
                        fontsize=6, xytext=(3, 5), textcoords="offset points")
    ax.set_xlabel("readout width sigma_E, m")
    ax.set_ylabel("period, m")
    ax.text(0.02, 0.98, "published adjacent-mode ratios: 0.99-1.15 (NFL);\nbrain modules: ~1.4",
            transform=ax.transAxes, va="top", fontsize=7, color="0.3")
    ax.set_title("Period against sigma", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_pct_vs_sigma(df: pd.DataFrame, rules: RuleParams) -> Any:
    """R5: % of units above the unit threshold against sigma (mean over seeds, 95% CI)."""
    col = f"frac_units_above_{rules.unit_threshold:g}"
    sub = df[(df["group"] == "sigma") & (df["status"] == "done")]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if sub.empty or col not in sub:
        ax.text(0.5, 0.5, "no sigma sweep", transform=ax.transAxes, ha="center")
        return fig
    for ratio, g in sub.groupby(sub["surround_width_ratio"].fillna(-1.0), sort=True):
        xs, ys, lo, hi = [], [], [], []
        for s in sorted(g["sigma"].unique()):
            e = bootstrap_mean(g[g["sigma"] == s], col, **_boot(rules, f"r5{s:.4f}"))
            if e.defined:
                xs.append(s)
                ys.append(100 * e.value)
                lo.append(100 * (e.value - e.lo))
                hi.append(100 * (e.hi - e.value))
        lab = "base surround" if ratio < 0 else f"surround width ratio {ratio:g}"
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", capsize=3, label=lab)
    for s in (0.10, 0.12, 0.15):
        ax.axvline(s, color="g", alpha=0.25, lw=3)
    for s in (0.11, 0.13):
        ax.axvline(s, color="r", alpha=0.25, lw=3)
    ax.set_xlabel("readout width sigma_E, m")
    ax.set_ylabel(f"% units with score > {rules.unit_threshold:g}")
    ax.set_title("Grid units against sigma (green/red bands: NFL's peaks/dips)", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def fig_theory(df: pd.DataFrame, spectra: dict[str, Any], rules: RuleParams, box_size: float = 2.2) -> Any:
    """R4: readout spectra, predicted vs measured spacing, phase diagram with trained networks."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    if spectra:
        for c, (k, prof, kstar, ring) in spectra.items():
            ax.plot(k, prof, color=COLORS.get(c, None), label=f"{_label(c)}{' (ring)' if ring else ''}")
            if ring and np.isfinite(kstar):
                ax.axvline(kstar, color=COLORS.get(c, "k"), ls=":", lw=0.8)
        ax.axvline(2 * math.pi / box_size, color="k", ls="--", lw=0.8, label="2 pi / L")
        ax.set_xlim(0, 60)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no spectra", transform=ax.transAxes, ha="center")
    ax.set_xlabel("k, rad/m")
    ax.set_ylabel("readout power (normalised)")
    ax.set_title("Readout covariance spectra (numerical)", fontsize=10)
    ax = axes[1]
    sp = df[df["group"].isin(["sigma", "targets", "dog"]) & (df["status"] == "done")].drop_duplicates("trial_id")
    if "predicted_spacing_m" in sp:
        sp = sp[np.isfinite(sp["predicted_spacing_m"].astype(float)) & np.isfinite(sp[SPACING_COL].astype(float))]
    else:
        sp = sp.iloc[:0]
    if len(sp):
        sc = ax.scatter(sp["predicted_spacing_m"], sp[SPACING_COL], c=sp["sigma"].astype(float), cmap="viridis",
                        edgecolor="k", s=30, zorder=3)
        fig.colorbar(sc, ax=ax, label="sigma_E, m")
        lim = [0, 1.1 * float(np.nanmax([sp["predicted_spacing_m"].max(), sp[SPACING_COL].max()]))]
        ax.plot(lim, lim, "k--", lw=0.8, label="measured = predicted")
        lo, hi = rules.spacing_ratio_band
        ax.fill_between(lim, [lo * x for x in lim], [hi * x for x in lim], color="0.85", label="accepted band",
                        zorder=0)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no runs with a measured period\nand a predicted ring", transform=ax.transAxes,
                ha="center", va="center")
    ax.set_xlabel("predicted spacing 4 pi / (sqrt 3 k*), m")
    ax.set_ylabel("measured period (median over grid units), m")
    ax.set_title("Theory vs trained networks", fontsize=10)
    ax = axes[2]
    try:
        from gridsweep.theory import phase_diagram, plot_phase_diagram

        pdg = phase_diagram(np.linspace(0.05, 0.35, 61), np.linspace(1.2, 4.5, 56), kind="dos", convention="width",
                            box=_box(box_size))
        plot_phase_diagram(pdg, ax=ax, cmap="magma")
    except Exception as err:  # noqa: BLE001 - the phase diagram is context; say why it is missing
        ax.text(0.5, 0.5, f"phase diagram unavailable:\n{err}", transform=ax.transAxes, ha="center", fontsize=7)
    tr = df[(df["group"] == "sigma") & (df["status"] == "done")].drop_duplicates("trial_id")
    if len(tr):
        r = tr["surround_width_ratio"].astype(float)
        g = tr["has_grid"].astype(bool) if "has_grid" in tr else pd.Series(False, index=tr.index)
        ax.scatter(tr.loc[g, "sigma"], r[g], marker="o", color="c", edgecolor="k", label="trained: grid unit")
        ax.scatter(tr.loc[~g, "sigma"], r[~g], marker="o", facecolor="none", edgecolor="w", label="trained: none")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("sigma_E, m")
    ax.set_ylabel("surround width ratio sigma_I / sigma_E")
    ax.set_title("DoS phase diagram (closed form) and trained nets", fontsize=10)
    fig.tight_layout()
    return fig


def _box(size: float) -> Any:
    from gridsweep.config import BoxConfig

    return BoxConfig(width=size, height=size)


def fig_multifield(df: pd.DataFrame, rules: RuleParams) -> Any:
    """R6/B2: single- vs multi-field place cells: error, path integration, grids, example maps."""
    conds = _conditions(df, "multifield")
    if not conds:
        return placeholder("Single- vs multi-field", "no runs in group 'multifield'")
    fig = plt.figure(figsize=(max(8, 2.2 * len(conds) + 3), 6.5))
    gs = fig.add_gridspec(2, max(len(conds), 2), height_ratios=[1.3, 1])
    ax = fig.add_subplot(gs[0, :])
    subs = _pl_pg_bars(ax, df, "multifield", conds, rules, "mf")
    errs = [bootstrap_mean(s[s["status"] == "done"], "decoding_error_cm", **_boot(rules, "mferr" + c))
            for s, c in zip(subs, conds)]
    ax.set_xticks(range(len(conds)), [f"{_label(c)}\nerror {e.value:.1f} cm" if e.defined else _label(c)
                                      for c, e in zip(conds, errs)], fontsize=8)
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("Single- vs multi-field place cells (95% Wilson intervals over networks)", fontsize=10)
    for j, (c, s) in enumerate(zip(conds, subs)):
        ax2 = fig.add_subplot(gs[1, j])
        ax2.set_xticks([])
        ax2.set_yticks([])
        s = s[s["status"] == "done"].sort_values(SCORE_COL, ascending=False, na_position="last")
        maps, scores, ext = _best_units(s.iloc[0]["trial_dir"], 1) if len(s) else ([], [], None)
        if maps:
            im = ax2.imshow(_unit_range(maps[0]), origin="lower", extent=ext, cmap="jet", interpolation="nearest",
                            vmin=0, vmax=1)
            ax2.set_title(f"{_label(c)}:\nbest unit, score {scores[0]:.2f}", fontsize=7)
            fig.colorbar(im, ax=ax2, shrink=0.8, pad=0.02, label="scaled activity")
        else:
            ax2.axis("off")
    fig.tight_layout()
    return fig


def fig_dog(df: pd.DataFrame, rules: RuleParams) -> Any:
    """R7/B1: DoS vs equi-norm vs unit-integral DoG, and the amplitude-ratio sweep."""
    conds = [c for c in _conditions(df, "dog") if c != "amplitude_ratio"]
    amp = df[(df["group"] == "dog") & (df["condition"] == "amplitude_ratio") & (df["status"] == "done")]
    if not conds:
        return placeholder("DoS vs DoG", "no runs in group 'dog'")
    fig, axes = plt.subplots(1, 2 if len(amp) else 1, figsize=(10 if len(amp) else 6, 3.6), squeeze=False)
    ax = axes[0, 0]
    _pl_pg_bars(ax, df, "dog", conds, rules, "dog", published="published")
    ax.set_xticks(range(len(conds)), [_label(c) for c in conds])
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("Readout normalisation (95% Wilson intervals over networks)", fontsize=10)
    if len(amp):
        ax = axes[0, 1]
        ax.scatter(amp["amplitude_ratio"].astype(float), amp[SCORE_COL].astype(float), color="C4", edgecolor="k")
        dos = df[(df["group"] == "dog") & (df["condition"] == "dos") & (df["status"] == "done")]
        if len(dos) and dos[SCORE_COL].notna().any():
            ax.axhline(float(np.nanmedian(dos[SCORE_COL])), color="C3", ls="--", label="median DoS max score")
            ax.legend(fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("alpha_E / alpha_I")
        ax.set_ylabel("max grid score")
        ax.set_title("Amplitude-ratio sweep (dog_general)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_predictivity(pred: pd.DataFrame | None) -> Any:
    """P: predictivity against participation ratio, trained models and matched nulls,
    with Nayebi et al.'s published points."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    if pred is None or pred.empty:
        axes[0].text(0.5, 0.5, "no predictivity table", transform=axes[0].transAxes, ha="center")
    else:
        try:
            from gridsweep.neural import plot_predictivity_vs_pr

            show = pred.copy()
            show["name"] = [str(m).split(":")[1] + ":" + str(m).split(":")[2] if str(m).count(":") >= 2 else m
                            for m in show["name"]]
            models = show["role"] == "model"
            show.loc[models, "name"] = show.loc[models, "model"].map(lambda m: ":".join(str(m).split(":")[1:3]))
            plot_predictivity_vs_pr(show, ax=axes[0], title="Trained networks and PR-matched nulls (synthetic MEC)")
            prs, rs = zip(*NAYEBI_PUBLISHED.values())
            axes[0].scatter(prs, rs, marker="^", color="k", zorder=6, label="Nayebi et al. 2021 (published)")
            axes[0].legend(fontsize=7)
        except ImportError as err:
            axes[0].text(0.5, 0.5, f"gridsweep.neural unavailable: {err}", transform=axes[0].transAxes, ha="center")
    ax = axes[1]
    for name, (pr, r) in NAYEBI_PUBLISHED.items():
        ax.scatter(pr, r, marker="^", color="k")
        ax.annotate(name, (pr, r), xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("participation ratio of rate maps")
    ax.set_ylabel("published neural predictivity")
    ax.set_title("Nayebi et al. 2021 (published)", fontsize=10)
    fig.tight_layout()
    return fig
