#!/usr/bin/env python
"""Measurements behind the quick reproduction preset (docs/quick-preset.md).

``lr-step``: DoS sigma 0.12 (configs/quick_dos.yaml), seeds 0 and 1 as one ensemble,
6,000 steps, the learning rate multiplied by GAMMA at MILESTONE; prints held-out
decoding error and grid measures per seed.

``null``: for a trained run directory, the best unit's grid score and the fraction of
units above 0.8, trained and untrained (same config and seed), at 20, 32 and 44 bins;
shows whether NFL's any-unit rule separates learning from chance at this scale.

``decoder-floor``: decoding error of the *true* target code (no network) with the
top-k decoder, for single-field, single-scale multi-field and heterogeneous cells.

Usage (scratch output under /tmp)::

    python scripts/quick_reproduce_checks.py lr-step /tmp/lrexp/C --milestone 4500 --gamma 0.1
    python scripts/quick_reproduce_checks.py null /tmp/lrexp/C/s0
    python scripts/quick_reproduce_checks.py decoder-floor
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gridsweep.analysis import unit_table
from gridsweep.config import load_config
from gridsweep.evaluation import collect_ratemaps, score_run, untrained_ratemaps
from gridsweep.training import load_run, train_ensemble

PRESET = Path(__file__).resolve().parents[1] / "src" / "gridsweep" / "configs" / "quick_dos.yaml"
KEYS = ("decoding_error_cm", "max_score60_deepmind_minmax", "frac_units_above_0.3", "frac_units_above_0.8",
        "median_spacing_m_above_0.8")


def lr_step(out: Path, milestone: int, gamma: float, steps: int) -> None:
    base = load_config(PRESET)
    cfgs = [base.with_overrides({"seed": s, "name": f"s{s}", "training.n_steps": steps,
                                 "training.eval_every": 1000, "training.checkpoint_every": 1000,
                                 "training.lr_milestones": [milestone] if milestone else [],
                                 "training.lr_gamma": gamma, "evaluation.ratemap_samples": 60000})
            for s in (0, 1)]
    dirs = [out / f"s{s}" for s in (0, 1)]
    t0 = time.time()
    ens, _ = train_ensemble(cfgs, dirs, progress=True)
    print(f"trained in {time.time() - t0:.0f} s")
    for i, d in enumerate(dirs):
        m = score_run(d, ens, index=i, figures=False)
        print(json.dumps({"seed": i, **{k: m[k] for k in KEYS}}))


def null(run_dir: Path) -> None:
    ens = load_run(run_dir)
    for bins, n in ((20, 60_000), (32, 100_000), (44, 150_000)):
        for name, rm in (("trained", collect_ratemaps(ens, n_samples=n, bins=bins)[0]),
                         ("untrained", untrained_ratemaps(ens.cfg, n_samples=n, bins=bins))):
            s = unit_table(rm.maps, rm.bin_size[0])["score60_deepmind_minmax"].to_numpy(float)
            print(f"{bins:3d} bins {name:9s}: best unit {np.nanmax(s):.2f}, "
                  f"units > 0.8 {100 * np.mean(s > 0.8):.1f}%, > 0.3 {100 * np.mean(s > 0.3):.1f}%")


HETEROGENEITY = {
    "single field": None,
    "multi-field, single scale": {"fields_lambda": 3.0, "max_fields": 6},
    "multi-field, heterogeneous": {"fields_lambda": 3.0, "max_fields": 6, "sigma_range": [0.06, 1.0],
                                   "surround_width_ratio_range": [1.25, 4.5]},
}


def decoder_floor() -> None:
    from gridsweep.targets import decoding_error_cm
    from gridsweep.training import Ensemble

    base = load_config(PRESET)
    for name, het in HETEROGENEITY.items():
        ens = Ensemble([base.with_overrides({"target.heterogeneity": het})])
        x = ens.sample(batch=200, steps=50).positions
        code = ens.target.encode(x)
        for k in ((1, 3) if het is None else (3,)):  # multi-field decoding searches F^k field combinations
            ens.target.decode_k = k
            err = float(decoding_error_cm(ens.target.decode(torch.log(code + 1e-12)), x)[0])
            print(f"{name:28s} top-{k}: {err:.2f} cm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("lr-step")
    a.add_argument("out", type=Path)
    a.add_argument("--milestone", type=int, default=4500, help="0: constant rate")
    a.add_argument("--gamma", type=float, default=0.1)
    a.add_argument("--steps", type=int, default=6000)
    b = sub.add_parser("null")
    b.add_argument("run_dir", type=Path)
    sub.add_parser("decoder-floor")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.cmd == "lr-step":
        lr_step(args.out, args.milestone, args.gamma, args.steps)
    elif args.cmd == "null":
        null(args.run_dir)
    else:
        decoder_floor()


if __name__ == "__main__":
    main()
