"""Trajectory generation in a 12-wall polygon with two holes against the square box.

The square box runs the motion model's original code (4 axis-aligned walls); the arena
runs the segment rules of gridsweep.trajectories (nearest of S = 20 wall segments, the
crossing test that stops a step at a wall, the inside test), on CPU through the compiled
wall kernel of gridsweep.arena_kernel unless GRIDSWEEP_ARENA_KERNEL=numpy. Same batch, steps and
motion model; medians of interleaved repeats. Goal: ratio arena / square <= 2.

    python bench/arenas.py [--quick] [--threads N] [--batch B] [--steps T] [--motion sorscher|ou]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from gridsweep import arena_kernel
from gridsweep.arenas import arena_of
from gridsweep.config import BoxConfig, TrajectoryConfig
from gridsweep.trajectories import generate


def twelve_wall_arena() -> BoxConfig:
    """A 12-gon of alternating radii 1.1 / 0.95 m with two square pillars (20 walls in all)."""
    ang = 2 * math.pi * torch.arange(12, dtype=torch.float64) / 12
    r = torch.where(torch.arange(12) % 2 == 0, torch.tensor(1.1), torch.tensor(0.95)).double()
    v = torch.stack([r * torch.cos(ang), r * torch.sin(ang)], -1)
    v = v - (v.min(0).values + v.max(0).values) / 2
    holes = [[[cx - 0.1, -0.1], [cx + 0.1, -0.1], [cx + 0.1, 0.1], [cx - 0.1, 0.1]] for cx in (-0.4, 0.4)]
    return BoxConfig(shape="polygon", vertices=v.tolist(), holes=holes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--motion", choices=["sorscher", "ou"], default="sorscher")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrajectoryConfig(motion=args.motion)
    square, arena = BoxConfig(), twelve_wall_arena()
    a = arena_of(arena)
    print(f"arena: {len(a.segments)} wall segments (12 outer + 2 x 4 holes), free area {a.area:.3f} m^2")
    kernel = arena_kernel.kernel_for(a, a.torch_walls("cpu", torch.float32))
    print(f"wall work: {'C kernel (gridsweep.arena_kernel)' if kernel else 'NumPy/torch'}"
          " (GRIDSWEEP_ARENA_KERNEL=numpy for the NumPy/torch path)")
    repeats = 5 if args.quick else 21
    times: dict[str, list[float]] = {"square": [], "arena": []}
    gen = torch.Generator().manual_seed(0)
    for box in (square, arena):  # warm-up (caches, allocator)
        generate(gen, cfg, box, batch=args.batch, steps=args.steps)
    for _ in range(repeats):
        for name, box in (("square", square), ("arena", arena)):
            t0 = time.perf_counter()
            tr = generate(gen, cfg, box, batch=args.batch, steps=args.steps)
            times[name].append(time.perf_counter() - t0)
            if name == "arena":
                assert bool(a.contains(tr.positions).all()), "a trajectory left the arena"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"motion={args.motion} batch={args.batch} steps={args.steps} threads={args.threads} repeats={repeats}")
    print(f"square box : {1e3 * med['square']:.2f} ms per batch")
    print(f"12-wall arena with 2 holes: {1e3 * med['arena']:.2f} ms per batch")
    print(f"ratio arena / square: {med['arena'] / med['square']:.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
