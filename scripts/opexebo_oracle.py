"""Store opexebo's grid scores on a fixed set of maps, as a test oracle.

opexebo 0.7.2 (the Moser lab's Python port of BNT) computes the Sargolini et al. (2006)
grid score, but its ``grid_score`` fails on numpy >= 2, which gridsweep installs. This
script runs in an environment where it works and writes the maps with opexebo's scores to
``tests/fixtures/opexebo_sargolini.npz``; ``tests/test_opexebo_stored.py`` compares
gridsweep's ``sargolini`` variant with those stored values under any numpy.

Regenerate (the stored file was made this way, on 2026-11-30)::

    python3.11 -m venv /tmp/opx && /tmp/opx/bin/pip install "numpy<2" "scipy<1.14" opexebo==0.7.2
    /tmp/opx/bin/python scripts/opexebo_oracle.py tests/fixtures/opexebo_sargolini.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage


def hexagonal(n: int, spacing: float, orientation_deg: float = 0.0) -> np.ndarray:
    """A three-cosine hexagonal lattice on an n x n map of a 2.2 m box, (n, n)."""
    c = (np.arange(n) + 0.5) * 2.2 / n - 1.1
    x, y = np.meshgrid(c, c)
    k = 4 * np.pi / (np.sqrt(3) * spacing)
    return sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y))
               for t in np.deg2rad(orientation_deg + 30 + np.array([0, 60, 120])))


def maps() -> tuple[list[np.ndarray], np.ndarray]:
    """74 maps: lattices (3 spacings x 3 orientations x 3 noise levels at 20 and 44 bins) and smooth noise.

    Returns the maps (float32, then used as float64) and a boolean "clean lattice" flag per map.
    """
    rng = np.random.default_rng(0)
    out, clean = [], []
    for n in (20, 44):
        for spacing in (0.5, 0.7, 0.9):
            for ori in (0, 12, 25):
                for noise in (0.0, 0.5, 1.5):
                    out.append(hexagonal(n, spacing, ori) + noise * rng.standard_normal((n, n)))
                    clean.append(noise == 0)
        for _ in range(10):
            out.append(ndimage.gaussian_filter(rng.standard_normal((n, n)), 1.5))
            clean.append(False)
    return [m.astype(np.float32) for m in out], np.array(clean)


def main(path: str) -> None:
    import opexebo

    ms, clean = maps()
    scores = np.array([float(opexebo.analysis.grid_score(opexebo.analysis.autocorrelation(m.astype(np.float64)))[0])
                       for m in ms])
    arrays = {f"map_{i:03d}": m for i, m in enumerate(ms)}
    np.savez_compressed(path, scores=scores, clean=clean,
                        versions=np.array([f"opexebo {opexebo.__version__}", f"numpy {np.__version__}"]), **arrays)
    print(f"wrote {len(ms)} maps and opexebo scores to {Path(path)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/opexebo_sargolini.npz")
