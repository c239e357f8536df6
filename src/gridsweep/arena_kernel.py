"""One compiled C call per time step for the wall work of straight-walled arenas (CPU).

The arena rules of :mod:`gridsweep.trajectories` (docs/arenas.md; the generalised wall
rules of docs/science.md section 2) need, every step, the distance of every agent to
every wall segment, the nearest wall's distance and normal, and the stop-at-wall
crossing test with its inside test. In NumPy/torch that is about 50 small calls per
step, which bound the cost at the training batch (bench/arenas.py). Here each is one C
function over the whole batch:

``gs_arena_sqdist_*``
    Squared distance of each agent to each segment (projection clamped to the segment),
    (N, S); the square root, the nearest wall (first of ties) and its normal are three
    torch calls, since torch's sqrt is not the correctly rounded one that C has.
``gs_arena_repel_*``
    The OU repulsion's per-wall terms ``k_w n_w`` (``_repel_arena``) of the agents within
    the repel distance of a wall; torch sums them over the walls (its reduction order).
``gs_arena_stop_*``
    ``pos + step``, except for agents whose step reaches their nearest wall: the step is
    intersected with every segment, cut ``WALL_MARGIN`` before the first wall it meets,
    and not taken if its end fails the even-odd inside test of :meth:`Arena.contains`.

Exactness: the kernel is compiled without ``-ffast-math`` and with ``-ffp-contract=off``,
and repeats the NumPy/torch path's float operations in its order, including torch's fused
multiply-adds (``torch.addcmul``, ``torch.linalg.vector_norm`` of two components: ``fma``
here) and ``m / L`` as torch computes it, ``(1 / L) * m``; the square root of the
distances, the minimum over walls and the repulsion's sums stay torch calls, so their bits
are torch's (torch's float sqrt differs from C's correctly rounded one in the last bit for
some inputs, and a sum's order is torch's choice). The trajectories are
bit-identical to the plain reference of the rule (tests/test_arenas.py, float32 and
float64). Select the path with ``GRIDSWEEP_ARENA_KERNEL`` = ``auto`` (default: this kernel
where it applies and a C compiler exists) or ``numpy`` (the NumPy/torch path), or by
setting :data:`MODE`. Without a compiler the NumPy/torch path runs, with a one-time warning.
Circular walls always take the NumPy/torch path.

The library is built with the system C compiler (``CC``, default ``cc``) on first use and
cached next to the fused loss's kernel (``GRIDSWEEP_CACHE`` or ``~/.cache/gridsweep``,
subfolder ``arena``), keyed by source, flags, compiler and CPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from gridsweep.arenas import Arena
from gridsweep.errors import ConfigError
from gridsweep.files import atomic_path
from gridsweep.fused import _cpu_signature

__all__ = ["MODE", "MODES", "ArenaKernel", "kernel_for", "available"]

MODES = ("auto", "numpy")
#: Which path the arena rules take on CPU; default from ``GRIDSWEEP_ARENA_KERNEL``.
MODE: str = os.environ.get("GRIDSWEEP_ARENA_KERNEL", "auto").strip().lower() or "auto"

_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

/* squared distances (N, S), agent-major; the square root is left to torch (its sqrt is
   not the correctly rounded one, and the rule's numbers are torch's) */
#define DEFINE_SQDIST(NAME, REAL, FMA)                                                         \
void NAME(int64_t N, int64_t S, const REAL *pos, const REAL *ax, const REAL *ay,               \
          const REAL *dx, const REAL *dy, const REAL *il, REAL *out) {                         \
  for (int64_t i = 0; i < N; ++i) {                                                            \
    const REAL x = pos[2 * i], y = pos[2 * i + 1];                                             \
    REAL *o = out + i * S;                                                                     \
    for (int64_t s = 0; s < S; ++s) {                                                          \
      REAL rx = x - ax[s], ry = y - ay[s];                                                     \
      REAL t = FMA(ry, dy[s], rx * dx[s]) * il[s];                                             \
      t = t > 0 ? t : 0;                                                                       \
      t = t < 1 ? t : 1;                                                                       \
      REAL ex = FMA(-t, dx[s], rx), ey = FMA(-t, dy[s], ry);                                   \
      o[s] = FMA(ey, ey, ex * ex);                                                             \
    }                                                                                          \
  }                                                                                            \
}

/* gridsweep.trajectories._repel_arena's terms (k n_x, k n_y) per wall, (K, 2, S), of the K
   agents nearer than `below` to a wall (their flat indices in sel); returns K */
#define DEFINE_REPEL(NAME, REAL)                                                               \
int64_t NAME(int64_t N, int64_t S, const REAL *v, const REAL *dists, const REAL *dmin,         \
             const REAL *nx, const REAL *ny, double rd_, double below, int64_t *sel,           \
             REAL *terms) {                                                                    \
  const REAL rd = (REAL)rd_;                                                                   \
  int64_t K = 0;                                                                               \
  for (int64_t i = 0; i < N; ++i) {                                                            \
    if (!((double)dmin[i] < below)) continue;                                                  \
    const REAL vx = v[2 * i], vy = v[2 * i + 1];                                               \
    const REAL *d = dists + i * S;                                                             \
    REAL *tx = terms + K * 2 * S, *ty = tx + S;                                                \
    for (int64_t s = 0; s < S; ++s) {                                                          \
      REAL vn = vx * nx[s] + vy * ny[s];                                                       \
      vn = vn > 0 ? vn : 0;                                                                    \
      REAL f = d[s] / rd;                                                                      \
      f = f > 0 ? f : 0;                                                                       \
      f = f < 1 ? f : 1;                                                                       \
      const REAL k = vn * (1 - f);                                                             \
      tx[s] = k * nx[s];                                                                       \
      ty[s] = k * ny[s];                                                                       \
    }                                                                                          \
    sel[K++] = i;                                                                              \
  }                                                                                            \
  return K;                                                                                    \
}

/* gridsweep.trajectories._stop_at_walls_numpy, agent by agent */
#define DEFINE_STOP(NAME, REAL, FMA, SQRT, FABS)                                               \
void NAME(int64_t N, int64_t S, int64_t E, const REAL *pos, const REAL *step,                  \
          const REAL *dwall, const REAL *ax, const REAL *ay, const REAL *dx, const REAL *dy,   \
          const REAL *table, double margin_, REAL *out) {                                      \
  const REAL margin = (REAL)margin_, tiny = (REAL)1e-20, least = (REAL)1e-30;                  \
  const REAL *yi = table, *yj = table + E, *xi = table + 2 * E, *slope = table + 3 * E;         \
  for (int64_t i = 0; i < N; ++i) {                                                            \
    const REAL px = pos[2 * i], py = pos[2 * i + 1], sx = step[2 * i], sy = step[2 * i + 1];    \
    REAL qx = px + sx, qy = py + sy;                                                           \
    REAL dm = dwall[i] - margin;                                                               \
    dm = dm > 0 ? dm : 0;                                                                      \
    if (!(sx * sx + sy * sy >= dm * dm)) { out[2 * i] = qx; out[2 * i + 1] = qy; continue; }   \
    REAL first = INFINITY;                                                                     \
    for (int64_t s = 0; s < S; ++s) {                                                          \
      const REAL denom = sx * dy[s] - sy * dx[s];                                              \
      if (!(FABS(denom) > tiny)) continue; /* parallel: never a hit */                         \
      const REAL apx = ax[s] - px, apy = ay[s] - py;                                           \
      const REAL u = (apx * dy[s] - apy * dx[s]) / denom;                                      \
      const REAL v = (apx * sy - apy * sx) / denom;                                            \
      if (u >= 0 && v >= 0 && v <= 1 && u < first) first = u;                                 \
    }                                                                                          \
    if (first <= 1) {                                                                          \
      REAL len = SQRT(FMA(sy, sy, sx * sx));                                                   \
      len = len > least ? len : least;                                                         \
      REAL back = first - ((REAL)1 / len) * margin;                                            \
      back = back > 0 ? back : 0;                                                              \
      back = back < 1 ? back : 1;                                                              \
      qx = px + sx * back; qy = py + sy * back;                                                \
    }                                                                                          \
    int odd = 0;                                                                               \
    for (int64_t e = 0; e < E; ++e)                                                            \
      odd ^= ((yi[e] > qy) != (yj[e] > qy)) & (qx < xi[e] + (qy - yi[e]) * slope[e]);          \
    out[2 * i] = odd ? qx : px;                                                                \
    out[2 * i + 1] = odd ? qy : py;                                                            \
  }                                                                                            \
}

DEFINE_SQDIST(gs_arena_sqdist_f32, float, fmaf)
DEFINE_SQDIST(gs_arena_sqdist_f64, double, fma)
DEFINE_REPEL(gs_arena_repel_f32, float)
DEFINE_REPEL(gs_arena_repel_f64, double)
DEFINE_STOP(gs_arena_stop_f32, float, fmaf, sqrtf, fabsf)
DEFINE_STOP(gs_arena_stop_f64, double, fma, sqrt, fabs)
"""

#: No -ffast-math (it would reorder, contract and flush denormals): the kernel must give
#: the NumPy/torch path's bits. -fno-math-errno lets sqrt compile to the (exact) instruction.
_CFLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared"]

_LIB: Any = None
_LIB_ERROR: str | None = None
_LIB_LOCK = threading.Lock()

#: :meth:`ArenaKernel.repel` runs the rule on agents nearer than ``rd`` x this to a wall. An
#: agent farther than ``rd`` from every wall has every term 0 (``1 - min(d / rd, 1)``), so its
#: velocity is unchanged either way; the factor keeps the float comparison on the safe side.
REPEL_SELECT = 1.001

_P = ctypes.c_void_p
_I = ctypes.c_int64


def _cache_dir() -> Path:
    root = os.environ.get("GRIDSWEEP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gridsweep")
    return Path(root) / "arena"


def _build() -> Any:
    cc = os.environ.get("CC", "cc")
    key = hashlib.sha256("\0".join([_C_SOURCE, " ".join(_CFLAGS), cc, _cpu_signature(), sys.platform])
                         .encode()).hexdigest()[:16]
    out = _cache_dir() / f"arena-{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        # atomic: concurrent workers see a whole library or none
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp, atomic_path(out) as lib_path:
            src = Path(tmp) / "arena.c"
            src.write_text(_C_SOURCE)
            cmd = [cc, *_CFLAGS, str(src), "-o", str(lib_path), "-lm"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise OSError(f"{' '.join(cmd)}: {r.stderr.strip()[:500]}")
    lib = ctypes.CDLL(str(out))
    for suffix in ("f32", "f64"):
        fn = getattr(lib, f"gs_arena_sqdist_{suffix}")
        fn.restype = None
        fn.argtypes = [_I, _I] + [_P] * 7
        fn = getattr(lib, f"gs_arena_repel_{suffix}")
        fn.restype = _I
        fn.argtypes = [_I, _I] + [_P] * 5 + [ctypes.c_double, ctypes.c_double, _P, _P]
        fn = getattr(lib, f"gs_arena_stop_{suffix}")
        fn.restype = None
        fn.argtypes = [_I, _I, _I] + [_P] * 8 + [ctypes.c_double, _P]
    return lib


def _library() -> Any:
    global _LIB, _LIB_ERROR
    if _LIB is None and _LIB_ERROR is None:
        with _LIB_LOCK:
            if _LIB is None and _LIB_ERROR is None:
                try:
                    _LIB = _build()
                except (OSError, subprocess.SubprocessError, AttributeError) as exc:
                    _LIB_ERROR = str(exc)
                    warnings.warn(f"gridsweep.arena_kernel: C kernel unavailable ({_LIB_ERROR}); "
                                  "using the NumPy/torch path", RuntimeWarning, stacklevel=3)
    return _LIB


def available() -> bool:
    """Whether the C kernel is built (or can be built now) on this machine."""
    return _library() is not None


class ArenaKernel:
    """The C kernel bound to one arena's CPU wall tensors (``Arena.torch_walls``).

    Shapes: positions and steps (..., 2), flattened to N agents (C-contiguous copies are
    made only if the input is not contiguous); S wall segments, E edges of the inside test.
    """

    def __init__(self, lib: Any, walls: dict, table: torch.Tensor):
        self.dtype = walls["ax"].dtype
        suffix = "f32" if self.dtype == torch.float32 else "f64"
        self._sqdist = getattr(lib, f"gs_arena_sqdist_{suffix}")
        self._repel = getattr(lib, f"gs_arena_repel_{suffix}")
        self._stop = getattr(lib, f"gs_arena_stop_{suffix}")
        # contiguous (S,) copies, kept alive with the kernel
        self._w = [walls[k].contiguous() for k in ("ax", "ay", "dx", "dy", "inv_len2")]
        self._n = [walls[k].contiguous() for k in ("nx", "ny")]
        self._table = table.contiguous()
        self.S, self.E = int(walls["n_segments"]), int(self._table.shape[1])
        self._wp = [t.data_ptr() for t in self._w]

    def distances(self, pos: torch.Tensor) -> torch.Tensor:
        """Distance of every agent to every wall segment, (..., S): ``_wall_distances``.

        The squared distance in C (its fused multiply-adds as ``torch.addcmul``'s), the
        square root by ``torch.sqrt_`` (torch's float32/float64 sqrt is not always the
        correctly rounded one, so C's would differ in the last bit)."""
        pos = pos.contiguous()
        out = torch.empty(pos.shape[:-1] + (self.S,), dtype=self.dtype)
        self._sqdist(pos.numel() // 2, self.S, pos.data_ptr(), *self._wp, out.data_ptr())
        return out.sqrt_()

    def repel(self, v: torch.Tensor, dists: torch.Tensor, d_wall: torch.Tensor, rd: float) -> torch.Tensor:
        """``_repel_arena`` of the agents nearer than ``rd`` to a wall; the others' ``v`` as is.

        C forms each term ``k_w n_w`` (K, 2, S) of the agents whose ``d_wall`` is below
        ``rd`` x ``REPEL_SELECT`` (any other agent's terms are all 0); torch sums them over
        the walls, so the sums add in the rule's order. Shapes: ``v`` (..., 2), ``dists``
        (..., S), ``d_wall`` (...); returns the new ``v`` (..., 2)."""
        v, dists, d_wall = v.contiguous(), dists.contiguous(), d_wall.contiguous()
        n = v.numel() // 2
        sel = torch.empty(n, dtype=torch.int64)  # per call: the kernel may serve several threads
        terms = torch.empty(n, 2, self.S, dtype=self.dtype)
        K = self._repel(n, self.S, v.data_ptr(), dists.data_ptr(), d_wall.data_ptr(), self._n[0].data_ptr(),
                        self._n[1].data_ptr(), float(rd), float(rd) * REPEL_SELECT, sel.data_ptr(),
                        terms.data_ptr())
        if not K:
            return v
        idx = sel[:K]
        flat = v.view(n, 2)
        return flat.index_copy(0, idx, flat[idx] - terms[:K].sum(-1)).view(v.shape)

    def stop(self, pos: torch.Tensor, step: torch.Tensor, d_wall: torch.Tensor, margin: float) -> torch.Tensor:
        """``pos + step``, each step that reaches a wall cut ``margin`` before the first wall it
        crosses and not taken if its end would be outside (``_stop_at_walls``), (..., 2)."""
        pos, step, d_wall = pos.contiguous(), step.contiguous(), d_wall.contiguous()
        out = torch.empty(pos.shape, dtype=self.dtype)
        w = self._wp
        self._stop(pos.numel() // 2, self.S, self.E, pos.data_ptr(), step.data_ptr(), d_wall.data_ptr(),
                   w[0], w[1], w[2], w[3], self._table.data_ptr(), float(margin), out.data_ptr())
        return out


def kernel_for(arena: Arena, walls: dict) -> ArenaKernel | None:
    """The kernel for ``walls`` (``arena.torch_walls(device, dtype)``), or None where the
    NumPy/torch path runs: ``MODE`` ``numpy``, a non-CPU device, a dtype other than
    float32/float64, a circular wall, no straight wall, or no C compiler."""
    if MODE not in MODES:
        raise ConfigError(f"GRIDSWEEP_ARENA_KERNEL={MODE!r}: expected one of {', '.join(MODES)}")
    ax = walls["ax"]
    if (MODE == "numpy" or ax.device.type != "cpu" or ax.dtype not in (torch.float32, torch.float64)
            or walls["radius"] is not None or not walls["n_segments"]):
        return None
    cache = arena.__dict__.setdefault("_c_kernels", {})  # one per arena and dtype, like torch_walls
    if ax.dtype in cache:
        return cache[ax.dtype]
    lib = _library()
    if lib is None:
        return None
    kernel = cache[ax.dtype] = ArenaKernel(lib, walls, arena._torch_table(ax.device, ax.dtype))
    return kernel
