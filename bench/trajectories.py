"""Agent-steps per second of gridsweep.trajectories.generate against a numpy per-step loop.

The reference is the published generator's method (Sorscher et al.; docs/science.md section 2),
written here from that description: numpy arrays on the host, one Python iteration per
time step, vectorised over the batch. gridsweep draws the same kind of noise from one
torch.Generator per network on the target device and integrates it with torch ops.

Before timing, both integrators are run on the *same* noise and must agree (float64), so
the two sides compute the same thing. Timings interleave repeats (A B A B ...) and report
medians; the machine is shared, so only the ratios measured in one run mean anything.

    python bench/trajectories.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gridsweep.config import BoxConfig, TrajectoryConfig
from gridsweep.trajectories import generate, integrate, sample_noise

sys.path.insert(0, str(Path(__file__).resolve().parent))


# ----------------------------------------------------------------------------------
# the published method: numpy, host, per-step loop
# ----------------------------------------------------------------------------------
def numpy_noise(rng: np.random.Generator, batch: int, steps: int, cfg: TrajectoryConfig, box: BoxConfig) -> dict:
    """Start, heading, turn rate and Rayleigh speed drawn with numpy."""
    return {
        "start": np.stack([rng.uniform(-box.width / 2, box.width / 2, batch),
                           rng.uniform(-box.height / 2, box.height / 2, batch)], -1),
        "heading": rng.uniform(0, 2 * np.pi, batch),
        "turn": rng.normal(0.0, cfg.turn_rate_std, (batch, steps)),
        "speed": rng.rayleigh(cfg.speed_scale, (batch, steps)),
    }


def numpy_integrate(noise: dict, cfg: TrajectoryConfig, box: BoxConfig) -> dict:
    """Solid-wall Sorscher motion, one numpy iteration per step (docs/science.md section 2)."""
    batch, steps = noise["turn"].shape
    hw, hh, dt = box.width / 2, box.height / 2, cfg.dt
    pos = np.zeros((batch, steps + 1, 2))
    hd = np.zeros((batch, steps + 1))
    pos[:, 0] = noise["start"]
    hd[:, 0] = noise["heading"]
    for t in range(steps):
        x, y = pos[:, t, 0], pos[:, t, 1]
        dists = np.stack([hw - x, hh - y, hw + x, hh + y], -1)  # walls +x, +y, -x, -y
        d_wall = dists.min(-1)
        normal = dists.argmin(-1) * (np.pi / 2)
        a = np.mod(hd[:, t] - normal + np.pi, 2 * np.pi) - np.pi
        near = (d_wall < cfg.wall_distance) & (np.abs(a) < np.pi / 2)
        speed = np.where(near, noise["speed"][:, t] * cfg.wall_speed_factor, noise["speed"][:, t])
        wall_turn = np.where(near, np.sign(a) * (np.pi / 2 - np.abs(a)), 0.0)
        step = (speed * dt)[:, None] * np.stack([np.cos(hd[:, t]), np.sin(hd[:, t])], -1)
        pos[:, t + 1] = pos[:, t] + step
        hd[:, t + 1] = hd[:, t] + dt * noise["turn"][:, t] + wall_turn
    return {"velocities": np.diff(pos, axis=1), "start": pos[:, 0], "positions": pos[:, 1:],
            "headings": np.mod(hd[:, :-1] + np.pi, 2 * np.pi) - np.pi}


def numpy_trajectories(rng: np.random.Generator, batch: int, steps: int, cfg: TrajectoryConfig, box: BoxConfig) -> dict:
    return numpy_integrate(numpy_noise(rng, batch, steps, cfg, box), cfg, box)


# ----------------------------------------------------------------------------------
def check_same_dynamics(cfg: TrajectoryConfig, box: BoxConfig) -> float:
    """Max |position difference| (m) of the two integrators on one set of noise, float64."""
    g = torch.Generator().manual_seed(0)
    noise = sample_noise(g, 500, 50, cfg, box, dtype=torch.float64)
    ours = integrate(noise, cfg, box)
    ref = numpy_integrate({k: v.numpy() for k, v in noise.items()}, cfg, box)
    return float(np.abs(ours.positions.numpy() - ref["positions"]).max())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_name() -> str:
    from ensemble import cpu_name as name  # bench/ensemble.py

    return name()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (~1 minute on 2 cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (9 if args.quick else 25)
    cfg, box = TrajectoryConfig(), BoxConfig()

    err = check_same_dynamics(cfg, box)
    print(f"# same noise, both integrators: max |dx| = {err:.2e} m  ({'OK' if err < 1e-9 else 'MISMATCH'})")
    print(f"# {cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"# repeats {repeats} (interleaved, medians); numpy draws E*B trajectories in one call, "
          "gridsweep draws B from each of E generators")
    print("# 'gridsweep 1 thr': generate() with one intra-op thread, as Ensemble.sample runs small CPU batches")
    print(f"{'E':>4} {'B':>6} {'T':>4} | {'numpy ms':>9} {'gridsweep ms':>12} {'gridsweep 1 thr':>15} | "
          f"{'numpy agent-steps/s':>20} {'gridsweep agent-steps/s':>24} | {'ratio':>6} {'ratio 1 thr':>11}")
    cases = [(1, 200, 20), (16, 200, 20), (64, 200, 20), (1, 20000, 20)]
    rng = np.random.default_rng(0)
    for E, B, T in cases:
        gens = [torch.Generator(device=device).manual_seed(e) for e in range(E)]

        def run_numpy():
            numpy_trajectories(rng, E * B, T, cfg, box)

        def run_ours():
            generate(gens if E > 1 else gens[0], cfg, box, batch=B, steps=T)
            sync(device)

        def run_ours_serial():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                run_ours()
            finally:
                torch.set_num_threads(threads)

        run_numpy(), run_ours(), run_ours_serial()  # warm up
        times: list[list[float]] = [[], [], []]
        for _ in range(repeats):
            for f, acc in zip((run_numpy, run_ours, run_ours_serial), times):
                t0 = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t0)
        mn, mo, ms = (statistics.median(t) for t in times)
        n = E * B * T
        print(f"{E:>4} {B:>6} {T:>4} | {mn * 1e3:>9.2f} {mo * 1e3:>12.2f} {ms * 1e3:>15.2f} | {n / mn:>20.3g} "
              f"{n / mo:>24.3g} | {mn / mo:>5.2f}x {mn / ms:>10.2f}x")


if __name__ == "__main__":
    main()
