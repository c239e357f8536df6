"""What a reproduction preset's training costs, from measured step times of its own networks.

For every distinct kind of network in the presets (one per sweep group key,
:func:`gridsweep.sweeps.planning.group_key`: target kind, cell, field padding ...), one
network takes training steps alone on this machine; the median step time times the
preset's steps, summed over its trials, is the preset's training in core-minutes. The presets are measured in the same run, so their ratio does
not depend on how fast or loaded the machine is; the minutes do.

    python bench/preset_cost.py [--presets quick quick_seeds] [--steps 25] [--threads 1]

The prediction for ``gridsweep reproduce`` with W local workers of one thread is
core-minutes / W when the trials pack well (longest first), plus scoring, predictivity
and the report (about 6 min for quick).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from gridsweep.config import RunConfig
from gridsweep.reproduce.presets import load_preset
from gridsweep.reproduce.run import build_spec
from gridsweep.sweeps.planning import group_key
from gridsweep.training import Ensemble


def preset_configs(name: str) -> list[RunConfig]:
    """The distinct trials' configs of preset ``name``."""
    trials = build_spec(load_preset(name))[0].expand()
    return [t.config for t in trials]


def label(cfg: RunConfig) -> str:
    t = cfg.target
    parts = [t.kind, cfg.model.cell]
    if t.heterogeneity is not None:
        parts.append(f"multi-field <= {t.heterogeneity.max_fields}")  # single-scale or heterogeneous: one cost
    return ", ".join(parts)


def step_seconds(cfg: RunConfig, steps: int) -> float:
    """Median seconds of one training step of ``cfg`` trained alone (after 5 warm-up steps)."""
    ens = Ensemble([cfg])
    for _ in range(5):
        ens.train_step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        ens.train_step()["loss"].sum().item()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["quick", "quick_seeds"])
    ap.add_argument("--steps", type=int, default=25, help="timed steps per kind of network")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="local workers the prediction assumes")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfgs = {name: preset_configs(name) for name in a.presets}
    kinds: dict[str, RunConfig] = {}
    for lst in cfgs.values():
        for c in lst:
            kinds.setdefault(group_key(c), c)
    per_step = {k: step_seconds(c, a.steps) for k, c in kinds.items()}
    print(f"torch {torch.__version__}, {a.threads} thread(s); median of {a.steps} steps per kind, one network alone")
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for name, lst in cfgs.items():
        for c in lst:
            counts[group_key(c)][name] = counts[group_key(c)].get(name, 0) + 1
    print(f"{'network':<40} {'ms/step':>8} " + " ".join(f"{n:>12}" for n in a.presets))
    for k, c in kinds.items():
        print(f"{label(c):<40} {1e3 * per_step[k]:>8.1f} " + " ".join(f"{counts[k].get(n, 0):>12}" for n in a.presets))
    core_min = {}
    for name, lst in cfgs.items():
        core_min[name] = sum(per_step[group_key(c)] * c.training.n_steps for c in lst) / 60
        print(f"{name}: {len(lst)} trials, {core_min[name]:.1f} core-min of training, "
              f"{core_min[name] / a.workers:.1f} min on {a.workers} workers")
    first = a.presets[0]
    for name in a.presets[1:]:
        print(f"ratio {name} / {first}: {core_min[name] / core_min[first]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
