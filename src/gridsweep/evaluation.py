"""Measuring a trained network: decoding error, rate maps, grid scores, geometry.

:func:`score_run` is the one place where a run directory is turned into numbers; the
``score`` CLI, the sweep analysis hook and the reproduction report all call it, so a
trial scored inside a sweep and a run scored by hand give the same table.

Conventions (SCIENCE.md section 6): decoding error on held-out trajectories of
``evaluation.sequence_length`` steps (NFL: 50); rate maps from
``evaluation.ratemap_samples`` positions visited along trajectories of the training
sequence length, mean activation per bin, no smoothing, ``evaluation.bins`` per side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gridsweep.seeding import torch_generator
from gridsweep.training import Ensemble, load_run, write_json_atomic

__all__ = ["collect_ratemaps", "score_run", "summary_metrics", "SCORE_THRESHOLDS", "SUMMARY_VARIANT"]

#: Published grid-score thresholds (SCIENCE.md section 6).
SCORE_THRESHOLDS = (0.3, 0.37, 0.8, 1.15)
#: The variant whose scores feed the run summary (NFL's default).
SUMMARY_VARIANT = "deepmind_minmax"


@torch.no_grad()
def collect_ratemaps(ens: Ensemble, n_samples: int | None = None, bins: int | None = None,
                     seed_stream: str = "ratemaps", chunk: int = 200) -> list[Any]:
    """Rate maps of every hidden unit of every network, accumulated in chunks.

    Parameters
    ----------
    ens : Ensemble
    n_samples : int, optional
        Number of (position, activation) samples per network (default
        ``evaluation.ratemap_samples``).
    bins : int, optional
        Bins per side (default ``evaluation.bins``).

    Returns
    -------
    list of E ``gridsweep.analysis.RateMaps``
        maps (Ng, bins, bins), NaN where unvisited; occupancy; extent.

    Notes
    -----
    Memory stays bounded whatever Ng: each chunk's per-bin sums are accumulated and the
    mean is taken at the end (identical to one call on all samples).
    """
    from gridsweep.analysis import RateMaps, rate_maps

    cfg = ens.cfg
    n_samples = n_samples or cfg.evaluation.ratemap_samples
    bins = bins or cfg.evaluation.bins
    T = cfg.trajectory.sequence_length
    gens = [torch_generator(c.seed, seed_stream, ens.device) for c in ens.cfgs]
    extent = cfg.box.extent
    sums = counts = None
    done = 0
    while done < n_samples:
        batch = min(chunk, -(-(n_samples - done) // T))
        traj = ens.sample(batch=batch, steps=T, gens=gens)
        code0 = ens.target.encode(traj.start)
        hidden = ens.model.hidden(traj.velocities, code0)  # (E, B, T, Ng)
        pos = traj.positions.reshape(ens.E, -1, 2).cpu().numpy().astype(np.float64)
        act = hidden.reshape(ens.E, -1, hidden.shape[-1]).cpu().numpy().astype(np.float64)
        part_s, part_c = [], []
        for e in range(ens.E):
            rm = rate_maps(pos[e], act[e], extent=extent, bins=bins)
            part_s.append(np.nan_to_num(rm.maps) * rm.occupancy[None])
            part_c.append(rm.occupancy)
        s, c = np.stack(part_s), np.stack(part_c)
        sums = s if sums is None else sums + s
        counts = c if counts is None else counts + c
        done += pos.shape[1]
    out = []
    for e in range(ens.E):
        with np.errstate(invalid="ignore", divide="ignore"):
            maps = np.where(counts[e][None] > 0, sums[e] / np.maximum(counts[e][None], 1), np.nan)
        out.append(RateMaps(maps=maps, occupancy=counts[e], extent=tuple(extent),
                            bin_size=(cfg.box.width / bins, cfg.box.height / bins)))
    return out


def summary_metrics(table, thresholds: Sequence[float] = SCORE_THRESHOLDS, variant: str = SUMMARY_VARIANT,
                    spacing_threshold: float = 0.8) -> dict[str, Any]:
    """Flat per-run metrics from a per-unit table (see ``gridsweep.analysis.unit_table``)."""
    def finite(name: str) -> np.ndarray:
        vals = table[name].to_numpy(dtype=float)
        return vals[np.isfinite(vals)]

    def stat(fn, vals: np.ndarray) -> float:
        return float(fn(vals)) if vals.size else float("nan")

    col = f"score60_{variant}"
    scores = table[col].to_numpy(dtype=float)
    out: dict[str, Any] = {
        "score_variant": variant,
        "n_units": int(len(scores)),
        f"max_score60_{variant}": stat(np.max, finite(col)),
        f"median_score60_{variant}": stat(np.median, finite(col)),
    }
    for other in [c for c in table.columns if c.startswith("score60_") and c != col]:
        out[f"max_{other}"] = stat(np.max, finite(other))
    for th in thresholds:
        out[f"frac_units_above_{th}"] = float((scores > th).mean()) if len(scores) else float("nan")
    sel = np.isfinite(scores) & (scores > spacing_threshold) & np.isfinite(table["spacing_m"].to_numpy(dtype=float))
    spac = table["spacing_m"].to_numpy(dtype=float)[sel]
    out[f"median_spacing_m_above_{spacing_threshold}"] = float(np.median(spac)) if spac.size else float("nan")
    out["n_units_for_spacing"] = int(spac.size)
    return out


def score_run(run_dir: str | Path, ensemble: Ensemble | None = None, *, index: int = 0,
              n_samples: int | None = None, bins: int | None = None, figures: bool = True,
              progress: bool = False) -> dict[str, Any]:
    """Evaluate a trained run and write ``analysis/`` into its directory.

    Parameters
    ----------
    run_dir : path
        A run directory (docs/architecture.md).
    ensemble : Ensemble, optional
        The trained ensemble in memory (avoids reloading); network ``index`` is scored.

    Returns
    -------
    dict
        Flat metrics: ``decoding_error_cm`` (held-out), ``max_score60_<variant>``,
        ``frac_units_above_<t>``, ``median_spacing_m_above_0.8``, ... also written to
        ``analysis/summary.json`` and merged into ``summary.json``.
    """
    import json

    from gridsweep.analysis import unit_table

    run_dir = Path(run_dir)
    ens = load_run(run_dir) if ensemble is None else ensemble
    if ensemble is not None and ens.E > 1:
        sub = Ensemble([ens.cfgs[index]], device=ens.device)
        sub.load_network_states([ens.network_state(index)])
        ens = sub
    err = float(ens.evaluate()[0])
    rm = collect_ratemaps(ens, n_samples=n_samples, bins=bins)[0]
    table = unit_table(rm.maps, rm.bin_size[0])
    out_dir = run_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "ratemaps.npz", maps=rm.maps.astype(np.float32), occupancy=rm.occupancy,
                        extent=np.asarray(rm.extent), bin_size_m=np.asarray(rm.bin_size[0]))
    tmp = out_dir / "units.parquet.tmp"
    table.to_parquet(tmp)
    tmp.replace(out_dir / "units.parquet")
    metrics = {"decoding_error_cm": err, **summary_metrics(table)}
    if figures:
        _write_figures(out_dir, rm, table)
    write_json_atomic(out_dir / "summary.json", metrics)
    summary_file = run_dir / "summary.json"
    merged = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    merged.update(metrics)
    write_json_atomic(summary_file, merged)
    return metrics


def _write_figures(out_dir: Path, rm, table) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from gridsweep.analysis import autocorrelogram, plot_score_histogram, plot_top_units

    col = f"score60_{SUMMARY_VARIANT}"
    scores = table[col].to_numpy(dtype=float)
    sacs = autocorrelogram(rm.maps)
    fig, _ = plot_top_units(rm.maps, sacs, scores, spacing_m=table["spacing_m"].to_numpy(dtype=float),
                            extent=rm.extent, n=16)
    fig.savefig(out_dir / "top_units.png", dpi=110)
    plt.close(fig)
    fig, _ = plot_score_histogram(scores)
    fig.savefig(out_dir / "score_histogram.png", dpi=110)
    plt.close(fig)


def untrained_ratemaps(cfg, n_samples: int | None = None, bins: int | None = None, seed: int | None = None,
                       device: torch.device | str = "cpu"):
    """Rate maps of the *untrained* network of ``cfg`` (the same architecture at step 0).

    The null that trained networks' grid-score fractions and neural predictivity must
    beat (SCIENCE.md sections 6-7): noisy maps of an untrained ReLU RNN already score
    above 0.3 for a fraction of units. ``seed`` overrides ``cfg.seed``.

    Returns
    -------
    gridsweep.analysis.RateMaps
        maps (Ng, bins, bins).
    """
    from gridsweep.config import validate_config

    cfg = validate_config(cfg)
    if seed is not None:
        cfg = cfg.with_overrides({"seed": int(seed)})
    return collect_ratemaps(Ensemble([cfg], device=device), n_samples=n_samples, bins=bins)[0]
