"""Per-trial overhead of the sweep machinery (spec expansion, SQLite store, executors).

Runs N trivial trials (a worker that returns at once, so only gridsweep's bookkeeping is
timed) through each executor, and compares the per-trial overhead with the time of a
tiny real trial (Ng 16, Np 16, batch 8, 20 steps, one torch thread).

    python bench/sweep_overhead.py            # 1,000 trivial trials
    python bench/sweep_overhead.py --quick    # 200 trivial trials
    python bench/sweep_overhead.py --ray      # also through a local Ray
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

BASE = """\
name: bench_{n}
base:
  target: {{n_cells: 16, surround_width_ratio: 2.0}}
  model: {{hidden_size: 16}}
  trajectory: {{batch_size: 8}}
  training: {{n_steps: 20, eval_every: 10, checkpoint_every: 10}}
  evaluation: {{n_trajectories: 8}}
grid:
  seed: {{low: 0, high: {last}, step: 1}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 trivial trials, 3 real ones")
    ap.add_argument("-n", type=int, default=None, help="trivial trials (default 1000)")
    ap.add_argument("--workers", type=int, default=None, help="local workers (default: cores)")
    ap.add_argument("--ray", action="store_true", help="also time the Ray executor (local Ray)")
    args = ap.parse_args()
    n = args.n or (200 if args.quick else 1000)
    n_real = 3 if args.quick else 10

    import torch

    from gridsweep.sweeps import parse_spec, run_sweep
    from gridsweep.sweeps.executors import cpu_count
    from gridsweep.sweeps.worker import run_group

    workers = args.workers or cpu_count()
    print(f"sweep overhead: {n} trivial trials, {workers} local worker(s), {cpu_count()} core(s), "
          f"torch {torch.__version__}")
    tmp = Path(tempfile.mkdtemp(prefix="gridsweep-bench-"))

    t = time.perf_counter()
    spec = parse_spec(BASE.format(n=n, last=n - 1), "<bench>")
    trials = spec.expand()
    expand_s = (time.perf_counter() - t) / len(trials)
    assert len(trials) == n

    rows = []

    def timed(label: str, **kw) -> None:
        t0 = time.perf_counter()
        rep = run_sweep(spec, tmp / label.replace(" ", "_"), worker="gridsweep.sweeps.worker:noop_group",
                        progress=False, **kw)
        wall = time.perf_counter() - t0
        assert rep.counts["done"] == n, rep.counts
        rows.append((label, wall, wall / n, rep.n_tasks))
        # resume of a finished sweep: expansion + store scan only
        t0 = time.perf_counter()
        run_sweep(spec, tmp / label.replace(" ", "_"), worker="gridsweep.sweeps.worker:noop_group",
                  progress=False, **kw)
        rows.append((label + " (re-run, nothing to do)", time.perf_counter() - t0, (time.perf_counter() - t0) / n, 0))

    timed("serial, E=1", executor="serial", ensemble_size=1)
    timed(f"local x{workers}, E=1", executor="local", workers=workers, ensemble_size=1)
    timed(f"local x{workers}, auto E", executor="local", workers=workers)
    if args.ray:
        timed(f"ray x{workers}, E=1", executor="ray", workers=workers, ensemble_size=1)

    # the trials themselves: a tiny real training, alone and as an ensemble of 8
    cfgs = [t.config for t in trials[:8]]
    run_group(cfgs[:1], [tmp / "warm"], analysis="none", threads=1)
    alone = []
    for i in range(n_real):
        t0 = time.perf_counter()
        run_group(cfgs[i % 8:i % 8 + 1], [tmp / "real" / str(i)], analysis="none", threads=1)
        alone.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    run_group(cfgs, [tmp / "ens" / str(i) for i in range(8)], analysis="none", threads=1)
    ens8 = (time.perf_counter() - t0) / 8
    trial_s = statistics.median(alone)

    print(f"\nspec expansion + validation + hashing: {expand_s * 1e3:.3f} ms/trial")
    print(f"{'executor (trivial worker)':44s} {'wall s':>8s} {'ms/trial':>9s} {'tasks':>6s} {'overhead/trial':>15s}")
    for label, wall, per, tasks in rows:
        print(f"{label:44s} {wall:8.2f} {per * 1e3:9.2f} {tasks:6d} {per / trial_s:14.1%}")
    print(f"\ntiny real trial (Ng 16, Np 16, batch 8, 20 steps, 1 thread): {trial_s * 1e3:.0f} ms alone (median "
          f"of {n_real}), {ens8 * 1e3:.0f} ms/trial in an ensemble of 8")
    print("overhead/trial = (wall of the trivial sweep / N) / (tiny real trial alone)")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
