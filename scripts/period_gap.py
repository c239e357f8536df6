"""Why trained networks' grid periods differ from the readout spectrum's prediction.

For every finished DoS network of a reproduction sweep (groups ``sigma`` and ``targets``)
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
    print(f"{'step':>6} {'error_cm':>8} {'n_grid':>6} {'measured_m':>10} {'measured/pred':>13}")

    def cb(ens, metrics) -> None:
        if ens.step % every == 0:
            rm = collect_ratemaps(ens, n_samples=samples, bins=20)[0]
            m, n = _median_grid(unit_table(rm.maps, rm.bin_size[0]), "score60_deepmind_minmax", "spacing_m", threshold)
            err = float(ens.evaluate()[0])
            print(f"{ens.step:>6} {err:>8.1f} {n:>6} {m:>10.3f} {m / pred:>13.3f}", flush=True)

    train(cfg, progress=False, callback=cb)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, nargs="?")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--training-length", type=int, default=0, help="train one network this long instead")
    ap.add_argument("--every", type=int, default=2000)
    ap.add_argument("--sigma", type=float, default=0.16)
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if args.training_length:
        return training_length(args.training_length, args.every, args.sigma, args.threshold, 60_000, commit)
    if args.sweep is None:
        ap.error("give a sweep directory, or --training-length STEPS")
    rows = []
    for trial in sorted((args.sweep / "trials").iterdir()):
        if not (trial / "analysis" / "units.parquet").exists():
            continue
        ens = load_run(trial)
        cfg = ens.cfg
        if cfg.target.kind != "dos" or cfg.target.heterogeneity is not None:
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
