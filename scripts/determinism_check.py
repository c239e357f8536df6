"""Which settings change a trained network's numbers: threads, ensemble size, loss path, prefetch, repeat.

Trains one small network of the quick preset's shape (``quick_dos``, fewer steps) under
several settings and prints, for each, the largest absolute difference of the final
weights and of the final loss from a reference run (1 thread, alone). The output is the
measurement behind docs/reproduce.md, "What changes the numbers".

Run::

    python scripts/determinism_check.py [--steps 300] [--hidden 128]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import torch

from gridsweep.config import load_config
from gridsweep.training import train_ensemble


def _run(cfgs, threads: int) -> tuple[dict[str, torch.Tensor], float]:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ens, res = train_ensemble(cfgs, progress=False)
    finally:
        torch.set_num_threads(old)
    state = {k: v[0].detach().clone() for k, v in ens.model.state_dict().items() if v.ndim and v.shape[0] == ens.E}
    return state, float("nan")


def _with(setting: str, value: str, fn):
    """Run ``fn()`` with a speed setting changed: ``fused`` (gridsweep.fused.MODE) or an environment variable."""
    import os

    from gridsweep import fused

    if setting == "fused":
        old, fused.MODE = fused.MODE, value
        try:
            return fn()
        finally:
            fused.MODE = old
    old_env = os.environ.get(setting)
    os.environ[setting] = value
    try:
        return fn()
    finally:
        if old_env is None:
            os.environ.pop(setting, None)
        else:
            os.environ[setting] = old_env


def _diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=128)
    args = ap.parse_args(argv)
    over = [f"training.n_steps={args.steps}", f"model.hidden_size={args.hidden}", "training.eval_every=100000",
            "training.checkpoint_every=100000", "training.lr_milestones=[]"]
    cfg = load_config("quick_dos", over)
    other = cfg.with_overrides({"seed": 1})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit or 'unknown'}, torch {torch.__version__}, quick_dos with {args.steps} steps, Ng {args.hidden}")
    ref, _ = _run([cfg], threads=1)
    rows = [
        ("repeat (1 thread, alone)", _run([cfg], threads=1)[0]),
        ("2 threads, alone", _run([cfg], threads=2)[0]),
        ("1 thread, in an ensemble of 2 (with seed 1)", _run([cfg, other], threads=1)[0]),
        ("2 threads, in an ensemble of 2 (with seed 1)", _run([cfg, other], threads=2)[0]),
        ("trajectory prefetch off (GRIDSWEEP_TRAJ_PREFETCH=0)",
         _with("GRIDSWEEP_TRAJ_PREFETCH", "0", lambda: _run([cfg], threads=1)[0])),
        ("loss path 'reference' instead of 'eager'", _with("fused", "reference", lambda: _run([cfg], threads=1)[0])),
        ("control: seed 1 instead of 0", _run([other], threads=1)[0]),
        ("control: float64 instead of float32", {k: v.float() for k, v in
                                                 _run([cfg.with_overrides({"training.dtype": "float64"})], 1)[0].items()}),
    ]
    print(f"{'setting':48s} max |weight - reference|")
    for name, state in rows:
        print(f"{name:48s} {_diff(state, ref):.3e}")


if __name__ == "__main__":
    sys.exit(main())
