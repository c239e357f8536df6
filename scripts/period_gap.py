"""Why trained networks' grid periods differ from the readout spectrum's prediction.

For every finished DoS RNN of a reproduction sweep (groups ``sigma`` and ``targets``)
this prints the measured period of its grid units under several measurements, each
divided by the period the theory predicts from that network's own targets
(:func:`gridsweep.theory.predict`):

- ``dense20``: the sweep's own measurement (``analysis/units.parquet``: dense protocol,
  the preset's bins, gridsweep's SAC-peak estimator), median over units scoring > 0.8;
- ``dense44``: the same network's rate maps recomputed at 44 x 44 bins from 200,000
  positions, same estimator: what the rate-map resolution does;
- ``nfl44``: NFL's protocol and NFL's peak estimator (``analysis/units_nfl.parquet``),
  median over units scoring > 0.8 under NFL's score;
- the prediction under the other surround convention (variance ratio instead of width
  ratio, or back): what the convention does.

Run::

    python scripts/period_gap.py sweeps_out/reproduce_quick [--threshold 0.8]

``--training-length STEPS`` instead trains one ``quick_dos`` network (the preset's
``--sigma``, constant learning rate) for STEPS steps and prints the same ratio every
``--every`` steps: whether the period is still moving when training stops.

``--population RUN_DIR ...`` instead reads the stored rate maps of trained runs and
prints every unit's period (power-spectrum peak) beside the grid units' SAC reading:
whether the grid-score cut selects long-period units or the whole population is
shifted. A squared-error control network (the loss the linear theory assumes)::

    gridsweep train quick_dos --out runs/mse_s0 --set target.loss=mse --set target.mse_reduction=sum \
        --set target.sigma=0.16 --set model.family=nfl --set model.bias=null \
        --set training.optimizer_convention=keras --set evaluation.protocol=nfl \
        --set training.n_steps=6000 --set training.lr_milestones=[4500] --set training.lr_gamma=0.1 \
        --set evaluation.ratemap_samples=60000
    python scripts/period_gap.py --population runs/mse_s0 sweeps_out/reproduce_quick/trials/<id> ...

``--horizons T:B ...`` instead trains ``quick_dos`` networks (the quick preset's settings,
``--sigma``, ``--seeds``) on sequences of T steps in batches of B and prints
``--population``'s table for them: whether the period depends on how far the networks
must path-integrate (T) rather than on how many samples they see (B*T)::

    python scripts/period_gap.py --horizons 2:100 5:100 10:100 20:100 40:100 2:1000 5:400 --seeds 0 1

``--patterns`` instead runs gridsweep's nonlinear pattern-formation model
(:func:`gridsweep.theory.simulate_patterns`, Sorscher et al.'s gradient ascent of
``g^T Sigma g``, docs/science.md section 5) on the ``quick_dos`` targets (each of
``--sigmas``, width ratio 2, the config's box, 256 cells and seed: the targets
:func:`~gridsweep.theory.predict` uses) under the ``relu`` constraint and the ``linear``
and ``tanh`` controls, in the real box (``method="box"``) and on the box-sized square
torus (``method="fourier"``, ``fit_lattice=False``), and measures every emergent map with
the trained networks' estimator (:func:`gridsweep.analysis.unit_table`: deepmind_minmax
score, SAC six-peak spacing) and with the peak of its power spectrum (``spec``: spacing
``4 pi / (sqrt 3 k_peak)``, which also reads non-hexagonal maps). It tests whether the
non-negativity of the units lengthens the period beyond the fastest-growing linear mode::

    python scripts/period_gap.py --patterns [--sigmas 0.10 0.12 0.16] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from gridsweep.analysis import unit_table
from gridsweep.evaluation import collect_ratemaps
from gridsweep.files import read_parquet
from gridsweep.theory import predict
from gridsweep.training import load_run


def _median_grid(df: pd.DataFrame, score: str, period: str, threshold: float) -> tuple[float, int]:
    if score not in df or period not in df:
        return float("nan"), 0
    sel = df[(df[score] > threshold) & np.isfinite(df[period])][period]
    return (float(np.median(sel)) if len(sel) else float("nan")), int(len(sel))


def training_length(steps: int, every: int, sigma: float, threshold: float, samples: int, commit: str) -> int:
    """Train one quick_dos network and print measured / predicted period every ``every`` steps."""
    from gridsweep.config import load_config
    from gridsweep.training import train

    cfg = load_config("quick_dos", [f"training.n_steps={steps}", f"target.sigma={sigma}",
                                    f"training.eval_every={every}", f"training.checkpoint_every={steps}"])
    pred = predict(cfg).spacing_m
    print(f"commit {commit or 'unknown'}; quick_dos, sigma {sigma} m, predicted period {pred:.3f} m; units > {threshold}")
    print(f"{'step':>6} {'error_cm':>8} {'n_grid':>6} {'measured_m':>10} {'measured/pred':>13} {'spec_all/pred':>13}")

    def cb(ens, metrics) -> None:
        if ens.step % every == 0:
            rm = collect_ratemaps(ens, n_samples=samples, bins=20)[0]
            m, n = _median_grid(unit_table(rm.maps, rm.bin_size[0]), "score60_deepmind_minmax", "spacing_m", threshold)
            maps = np.nan_to_num(rm.maps)
            active = maps.reshape(len(maps), -1).std(axis=1) > 0
            spec = float(np.median(spectral_spacing(maps[active], rm.bin_size[0]))) if active.any() else float("nan")
            err = float(ens.evaluate()[0])
            print(f"{ens.step:>6} {err:>8.1f} {n:>6} {m:>10.3f} {m / pred:>13.3f} {spec / pred:>13.3f}", flush=True)

    train(cfg, progress=False, callback=cb)
    return 0


def spectral_spacing(maps: np.ndarray, bin_size: float, pad: int = 1024) -> np.ndarray:
    """Hexagonal spacing ``4 pi / (sqrt 3 k_peak)`` at the peak of each map's power spectrum.

    ``maps`` (U, n, n), mean-removed per map and zero-padded to ``pad`` x ``pad`` (wave-number
    step ``2 pi / (pad bin_size)``, about 1.5% of ``k`` at the settings of ``--patterns``).
    Returns (U,) metres. Unlike the SAC estimator it also reads stripes and superpositions.
    """
    m = maps - maps.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.rfft2(m, s=(pad, pad))) ** 2
    ky = 2 * np.pi * np.fft.fftfreq(pad, d=bin_size)
    kx = 2 * np.pi * np.fft.rfftfreq(pad, d=bin_size)
    kmag = np.hypot(ky[:, None], kx[None, :])
    power[:, kmag == 0] = 0.0
    k = kmag.ravel()[np.argmax(power.reshape(len(maps), -1), axis=1)]
    return 4 * np.pi / (np.sqrt(3) * k)


def patterns(sigmas: list[float], seeds: list[int], n_units: int, n_steps: int, bins: int, threshold: float,
             nonlinearities: list[str], commit: str) -> int:
    """Emergent maps of the pattern-formation model at the quick preset's DoS settings.

    Prints, per sigma, method and constraint: the maps' median grid score, their measured /
    predicted spacing (SAC estimator, units above ``threshold`` and all units; power-spectrum
    peak, all units) and whether the objective converged (relative change of the mean
    objective over the last 10% of the steps).
    """
    from gridsweep.config import load_config
    from gridsweep.theory import simulate_patterns

    print(f"commit {commit or 'unknown'}; quick_dos targets (256 cells, width ratio 2, 2.2 m box); "
          f"{len(seeds)} seeds x {n_units} units, {n_steps} steps, {bins} bins; SAC ratio over units > {threshold}")
    rows = []
    for sigma in sigmas:
        cfg = load_config("quick_dos", [f"target.sigma={sigma}"])
        pred = predict(cfg).spacing_m
        for method in ("box", "fourier"):
            for nl in nonlinearities:
                tabs, spec, drift = [], [], []
                for seed in seeds:
                    r = simulate_patterns(cfg, method=method, nonlinearity=nl, n_units=n_units, n_steps=n_steps,
                                          bins=bins, seed=seed, tol=0.0)
                    tabs.append(unit_table(r.maps, r.bin_size, variants=("deepmind_minmax",)))
                    spec.append(spectral_spacing(r.maps, r.bin_size))
                    h = r.history.mean(axis=1)
                    drift.append(abs(h[-1] - h[int(0.9 * (len(h) - 1))]) / abs(h[-1]))
                df = pd.concat(tabs, ignore_index=True)
                ratio = df["spacing_m"].to_numpy() / pred
                grid = (df["score60_deepmind_minmax"] > threshold).to_numpy() & np.isfinite(ratio)
                fin = np.isfinite(ratio)
                rows.append({"sigma": sigma, "method": method, "f": nl, "pred_m": pred, "n": len(df),
                             "n_grid": int(grid.sum()), "score": float(np.median(df["score60_deepmind_minmax"])),
                             "sac/pred grid": float(np.median(ratio[grid])) if grid.any() else float("nan"),
                             "sac/pred all": float(np.median(ratio[fin])) if fin.any() else float("nan"),
                             "spec/pred all": float(np.median(np.concatenate(spec) / pred)),
                             "drift": float(max(drift))})
                if len(rows) == 1:
                    print(f"{'sigma':>5} {'method':>7} {'f':>6} {'pred_m':>6} {'n':>3} {'n_grid':>6} {'score':>6} "
                          f"{'sac/pred grid':>13} {'sac/pred all':>12} {'spec/pred all':>13} {'drift':>8}")
                w = rows[-1]
                print(f"{sigma:>5.2f} {method:>7} {nl:>6} {pred:>6.3f} {w['n']:>3} {w['n_grid']:>6} {w['score']:>6.2f} "
                      f"{w['sac/pred grid']:>13.3f} {w['sac/pred all']:>12.3f} {w['spec/pred all']:>13.3f} "
                      f"{w['drift']:>8.1e}", flush=True)
    df = pd.DataFrame(rows)
    for (method, nl), g in df.groupby(["method", "f"], sort=False):
        grid = g["sac/pred grid"].dropna()
        print(f"median over sigmas, {method}/{nl}: sac/pred grid "
              + (f"{np.median(grid):.3f}" if len(grid) else "  -  ")
              + f" ({int(g['n_grid'].sum())} of {int(g['n'].sum())} maps > {threshold}), "
              f"spec/pred all {np.median(g['spec/pred all']):.3f}")
    return 0


def population(run_dirs: list[Path], threshold: float, commit: str) -> int:
    """Every unit's period, not only the grid-scored ones, for trained runs (stored maps).

    Per run: the SAC estimator over units scoring above ``threshold`` (the sweep's
    reading) and the power-spectrum peak (:func:`spectral_spacing`) over those units, over
    units above 0.3 and over every active unit, each divided by the prediction. If the
    grid-score cut selected long-period units, the all-unit ratio would sit near 1.
    """
    from gridsweep.config import load_config
    from gridsweep.files import load_npz

    print(f"commit {commit or 'unknown'}; stored rate maps (analysis/ratemaps.npz); grid units: score > {threshold}")
    rows = []
    for d in run_dirs:
        cfg = load_config(d / "config.yaml")
        pred = predict(cfg).spacing_m
        z = load_npz(d / "analysis" / "ratemaps.npz")
        maps = np.nan_to_num(np.asarray(z["maps"], dtype=float))
        bin_size = float(np.asarray(z["bin_size_m"]).ravel()[0]) if "bin_size_m" in z else cfg.box.width / maps.shape[-1]
        df = read_parquet(d / "analysis" / "units.parquet")
        score = df["score60_deepmind_minmax"].to_numpy(dtype=float)
        sac = df["spacing_m"].to_numpy(dtype=float)
        active = maps.reshape(len(maps), -1).std(axis=1) > 0
        spec = np.full(len(maps), np.nan)
        spec[active] = spectral_spacing(maps[active], bin_size)
        grid, mid = score > threshold, score > 0.3
        loss = cfg.target.loss if cfg.target.loss == "default" else f"{cfg.target.loss} ({cfg.target.mse_reduction})"
        rows.append({"run": d.name, "sigma": cfg.target.sigma, "loss": loss, "T": cfg.trajectory.sequence_length,
                     "B": cfg.trajectory.batch_size, "seed": cfg.seed, "pred_m": pred, "train_err_cm": _last_train_error(d),
                     "error_cm": _stored_error(d),
                     "n_grid": int(grid.sum()),
                     "sac_grid/pred": np.nanmedian(sac[grid]) / pred if grid.any() else np.nan,
                     "spec_grid/pred": np.nanmedian(spec[grid]) / pred if grid.any() else np.nan,
                     "spec_>0.3/pred": np.nanmedian(spec[mid]) / pred if mid.any() else np.nan,
                     "n_active": int(active.sum()), "spec_all/pred": np.nanmedian(spec[active]) / pred})
    out = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(out.round(3).to_string(index=False))
    keys = [k for k in ("loss", "T", "B") if out[k].nunique() > 1] or ["loss"]
    for c in ("sac_grid/pred", "spec_grid/pred", "spec_all/pred"):
        for vals, g in out.groupby(keys):
            label = ", ".join(f"{k} {v}" for k, v in zip(keys, vals))
            print(f"median {c}, {label}: {np.nanmedian(g[c]):.3f} over {len(g)} networks")
    return 0


def _last_train_error(run_dir: Path) -> float:
    """The decoding error (cm) on the last logged training batch (the training sequence length)."""
    try:
        m = pd.read_csv(run_dir / "metrics.csv")
        return float(m["train_decoding_error_cm"].dropna().iloc[-1])
    except (OSError, KeyError, IndexError, ValueError):
        return float("nan")


def _stored_error(run_dir: Path) -> float:
    """The run's held-out decoding error (cm) from its summary.json, NaN when absent."""
    import json

    try:
        return float(json.loads((run_dir / "summary.json").read_text())["decoding_error_cm"])
    except (OSError, KeyError, TypeError, ValueError):
        return float("nan")


def horizons(pairs: list[str], seeds: list[int], sigma: float, out: Path, threshold: float, commit: str) -> int:
    """Train quick_dos networks with T-step sequences of batch B (``"T:B"``) and read their periods.

    Each (T, B, seed) trains once into ``out/T{T}_B{B}_s{seed}`` (the quick preset's
    settings, ``--sigma``; an existing scored run is reused) and is scored with the
    preset's protocol; the table is :func:`population`'s. T sets how far each sequence
    must be path-integrated from its encoded start; B*T is the number of position samples
    in a training step, so ``2:1000`` sees as many samples per step as ``20:100``.
    """
    from gridsweep.config import load_config
    from gridsweep.evaluation import score_run
    from gridsweep.reproduce.presets import load_preset
    from gridsweep.training import train

    quick = load_preset("quick")  # its base and overrides (NFL's conventions), read from the preset file
    dirs = []
    for seed in seeds:
        for pair in pairs:
            T, B = (int(v) for v in pair.split(":"))
            d = out / f"T{T}_B{B}_s{seed}"
            if not (d / "analysis" / "units.parquet").exists():
                cfg = load_config(quick.base, {**quick.overrides, "seed": seed, "target.sigma": sigma,
                                               "trajectory.sequence_length": T, "trajectory.batch_size": B})
                print(f"training {d} ...", file=sys.stderr, flush=True)
                train(cfg, d, progress=False)
                score_run(d)
            dirs.append(d)
    return population(dirs, threshold, commit)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, nargs="?")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--training-length", type=int, default=0, help="train one network this long instead")
    ap.add_argument("--every", type=int, default=2000)
    ap.add_argument("--sigma", type=float, default=0.16)
    ap.add_argument("--patterns", action="store_true", help="run the pattern-formation model instead")
    ap.add_argument("--population", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                    help="every unit's period in these trained runs (stored maps) instead")
    ap.add_argument("--horizons", nargs="+", default=None, metavar="T:B",
                    help="train quick_dos with T-step sequences of batch B and read the periods instead")
    ap.add_argument("--out", type=Path, default=Path("runs/horizons"), help="run directories (--horizons)")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.10, 0.12, 0.16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--units", type=int, default=8, help="units per seed (--patterns)")
    ap.add_argument("--steps", type=int, default=2000, help="ascent steps (--patterns)")
    ap.add_argument("--bins", type=int, default=44, help="grid points per side (--patterns)")
    ap.add_argument("--nonlinearities", nargs="+", default=["relu", "linear", "tanh"])
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if args.population:
        return population(args.population, args.threshold, commit)
    if args.horizons:
        return horizons(args.horizons, args.seeds, args.sigma, args.out, args.threshold, commit)
    if args.patterns:
        return patterns(args.sigmas, args.seeds, args.units, args.steps, args.bins, args.threshold,
                        args.nonlinearities, commit)
    if args.training_length:
        return training_length(args.training_length, args.every, args.sigma, args.threshold, 60_000, commit)
    if args.sweep is None:
        ap.error("give a sweep directory, --training-length STEPS or --patterns")
    rows = []
    for trial in sorted((args.sweep / "trials").iterdir()):
        if not (trial / "analysis" / "units.parquet").exists():
            continue
        ens = load_run(trial)
        cfg = ens.cfg
        if cfg.target.kind != "dos" or cfg.target.heterogeneity is not None or cfg.model.cell != "rnn":
            continue
        pred = predict(cfg).spacing_m
        t = cfg.target
        if t.surround_width_ratio is not None:
            other = t.model_copy(update={"surround_variance_ratio": t.surround_width_ratio, "surround_width_ratio": None})
        else:
            other = t.model_copy(update={"surround_width_ratio": t.surround_variance_ratio, "surround_variance_ratio": None})
        pred_other = predict(other).spacing_m
        d20, n20 = _median_grid(read_parquet(trial / "analysis" / "units.parquet"), "score60_deepmind_minmax", "spacing_m",
                                args.threshold)
        rm = collect_ratemaps(ens, n_samples=args.samples, bins=44)[0]
        d44, n44 = _median_grid(unit_table(rm.maps, rm.bin_size[0]), "score60_deepmind_minmax", "spacing_m", args.threshold)
        nfl = trial / "analysis" / "units_nfl.parquet"
        p44, np44 = _median_grid(read_parquet(nfl), "score60_deepmind_minmax", "period_m", args.threshold) if nfl.exists() \
            else (float("nan"), 0)
        rows.append({"trial": trial.name, "sigma": t.sigma, "seed": cfg.seed, "predicted_m": pred,
                     "predicted_other_convention_m": pred_other,
                     "dense20_m": d20, "n20": n20, "dense44_m": d44, "n44": n44, "nfl44_m": p44, "n_nfl": np44})
    df = pd.DataFrame(rows)
    if df.empty:
        print("no finished DoS networks with grid units in", args.sweep)
        return 1
    for c in ("dense20_m", "dense44_m", "nfl44_m", "predicted_other_convention_m"):
        df[c.replace("_m", "") + "/pred"] = df[c] / df["predicted_m"]
    pd.set_option("display.width", 200)
    print(f"commit {commit or 'unknown'}; sweep {args.sweep}; units scoring > {args.threshold}")
    print(df.round(3).to_string(index=False))
    ratios = {c: df[c].dropna() for c in df.columns if c.endswith("/pred")}
    for c, r in ratios.items():
        print(f"median {c}: {np.median(r):.3f} over {len(r)} networks" if len(r) else f"{c}: no networks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
