"""Measuring a trained network: decoding error, rate maps, grid scores, geometry.

:func:`score_run` is the one place where a run directory is turned into numbers; the
``score`` CLI, the sweep analysis hook and the reproduction report all call it, so a
trial scored inside a sweep and a run scored by hand give the same table.

Conventions (docs/science.md section 6): decoding error on held-out trajectories of
``evaluation.sequence_length`` steps (NFL: 50). Grid units are measured under two
protocols, both always computed by :func:`score_run` (docs/analysis.md, "Scoring
protocols"):

* ``dense`` (keys without prefix): rate maps from ``evaluation.ratemap_samples``
  positions visited along trajectories of the training sequence length, mean activation
  per bin, no smoothing, ``evaluation.bins`` per side, every unit;
* ``nfl`` (keys prefixed ``nfl_``): Schaeffer et al. 2022's scoring exactly
  (:func:`nfl_unit_scores`): ONE batch of ``trajectory.batch_size`` trajectories of
  ``evaluation.sequence_length`` steps, 44 x 44 bins, at most 1,024 randomly chosen
  units, unvisited bins set to 0, deepmind_minmax score, NFL's period estimator.

``evaluation.protocol`` names the primary one (``primary_*`` keys, listed first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gridsweep.errors import ConfigError, DivergedError
from gridsweep.files import read_json, save_npz, write_json_atomic, write_parquet
from gridsweep.seeding import numpy_generator, torch_generator
from gridsweep.training import Ensemble, load_run, write_summary

__all__ = ["collect_ratemaps", "score_run", "summary_metrics", "SCORE_THRESHOLDS", "SUMMARY_VARIANT",
           "NFL_BINS", "NFL_MAX_UNITS", "NFL_THRESHOLDS", "nfl_activations", "nfl_rate_maps", "nfl_unit_scores",
           "nfl_summary_metrics", "nfl_protocol_scores", "untrained_scores", "held_out_error"]

#: Published grid-score thresholds (docs/science.md section 6).
SCORE_THRESHOLDS = (0.3, 0.37, 0.8, 1.15)
#: The variant whose scores feed the run summary (NFL's default).
SUMMARY_VARIANT = "deepmind_minmax"

# NFL's scoring protocol (FieteLab/NeurIPS-2022-No-Free-Lunch d9edec2, mec_hpc_investigations/models/).
#: Bins per side of the maps NFL reports (trainer.py:90-93 scores 44, 20, 32; analyze.py:136-141 reads 44).
NFL_BINS = 44
#: Units scored (trainer.py:159-163; drawn without replacement, trainer.py:492-493).
NFL_MAX_UNITS = 1024
#: Thresholds of NFL's "% of units above" figures (analyze.py:17-22), reported as fractions.
NFL_THRESHOLDS = (0.3, 0.75, 0.8, 0.85, 1.0, 1.15)
#: NFL measures periods only for units scoring above this (trainer.py:399, 418-420).
NFL_PERIOD_THRESHOLD = 0.3


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
        if not np.isfinite(act).all():  # inf/NaN activity: no meaningful map (docs/reliability.md)
            bad = [e for e in range(ens.E) if not np.isfinite(act[e]).all()]
            raise DivergedError(f"network(s) {bad} ({', '.join(ens.cfgs[e].name for e in bad)}): the activity "
                                f"diverges at step {ens.step} (inf/NaN hidden states over "
                                f"{T}-step trajectories); rate maps and grid scores would be meaningless")
        part_s, part_c = [], []
        for e in range(ens.E):
            rm = rate_maps(pos[e], act[e], extent=extent, bins=bins)
            part_s.append(np.nan_to_num(rm.maps) * rm.occupancy[None])
            part_c.append(rm.occupancy)
        s, c = np.stack(part_s), np.stack(part_c)
        sums = s if sums is None else sums + s
        counts = c if counts is None else counts + c
        done += pos.shape[1]
    if sums is None or counts is None:
        raise ConfigError(f"n_samples={n_samples}: rate maps need at least one sample")
    from gridsweep.arenas import arena_of

    arena = arena_of(cfg.box)  # bins whose centre is outside a non-rectangular arena are NaN (docs/arenas.md)
    inside = None if arena.rectangular else arena.mask(extent, bins, bins)
    out = []
    for e in range(ens.E):
        with np.errstate(invalid="ignore", divide="ignore"):
            maps = np.where(counts[e][None] > 0, sums[e] / np.maximum(counts[e][None], 1), np.nan)
        occupancy = counts[e]
        if inside is not None:
            maps[:, ~inside] = np.nan
            occupancy = np.where(inside, occupancy, 0)
        out.append(RateMaps(maps=maps, occupancy=occupancy, extent=extent,
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


@torch.no_grad()
def nfl_activations(ens: Ensemble, seed_stream: str = "ratemaps_nfl") -> tuple[np.ndarray, np.ndarray]:
    """Positions and hidden activations of ONE batch, as NFL's scoring run draws them.

    Returns
    -------
    positions : ndarray, (E, B T, 2) float64
    activations : ndarray, (E, B T, Ng) float64

    Notes
    -----
    ``B = trajectory.batch_size`` trajectories of ``T = evaluation.sequence_length``
    steps (NFL: run_scoring_rylan.py:29 sets 50; trainer.py:165 draws one batch;
    trainer.py:296-306 flattens positions and ``model.g(inputs)`` to B T rows).
    Each network's trajectories come from its own ``(seed, seed_stream)`` generator.
    """
    cfg = ens.cfg
    gens = [torch_generator(c.seed, seed_stream, ens.device) for c in ens.cfgs]
    traj = ens.sample(batch=cfg.trajectory.batch_size, steps=cfg.evaluation.sequence_length, gens=gens)
    hidden = ens.model.hidden(traj.velocities, ens.target.encode(traj.start))      # (E, B, T, Ng)
    pos = traj.positions.reshape(ens.E, -1, 2).cpu().numpy().astype(np.float64)
    act = hidden.reshape(ens.E, -1, hidden.shape[-1]).cpu().numpy().astype(np.float64)
    return pos, act


def nfl_rate_maps(positions: Any, activations: Any, extent: Sequence[float], bins: int = NFL_BINS):
    """Rate maps exactly as NFL's ``GridScorer.calculate_ratemap`` makes them.

    Parameters
    ----------
    positions : array_like, (N, 2) metres
    activations : array_like, (N, U)
    extent : (xmin, xmax, ymin, ymax)
    bins : int, default 44

    Returns
    -------
    gridsweep.analysis.RateMaps
        maps (U, bins, bins) in gridsweep's orientation (row = y bin), NaN where unvisited.

    Notes
    -----
    NFL scores.py:80-88: ``scipy.stats.binned_statistic_2d(xs, ys, activations,
    bins=nbins, statistic="mean", range=coords_range)`` with ``coords_range`` the box
    (trainer.py:81-83). That call is made here (all units at once; identical per unit):
    edges ``linspace(lo, hi, bins + 1)``, a position on the upper edge goes in the last
    bin and positions **outside the box are dropped** (gridsweep's dense maps clip them
    into the edge bins). Its output is indexed ``[x bin, y bin]``; it is transposed here.
    """
    import scipy.stats

    from gridsweep.analysis import RateMaps

    pos = np.asarray(positions, dtype=np.float64)
    act = np.asarray(activations, dtype=np.float64)
    ext = (float(extent[0]), float(extent[1]), float(extent[2]), float(extent[3]))
    res = scipy.stats.binned_statistic_2d(pos[:, 0], pos[:, 1], act.T, statistic="mean", bins=int(bins),
                                          range=((ext[0], ext[1]), (ext[2], ext[3])))
    maps = np.swapaxes(np.asarray(res.statistic, dtype=np.float64), 1, 2)   # (U, nx, ny) -> (U, ny, nx)
    counts = scipy.stats.binned_statistic_2d(pos[:, 0], pos[:, 1], None, statistic="count", bins=int(bins),
                                             range=((ext[0], ext[1]), (ext[2], ext[3]))).statistic.T
    return RateMaps(maps=maps, occupancy=counts.astype(np.int64), extent=ext,
                    bin_size=((ext[1] - ext[0]) / bins, (ext[3] - ext[2]) / bins))


def nfl_unit_scores(maps: Any) -> dict[str, np.ndarray]:
    """Per-unit grid scores and periods of NFL's scoring pipeline.

    Parameters
    ----------
    maps : array_like, (U, n, n)
        Rate maps from :func:`nfl_rate_maps` (NaN = unvisited).

    Returns
    -------
    dict
        ``score60``, ``score90`` (U,): deepmind_minmax (DeepMind's ``GridScorer`` with
        ``min_max=True``, NFL scores.py:50, 95-98; rings 0.2 -> linspace(0.4, 1, 10),
        trainer.py:76-78) on the SAC with unvisited bins set to 0 (scores.py:113-124);
        a constant map scores 0, as there (gridsweep's ``grid_scores`` says NaN).
        ``period_bins`` (U,): NFL's period estimator
        (:func:`gridsweep.analysis.geometry.nfl_period`) for units with ``score60 > 0.3``
        (trainer.py:418-427), NaN otherwise.
    """
    from gridsweep.analysis import grid_scores
    from gridsweep.analysis.geometry import nfl_period

    g = grid_scores(maps, "deepmind_minmax", unvisited="zero")
    s60, s90 = np.nan_to_num(g["score60"], nan=0.0), np.nan_to_num(g["score90"], nan=0.0)
    period = np.full(s60.shape, np.nan)
    sel = np.flatnonzero(s60 > NFL_PERIOD_THRESHOLD)
    if sel.size:
        period[sel] = nfl_period(np.asarray(maps)[sel])["period_bins"]
    return {"score60": s60, "score90": s90, "period_bins": period}


def nfl_summary_metrics(score60: np.ndarray, period_m: np.ndarray, units: np.ndarray | None = None,
                        score90: np.ndarray | None = None, spacing_threshold: float = 0.8) -> dict[str, Any]:
    """``nfl_``-prefixed run metrics from NFL per-unit scores (see :func:`score_run`)."""
    s = np.asarray(score60, dtype=float)
    n = s.size
    v = SUMMARY_VARIANT
    best = int(np.argmax(s)) if n else -1
    out: dict[str, Any] = {
        "nfl_n_units": int(n),
        f"nfl_max_score60_{v}": float(s.max()) if n else float("nan"),
        f"nfl_median_score60_{v}": float(np.median(s)) if n else float("nan"),
        "nfl_best_unit": int(units[best]) if (n and units is not None) else best,
    }
    if score90 is not None:
        out[f"nfl_max_score90_{v}"] = float(np.max(score90)) if n else float("nan")
    for th in sorted(set(SCORE_THRESHOLDS) | set(NFL_THRESHOLDS)):
        out[f"nfl_frac_units_above_{th}"] = float((s > th).mean()) if n else float("nan")
    p = np.asarray(period_m, dtype=float)
    for th in (NFL_PERIOD_THRESHOLD, spacing_threshold):
        sel = p[(s > th) & np.isfinite(p)]
        key = "spacing" if th == spacing_threshold else "period"
        out[f"nfl_median_{key}_m_above_{th}"] = float(np.median(sel)) if sel.size else float("nan")
        out[f"nfl_n_units_for_{key}"] = int(sel.size)
    return out


def nfl_protocol_scores(ens: Ensemble):
    """Score the (single-network) ensemble ``ens`` under NFL's protocol.

    One batch of trajectories (:func:`nfl_activations`), rate maps of at most
    :data:`NFL_MAX_UNITS` units drawn without replacement from the run's ``"nfl_units"``
    stream (:func:`nfl_rate_maps`), per-unit scores and periods (:func:`nfl_unit_scores`).

    Returns
    -------
    metrics : dict
        :func:`nfl_summary_metrics` (``nfl_``-prefixed keys).
    table : pandas.DataFrame
        One row per scored unit: ``unit``, ``score60_<variant>``, ``score90_<variant>``, ``period_m``.
    """
    import pandas as pd

    pos, act = nfl_activations(ens)
    n_units = act.shape[-1]
    units = np.sort(numpy_generator(ens.cfgs[0].seed, "nfl_units").choice(
        n_units, size=min(NFL_MAX_UNITS, n_units), replace=False))
    nrm = nfl_rate_maps(pos[0], act[0][:, units], ens.cfg.box.extent)
    ns = nfl_unit_scores(nrm.maps)
    period_m = ns["period_bins"] * nrm.bin_size[0]
    metrics = nfl_summary_metrics(ns["score60"], period_m, units=units, score90=ns["score90"])
    table = pd.DataFrame({"unit": units.astype(np.int64), f"score60_{SUMMARY_VARIANT}": ns["score60"],
                          f"score90_{SUMMARY_VARIANT}": ns["score90"], "period_m": period_m})
    return metrics, table


def untrained_scores(cfg) -> dict[str, float]:
    """Run metrics of the *untrained* network of ``cfg`` under both protocols.

    The dense protocol's :func:`summary_metrics` of :func:`untrained_ratemaps` and the NFL
    protocol's ``nfl_`` keys (:func:`nfl_protocol_scores`): the null that trained
    networks' grid-unit counts must beat (docs/science.md section 6).
    """
    from gridsweep.analysis import unit_table
    from gridsweep.config import validate_config

    cfg = validate_config(cfg)
    ens = Ensemble([cfg])
    rm = collect_ratemaps(ens)[0]
    return {**summary_metrics(unit_table(rm.maps, rm.bin_size[0])), **nfl_protocol_scores(ens)[0]}


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
        Flat metrics, also written to ``analysis/summary.json`` and merged into
        ``summary.json`` (:func:`gridsweep.training.write_summary`): ``decoding_error_cm``
        (held-out, as training measured it: :func:`held_out_error`); ``score_protocol``
        (``evaluation.protocol``); ``primary_max_score60`` and
        ``primary_frac_units_above_<t>`` (copies of that protocol's values); the dense
        protocol's ``max_score60_<variant>``, ``median_score60_<variant>``,
        ``frac_units_above_<t>``, ``median_spacing_m_above_0.8`` (unchanged names); the
        NFL protocol's ``nfl_max_score60_deepmind_minmax`` (= the best unit's score),
        ``nfl_best_unit``, ``nfl_median_score60_deepmind_minmax``,
        ``nfl_max_score90_deepmind_minmax``, ``nfl_frac_units_above_<t>`` for
        ``SCORE_THRESHOLDS`` and ``NFL_THRESHOLDS``, ``nfl_median_period_m_above_0.3``
        and ``nfl_median_spacing_m_above_0.8`` (NFL's period estimator), ``nfl_n_units``.
        ``analysis/units_nfl.parquet`` holds NFL's per-unit scores (``unit`` = hidden
        unit index).
    """
    from gridsweep.analysis import unit_table

    run_dir = Path(run_dir)
    ens = load_run(run_dir) if ensemble is None else ensemble
    if ensemble is not None and ens.E > 1:
        sub = Ensemble([ens.cfgs[index]], device=ens.device)
        sub.load_network_states([ens.network_state(index)])
        ens = sub
    err = held_out_error(run_dir, ens)
    try:
        rm = collect_ratemaps(ens, n_samples=n_samples, bins=bins)[0]
    except DivergedError as exc:
        raise DivergedError(f"{run_dir}: {exc}; no scores written") from None
    visited = np.asarray(rm.occupancy) > 0
    n_bad = int((~np.isfinite(rm.maps[:, visited])).any(axis=1).sum()) if visited.any() else 0
    if n_bad or not np.isfinite(err):
        raise DivergedError(f"{run_dir}: the network's activity diverges at step {ens.step}: {n_bad} of "
                            f"{rm.maps.shape[0]} units have inf/NaN rate-map bins in visited bins, held-out decoding "
                            f"error {err}; no scores written")
    table = unit_table(rm.maps, rm.bin_size[0])
    out_dir = run_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_npz(out_dir / "ratemaps.npz", maps=rm.maps.astype(np.float32), occupancy=rm.occupancy,
             extent=np.asarray(rm.extent), bin_size_m=np.asarray(rm.bin_size[0]))
    write_parquet(table, out_dir / "units.parquet")
    dense = summary_metrics(table)
    nfl, nfl_table = nfl_protocol_scores(ens)
    write_parquet(nfl_table, out_dir / "units_nfl.parquet")
    protocol = ens.cfg.evaluation.protocol
    if protocol == "nfl":
        primary = {"primary_max_score60": nfl[f"nfl_max_score60_{SUMMARY_VARIANT}"],
                   **{f"primary_frac_units_above_{t}": nfl[f"nfl_frac_units_above_{t}"] for t in SCORE_THRESHOLDS}}
        ordered = {**nfl, **dense}
    else:
        primary = {"primary_max_score60": dense[f"max_score60_{SUMMARY_VARIANT}"],
                   **{f"primary_frac_units_above_{t}": dense[f"frac_units_above_{t}"] for t in SCORE_THRESHOLDS}}
        ordered = {**dense, **nfl}
    metrics = {"decoding_error_cm": err, "score_protocol": protocol, **primary, **ordered}
    if figures:
        _write_figures(out_dir, rm, table)
    write_json_atomic(out_dir / "summary.json", metrics)
    write_summary(run_dir, metrics)
    return metrics


def held_out_error(run_dir: str | Path, ens: Ensemble) -> float:
    """Held-out decoding error (cm) of the single network of ``ens``, a run of ``run_dir``.

    Training measures it once, on the final weights (:func:`gridsweep.training.train_ensemble`),
    and records it in ``summary.json`` with ``steps`` and ``config_hash``; that number is
    returned when the file records it for this config at this step. Otherwise (no summary
    yet, another step) it is measured now with :meth:`Ensemble.evaluate`, on the same
    held-out trajectories (the ``"eval"`` stream of the run's seed).
    """
    f = Path(run_dir) / "summary.json"
    if f.exists():
        s = read_json(f)
        if (isinstance(s, dict) and s.get("config_hash") == ens.cfgs[0].hash() and s.get("steps") == ens.step
                and isinstance(s.get("decoding_error_cm"), (int, float))):
            return float(s["decoding_error_cm"])
    return float(ens.evaluate()[0])


def _write_figures(out_dir: Path, rm, table) -> None:
    import matplotlib.pyplot as plt  # no backend forced here: the command line sets MPLBACKEND=Agg

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
    beat (docs/science.md sections 6-7): noisy maps of an untrained ReLU RNN already score
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
