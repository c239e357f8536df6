"""Roofline of the small-network training step's non-product work on this CPU (issue #18).

How much of a small network's step (Ng 128-256, Np 256-512, B 200, T 20, float32, DoS
place cells, Adam) that is not matrix products is physical on this machine, and how
much is overhead. Everything is measured in one run, interleaved, medians:

1. The machine: sustainable memory bandwidth (STREAM-style copy / add / triad with torch
   over tensors much larger than the L3 cache, one and two threads; the same at the
   step's own tensor size, which is L3-resident), elementwise throughput and ``torch.exp``
   throughput on L2-resident tensors, and the cost of one tiny op (dispatch overhead).
2. The mathematical minimum of the place-cell target + softmax cross-entropy + backward,
   per row of Np logits (N = B x T rows): the targets are a function of the position
   (2 numbers per row), so they need not touch memory; the loss needs the logits read
   once and d loss / d logits written once; exp() is evaluated 2 Np times for the DoS
   targets (centre and surround softmax; 1 Np for a single Gaussian) plus Np times for
   the logits' log-sum-exp, whose exponentials are reused for softmax(z) in the
   gradient. Floor = max(exps / exp rate, bytes / bandwidth). The other non-product
   work has floors too: the ReLU recurrence's pointwise forward / backward (3 passes
   over N x Ng), Adam (7 words per parameter) and the trajectories (a few transcendentals
   per agent-step).
3. The step: products alone on the step's own shapes (``torch.bmm``, as
   ``bench/train_step.py --small``), the step under each loss path (reference, eager,
   native), the loss alone, the step's phases, and a per-operator ``torch.profiler``
   table with the number of top-level ops per step.

Printed ratios (the repo's bench convention, baseline measured in the same run):
measured non-product time / its physical floor, and the fraction of the product rate
the step reaches against the largest fraction physics allows (products / (products +
floor)).

    python bench/roofline.py [--quick] [--sizes 128 256] [--Nps 256 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble import device_name  # noqa: E402  (bench/ensemble.py)
from train_step import PRODUCT_OPS, gridsweep_step, phase_breakdown, step_products  # noqa: E402

from gridsweep import fastpath, fused  # noqa: E402
from gridsweep.config import RunConfig  # noqa: E402
from gridsweep.training import Ensemble  # noqa: E402

CPU = torch.device("cpu")


def best_time(f, reps: int, inner: int = 1) -> float:
    """Median wall seconds of one call of ``f`` (``inner`` calls per timing, ``reps`` timings)."""
    return both_times(f, reps, inner)[0]


def both_times(f, reps: int, inner: int = 1) -> tuple[float, float]:
    """Median (wall, this thread's CPU) seconds of one call of ``f``.

    On the shared machine the wall time includes time the thread waited for a core
    (other users' load); the thread's CPU time does not, so the two bound what the code
    itself costs. (One intra-op thread: the CPU time is the whole op's.)
    """
    f()
    ws, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(inner):
            f()
        ws.append((time.perf_counter() - t0) / inner)
        cs.append((time.thread_time() - c0) / inner)
    return statistics.median(ws), statistics.median(cs)


# ----------------------------------------------------------------------------------
# the machine
# ----------------------------------------------------------------------------------
def stream(n: int, reps: int, inner: int) -> dict[str, float]:
    """GB/s of copy (2 words per element), add and triad (3 words), STREAM's counting (no write-allocate)."""
    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    word = a.element_size()
    out = {}
    out["copy"] = 2 * word * n / best_time(lambda: c.copy_(a), reps, inner) / 1e9
    out["add"] = 3 * word * n / best_time(lambda: torch.add(a, b, out=c), reps, inner) / 1e9
    out["triad"] = 3 * word * n / best_time(lambda: torch.add(a, b, alpha=3.0, out=c), reps, inner) / 1e9
    return out


def exp_rate(n: int, reps: int, inner: int) -> float:
    """Gexp/s of ``torch.exp`` on n float32 in [-30, 0] (cache-resident when n is small)."""
    x = -30 * torch.rand(n)
    y = torch.empty(n)
    return n / best_time(lambda: torch.exp(x, out=y), reps, inner) / 1e9


_EXP_C = r"""
#include <math.h>
#include <stdint.h>
void vexp(int64_t n, const float* x, float* y) { for (int64_t i = 0; i < n; ++i) y[i] = expf(x[i]); }
"""


def vector_exp_rate(n: int, reps: int, inner: int) -> float | None:
    """Gexp/s of a C loop of ``expf`` compiled as gridsweep.fused compiles its kernel (glibc's vector expf).

    None without a C compiler. This is the exp the native fused kernel calls.
    """
    import ctypes
    import subprocess
    import tempfile

    from gridsweep.fused import _CFLAGS

    try:
        with tempfile.TemporaryDirectory(prefix="gs-roofline-") as tmp:  # the loaded library outlives its file
            d = Path(tmp)
            (d / "e.c").write_text(_EXP_C)
            subprocess.run([os.environ.get("CC", "cc"), *_CFLAGS, "-shared", str(d / "e.c"), "-o", str(d / "e.so"),
                            "-lm"], check=True, capture_output=True, timeout=120)
            lib = ctypes.CDLL(str(d / "e.so"))
    except (OSError, subprocess.SubprocessError):
        return None
    x = -30 * torch.rand(n)
    y = torch.empty(n)
    args = (ctypes.c_int64(n), ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()))
    return n / best_time(lambda: lib.vexp(*args), reps, inner) / 1e9


def op_cost(reps: int) -> float:
    """Seconds of one tiny op (``torch.add`` of 2 numbers into a preallocated output): dispatch overhead."""
    a, b, c = torch.ones(2), torch.ones(2), torch.empty(2)
    return best_time(lambda: torch.add(a, b, out=c), reps, 2000)


def machine(threads: list[int], quick: bool, step_elems: int) -> dict:
    big = 1 << (24 if quick else 25)  # 64 / 128 MB per tensor: 2-4x the 32 MB L3
    reps = 3 if quick else 5
    res: dict = {"big_mb": 4 * big / 2**20, "step_mb": 4 * step_elems / 2**20}
    old = torch.get_num_threads()
    try:
        for th in threads:
            torch.set_num_threads(th)
            res[f"dram_{th}"] = stream(big, reps, 2)
            res[f"step_{th}"] = stream(step_elems, reps, 10)
            res[f"l2_{th}"] = stream(1 << 15, reps, 2000)
            res[f"exp_l2_{th}"] = exp_rate(1 << 15, reps, 500)
            res[f"exp_step_{th}"] = exp_rate(step_elems, reps, 5)
        res["vexp"] = vector_exp_rate(1 << 15, reps, 500)
        res["op_us"] = 1e6 * op_cost(reps)
    finally:
        torch.set_num_threads(old)
    return res


def print_machine(m: dict, threads: list[int]) -> None:
    print(f"\n## machine (same run); STREAM counting, GB/s; tensors: DRAM {m['big_mb']:.0f} MB, "
          f"step {m['step_mb']:.1f} MB (N x Np float32), L2 0.125 MB")
    print(f"{'threads':>7} | {'DRAM copy/add/triad':>22} | {'step-size copy/add/triad':>26} | "
          f"{'L2 copy/add/triad':>20} | {'exp L2 Gexp/s':>13} | {'exp step-size':>13}")
    for th in threads:
        d, s, l2 = m[f"dram_{th}"], m[f"step_{th}"], m[f"l2_{th}"]
        f3 = lambda x: f"{x['copy']:.1f} / {x['add']:.1f} / {x['triad']:.1f}"  # noqa: E731
        print(f"{th:>7} | {f3(d):>22} | {f3(s):>26} | {f3(l2):>20} | {m[f'exp_l2_{th}']:>13.2f} | "
              f"{m[f'exp_step_{th}']:>13.2f}")
    v = m["vexp"]
    print(f"exp of a C loop compiled like the native kernel (glibc vector expf), 1 thread, L2: "
          f"{'n/a' if v is None else f'{v:.2f} Gexp/s'}")
    print(f"one tiny op (torch.add of 2 numbers, out=): {m['op_us']:.2f} us")


# ----------------------------------------------------------------------------------
# the step
# ----------------------------------------------------------------------------------
def floors(ens: Ensemble, m: dict, th: int) -> dict[str, float]:
    """Lower bounds (s) of the step's non-product work at these shapes on this machine."""
    cfg = ens.cfg
    Ng, Np = cfg.model.hidden_size, ens.target.n_outputs
    B, T = cfg.trajectory.batch_size, cfg.trajectory.sequence_length
    N = B * T * ens.E
    word = 4
    bw_step = max(m[f"step_{th}"].values()) * 1e9  # L3-resident: the loss's tensors are N x Np
    bw_l2 = max(m[f"l2_{th}"].values()) * 1e9
    # the best case: exps of a row held in cache, by the faster of torch.exp and the vector expf
    exp_rate_ = max(m[f"exp_l2_{th}"], m["vexp"] or 0.0) * 1e9
    n_target_exp = {"gaussian": 1, "dos": 2, "dog_equinorm": 2, "dog_general": 2, "sod": 1}[ens.target.kind]
    exps = (n_target_exp + 1) * N * Np
    loss_bytes = 2 * N * Np * word  # logits read once, gradient written once
    loss_floor = max(exps / exp_rate_, loss_bytes / bw_step)
    # ReLU recurrence pointwise: forward writes h, backward reads h (mask) and the incoming
    # gradient and writes the masked one: 4 words per element of N x Ng; L2/L3-resident
    rec_bytes = 4 * N * Ng * word
    rec_floor = rec_bytes / (bw_step if N * Ng * word > (1 << 21) else bw_l2)
    n_params = sum(p.numel() for p in ens.model.parameters())
    adam_floor = 7 * n_params * word / bw_l2  # read p, g, m, v; write p, m, v (~1 MB: L2/L3)
    traj_floor = 6 * N / exp_rate_  # ~6 transcendental / random draws per agent-step
    return {"exps": exps, "loss_bytes": loss_bytes, "loss_exp_s": exps / exp_rate_, "loss_mem_s": loss_bytes / bw_step,
            "loss": loss_floor, "recurrence": rec_floor, "adam": adam_floor, "trajectories": traj_floor,
            "total": loss_floor + rec_floor + adam_floor + traj_floor}


def product_time_best(ens: Ensemble, reps: int) -> tuple[float, float, float, float]:
    """(wall s with the faster of MKL / oneDNN per shape, its CPU s, wall s with ``torch.bmm`` only, FLOPs).

    The step sends large float32 products by a weight matrix through oneDNN
    (``gridsweep.fastpath``), which uses AVX-512 on this AMD CPU where MKL does not; the
    machine's product rate on a shape is the faster of the two.
    """
    best_t = best_c = bmm_t = flops = 0.0
    for count, b, m_, k, n in step_products(ens):
        x, w = torch.randn(b, m_, k), torch.randn(b, k, n)
        o = torch.empty(b, m_, n)
        tb = both_times(lambda: [torch.bmm(x, w, out=o) for _ in range(count)], reps)
        t = tb
        if b == 1 and fastpath.onednn_available():
            x2, wt = x[0], w[0].t().contiguous()
            t = min(t, both_times(lambda: [fastpath._onednn_linear(x2, wt) for _ in range(count)], reps))
        best_t, best_c, bmm_t = best_t + t[0], best_c + t[1], bmm_t + tb[0]
        flops += 2.0 * count * b * m_ * k * n
    return best_t, best_c, bmm_t, flops


def loss_alone(ens: Ensemble, mode: str, reps: int) -> tuple[float, float]:
    """Seconds of the place-cell targets + cross-entropy, forward and backward, alone (step's shapes)."""
    traj = ens.sample()
    pos = traj.positions.transpose(1, 2).contiguous()
    Np = ens.target.n_outputs
    z = torch.randn(*pos.shape[:-1], Np, requires_grad=True)

    def f():
        z.grad = None
        fused.place_cell_loss(z, pos, ens.target, mode).sum().backward()

    return both_times(f, reps)


PHASES = ("trajectories", "encode + recurrence", "readout + loss", "backward", "optimizer", "divergence check")


def phase_profile(ens: Ensemble, n: int) -> dict[str, tuple[int, float, float, list[tuple[str, float]]]]:
    """Per phase of the step (as ``phase_breakdown``), per step: top-level ops, op self ms, product ops' self ms, top 3."""
    from torch.profiler import ProfilerActivity, profile, record_function

    def one_step():
        with record_function("phase:trajectories"):
            traj = ens.sample()
        with record_function("phase:encode + recurrence"):
            hidden = ens.model.hidden_time_major(traj.velocities, ens.target.encode(traj.start))
        with record_function("phase:readout + loss"):
            loss, _ = ens._readout_loss(hidden, None, traj.positions.transpose(1, 2), traj.headings.transpose(1, 2))
            total = loss + ens.weight_decay * ens.model.recurrent_penalty()
        with record_function("phase:backward"):
            ens.optimizer.zero_grad()
            total.sum().backward()
        with record_function("phase:optimizer"):
            ens.optimizer.step(ens.active)
        with record_function("phase:divergence check"):
            torch.stack([torch.isfinite(p.reshape(ens.E, -1).sum(-1)) for p in ens.model.parameters()]).all(0)

    one_step()
    with profile(activities=[ProfilerActivity.CPU]):
        one_step()  # profiler warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            one_step()
    count = {p: 0 for p in PHASES}
    self_ms: dict[str, dict[str, float]] = {p: {} for p in PHASES}
    for ev in prof.events():
        if ev.name.startswith("phase:"):
            continue
        anc, depth = ev.cpu_parent, 0
        while anc is not None and not anc.name.startswith("phase:"):
            anc, depth = anc.cpu_parent, depth + 1
        if anc is None:  # backward ops run under the engine, outside the range on some builds
            continue
        ph = anc.name[6:]
        if depth == 0:
            count[ph] += 1
        self_ms[ph][ev.name] = self_ms[ph].get(ev.name, 0.0) + ev.self_cpu_time_total / 1e3 / n
    out = {}
    for ph in PHASES:
        top = sorted(self_ms[ph].items(), key=lambda kv: -kv[1])[:3]
        prod = sum(v for k, v in self_ms[ph].items() if k in PRODUCT_OPS)
        out[ph] = (count[ph] // n, sum(self_ms[ph].values()), prod, top)
    return out


def op_profile(ens: Ensemble, n: int) -> tuple[list[tuple[str, int, float]], float, float, int]:
    """Per-op self CPU ms per step (top level and nested), profiled wall ms per step, and top-level ops per step."""
    from torch.profiler import ProfilerActivity, profile

    gridsweep_step(ens)
    with profile(activities=[ProfilerActivity.CPU]):
        gridsweep_step(ens)  # profiler warm-up
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            gridsweep_step(ens)
    wall = (time.perf_counter() - t0) / n
    rows = [(k.key, k.count // n, k.self_cpu_time_total / 1e3 / n) for k in prof.key_averages()]
    rows.sort(key=lambda r: -r[2])
    top_level = sum(1 for ev in prof.events() if ev.cpu_parent is None) // n
    return rows, 1e3 * wall, sum(r[2] for r in rows), top_level


def report(Ng: int, Np: int, m: dict, th: int, repeats: int, quick: bool) -> dict:
    cfg = RunConfig().with_overrides({"model.hidden_size": Ng, "target.n_cells": Np})
    ens = Ensemble([cfg], device=CPU)
    modes = ("reference", "eager", "native")
    old = fused.MODE
    times: dict[str, list[float]] = {k: [] for k in modes}
    cpu: dict[str, list[float]] = {k: [] for k in modes}
    try:
        for mode in modes:
            fused.MODE = mode
            gridsweep_step(ens)
            gridsweep_step(ens)
        prod_t, prod_c, bmm_t, prod_f = product_time_best(ens, repeats + 4)
        for _ in range(repeats):
            for mode in modes:
                fused.MODE = mode
                t0, c0 = time.perf_counter(), time.thread_time()
                gridsweep_step(ens)
                times[mode].append(time.perf_counter() - t0)
                cpu[mode].append(time.thread_time() - c0)
        loss_t = {mode: loss_alone(ens, mode, repeats + 2) for mode in modes}
        fused.MODE = "native"
        phases = phase_breakdown(ens, max(3, repeats), CPU)
        ops, prof_wall, prof_self, top_level = op_profile(ens, 2 if quick else 4)
        pprof = phase_profile(ens, 2 if quick else 4)
    finally:
        fused.MODE = old
    step = {mode: statistics.median(times[mode]) for mode in modes}
    step_cpu = {mode: statistics.median(cpu[mode]) for mode in modes}
    fl = floors(ens, m, th)
    return {"Ng": Ng, "Np": Np, "prod_s": prod_t, "prod_cpu": prod_c, "bmm_s": bmm_t, "step_cpu": step_cpu, "prod_gflop": prod_f / 1e9, "step": step, "loss": loss_t,
            "phases": phases, "pprof": pprof, "ops": ops, "prof_wall": prof_wall, "prof_self": prof_self, "top_level": top_level,
            "floor": fl, "op_us": m["op_us"]}


def category(op: str) -> str:
    if op in PRODUCT_OPS:
        return "product"
    if op.startswith(("aten::exp", "aten::_softmax", "aten::_log_softmax", "aten::sub", "aten::div", "aten::amin")):
        return "loss/targets/misc pointwise"
    return "other"


def print_report(r: dict) -> None:
    fl, step, prod = r["floor"], r["step"], r["prod_s"]
    ms = lambda s: 1e3 * s  # noqa: E731
    print(f"\n## Ng {r['Ng']}, Np {r['Np']}, B 200, T 20 (E 1, float32, DoS, Adam)")
    print(f"products alone on the step's shapes ({r['prod_gflop']:.2f} GFLOP): faster of MKL / oneDNN per shape "
          f"{ms(prod):.1f} ms = {r['prod_gflop'] / prod:.1f} GFLOP/s; torch.bmm (MKL) only {ms(r['bmm_s']):.1f} ms "
          f"(the baseline of bench/train_step.py --small)")
    print(f"floor of the loss: {fl['exps'] / 1e6:.2f} M exp -> {ms(fl['loss_exp_s']):.2f} ms at the best L2 exp rate; "
          f"{fl['loss_bytes'] / 1e6:.1f} MB (logits in, gradient out) -> {ms(fl['loss_mem_s']):.2f} ms at the "
          f"step-size bandwidth; floor {ms(fl['loss']):.2f} ms")
    print(f"other floors: recurrence pointwise {ms(fl['recurrence']):.2f} ms, Adam {ms(fl['adam']):.2f} ms, "
          f"trajectories {ms(fl['trajectories']):.3f} ms; all non-product work >= {ms(fl['total']):.2f} ms")
    best_fraction = prod / (prod + fl["total"])
    print(f"largest fraction of the product rate physics allows: {best_fraction:.2f}; "
          f"non-product share at that bound {1 - best_fraction:.2f}")
    pc, sc = r["prod_cpu"], r["step_cpu"]
    print(f"thread CPU time (excludes waiting for a core): products alone {ms(pc):.1f} ms")
    print(f"{'loss path':>10} | {'step ms wall / CPU':>18} | {'fraction wall / CPU':>19} | "
          f"{'non-product ms wall / CPU':>25} | {'CPU / floor':>11} | {'loss alone ms wall / CPU':>24} | "
          f"{'loss CPU / its floor':>20}")
    for mode in ("reference", "eager", "native"):
        nw, nc = step[mode] - prod, sc[mode] - pc
        lw, lc = r["loss"][mode]
        print(f"{mode:>10} | {ms(step[mode]):>8.1f} / {ms(sc[mode]):>7.1f} | {prod / step[mode]:>9.2f} / "
              f"{pc / sc[mode]:>7.2f} | {ms(nw):>12.1f} / {ms(nc):>10.1f} | {nc / fl['total']:>10.1f}x | "
              f"{ms(lw):>11.2f} / {ms(lc):>10.2f} | {lc / fl['loss']:>19.1f}x")
    print("phases under native: wall ms (medians, unprofiled) | top-level ops | profiled op self ms: all, products "
          "| top ops")
    for ph in PHASES:
        cnt, self_t, prod_t, top = r["pprof"][ph]
        print(f"  {ph:20s} {r['phases'][ph]:7.1f} | {cnt:5d} | {self_t:7.1f} {prod_t:7.1f} | "
              + ", ".join(f"{k} {v:.1f}" for k, v in top))
    print(f"profiler, native path: {r['prof_wall']:.1f} ms wall per step, {r['prof_self']:.1f} ms in op self time "
          f"(rest: Python, ctypes kernel, autograd engine); {r['top_level']} top-level ops per step x "
          f"{r['op_us']:.2f} us = {r['top_level'] * r['op_us'] / 1e3:.1f} ms of dispatch alone")
    print(f"  {'operator':32s} {'calls':>6} {'self ms':>8}  category")
    for name, calls, t in r["ops"][:14]:
        print(f"  {name[:32]:32s} {calls:>6} {t:>8.2f}  {category(name)}")
    n = sc["native"] - pc
    print(f"RESULT roofline Ng{r['Ng']} Np{r['Np']} CPU-time fraction ref/eager/native "
          f"{pc / sc['reference']:.2f}/{pc / sc['eager']:.2f}/{pc / sc['native']:.2f} physical max "
          f"{best_fraction:.2f} nonproduct native/floor {n / fl['total']:.1f}x loss native/floor "
          f"{r['loss']['native'][1] / fl['loss']:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Ng 128 only, fewer repeats (~1-2 min on 2 cores)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="Ng (default 128 256; quick 128)")
    ap.add_argument("--Nps", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the step (default 1)")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = args.sizes or ([128] if args.quick else [128, 256])
    repeats = args.repeats or (5 if args.quick else 9)
    print(f"# roofline of the small-network step (issue #18); {device_name(CPU)}; torch {torch.__version__}; "
          f"{repeats} interleaved repeats, medians; load average at start {os.getloadavg()[0]:.1f}")
    threads = sorted({1, 2, args.threads})
    m = machine(threads, args.quick, 4000 * max(args.Nps))
    print_machine(m, threads)
    for Ng in sizes:
        for Np in args.Nps:
            print_report(report(Ng, Np, m, args.threads, repeats, args.quick))
    print(f"# load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
