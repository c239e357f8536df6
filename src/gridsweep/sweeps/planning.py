"""Grouping pending trials into ensemble tasks that fit in memory (issue #5.3).

Trials with the same :func:`gridsweep.training.ensemble_key` differ only in
per-network fields (seed, sigma, learning rate, ...) and can train as one batched
ensemble. Each group is cut into chunks of at most E networks, E chosen from a memory
estimate against a budget (default 25% of available RAM, or of GPU memory, shared by
the tasks that run at once) unless ``--ensemble-size`` fixes it.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from gridsweep.config import RunConfig

__all__ = ["Task", "group_key", "network_bytes", "step_cost", "available_memory", "memory_budget", "auto_ensemble_size",
           "plan_tasks", "GATES", "SAFETY"]

#: Gate blocks per cell (pre-activations of Ng each).
GATES = {"rnn": 1, "gru": 3, "lstm": 4, "ugrnn": 2, "srnn": 1}
#: Safety factor on activation memory (autograd intermediates, allocator slack).
SAFETY = 3.0
#: Cap on automatically chosen ensemble sizes.
MAX_AUTO_ENSEMBLE = 64


@dataclass
class Task:
    """One unit of work for an executor: trials trained as one ensemble."""

    task_id: str
    trial_ids: list[str]
    configs: list[dict[str, Any]]
    dirs: list[str]
    ensemble_key: str
    attempt: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.trial_ids)


def group_key(cfg: RunConfig) -> str:
    """The key trials are grouped by: :func:`gridsweep.training.ensemble_key`, refined.

    Refinement: networks are only batched with networks of the same place-field
    padding (``heterogeneity.max_fields`` when multi-field, else 1), because
    ``gridsweep.targets`` draws each network's centres with the ensemble's largest
    padding, so mixing them would change a network's targets from what it gets alone.
    """
    from gridsweep.training import ensemble_key

    key = ensemble_key(cfg)
    h = cfg.target.heterogeneity
    fmax = h.max_fields if h is not None and h.fields_lambda > 0 else 1
    return key if fmax == 1 else f"{key}-f{fmax}"


def network_bytes(cfg: RunConfig) -> int:
    """Estimated peak bytes of one network of ``cfg`` while training and evaluating.

    parameters x 4 (weights, gradients, two optimiser moments) plus SAFETY x the larger
    of the training activations ``B T (Ng (gates + 2) + 3 Np)`` and the evaluation
    activations ``min(250, n_eval) T_eval (Ng (gates + 1) + 2 Np)``.
    """
    b = 8 if cfg.training.dtype == "float64" else 4
    g = GATES.get(cfg.model.cell, 4)
    Ng, Np = cfg.model.hidden_size, cfg.target.n_cells
    n_out = Np + (cfg.head_direction.n_cells if cfg.head_direction else 0)
    read_in = cfg.model.bottleneck or Ng
    params = g * Ng * (Ng + 2) + Np * Ng + (Ng * cfg.model.bottleneck if cfg.model.bottleneck else 0) + read_in * n_out
    tr = cfg.trajectory.batch_size * cfg.trajectory.sequence_length * (Ng * (g + 2) + 3 * n_out)
    ev = min(250, cfg.evaluation.n_trajectories) * cfg.evaluation.sequence_length * (Ng * (g + 1) + 2 * n_out)
    return int(b * (4 * params + SAFETY * max(tr, ev)))


def available_memory(device: str = "cpu") -> int:
    """Bytes available now: MemAvailable for the CPU, free memory of the GPU for CUDA."""
    if device.startswith("cuda"):
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        except Exception:  # noqa: BLE001 - no CUDA here (e.g. a Ray driver without a GPU)
            return 16 * 1024 ** 3
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 4 * 1024 ** 3


def memory_budget(device: str = "cpu", concurrent: int = 1, fraction: float = 0.25,
                  gpus_per_task: float | None = None) -> int:
    """Bytes one task may use: ``fraction`` of available memory, shared by ``concurrent`` tasks.

    On a GPU with fractional ``gpus_per_task`` the share is that fraction of the device.
    """
    avail = available_memory(device)
    if device.startswith("cuda") and gpus_per_task:
        share = min(1.0, float(gpus_per_task))
    else:
        share = 1.0 / max(1, concurrent)
    return int(avail * fraction * share)


def auto_ensemble_size(cfg: RunConfig, budget: int, cap: int = MAX_AUTO_ENSEMBLE) -> int:
    """The largest E (1 <= E <= cap) with ``E * network_bytes(cfg) <= budget``."""
    return max(1, min(cap, budget // max(1, network_bytes(cfg))))


#: Cost of one (sample, place cell, field) of target encoding, in multiply-adds: the
#: nearest-field search and the profile are elementwise and memory-bound (measured on a
#: 2-core CPU: ~3 ns per element against ~0.03 ns per multiply-add of a matrix product).
TARGET_ELEMENT_COST = 100

#: Extra cost of a kind's profile per (sample, place cell), in the same units: the DoG kinds'
#: two weighted scales cost 3-5 ms more per step than DoS or Gaussian cells at B T = 2,000,
#: Np = 256 (bench/preset_cost.py, bench/RESULTS.md), about 150 multiply-adds' worth.
#: Without it every 256-cell ReLU group ties and the DoG groups can start last.
PROFILE_COST = {"dog_equinorm": 150, "dog_general": 150}


def step_cost(cfg: RunConfig) -> float:
    """Relative cost of one network's training step (multiply-adds, forward), for scheduling.

    ``B T (gates Ng^2 + Ng Nout + Np (F TARGET_ELEMENT_COST + PROFILE_COST[kind]))``:
    recurrence, readout and target encoding; backward passes scale the first two alike.
    Used only to order tasks (longest first), so it need not be exact; the order changes
    no network's numbers.
    """
    g = GATES.get(cfg.model.cell, 4)
    Ng, Np = cfg.model.hidden_size, cfg.target.n_cells
    h = cfg.target.heterogeneity
    fields = h.max_fields if h is not None and h.fields_lambda > 0 else 1
    n_out = Np + (cfg.head_direction.n_cells if cfg.head_direction else 0)
    bt = cfg.trajectory.batch_size * cfg.trajectory.sequence_length
    profile = PROFILE_COST.get(cfg.target.kind, 0)
    return float(bt * (g * Ng * Ng + Ng * n_out + Np * (fields * TARGET_ELEMENT_COST + profile)))


def _task_id(ids: Sequence[str]) -> str:
    return hashlib.sha256(",".join(ids).encode()).hexdigest()[:12]


def plan_tasks(trials: Sequence[tuple[str, RunConfig, str, str]], *, workers: int = 1,
               ensemble_size: int | None = None, budget: int | None = None, cap: int = MAX_AUTO_ENSEMBLE) -> list[Task]:
    """Cut trials into ensemble tasks.

    Parameters
    ----------
    trials : sequence of (trial_id, config, ensemble_key, run_dir)
        In spec order; groups keep the order of their first trial.
    workers : int
        Tasks that run at once; with fewer groups than workers, groups are split so
        every worker gets work (automatic sizing only).
    ensemble_size : int, optional
        Fixed chunk size (``--ensemble-size``); 1 trains every trial alone.
    budget : int, optional
        Bytes per task for automatic sizing (default :func:`memory_budget`).

    Returns
    -------
    list of Task
        Longest first (estimated ``E x n_steps x`` :func:`step_cost`; ties in spec
        order), so that a long task does not start last and leave the other workers
        idle at the end (longest-processing-time-first scheduling).
    """
    groups: dict[str, list[tuple[str, RunConfig, str, str]]] = {}
    for t in trials:
        groups.setdefault(t[2], []).append(t)
    if ensemble_size is not None and ensemble_size < 1:
        raise ValueError(f"ensemble_size must be >= 1 (got {ensemble_size})")
    if budget is None and ensemble_size is None:
        budget = memory_budget("cpu", concurrent=workers)
    tasks: list[Task] = []
    cost: list[float] = []
    n_groups = len(groups)
    for key, members in groups.items():
        G = len(members)
        if ensemble_size is not None:
            E = ensemble_size
        else:
            E = min(G, auto_ensemble_size(members[0][1], budget, cap))  # type: ignore[arg-type]
            if n_groups < workers:  # spread a few big groups over the workers
                E = min(E, math.ceil(G / math.ceil(workers / n_groups)))
            E = math.ceil(G / math.ceil(G / max(1, E)))  # balanced chunks
        for i in range(0, G, E):
            chunk = members[i:i + E]
            ids = [c[0] for c in chunk]
            tasks.append(Task(task_id=_task_id(ids), trial_ids=ids, configs=[c[1].to_dict() for c in chunk],
                              dirs=[c[3] for c in chunk], ensemble_key=key))
            cost.append(sum(step_cost(c[1]) * c[1].training.n_steps for c in chunk))
    order = sorted(range(len(tasks)), key=lambda i: -cost[i])  # stable: ties keep spec order
    return [tasks[i] for i in order]
