"""Fused readout loss: place-cell targets and softmax cross-entropy in few passes over memory.

The reference path (:meth:`gridsweep.targets.PlaceCellTarget.encode` followed by
:func:`gridsweep.targets.cross_entropy` under autograd) is the definition; this module
computes the same numbers with less memory traffic and is checked against it
(tests/test_fused.py). For a step of Np 512 cells at B 200, T 20 the reference makes
about 25 elementwise passes over (E, T, B, Np) for targets, loss and backward
(docs/performance.md); the paths here make:

``native`` (CPU, float32/float64, single-field place cells in a box without periodic walls)
    One C kernel visits each sample's row of Np logits once: it forms the targets from
    the position (squared distances, the kind's profile, Sorscher's shift-normalisation),
    the row's log-sum-exp, the loss and d loss / d logits = (softmax(z) sum_j t_j - t) / N,
    all in cache. The backward only scales that gradient by the upstream (E,) gradient
    (skipped when it is 1). Memory traffic: the logits read once, the gradient written
    once. The kernel is compiled with the system C compiler on first use and cached
    (``GRIDSWEEP_CACHE`` or ``~/.cache/gridsweep``); without a compiler the eager path runs.
``eager`` (any device)
    Targets without autograd, in place (13 passes for DoS instead of ~20; networks that
    share centres, widths and positions are encoded once), and the cross-entropy as an
    autograd Function with the analytic backward ``softmax(z) sum_j t_j - t`` (3 passes
    instead of ~6, no slice backward).
``reference``
    The definition, unchanged.

Select with ``GRIDSWEEP_FUSED`` = ``auto`` (default, = ``eager``), ``native``, ``eager`` or
``reference``, or by setting :data:`MODE`.

What each path changes: ``eager``'s targets equal the reference bit for bit on the CPU, but
its analytic backward sums in another order than autograd's, so its gradients equal the
reference's only to rounding (relative ~1e-9 in float32 at the first step of the quick
preset's network). Over thousands of steps that grows into different, equally valid
weights: a network trained with ``GRIDSWEEP_FUSED=reference`` is a different network from
the same seed under ``eager`` (measured in docs/reproduce.md, "What changes the numbers";
the quick preset's networks trained before commit 7a905f1 used the reference path).
Why ``native`` is opt-in: ``native``
agrees with ``eager`` to 1e-6 (float32) / 1e-12 (float64) wherever the targets are well
conditioned, but differs in one regime: DoS (and DoG) targets at a position far from every
cell relative to sigma, where both softmaxes put ~all their mass on one cell and the target
is the rounding residue of 1 - 1 (e.g. Np 12, sigma 0.08 m: the reference's own targets
there are rounding noise, and a different but equally valid summation order gives targets
that differ by up to 1e-2). Default configurations (Np 512, sigma 0.12 m in a 2.2 m box)
are not in that regime.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gridsweep.errors import ConfigError
from gridsweep.files import atomic_path

__all__ = ["MODE", "MODES", "readout_loss", "softmax_cross_entropy", "place_cell_targets", "place_cell_loss",
           "native_available", "native_supported"]

MODES = ("auto", "native", "eager", "reference")
#: Which path :func:`readout_loss` takes; default from ``GRIDSWEEP_FUSED``.
MODE: str = os.environ.get("GRIDSWEEP_FUSED", "auto").strip().lower() or "auto"

#: place-cell kind -> kernel code (``gaussian`` under ``normalization: none`` is 1)
_KIND_CODES = {"gaussian": 0, "dos": 2, "dog_equinorm": 3, "dog_general": 4, "sod": 5}
_NORMALISED = {"gaussian": True, "dos": True, "dog_equinorm": True, "dog_general": True, "sod": True}


def _mode() -> str:
    mode = MODE
    if mode not in MODES:
        raise ConfigError(f"GRIDSWEEP_FUSED={mode!r}: allowed {', '.join(MODES)}")
    return mode


# --------------------------------------------------------------------------------------
# eager pieces
# --------------------------------------------------------------------------------------
class _SoftmaxCrossEntropy(torch.autograd.Function):
    """Per-network soft-label cross-entropy with the analytic backward (see softmax_cross_entropy)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, normalised: bool) -> torch.Tensor:
        E = logits.shape[0]
        logp = F.log_softmax(logits, dim=-1)
        nll = torch.einsum("...j,...j->...", targets, logp)  # row dots, one read of each operand
        n_rows = nll[0].numel()
        ctx.save_for_backward(logp, targets)
        ctx.n_rows = n_rows
        ctx.normalised = normalised
        return -nll.reshape(E, -1).mean(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor):
        logp, targets = ctx.saved_tensors
        grad = torch.exp(logp)  # softmax(z)
        if not ctx.normalised:
            grad.mul_(targets.sum(-1, keepdim=True))
        grad.sub_(targets)
        grad.mul_((g / ctx.n_rows).reshape(-1, *([1] * (grad.ndim - 1))))
        return grad, None, None


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, normalised: bool = False) -> torch.Tensor:
    """Soft-label softmax cross-entropy per network with an analytic backward.

    Same value as :func:`gridsweep.targets.cross_entropy`,
    ``-(t * log_softmax(z)).sum(-1)`` averaged over every axis but E (docs/science.md
    section 3), and the gradient ``d loss_e / d z = (softmax(z) sum_j t_j - t) / N``
    computed in three passes. The targets get no gradient.

    Parameters
    ----------
    logits : Tensor, (E, ..., Np)
    targets : Tensor, (E, ..., Np)
        May be an expanded view (networks sharing targets).
    normalised : bool
        The targets sum to one over the last axis (softmax and shift-normalised
        encodings); the backward then skips the sum.

    Returns
    -------
    Tensor, (E,)

    Notes
    -----
    The loss of NFL (``tf.nn.softmax_cross_entropy_with_logits``,
    mec_hpc_investigations/models/model.py:21) and Sorscher et al. (model.py:70), whose
    gradient TensorFlow also computes as ``softmax(z) - labels``.
    """
    return _SoftmaxCrossEntropy.apply(logits, targets.detach(), bool(normalised))


def _single_field(target) -> bool:
    return target.n_fields == 1 and target.period is None


def _shift_normalise_(p: torch.Tensor) -> torch.Tensor:
    p.add_(p.amin(dim=-1, keepdim=True).abs_())
    return p.div_(p.sum(dim=-1, keepdim=True))


def _encode_one_pass_set(target, positions: torch.Tensor) -> torch.Tensor:
    """Single-field place-cell targets in place; equals ``target.encode`` bit for bit on the CPU."""
    E = target.E
    flat = positions.reshape(E, -1, 2)
    c = target.cell_centres
    # reference: (|x|^2 - 2 x.c) + |c|^2; the factor -2 is exact, so this is the same sum
    d2 = torch.bmm(flat, (-2 * c).transpose(1, 2))
    d2.add_(flat.pow(2).sum(-1, keepdim=True)).add_(c.pow(2).sum(-1)[:, None, :]).clamp_min_(0)
    den_e = -(2 * target.sigma_e[:, None, :, 0] ** 2)  # -d2 / (2 s^2) == d2 / -(2 s^2) exactly
    kind = target.kind
    if target.normalization == "none":  # gaussian only (PlaceCellTarget checks)
        out = d2.div_(den_e).exp_()
    elif kind == "gaussian":
        out = torch.softmax(d2.div_(den_e), dim=-1)
    elif kind == "sod":
        out = torch.softmax(torch.div(d2, den_e).add_(d2.div_(2 * target.sigma_i[:, None, :, 0] ** 2)), dim=-1)
    else:
        den_i = -(2 * target.sigma_i[:, None, :, 0] ** 2)
        if kind == "dos":
            out = torch.softmax(torch.div(d2, den_e), dim=-1).sub_(torch.softmax(d2.div_(den_i), dim=-1))
        elif kind == "dog_equinorm":
            out = torch.div(d2, den_e).exp_().sub_(d2.div_(den_i).exp_())
        else:  # dog_general
            ae = target.alpha_e.reshape(E, 1, 1)
            ai = target.alpha_i.reshape(E, 1, 1)
            out = torch.div(d2, den_e).exp_().mul_(ae).sub_(d2.div_(den_i).exp_().mul_(ai))
        _shift_normalise_(out)
    return out.reshape(*positions.shape[:-1], target.n_outputs)


def _shared_representatives(target) -> list[int] | None:
    """Per network, the first network with the same target parameters; None when all differ (cached)."""
    cache = target.__dict__.get("_fused_reps", False)
    if cache is not False:
        return cache
    tensors = target._tensors()
    reps = list(range(target.E))
    for e in range(1, target.E):
        for f in range(e):
            if reps[f] == f and all(torch.equal(v[e], v[f]) for v in tensors.values()):
                reps[e] = f
                break
    out = None if reps == list(range(target.E)) else reps
    target.__dict__["_fused_reps"] = out
    return out


@torch.no_grad()
def place_cell_targets(target, positions: torch.Tensor) -> torch.Tensor:
    """Targets of a :class:`~gridsweep.targets.PlaceCellTarget` without autograd, in place.

    Equal to ``target.encode(positions)`` (same arithmetic in the same order for
    single-field cells without periodic walls; other configurations call ``encode``).
    On the CPU, networks whose target parameters and positions are equal (e.g. a sweep
    over learning rates at one seed) are encoded once and shared.

    Parameters
    ----------
    target : PlaceCellTarget
    positions : Tensor, (E, ..., 2)

    Returns
    -------
    Tensor, (E, ..., Np); an expanded or gathered view when networks share targets.
    """
    if not _single_field(target):
        return target.encode(positions)
    reps = _shared_representatives(target) if positions.device.type == "cpu" else None
    if reps is not None:
        reps = [r if r == e or torch.equal(positions[e], positions[r]) else e for e, r in enumerate(reps)]
        uniq = sorted(set(reps))
        if len(uniq) < target.E:
            blocks = target.__dict__.setdefault("_fused_blocks", {})
            key = tuple(uniq)
            if key not in blocks:
                blocks[key] = target.select(list(uniq))
            t = _encode_one_pass_set(blocks[key], positions[list(uniq)])
            if len(uniq) == 1:
                return t.expand(target.E, *t.shape[1:])
            where = {u: i for i, u in enumerate(uniq)}
            return t[[where[r] for r in reps]]
    return _encode_one_pass_set(target, positions)


# --------------------------------------------------------------------------------------
# native kernel
# --------------------------------------------------------------------------------------
_C_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

void gs_args_f32(int64_t, float, float, const float*, const float*, const float*, const float*, float*, float*);
void gs_args_f64(int64_t, double, double, const double*, const double*, const double*, const double*, double*,
                 double*);

/* One row of Np cells: targets from the position, then loss and gradient of the logits.
   kind: 0 gaussian softmax, 1 gaussian exp (normalization none), 2 dos, 3 dog_equinorm,
   4 dog_general, 5 sod. de, di: 2 sigma^2 per cell. Exponents are clamped at LO, where exp
   is ~1e-37 (float) / ~1e-304 (double): below it vector exp takes a scalar slow path
   (underflow), and the values it would give differ from these by less than that. */
#define DEFINE_KERNEL(NAME, REAL, EXP0, LOG, FABS, ARGS, LO)                                            \
static inline REAL NAME##_exp(REAL v) { return EXP0(v > LO ? v : LO); }                     \
int NAME(int64_t E, int64_t N, int64_t Np, int kind,                                           \
         const REAL* z, int64_t z_net, int64_t z_row,                                          \
         const REAL* pos, const REAL* cen, const REAL* c2,                                     \
         const REAL* de, const REAL* di, const REAL* amp,                                      \
         REAL* nll, REAL* dz, REAL* tgt) {                                                     \
  REAL* a = (REAL*)malloc(sizeof(REAL) * 3 * Np);                                              \
  if (!a) return 1;                                                                            \
  REAL* b = a + Np;                                                                            \
  REAL* w = b + Np;                                                                            \
  const REAL inv_n = (REAL)1 / (REAL)N;                                                        \
  for (int64_t e = 0; e < E; ++e) {                                                            \
    const REAL* cx = cen + e * Np * 2;                                                         \
    const REAL* c2e = c2 + e * Np;                                                             \
    const REAL* dee = de + e * Np;                                                             \
    const REAL* die = di + e * Np;                                                             \
    const REAL ae = amp[2 * e], ai = amp[2 * e + 1];                                           \
    for (int64_t n = 0; n < N; ++n) {                                                          \
      const REAL x = pos[(e * N + n) * 2], y = pos[(e * N + n) * 2 + 1];                       \
      const REAL* zr = z + e * z_net + n * z_row;                                              \
      REAL* t = tgt ? tgt + (e * N + n) * Np : w;                                              \
      ARGS(Np, x, y, cx, c2e, dee, die, a, b);                                                 \
      if (kind == 5) for (int64_t j = 0; j < Np; ++j) a[j] -= b[j];                            \
      if (kind == 1 || kind == 3 || kind == 4) {                                               \
        const REAL s1 = kind == 4 ? ae : 1, s2 = kind == 4 ? ai : 1;                           \
        if (kind == 1) for (int64_t j = 0; j < Np; ++j) t[j] = NAME##_exp(a[j]);                      \
        else for (int64_t j = 0; j < Np; ++j) t[j] = s1 * NAME##_exp(a[j]) - s2 * NAME##_exp(b[j]);          \
      } else {                                                                                 \
        REAL m = a[0];                                                                         \
        for (int64_t j = 1; j < Np; ++j) m = a[j] > m ? a[j] : m;                              \
        REAL s = 0;                                                                            \
        for (int64_t j = 0; j < Np; ++j) { t[j] = NAME##_exp(a[j] - m); s += t[j]; }                  \
        const REAL is = (REAL)1 / s;                                                           \
        for (int64_t j = 0; j < Np; ++j) t[j] *= is;                                           \
        if (kind == 2) {                                                                       \
          REAL mi = b[0];                                                                      \
          for (int64_t j = 1; j < Np; ++j) mi = b[j] > mi ? b[j] : mi;                         \
          REAL si = 0;                                                                         \
          for (int64_t j = 0; j < Np; ++j) { b[j] = NAME##_exp(b[j] - mi); si += b[j]; }              \
          const REAL isi = (REAL)1 / si;                                                       \
          for (int64_t j = 0; j < Np; ++j) t[j] -= b[j] * isi;                                 \
        }                                                                                      \
      }                                                                                        \
      if (kind >= 2 && kind <= 4) {                                                            \
        REAL mn = t[0];                                                                        \
        for (int64_t j = 1; j < Np; ++j) mn = t[j] < mn ? t[j] : mn;                           \
        mn = FABS(mn);                                                                         \
        REAL s = 0;                                                                            \
        for (int64_t j = 0; j < Np; ++j) { t[j] += mn; s += t[j]; }                            \
        for (int64_t j = 0; j < Np; ++j) t[j] /= s;                                            \
      }                                                                                        \
      REAL mz = zr[0];                                                                         \
      for (int64_t j = 1; j < Np; ++j) mz = zr[j] > mz ? zr[j] : mz;                           \
      REAL sz = 0;                                                                             \
      for (int64_t j = 0; j < Np; ++j) { b[j] = NAME##_exp(zr[j] - mz); sz += b[j]; }                 \
      const REAL lsz = LOG(sz);                                                                \
      REAL acc = 0, tsum = 0;                                                                  \
      for (int64_t j = 0; j < Np; ++j) { acc += t[j] * ((zr[j] - mz) - lsz); tsum += t[j]; }   \
      nll[e * N + n] = -acc;                                                                   \
      if (dz) {                                                                                \
        REAL* g = dz + (e * N + n) * Np;                                                       \
        const REAL c = tsum * inv_n / sz;                                                      \
        for (int64_t j = 0; j < Np; ++j) g[j] = b[j] * c - t[j] * inv_n;                       \
      }                                                                                        \
    }                                                                                          \
  }                                                                                            \
  free(a);                                                                                     \
  return 0;                                                                                    \
}

DEFINE_KERNEL(gs_place_xent_f32, float, expf, logf, fabsf, gs_args_f32, -85.0f)
DEFINE_KERNEL(gs_place_xent_f64, double, exp, log, fabs, gs_args_f64, -700.0)
"""

#: The exponents -d^2 / (2 sigma^2) in IEEE arithmetic, in the reference's order: torch's
#: (N x 2) @ (2 x Np) product is fma(y, c_y, x c_x) (MKL), |x|^2 = x^2 + y^2, then
#: (|x|^2 - 2 x.c) + |c|^2, clamped at 0, divided by -(2 sigma^2). Compiled without
#: fast-math: float32 targets are ill-conditioned in d^2 (a cancellation of terms ~|x|^2),
#: so this order is what makes them agree with the reference to rounding.
_C_STRICT = r"""
#include <math.h>
#include <stdint.h>
#define DEFINE_ARGS(NAME, REAL, FMA)                                                            \
void NAME(int64_t Np, REAL x, REAL y, const REAL* cen, const REAL* c2, const REAL* de,         \
          const REAL* di, REAL* a, REAL* b) {                                                  \
  const REAL x2 = x * x + y * y;                                                               \
  for (int64_t j = 0; j < Np; ++j) {                                                           \
    REAL d = (x2 - 2 * FMA(y, cen[2 * j + 1], x * cen[2 * j])) + c2[j];                        \
    d = d > 0 ? d : 0;                                                                         \
    a[j] = -d / de[j];                                                                         \
    b[j] = -d / di[j];                                                                         \
  }                                                                                            \
}
DEFINE_ARGS(gs_args_f32, float, fmaf)
DEFINE_ARGS(gs_args_f64, double, fma)
"""
_CFLAGS_STRICT = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC"]

#: compiler flags; -ffast-math only at the compile step (linking it would set FTZ/DAZ process-wide)
_CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC"]

_LIB: Any = None
_LIB_ERROR: str | None = None
_LIB_LOCK = threading.Lock()


def _cache_dir() -> Path:
    root = os.environ.get("GRIDSWEEP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "gridsweep")
    return Path(root) / "fused"


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's flags (a shared cache may serve several machines)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _build() -> Any:
    cc = os.environ.get("CC", "cc")
    key = hashlib.sha256("\0".join([_C_SOURCE, _C_STRICT, " ".join(_CFLAGS + _CFLAGS_STRICT), cc, _cpu_signature(), sys.platform])
                         .encode()).hexdigest()[:16]
    out = _cache_dir() / f"place_xent-{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        # atomic: concurrent workers see a whole library or none
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp, atomic_path(out) as lib_path:
            d = Path(tmp)
            (d / "k.c").write_text(_C_SOURCE)
            (d / "s.c").write_text(_C_STRICT)
            for cmd in ([cc, *_CFLAGS, "-c", str(d / "k.c"), "-o", str(d / "k.o")],
                        [cc, *_CFLAGS_STRICT, "-c", str(d / "s.c"), "-o", str(d / "s.o")],
                        [cc, "-shared", str(d / "k.o"), str(d / "s.o"), "-o", str(lib_path), "-lm"]):
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
                if r.returncode != 0:
                    raise OSError(f"{' '.join(cmd)}: {r.stderr.strip()[:500]}")
    lib = ctypes.CDLL(str(out))
    for name in ("gs_place_xent_f32", "gs_place_xent_f64"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = ([ctypes.c_int64] * 3 + [ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
                       + [ctypes.c_void_p] * 9)
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
                    warnings.warn(f"gridsweep.fused: native kernel unavailable ({_LIB_ERROR}); using the eager path",
                                  RuntimeWarning, stacklevel=3)
    return _LIB


def native_available() -> bool:
    """Whether the native kernel is built (or can be built now) on this machine."""
    return _library() is not None


def native_supported(target, logits: torch.Tensor) -> bool:
    """Whether :func:`place_cell_loss` can run the native kernel for these targets and logits."""
    from gridsweep.targets import PlaceCellTarget

    return (isinstance(target, PlaceCellTarget) and _single_field(target) and target.kind in _KIND_CODES
            and logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.float64)
            and target.centres.dtype == logits.dtype and target.centres.device.type == "cpu")


def _kernel_args(target, dtype: torch.dtype) -> tuple:
    """Contiguous per-network parameters of the kernel (cached on the target)."""
    cache = target.__dict__.setdefault("_fused_kernel_args", {})
    if dtype not in cache:
        c = target.cell_centres.to(dtype).contiguous()
        code = 1 if target.normalization == "none" else _KIND_CODES[target.kind]
        cache[dtype] = (code, c, c.pow(2).sum(-1).contiguous(),
                        (2 * target.sigma_e[..., 0] ** 2).to(dtype).contiguous(),
                        (2 * target.sigma_i[..., 0] ** 2).to(dtype).contiguous(),
                        torch.stack([target.alpha_e, target.alpha_i], -1).to(dtype).contiguous())
    return cache[dtype]


def _run_kernel(target, logits: torch.Tensor, positions: torch.Tensor, want_grad: bool, want_targets: bool = False):
    """(nll rows (E, N), dz (E, N, Np) or None, targets (E, N, Np) or None) from the native kernel."""
    lib = _library()
    E, Np = logits.shape[0], logits.shape[-1]
    z = logits.detach().flatten(1, -2) if logits.ndim > 3 else logits.detach()
    if z.ndim == 2:
        z = z[:, None]
    if z.stride(-1) != 1:
        z = z.contiguous()
    N = z.shape[1]
    pos = positions.detach().reshape(E, N, 2).to(logits.dtype).contiguous()
    code, cen, c2, de, di, amp = _kernel_args(target, logits.dtype)
    nll = torch.empty(E, N, dtype=logits.dtype)
    dz = torch.empty(E, N, Np, dtype=logits.dtype) if want_grad else None
    tgt = torch.empty(E, N, Np, dtype=logits.dtype) if want_targets else None
    fn = lib.gs_place_xent_f32 if logits.dtype == torch.float32 else lib.gs_place_xent_f64
    ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
    rc = fn(E, N, Np, code, z.data_ptr(), z.stride(0), z.stride(1), pos.data_ptr(), cen.data_ptr(), c2.data_ptr(),
            de.data_ptr(), di.data_ptr(), amp.data_ptr(), nll.data_ptr(), ptr(dz), ptr(tgt))
    if rc != 0:
        raise MemoryError("gridsweep.fused: the native kernel could not allocate its row buffers")
    return nll, dz, tgt


class _NativePlaceCellLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, positions: torch.Tensor, target: Any) -> torch.Tensor:
        nll, dz, _ = _run_kernel(target, logits, positions, want_grad=logits.requires_grad)
        ctx.save_for_backward(dz) if dz is not None else None
        ctx.shape = logits.shape
        return nll.mean(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor):
        (dz,) = ctx.saved_tensors
        if not bool((g == 1).all()):
            dz = dz * g.reshape(-1, 1, 1)
        return dz.view(ctx.shape), None, None


def place_cell_loss(logits: torch.Tensor, positions: torch.Tensor, target, mode: str | None = None) -> torch.Tensor:
    """Cross-entropy of place-cell targets, (E,): ``cross_entropy(logits, target.encode(positions))``.

    Parameters
    ----------
    logits : Tensor, (E, ..., Np)
    positions : Tensor, (E, ..., 2)
        Same leading axes as ``logits``.
    target : PlaceCellTarget
    mode : {"auto", "native", "eager", "reference"}, optional
        Default :data:`MODE`; ``auto`` is ``eager``. ``native`` falls back to ``eager``
        where the kernel does not apply (see the module docstring).

    Notes
    -----
    docs/science.md section 3: the encodings of :mod:`gridsweep.targets`, the loss of NFL
    (model.py:21, :181) and Sorscher et al. (model.py:70).
    """
    mode = mode or _mode()
    if mode == "reference":
        from gridsweep.targets import cross_entropy

        return cross_entropy(logits, target.encode(positions))
    if mode == "native" and native_supported(target, logits) and _library() is not None:
        return _NativePlaceCellLoss.apply(logits, positions, target)
    return softmax_cross_entropy(logits, place_cell_targets(target, positions), normalised=True)


def readout_loss(target, out: torch.Tensor, inputs: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Per-network loss of the readout columns ``start .. start + target.n_outputs`` of ``out``, (E,).

    The training loss: ``target.loss(out[..., cols], target.encode(inputs))`` on the
    reference path; on the fused paths the same number from :func:`place_cell_loss`
    (place cells) or :func:`softmax_cross_entropy` (other cross-entropy targets, e.g.
    head-direction cells). MSE targets and ``torch.compile`` always take the reference.
    A slice is taken only when the columns are not all of ``out`` (a slice's backward
    writes a zero tensor and copies into it).
    """
    n = target.n_outputs
    logits = out if (start == 0 and n == out.shape[-1]) else out[..., start:start + n]
    mode = _mode()
    if (mode == "reference" or target.loss_name != "cross_entropy"
            or torch.compiler.is_compiling()):
        return target.loss(logits, target.encode(inputs))
    from gridsweep.targets import PlaceCellTarget

    if isinstance(target, PlaceCellTarget):
        return place_cell_loss(logits, inputs, target, mode)
    with torch.no_grad():
        t = target.encode(inputs)
    return softmax_cross_entropy(logits, t, normalised=False)
