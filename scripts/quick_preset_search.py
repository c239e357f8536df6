#!/usr/bin/env python
"""Search for the cheapest CPU setting at which a DoS path integrator shows grid-like units.

Reproduces the measurements of docs/quick-preset.md. Each named experiment is ONE
ensemble (``gridsweep.training.train_ensemble``): networks that share the ensemble key
and differ in per-network fields (learning rate, weight decay, sigma, surround, init).
Every ``--score-every`` steps (and at step 0, before any training) it records, per
network, the held-out decoding error and the grid scores of all hidden units
(deepmind min-max variant, 20 x 20 rate maps), so each network is compared with itself
untrained.

Usage (scratch output goes to /tmp/research, never into the repository)::

    python scripts/quick_preset_search.py list
    python scripts/quick_preset_search.py run r1 --out /tmp/research/r1 --stop-after 3000 --budget-min 30
    python scripts/quick_preset_search.py table /tmp/research/r1
    python scripts/quick_preset_search.py run quick --out /tmp/research/quick     # the shipped preset
    python scripts/quick_preset_search.py score /tmp/research/r1/lr3e-3_wd1e-5   # final maps + top_units.png

Runs resume from their last checkpoint when re-run with the same arguments (a larger
``--stop-after`` extends them).

Grid scores come from ``gridsweep.analysis`` (``autocorrelogram`` and ``grid_scores``,
deepmind variants, docs/science.md section 6); ``score`` also runs
``gridsweep.evaluation.score_run``, which writes the run's ``analysis/`` directory.
Units whose map is constant (dead ReLU units) have no SAC and a NaN score; they count
as not above any threshold and as 0 in the median, as in the measurements of
docs/quick-preset.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gridsweep.analysis import autocorrelogram, grid_scores, plot_top_units
from gridsweep.config import RunConfig, load_config
from gridsweep.training import Ensemble, load_run, train_ensemble

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "src" / "gridsweep" / "configs" / "quick_dos.yaml"
DEMO = REPO / "src" / "gridsweep" / "configs" / "demo_small.yaml"

# ----------------------------------------------------------------------------------------
# experiments: (base config, shared overrides, {network name: per-network overrides})
# ----------------------------------------------------------------------------------------
_SHARED_SMALL = {
    "model.hidden_size": 256, "target.n_cells": 256, "trajectory.batch_size": 100,
    "training.n_steps": 100_000, "training.eval_every": 100_000, "training.log_every": 50,
    "evaluation.n_trajectories": 200, "evaluation.bins": 20, "evaluation.ratemap_samples": 40_000,
}
EXPERIMENTS: dict[str, tuple[Path, dict, dict[str, dict]]] = {
    # Round 1: learning rate x L2 penalty on W_hh (from step 0), one surround convention
    # and one init variant; Ng 256, Np 256, batch 100, T 20, solid box.
    "r1": (DEMO, _SHARED_SMALL, {
        "lr1e-3_wd0": {"training.learning_rate": 1e-3, "training.weight_decay": 0.0},
        "lr3e-3_wd0": {"training.learning_rate": 3e-3, "training.weight_decay": 0.0},
        "lr1e-3_wd1e-5": {"training.learning_rate": 1e-3, "training.weight_decay": 1e-5},
        "lr3e-3_wd1e-5": {"training.learning_rate": 3e-3, "training.weight_decay": 1e-5},
        "lr3e-3_wd1e-4": {"training.learning_rate": 3e-3, "training.weight_decay": 1e-4},
        "lr3e-3_wd1e-5_var2": {"training.learning_rate": 3e-3, "training.weight_decay": 1e-5,
                               "target.surround_width_ratio": None, "target.surround_variance_ratio": 2.0},
    }),
    # Round 1 continued: the three lr 3e-3 networks of r1 resumed from their checkpoints
    # (run with --out pointing at r1's directory).
    "r1_cont": (DEMO, _SHARED_SMALL, {}),
    # The shipped preset (configs/quick_dos.yaml) as one network.
    "quick": (PRESET, {}, {"quick_dos": {}}),
}


EXPERIMENTS["r1_cont"][2].update({k: v for k, v in EXPERIMENTS["r1"][2].items()
                                  if k in ("lr3e-3_wd0", "lr3e-3_wd1e-5", "lr3e-3_wd1e-4")})


# Round 2: warm starts. Each network starts from a checkpoint of round 1 (copied into
# its fresh run directory, so step, weights, Adam state and RNG state carry over) and
# continues with a lower learning rate and a (stronger) L2 penalty on W_hh: the
# "switch the penalty on after position is learnt" schedule, done per network.
_R2 = {"training.learning_rate": 1e-3}
EXPERIMENTS["r2"] = (DEMO, _SHARED_SMALL, {
    "from_wd1e-5_lr1e-3_wd1e-5": {**_R2, "training.weight_decay": 1e-5},
    "from_wd1e-5_lr1e-3_wd1e-4": {**_R2, "training.weight_decay": 1e-4},
    "from_wd1e-5_lr1e-3_wd1e-3": {**_R2, "training.weight_decay": 1e-3},
    "from_wd1e-4_lr1e-3_wd1e-4": {**_R2, "training.weight_decay": 1e-4},
})
#: experiment -> {network: run directory (relative to --init-root) whose checkpoint it starts from}
INIT_FROM = {"r2": {"from_wd1e-5_lr1e-3_wd1e-5": "lr3e-3_wd1e-5", "from_wd1e-5_lr1e-3_wd1e-4": "lr3e-3_wd1e-5",
                    "from_wd1e-5_lr1e-3_wd1e-3": "lr3e-3_wd1e-5", "from_wd1e-4_lr1e-3_wd1e-4": "lr3e-3_wd1e-4"}}


def build_configs(name: str, extra: list[str]) -> tuple[list[str], list[RunConfig]]:
    base, shared, nets = EXPERIMENTS[name]
    cfg0 = load_config(base, extra or None)
    names, cfgs = [], []
    for _i, (net, over) in enumerate(nets.items()):
        d = {**shared, **over, "name": net}
        names.append(net)
        cfgs.append(cfg0.with_overrides(d))
    return names, cfgs


# ----------------------------------------------------------------------------------------
# grid scores (docs/science.md section 6, deepmind variants, from gridsweep.analysis)
# ----------------------------------------------------------------------------------------
VARIANTS = ("deepmind_minmax", "deepmind_mean")


def unit_scores(maps: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """60-degree scores of every map per deepmind variant, (U, n, n) -> {variant: (U,)}, and the SACs."""
    sacs = autocorrelogram(maps)
    return {v: grid_scores(sacs=sacs, variant=v)["score60"] for v in VARIANTS}, sacs


def summarise(scores: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    dead = int(np.all(np.nan_to_num(maps) == 0, axis=(1, 2)).sum())
    scores = np.nan_to_num(scores, nan=0.0)  # constant maps: no SAC, scored 0 (see module docstring)
    return {"max_score": float(np.max(scores)), "frac_above_0.3": float((scores > 0.3).mean()),
            "frac_above_0.8": float((scores > 0.8).mean()), "n_above_0.8": int((scores > 0.8).sum()),
            "median_score": float(np.median(scores)), "n_dead": dead}


def measure(ens: Ensemble, n_samples: int, bins: int = 20) -> list[dict]:
    """Per network: decoding error (held-out) and grid-score summary of all hidden units."""
    from gridsweep.evaluation import collect_ratemaps

    err = ens.evaluate().cpu().numpy()
    rms = collect_ratemaps(ens, n_samples=n_samples, bins=bins)
    rows = []
    for e, rm in enumerate(rms):
        sc = unit_scores(rm.maps)[0]["deepmind_minmax"]
        rows.append({"decoding_error_cm": float(err[e]), **summarise(sc, rm.maps)})
    return rows


def plot_top(rm, sacs: np.ndarray, scores: np.ndarray, path: Path, title: str, n: int = 16) -> None:
    """The ``n`` best units of a RateMaps ``rm`` (map and SAC), saved to ``path``."""
    fig, _ = plot_top_units(rm, sacs, scores, n=n, cols=8, variant="deepmind_minmax")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=90)


# ----------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------
class _Budget(Exception):
    pass


def cmd_run(a: argparse.Namespace) -> None:
    names, cfgs = build_configs(a.experiment, a.set)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dirs = [out / n for n in names]
    log = out / "scores.jsonl"
    for n, c in zip(names, cfgs):
        c_ck = c.with_overrides({"training.checkpoint_every": a.score_every})
        cfgs[names.index(n)] = c_ck
    if a.experiment in INIT_FROM and not any((d / "checkpoints" / "last.pt").exists() for d in dirs):
        import shutil

        if not a.init_root:
            raise SystemExit(f"experiment {a.experiment} starts from checkpoints: give --init-root")
        for n, d in zip(names, dirs):
            (d / "checkpoints").mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(a.init_root) / INIT_FROM[a.experiment][n] / "checkpoints" / "last.pt",
                        d / "checkpoints" / "last.pt")
    resuming = all((d / "checkpoints" / "last.pt").exists() for d in dirs)

    def write(step: int, rows: list[dict], wall: float, score_s: float) -> None:
        with log.open("a") as fh:
            for n, r in zip(names, rows):
                fh.write(json.dumps({"step": step, "net": n, "train_wall_s": round(wall, 1),
                                     "score_s": round(score_s, 1), **r}) + "\n")
                print(f"step {step:6d} {n:24s} err {r['decoding_error_cm']:6.1f} cm  max {r['max_score']:.2f}  "
                      f">0.3 {r['frac_above_0.3']:.3f}  >0.8 {r['frac_above_0.8']:.3f}  dead {r['n_dead']}", flush=True)

    state = {"t0": time.perf_counter(), "score_s": 0.0, "wall0": 0.0}
    if resuming and log.exists():
        prev = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        state["wall0"] = max(p["train_wall_s"] for p in prev)
    if not resuming:
        log.unlink(missing_ok=True)
        t = time.perf_counter()
        ens0 = Ensemble(cfgs)
        write(0, measure(ens0, a.samples), 0.0, time.perf_counter() - t)
        del ens0
        state["t0"] = time.perf_counter()

    def callback(ens: Ensemble, m: dict) -> None:
        step = ens.step
        if (step - 1) % a.score_every == 0 and step > 1 and \
                time.perf_counter() - state["t0"] > a.budget_min * 60:
            raise _Budget  # checkpoint of step-1 is on disk
        if step % a.score_every == 0:
            t = time.perf_counter()
            wall = state["wall0"] + t - state["t0"] - state["score_s"]
            rows = measure(ens, a.samples)
            state["score_s"] += time.perf_counter() - t
            write(step, rows, wall, time.perf_counter() - t)

    try:
        train_ensemble(cfgs, dirs, progress=False, stop_after=a.stop_after, callback=callback)
    except _Budget:
        print("time budget reached; stopped at the last scored checkpoint", flush=True)


def cmd_score(a: argparse.Namespace) -> None:
    for run in a.runs:
        run = Path(run)
        ens = load_run(run)
        from gridsweep.evaluation import collect_ratemaps

        rm = collect_ratemaps(ens, n_samples=a.samples, bins=20)[0]
        sc, sacs = unit_scores(rm.maps)
        s = summarise(sc["deepmind_minmax"], rm.maps)
        err = float(ens.evaluate()[0])
        res = {"run": str(run), "step": ens.step, "decoding_error_cm": err, "samples": a.samples, **s,
               "max_score_deepmind_mean": float(np.nanmax(np.nan_to_num(sc["deepmind_mean"], nan=0.0)))}
        # the same network at step 0 (same seed, same init)
        ens0 = Ensemble(ens.cfgs)
        rm0 = collect_ratemaps(ens0, n_samples=a.samples, bins=20)[0]
        sc0, sacs0 = unit_scores(rm0.maps)
        s0 = summarise(sc0["deepmind_minmax"], rm0.maps)
        res["untrained"] = {"decoding_error_cm": float(ens0.evaluate()[0]), **s0}
        (run / "analysis").mkdir(exist_ok=True)
        plot_top(rm, sacs, sc["deepmind_minmax"], run / "analysis" / "top_units_quick.png",
                 f"{run.name} step {ens.step}: err {err:.1f} cm, top units (deepmind_minmax)")
        plot_top(rm0, sacs0, sc0["deepmind_minmax"], run / "analysis" / "top_units_step0.png",
                 f"{run.name} step 0 (untrained)")
        np.savez_compressed(run / "analysis" / "quick_maps.npz", maps=rm.maps.astype(np.float32),
                            scores=sc["deepmind_minmax"])
        from gridsweep.evaluation import score_run

        res["score_run"] = score_run(run, n_samples=a.samples)
        print(json.dumps(res, indent=1, default=float), flush=True)
        (run / "analysis" / "quick_summary.json").write_text(json.dumps(res, indent=1, default=float))


def cmd_table(a: argparse.Namespace) -> None:
    for out in a.outs:
        rows = [json.loads(line) for line in (Path(out) / "scores.jsonl").read_text().splitlines() if line.strip()]
        print(f"\n{out}\n| net | step | train wall s | err cm | max | >0.3 | >0.8 | dead |\n|---|---|---|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: (r["net"], r["step"])):
            print(f"| {r['net']} | {r['step']} | {r['train_wall_s']:.0f} | {r['decoding_error_cm']:.1f} | "
                  f"{r['max_score']:.2f} | {r['frac_above_0.3']:.3f} | {r['frac_above_0.8']:.3f} | {r['n_dead']} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 was faster than 2 on 2 cores shared with other jobs)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run")
    r.add_argument("experiment", choices=sorted(EXPERIMENTS))
    r.add_argument("--out", required=True)
    r.add_argument("--stop-after", type=int, default=3000)
    r.add_argument("--score-every", type=int, default=500)
    r.add_argument("--samples", type=int, default=40_000, help="rate-map samples per score point")
    r.add_argument("--budget-min", type=float, default=1e9, help="stop at the first score point after this")
    r.add_argument("--init-root", help="directory holding the runs an experiment warm-starts from")
    r.add_argument("--set", action="append", default=[], help="override on the base config, key=value")
    s = sub.add_parser("score")
    s.add_argument("runs", nargs="+")
    s.add_argument("--samples", type=int, default=100_000)
    t = sub.add_parser("table")
    t.add_argument("outs", nargs="+")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.cmd == "list":
        for k, (base, shared, nets) in EXPERIMENTS.items():
            print(k, base.name, shared, list(nets))
    else:
        {"run": cmd_run, "score": cmd_score, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
