"""One training step at the Sorscher default (Ng 4096, Np 512, B 200, T 20): gridsweep vs the published step.

Prints, all measured in the same run with interleaved repeats (medians):

* gridsweep's step time (``Ensemble.train_step`` of one network, float32, Adam);
* its achieved GFLOP/s, counting the matrix products of forward + backward (input
  projection, recurrence, readout, encoder), and that as a fraction of the machine's own
  ``torch.mm`` GFLOP/s on the recurrence's shape, (B x Ng) @ (Ng x Ng);
* the step time of a plain reimplementation of the published PyTorch step, written here
  from its description (docs/science.md sections 2-3): ``nn.RNN`` model whose forward runs
  twice per step (once for the loss, once for the decoding error), ``log(softmax)``
  instead of ``log_softmax``, numpy trajectories generated on the host with a per-step
  loop and copied to the device every step, ``torch.optim.Adam``; and the speed-up.

    python bench/train_step.py [--quick] [--device cuda] [--sizes 4096 1024] [--profile]
    python bench/train_step.py --small [--quick] [--sizes 128 256] [--Nps 256 512] [--threads 1]

``--small`` (sweep-sized networks): the step under the reference loss and under the two
fused paths of ``gridsweep.fused`` (eager, native), interleaved, each as a fraction of the machine's product rate
on the step's own shapes (its products timed alone in the same run, the faster of ``torch.bmm`` and oneDNN per shape),
and the share of the step's CPU time outside product ops (torch.profiler).
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
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble import device_name  # noqa: E402  (bench/ensemble.py)
from trajectories import numpy_trajectories  # noqa: E402  (bench/trajectories.py)

from gridsweep.config import BoxConfig, RunConfig  # noqa: E402
from gridsweep.training import Ensemble  # noqa: E402


# ----------------------------------------------------------------------------------
# the published step, reimplemented from its description
# ----------------------------------------------------------------------------------
class PublishedPlaceCells:
    """Difference-of-softmaxes place cells (Sorscher's variance-ratio convention)."""

    def __init__(self, Np: int, sigma: float, variance_ratio: float, box: BoxConfig, device, seed: int = 0):
        rng = np.random.default_rng(seed)
        us = np.stack([rng.uniform(-box.width / 2, box.width / 2, Np), rng.uniform(-box.height / 2, box.height / 2, Np)], -1)
        self.us = torch.tensor(us, dtype=torch.float32, device=device)
        self.sigma, self.s = sigma, variance_ratio

    def activation(self, pos: torch.Tensor) -> torch.Tensor:
        """(..., 2) -> (..., Np)."""
        d = pos[..., None, :] - self.us
        norm2 = (d ** 2).sum(-1)
        out = torch.softmax(-norm2 / (2 * self.sigma ** 2), dim=-1)
        out = out - torch.softmax(-norm2 / (2 * self.s * self.sigma ** 2), dim=-1)
        out = out + out.min(-1, keepdim=True).values.abs()
        return out / out.sum(-1, keepdim=True)

    def nearest_cell_pos(self, activation: torch.Tensor, k: int = 3) -> torch.Tensor:
        idx = torch.topk(activation, k=k).indices
        return self.us[idx].mean(-2)


class PublishedRNN(nn.Module):
    def __init__(self, Np: int, Ng: int, weight_decay: float):
        super().__init__()
        self.encoder = nn.Linear(Np, Ng, bias=False)
        self.RNN = nn.RNN(input_size=2, hidden_size=Ng, nonlinearity="relu", bias=False)
        self.decoder = nn.Linear(Ng, Np, bias=False)
        self.softmax = nn.Softmax(dim=-1)
        self.weight_decay = weight_decay

    def predict(self, v: torch.Tensor, init_code: torch.Tensor) -> torch.Tensor:
        g, _ = self.RNN(v, self.encoder(init_code)[None])
        return self.decoder(g)

    def compute_loss(self, v, init_code, y, pos, place_cells: PublishedPlaceCells):
        preds = self.predict(v, init_code)  # forward 1: for the decoding error
        yhat = self.softmax(self.predict(v, init_code))  # forward 2: for the loss
        loss = -(y * torch.log(yhat)).sum(-1).mean()
        loss = loss + self.weight_decay * (self.RNN.weight_hh_l0 ** 2).sum()
        err = torch.sqrt(((pos - place_cells.nearest_cell_pos(preds)) ** 2).sum(-1)).mean()
        return loss, err


class PublishedStep:
    """Host numpy trajectories -> device -> place-cell targets -> double forward -> Adam."""

    def __init__(self, cfg: RunConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        t = cfg.target
        self.place_cells = PublishedPlaceCells(t.n_cells, t.sigma, t.surround_variance_ratio or 2.0, cfg.box, device)
        torch.manual_seed(0)
        self.model = PublishedRNN(t.n_cells, cfg.model.hidden_size, cfg.training.weight_decay).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.training.learning_rate)
        self.rng = np.random.default_rng(0)

    def batch(self):
        tr = self.cfg.trajectory
        traj = numpy_trajectories(self.rng, tr.batch_size, tr.sequence_length, tr, self.cfg.box)
        # time-major (T, B, 2) float32 on the device, as nn.RNN expects
        v = torch.tensor(traj["velocities"], dtype=torch.float32).transpose(0, 1).to(self.device)
        pos = torch.tensor(traj["positions"], dtype=torch.float32).transpose(0, 1).to(self.device)
        start = torch.tensor(traj["start"], dtype=torch.float32).to(self.device)
        return v, self.place_cells.activation(start), self.place_cells.activation(pos), pos

    def step(self) -> tuple[float, float]:
        v, init_code, y, pos = self.batch()
        self.optimizer.zero_grad()
        loss, err = self.model.compute_loss(v, init_code, y, pos, self.place_cells)
        loss.backward()
        self.optimizer.step()
        return loss.item(), err.item()


# ----------------------------------------------------------------------------------
def step_flops(Ng: int, Np: int, B: int, T: int) -> dict[str, float]:
    """Matrix-product FLOPs of one forward + backward (2 per multiply-add).

    Backward of a product needs the weight gradient and, unless the input is data, the
    input gradient: input projection and encoder act on data (velocities, start code).
    """
    return {
        "input projection": 2 * (2 * B * T * 2 * Ng),  # forward + weight gradient
        "recurrence": 3 * (2 * B * T * Ng * Ng),  # forward + hidden gradient + weight gradient
        "readout": 3 * (2 * B * T * Ng * Np),
        "encoder": 2 * (2 * B * Np * Ng),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(f, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    f()
    sync(device)
    return time.perf_counter() - t0


def gridsweep_step(ens: Ensemble) -> None:
    ens.train_step()["loss"].sum().item()


def phase_breakdown(ens: Ensemble, n: int, device) -> dict[str, float]:
    """Median ms of each phase of ``Ensemble.train_step`` (the same calls, timed one by one)."""
    phases: dict[str, list[float]] = {k: [] for k in ("trajectories", "encode + recurrence", "readout + loss",
                                                       "backward", "optimizer", "divergence check")}
    for _ in range(n):
        ts = [time.perf_counter()]

        def mark():
            sync(device)
            ts.append(time.perf_counter())

        traj = ens.sample(); mark()  # noqa: E702
        hidden = ens.model.hidden_time_major(traj.velocities, ens.target.encode(traj.start)); mark()  # noqa: E702
        loss, _ = ens._readout_loss(hidden, None, traj.positions.transpose(1, 2), traj.headings.transpose(1, 2))
        total = loss + ens.weight_decay * ens.model.recurrent_penalty(); mark()  # noqa: E702
        ens.optimizer.zero_grad(); total.sum().backward(); mark()  # noqa: E702
        ens.optimizer.step(ens.active); mark()  # noqa: E702
        torch.stack([torch.isfinite(p.reshape(ens.E, -1).sum(-1)) for p in ens.model.parameters()]).all(0); mark()  # noqa: E702
        for k, a, b in zip(phases, ts, ts[1:]):
            phases[k].append(b - a)
    return {k: 1e3 * statistics.median(v) for k, v in phases.items()}


def run(Ng: int, Np: int, repeats: int, device: torch.device, compile: bool, profile: bool) -> dict:
    cfg = RunConfig().with_overrides({"model.hidden_size": Ng, "target.n_cells": Np})
    tr = cfg.trajectory
    B, T = tr.batch_size, tr.sequence_length
    flops = step_flops(Ng, Np, B, T)
    total_flops = sum(flops.values())
    ens = Ensemble([cfg], device=device, **({"compile": True} if compile else {}))
    pub = PublishedStep(cfg, device)
    h = torch.randn(B, Ng, device=device)
    W = torch.randn(Ng, Ng, device=device)
    mm_out = torch.empty(B, Ng, device=device)
    mm_reps = max(1, int(2e11 // (2 * B * Ng * Ng)))  # ~0.2 TFLOP per timing: long enough to time

    def mm():
        for _ in range(mm_reps):
            torch.mm(h, W, out=mm_out)

    for f in (lambda: gridsweep_step(ens), pub.step, mm):  # warm up (first step allocates optimiser state)
        timed(f, device)
    t_ours, t_pub, t_mm = [], [], []
    for _ in range(repeats):
        t_ours.append(timed(lambda: gridsweep_step(ens), device))
        t_pub.append(timed(pub.step, device))
        t_mm.append(timed(mm, device) / mm_reps)
    ours, published, mm_t = (statistics.median(x) for x in (t_ours, t_pub, t_mm))
    mm_gflops = 2 * B * Ng * Ng / mm_t / 1e9
    res = {"Ng": Ng, "Np": Np, "B": B, "T": T, "ours_ms": 1e3 * ours, "published_ms": 1e3 * published,
           "gflop": total_flops / 1e9, "ours_gflops": total_flops / ours / 1e9,
           "published_gflops": total_flops / published / 1e9, "mm_gflops": mm_gflops,
           "fraction": total_flops / ours / 1e9 / mm_gflops, "speedup": published / ours,
           "flops": {k: v / 1e9 for k, v in flops.items()}}
    if profile:
        res["phases"] = phase_breakdown(ens, max(2, repeats), device)
    return res


# ----------------------------------------------------------------------------------
# small networks (sweeps): fraction of the product rate on the step's own shapes
# ----------------------------------------------------------------------------------
#: profiler op names that are matrix products
PRODUCT_OPS = ("aten::bmm", "aten::mm", "aten::addmm", "aten::baddbmm", "aten::baddbmm_", "aten::matmul",
               "mkldnn::_linear_pointwise", "aten::linear")


def step_products(ens: Ensemble) -> list[tuple[int, int, int, int, int]]:
    """The step's matrix products as (count, batch, m, k, n), from its config (vanilla RNN)."""
    cfg = ens.cfg
    E, Ng = ens.E, cfg.model.hidden_size
    Np = ens.target.n_outputs
    B, T = cfg.trajectory.batch_size, cfg.trajectory.sequence_length
    N = B * T
    return [(1, E, N, Ng, Np), (1, E, N, Np, Ng), (1, E, Ng, N, Np),  # readout fwd, input grad, weight grad
            (T - 1, E, B, Ng, Ng), (T - 1, E, B, Ng, Ng), (1, E, Ng, N, Ng),  # recurrence fwd, bwd, weight grad
            (1, E, N, 2, Ng), (1, E, 2, N, Ng), (1, E, B, Np, Ng), (1, E, Np, B, Ng)]  # input proj, encoder


def product_time(ens: Ensemble, device, reps: int = 5) -> tuple[float, float]:
    """(seconds, FLOPs) of the step's products run alone, median of ``reps``.

    Each shape is timed with ``torch.bmm`` (MKL) and, for float32 on the CPU, also per
    network through oneDNN (``gridsweep.fastpath``, what the step uses for large products;
    it has AVX-512 kernels on AMD CPUs where MKL has not); the faster counts, so the
    baseline is the machine's best product rate on the shape, not MKL's alone.
    """
    from gridsweep import fastpath

    onednn = device.type == "cpu" and ens.dtype == torch.float32 and fastpath.onednn_available()
    total_t, total_f = 0.0, 0.0
    for count, b, m, k, n in step_products(ens):
        x = torch.randn(b, m, k, device=device, dtype=ens.dtype)
        w = torch.randn(b, k, n, device=device, dtype=ens.dtype)
        o = torch.empty(b, m, n, device=device, dtype=ens.dtype)
        torch.bmm(x, w, out=o)
        ts = [timed(lambda: [torch.bmm(x, w, out=o) for _ in range(count)], device) for _ in range(reps)]
        t = statistics.median(ts)
        if onednn:
            wt = w.transpose(1, 2).contiguous()
            one = lambda: [fastpath._onednn_linear(x[i], wt[i]) for _ in range(count) for i in range(b)]  # noqa: E731
            one()
            t = min(t, statistics.median([timed(one, device) for _ in range(reps)]))
        total_t += t
        total_f += 2.0 * count * b * m * k * n
    return total_t, total_f


def product_share(ens: Ensemble, n: int = 3) -> float:
    """Share of the step's CPU time spent in matrix-product ops (torch.profiler, self time)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            gridsweep_step(ens)
    ka = prof.key_averages()
    total = sum(k.self_cpu_time_total for k in ka)
    prod = sum(k.self_cpu_time_total for k in ka if k.key in PRODUCT_OPS)
    return prod / max(total, 1e-9)


def small_network_report(Ng: int, Np: int, E: int, repeats: int, device) -> dict:
    """Step time under the reference and the fused loss (interleaved), as a fraction of the product rate."""
    from gridsweep import fused

    cfgs = [RunConfig().with_overrides({"seed": s, "model.hidden_size": Ng, "target.n_cells": Np}) for s in range(E)]
    ens = Ensemble(cfgs, device=device)
    modes = ("reference", "eager", "native")
    times: dict[str, list[float]] = {m: [] for m in modes}
    shares: dict[str, float] = {}
    old = fused.MODE
    try:
        for m in modes:
            fused.MODE = m
            timed(lambda: gridsweep_step(ens), device)  # warm up (optimiser state, kernel build)
        prod_t, prod_f = product_time(ens, device)
        for _ in range(repeats):
            for m in modes:
                fused.MODE = m
                times[m].append(timed(lambda: gridsweep_step(ens), device))
        for m in modes:
            fused.MODE = m
            shares[m] = product_share(ens)
    finally:
        fused.MODE = old
    res = {"Ng": Ng, "Np": Np, "E": E, "products_ms": 1e3 * prod_t, "gflop": prod_f / 1e9,
           "product_gflops": prod_f / prod_t / 1e9}
    for m in modes:
        t = statistics.median(times[m])
        res[m] = {"ms": 1e3 * t, "fraction": prod_t / t, "non_product_share": 1 - shares[m]}
    return res


def prefetch_report(Ng: int, Np: int, E: int, repeats: int, device) -> dict:
    """Trajectory time and step time per step with and without the trajectory prefetch, interleaved.

    A window is K consecutive steps (``gridsweep.runtime.prefetch_steps``) started with an
    empty prefetch buffer, timed whole and divided by K, so the prefetch's one big
    integration is amortised as in training; ``GRIDSWEEP_TRAJ_PREFETCH`` toggles it.
    """
    from gridsweep.runtime import prefetch_steps

    cfgs = [RunConfig().with_overrides({"seed": s, "model.hidden_size": Ng, "target.n_cells": Np}) for s in range(E)]
    ens = Ensemble(cfgs, device=device)
    K = prefetch_steps(E * cfgs[0].trajectory.batch_size, 10**9, device, ens.prefetch_rows)
    old = os.environ.get("GRIDSWEEP_TRAJ_PREFETCH")

    def window(f, on: bool) -> float:
        os.environ["GRIDSWEEP_TRAJ_PREFETCH"] = "1" if on else "0"
        ens._drop_prefetch()
        return timed(lambda: [f() for _ in range(K)], device) / K

    times: dict[str, list[float]] = {k: [] for k in ("traj_off", "traj_on", "step_off", "step_on")}
    try:
        for on in (False, True):  # warm up
            window(ens._training_trajectories, on), window(lambda: gridsweep_step(ens), on)
        for _ in range(repeats):
            for on in (False, True):
                key = "on" if on else "off"
                times["traj_" + key].append(window(ens._training_trajectories, on))
                times["step_" + key].append(window(lambda: gridsweep_step(ens), on))
    finally:
        if old is None:
            os.environ.pop("GRIDSWEEP_TRAJ_PREFETCH", None)
        else:
            os.environ["GRIDSWEEP_TRAJ_PREFETCH"] = old
        ens._drop_prefetch()
    res = {"Ng": Ng, "Np": Np, "E": E, "K": K, **{k: 1e3 * statistics.median(v) for k, v in times.items()}}
    print(f"E {E}, Ng {Ng}, Np {Np}, K {K}: trajectories per step {res['traj_off']:.2f} -> {res['traj_on']:.2f} ms "
          f"({res['traj_off'] / res['traj_on']:.1f}x); step {res['step_off']:.1f} -> {res['step_on']:.1f} ms; "
          f"trajectory share {res['traj_off'] / res['step_off']:.1%} -> {res['traj_on'] / res['step_on']:.1%}")
    print(f"RESULT prefetch E{E} Ng{Ng} Np{Np} K{K} traj_ms {res['traj_off']:.2f} {res['traj_on']:.2f} step_ms "
          f"{res['step_off']:.1f} {res['step_on']:.1f} share {res['traj_off'] / res['step_off']:.3f} "
          f"{res['traj_on'] / res['step_on']:.3f}")
    return res


def print_small(r: dict) -> None:
    print(f"\nE {r['E']}, Ng {r['Ng']}, Np {r['Np']}: products {r['gflop']:.2f} GFLOP, alone (same shapes, faster of "
          f"torch.bmm / oneDNN) "
          f"{r['products_ms']:.1f} ms = {r['product_gflops']:.1f} GFLOP/s")
    for m, label in (("reference", "reference loss"), ("eager", "fused eager"), ("native", "fused native")):
        x = r[m]
        print(f"  {label:15s} step {x['ms']:8.1f} ms  fraction of product rate {x['fraction']:.2f}  "
              f"non-product share (profiler) {x['non_product_share']:.2f}")
    ref = r["reference"]
    print(f"RESULT small E{r['E']} Ng{r['Ng']} Np{r['Np']} fraction ref/eager/native {ref['fraction']:.2f} "
          f"{r['eager']['fraction']:.2f} {r['native']['fraction']:.2f} nonproduct {ref['non_product_share']:.2f} "
          f"{r['eager']['non_product_share']:.2f} {r['native']['non_product_share']:.2f} speedup eager "
          f"{ref['ms'] / r['eager']['ms']:.2f}x native {ref['ms'] / r['native']['ms']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few steps (~1-2 minutes on 2 cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="hidden sizes Ng (default 4096; full: 4096 1024)")
    ap.add_argument("--Np", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="Ensemble(compile=True)")
    ap.add_argument("--profile", action="store_true", help="also print a per-phase time breakdown of the gridsweep step")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--small", action="store_true",
                    help="small networks (default Ng 128 256 x Np 256 512): step under the reference and the fused "
                         "loss as a fraction of the product rate on the step's own shapes, and the non-product share")
    ap.add_argument("--Nps", type=int, nargs="+", default=[256, 512], help="with --small: place-cell counts")
    ap.add_argument("--prefetch", action="store_true",
                    help="with --small: trajectory and step time per step with and without the trajectory prefetch "
                         "(GRIDSWEEP_TRAJ_PREFETCH), E 1 and 4, instead of the fused-loss comparison")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.small:
        repeats = args.repeats or (3 if args.quick else 7)
        print("# small networks: one training step, reference vs fused readout loss (gridsweep.fused); float32, "
              f"DoS, Adam, B 200, T 20\n# device: {device_name(device)}; torch {torch.__version__}; {repeats} "
              f"interleaved repeats, medians; load average at start {os.getloadavg()[0]:.1f}")
        for Ng in args.sizes or [128, 256]:
            for Np in args.Nps:
                if args.prefetch:
                    for E in (1, 4):
                        prefetch_report(Ng, Np, E, repeats, device)
                    continue
                print_small(small_network_report(Ng, Np, 1, repeats, device))
        print(f"# load average at end {os.getloadavg()[0]:.1f}")
        return
    sizes = args.sizes or ([4096] if args.quick else [4096, 1024])
    repeats = args.repeats or (2 if args.quick else 5)
    print("# one training step, gridsweep vs the published step (reimplemented); float32, Adam, DoS targets")
    print(f"# device: {device_name(device)}; torch {torch.__version__}; compile={args.compile}; "
          f"{repeats} interleaved repeats, medians; load average at start {os.getloadavg()[0]:.1f}")
    for Ng in sizes:
        r = run(Ng, args.Np, repeats, device, args.compile, args.profile)
        print(f"\nNg {Ng}, Np {r['Np']}, B {r['B']}, T {r['T']}: {r['gflop']:.1f} GFLOP of matrix products per step ("
              + ", ".join(f"{k} {v:.2f}" for k, v in r["flops"].items()) + ")")
        print(f"  machine torch.mm ({r['B']}x{Ng})@({Ng}x{Ng}): {r['mm_gflops']:8.1f} GFLOP/s")
        print(f"  gridsweep step:   {r['ours_ms']:10.1f} ms  {r['ours_gflops']:8.1f} GFLOP/s  "
              f"fraction of mm {r['fraction']:.2f}  (goal >= 0.8)")
        print(f"  published step:   {r['published_ms']:10.1f} ms  {r['published_gflops']:8.1f} GFLOP/s (same FLOP count)")
        print(f"  speed-up over the published step: {r['speedup']:.2f}x  (goal >= 1.4x)")
        if "phases" in r:
            print("  gridsweep phases (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()))
        print(f"RESULT train_step Ng{Ng} speedup {r['speedup']:.2f}x fraction {r['fraction']:.2f}")
    print(f"# load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
