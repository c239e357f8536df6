"""Benchmark: batched grid scores (gridsweep.analysis) vs a direct one-map-at-a-time reference.

The reference follows the published definition the way the original scorers run it: per
map, a convolution-style NaN-aware SAC (six ``scipy.signal.correlate2d`` overlap sums),
``scipy.ndimage.rotate`` per angle, and a Python loop over the ten rings
(deepmind_minmax, docs/science.md section 6). Both are timed in the same run, on the same maps,
and their scores are compared.

    python bench/gridscore.py            # 1,024 maps per size for both implementations
    python bench/gridscore.py --quick    # reference on 16 / 8 maps, extrapolated per map
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import numpy as np
import scipy.signal
from scipy import ndimage

from gridsweep.analysis import grid_scores
from gridsweep.analysis.gridscore import _bands, rotation_operator

ANGLES = (30, 45, 60, 90, 120, 135, 150)


def reference_sac(m: np.ndarray) -> np.ndarray:
    valid = np.isfinite(m)
    a = np.where(valid, m, 0.0)
    o = valid.astype(float)

    def corr(f, g):
        return scipy.signal.correlate2d(g, f, mode="full")

    n, sx, sy = corr(o, o), corr(a, o), corr(o, a)
    sxx, syy, sxy = corr(a * a, o), corr(o, a * a), corr(a, a)
    with np.errstate(all="ignore"):
        vx, vy = n * sxx - sx ** 2, n * syy - sy ** 2
        r = (n * sxy - sx * sy) / np.sqrt(vx * vy)
    ok = (np.rint(n) >= 2) & (vx > 1e-10 * n * sxx) & (vy > 1e-10 * n * syy)
    return np.where(ok, r, 0.0)


def reference_minmax(m: np.ndarray) -> float:
    sac = reference_sac(m)
    n = m.shape[0]
    c = (sac.shape[0] - 1) / 2
    yy, xx = np.mgrid[0:sac.shape[0], 0:sac.shape[1]]
    r = np.hypot(yy - c, xx - c)
    rotated = {a: ndimage.rotate(sac, a, reshape=False) for a in ANGLES}
    best = -np.inf
    for outer in np.linspace(0.4, 1.0, 10) * n:
        ring = (r > 0.2 * n) & (r <= outer)
        s = sac[ring]
        mu, var = s.mean(), s.var()
        cs = {a: np.sum((s - mu) * (rotated[a][ring] - mu)) / ring.sum() / (var + 1e-5) for a in ANGLES}
        best = max(best, min(cs[60], cs[120]) - max(cs[30], cs[90], cs[150]))
    return best


def make_maps(count: int, n: int, seed: int = 0) -> np.ndarray:
    """Half hexagonal lattices (random period, orientation, phase, noise), half smooth noise."""
    rng = np.random.default_rng(seed)
    c = (np.arange(n) + 0.5) * 2.2 / n - 1.1
    x, y = np.meshgrid(c, c)
    out = np.empty((count, n, n))
    for i in range(count):
        if i % 2 == 0:
            k = 4 * np.pi / (np.sqrt(3) * rng.uniform(0.35, 0.9))
            th = np.deg2rad(rng.uniform(0, 60) + np.array([0, 60, 120]))
            ph = rng.uniform(-1, 1, 2)
            m = sum(np.cos(k * (np.cos(t) * (x - ph[0]) + np.sin(t) * (y - ph[1]))) for t in th)
            out[i] = np.maximum(m, 0) + 0.3 * rng.normal(size=(n, n))
        else:
            out[i] = ndimage.gaussian_filter(rng.normal(size=(n, n)), 1.5)
    return out


def cpu_name() -> str:
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in txt.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reference on a few maps only (extrapolated per map)")
    ap.add_argument("--maps", type=int, default=1024, help="maps per size for the batched implementation")
    args = ap.parse_args()
    print(f"machine: {cpu_name()}, {len(__import__('os').sched_getaffinity(0))} CPUs available; numpy {np.__version__}")
    print(f"{'bins':>6} {'maps':>6} {'build s':>8} {'batched maps/s':>15} {'ref maps':>9} {'ref maps/s':>11} "
          f"{'speed-up':>9} {'max |diff|':>11}")
    for n in (20, 44):
        maps = make_maps(args.maps, n)
        rotation_operator.cache_clear()
        _bands.cache_clear()
        t = time.perf_counter()
        grid_scores(maps[:1])                       # builds and caches the rotation operators
        build = time.perf_counter() - t
        t = time.perf_counter()
        ours = grid_scores(maps, "deepmind_minmax")["score60"]
        batched = args.maps / (time.perf_counter() - t)
        n_ref = args.maps if not args.quick else (16 if n == 20 else 8)
        t = time.perf_counter()
        ref = np.array([reference_minmax(m) for m in maps[:n_ref]])
        ref_rate = n_ref / (time.perf_counter() - t)
        diff = float(np.abs(ref - ours[:n_ref]).max())
        print(f"{n:>3}x{n:<2} {args.maps:>6} {build:>8.2f} {batched:>15.0f} {n_ref:>9} {ref_rate:>11.1f} "
              f"{batched / ref_rate:>8.0f}x {diff:>11.1e}")


if __name__ == "__main__":
    main()
