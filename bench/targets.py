"""Multi-field place-cell targets: the responding-field search against an explicit difference tensor.

``PlaceCellTarget._responding_field`` finds, for every position and cell, the field the
cell responds through (default rule ``max_response``: argmin_f d_f^2 / (2 sigma_f^2)).
The baseline is the direct form, an (E, N, Np, F, 2) difference tensor squared, summed
and weighted (what gridsweep did before 2026-11-28, and the brute-force reference of
tests/test_targets.py). gridsweep forms |x|^2 - 2 x.c + |c|^2 with one batched product
and weighs it in place. Both must give the same distances (checked before timing); the
ratio is baseline time / gridsweep time, medians of interleaved repeats.

    python bench/targets.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gridsweep.config import BoxConfig, TargetConfig
from gridsweep.targets import build_target


def direct_nearest(t, positions: torch.Tensor) -> torch.Tensor:
    """Squared distance to each cell's responding field via the explicit difference tensor, (E, N, Np)."""
    flat = positions.reshape(t.E, -1, 2)
    d2f = ((flat[:, :, None, None, :] - t.centres[:, None]) ** 2).sum(-1)
    w = torch.where(t.max_response[:, None, None], 0.5 / t.sigma_e.pow(2), torch.ones(()))[:, None]
    idx = (d2f * w).masked_fill(~t.field_mask[:, None], float("inf")).argmin(-1, keepdim=True)
    return torch.gather(d2f, -1, idx)[..., 0]


def timed(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (sweep workers use 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    box = BoxConfig(width=2.2, height=2.2)
    gen = torch.Generator().manual_seed(0)
    print(f"threads {args.threads}; N = B x T positions per network; medians of interleaved repeats")
    print("| E | N | Np | F | direct ms | gridsweep ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for E, N, Np, F in ((1, 2000, 256, 6), (4, 2000, 256, 6), (4, 2000, 512, 16)):
        het = {"fields_lambda": 3.0, "max_fields": F, "sigma_range": (0.06, 1.0),
               "surround_width_ratio_range": (1.25, 4.5)}
        cfg = TargetConfig(kind="dos", n_cells=Np, surround_width_ratio=2.0, heterogeneity=het)
        t = build_target([cfg] * E, list(range(E)), box)
        x = (torch.rand(E, N, 2, generator=gen) - 0.5) * 2.2
        ref, ours = direct_nearest(t, x), t._responding_field(x)[0].reshape(E, N, Np)
        assert torch.allclose(ref, ours, atol=1e-5), float((ref - ours).abs().max())
        a, b = [], []
        for _ in range(3 if args.quick else 7):
            a.append(timed(lambda: direct_nearest(t, x), 2 if args.quick else 5))
            b.append(timed(lambda: t._responding_field(x), 2 if args.quick else 5))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {E} | {N} | {Np} | {F} | {1e3 * ma:.1f} | {1e3 * mb:.1f} | {ma / mb:.2f}x |")


if __name__ == "__main__":
    main()
