"""Network-steps per second of an ensemble of E networks against E sequential single-network trainers.

For each hidden size Ng (Np 256, B 200, T 20, DoS targets, Adam) and each E, an
``Ensemble`` of E networks takes training steps; the baseline is the same training step
run by single-network trainers (``Ensemble`` of E = 1, what ``gridsweep train`` runs),
one after the other. The baseline's time for E networks is E times the median time of a
single-network step, measured in the same run, interleaved with the ensemble steps
(singles, E=1, E=4, ... then again), so load from other users of the machine hits both.

    ratio = (E / ensemble step time) / (1 / single-network step time)

    python bench/ensemble.py [--quick] [--device cuda] [--compile]
    python bench/ensemble.py --fused-compare --sizes 128 --E 16 [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time

import torch

from gridsweep.config import RunConfig
from gridsweep.training import Ensemble


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def config(Ng: int, seed: int) -> RunConfig:
    return RunConfig().with_overrides({"seed": seed, "model.hidden_size": Ng, "target.n_cells": 256,
                                       "trajectory.batch_size": 200, "trajectory.sequence_length": 20})


def timed_step(ens: Ensemble, device: torch.device) -> float:
    t0 = time.perf_counter()
    m = ens.train_step()
    m["loss"].sum().item()  # wait for the step (the loop reads the loss when it logs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def run_size(Ng: int, Es: list[int], repeats: int, n_singles: int, device: torch.device, compile: bool) -> list[dict]:
    kw = {"compile": True} if compile else {}  # (no keyword when off: the bench also runs older versions)
    singles = [Ensemble([config(Ng, 1000 + i)], device=device, **kw) for i in range(n_singles)]
    ensembles = {E: Ensemble([config(Ng, s) for s in range(E)], device=device, **kw) for E in Es}
    for ens in [*singles, *ensembles.values()]:  # warm up: first step allocates optimiser state
        timed_step(ens, device)
        timed_step(ens, device)
    t_single: list[float] = []
    t_ens: dict[int, list[float]] = {E: [] for E in Es}
    for _ in range(repeats):
        for s in singles:
            t_single.append(timed_step(s, device))
        for E in Es:
            t_ens[E].append(timed_step(ensembles[E], device))
    single = statistics.median(t_single)
    rows = []
    for E in Es:
        t = statistics.median(t_ens[E])
        rows.append({"Ng": Ng, "E": E, "ensemble_ms": 1e3 * t, "single_ms": 1e3 * single,
                     "ensemble_nsps": E / t, "sequential_nsps": 1 / single, "ratio": E * single / t})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (~2 minutes on 2 shared cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="Ensemble(compile=True) for every trainer")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="hidden sizes Ng")
    ap.add_argument("--E", type=int, nargs="+", default=[1, 4, 16, 64], dest="Es", help="ensemble sizes")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--fused-compare", action="store_true",
                    help="instead: each E's step under the reference and the fused readout loss, as a fraction of "
                         "the product rate on the step's own shapes (bench/train_step.py --small), Np 256 and 512")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.fused_compare:
        from train_step import print_small, small_network_report  # bench/train_step.py

        repeats = args.repeats or (3 if args.quick else 7)
        print(f"# ensembles, reference vs fused loss; device: {device_name(device)}; torch {torch.__version__}; "
              f"{repeats} interleaved repeats, medians; load average at start {os.getloadavg()[0]:.1f}")
        for Ng in args.sizes:
            for E in args.Es:
                for Np in (256, 512):
                    print_small(small_network_report(Ng, Np, E, repeats, device))
        print(f"# load average at end {os.getloadavg()[0]:.1f}")
        return
    repeats = args.repeats or (3 if args.quick else 7)
    n_singles = 4
    print("# ensemble vs sequential single-network trainers; Np 256, B 200, T 20, DoS, Adam, float32")
    print(f"# device: {device_name(device)}; torch {torch.__version__}; compile={args.compile}")
    print(f"# {repeats} interleaved repeats, medians; baseline = {n_singles} single-network trainers, "
          f"E x their median step time; load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'Ng':>5} {'E':>4} | {'ensemble ms/step':>16} {'single ms/step':>14} | "
          f"{'ensemble net-steps/s':>20} {'sequential net-steps/s':>22} | {'ratio':>6}")
    rows = []
    for Ng in args.sizes:
        for r in run_size(Ng, args.Es, repeats, n_singles, device, args.compile):
            rows.append(r)
            print(f"{r['Ng']:>5} {r['E']:>4} | {r['ensemble_ms']:>16.1f} {r['single_ms']:>14.1f} | "
                  f"{r['ensemble_nsps']:>20.1f} {r['sequential_nsps']:>22.1f} | {r['ratio']:>5.2f}x", flush=True)
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    for r in rows:
        if r["Ng"] == 128 and r["E"] == 16:
            print(f"RESULT ensemble Ng128 E16 ratio {r['ratio']:.2f}x on {device.type} (goal on the 2-core CPU: >= 4x)")


if __name__ == "__main__":
    main()
