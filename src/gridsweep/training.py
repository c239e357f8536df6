"""Training path integrators: one network or an ensemble of E networks in one computation.

The loop is deliberately short (nanoGPT-style): fresh trajectories every step from each
network's own generator, one forward pass, per-network loss (readout loss + L2 penalty on
the recurrent matrix), per-network gradient clipping, per-network optimiser step.
Networks are independent: network e's gradients equal those it would have alone.

Every network keeps its own run directory (docs/architecture.md): resolved config,
metrics, status and a checkpoint holding its weights, optimiser state and generator
states, so a run stopped and resumed gives the same weights as an uninterrupted run.
A network whose loss or weights become non-finite is frozen, marked ``diverged`` and
the others carry on.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from gridsweep.config import RunConfig, config_hash, validate_config
from gridsweep.errors import ConfigError, CorruptFileError, DivergedError, ResourceError
from gridsweep.files import (
    atomic_path,
    load_torch,
    read_json,
    save_torch,
    verify_checksum,
    write_json_atomic,
    write_text_atomic,
)
from gridsweep.models import PathIntegrator, build_model
from gridsweep.optim import EnsembleOptimizer, clip_grad_norm_per_network, clip_grad_value_per_network, optimizer_settings
from gridsweep.runtime import (
    DTYPES,
    LOSS_BLOCK_BYTES,
    PREFETCH_ROWS,
    StepMetrics,
    compile_requested,
    loss_blocks,
    maybe_compile,
    prefetch_steps,
    torch_dtype,
    trajectory_threads,
    tune_cpu_malloc,
)
from gridsweep.seeding import torch_generator
from gridsweep.targets import HeadDirectionTarget, Target, build_head_direction, build_target, decoding_error_cm
from gridsweep.external import sample_trajectories
from gridsweep.trajectories import Trajectories, ensemble_noise, integrate

__all__ = ["Ensemble", "TrainResult", "train", "train_ensemble", "ensemble_key", "PER_NETWORK_FIELDS",
           "load_run", "resume_command", "estimate_memory_bytes", "available_memory_bytes", "check_memory",
           "write_summary", "DTYPES"]

#: Config fields that may differ between networks trained as one ensemble.
PER_NETWORK_FIELDS = (
    "name", "seed",
    "target.sigma", "target.surround_width_ratio", "target.surround_variance_ratio",
    "target.alpha_e", "target.alpha_i", "target.kappa", "target.heterogeneity",
    "model.init", "model.dropout",
    "training.learning_rate", "training.weight_decay", "training.momentum", "training.grad_clip",
)


def ensemble_key(cfg: RunConfig) -> str:
    """Hash of everything that must agree for configs to train as one ensemble.

    Two configs with the same key differ only in :data:`PER_NETWORK_FIELDS`.
    """
    d = cfg.to_dict()
    for dotted in PER_NETWORK_FIELDS:
        node = d
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node[p]
        node.pop(parts[-1], None)
    return config_hash(d)


# --------------------------------------------------------------------------------------
# memory: refuse a config that cannot fit, before allocating anything
# --------------------------------------------------------------------------------------
#: Optimiser state tensors per parameter.
_OPT_STATES = {"adam": 2, "rmsprop": 1, "sgd": 0, "adagrad": 1}


def estimate_memory_bytes(cfgs: RunConfig | Sequence[RunConfig]) -> dict[str, int]:
    """A lower bound on the memory one training step of these E networks needs.

    Parameters
    ----------
    cfgs : RunConfig or sequence of E RunConfig

    Returns
    -------
    dict
        ``parameters`` (bytes of weights), ``gradients``, ``optimizer`` (state tensors),
        ``activations`` (B x T x (G*Ng + Np) per network: the gate pre-activations and
        the readout kept for the backward pass) and ``total``; all for the E networks.

    Notes
    -----
    The count is :func:`gridsweep.models.n_parameters`, what
    :class:`gridsweep.models.PathIntegrator` allocates for the model's family. Temporaries of the loss and of
    evaluation come on top, so the true peak is higher.
    """
    from gridsweep.models import CELLS, n_parameters

    cfgs = [cfgs] if isinstance(cfgs, RunConfig) else list(cfgs)
    cfg = cfgs[0]
    E = len(cfgs)
    m, tr = cfg.model, cfg.training
    spec = CELLS[m.cell]
    G, Ng, Np = spec.gates, m.hidden_size, cfg.target.n_cells
    n_out = Np + (cfg.head_direction.n_cells if cfg.head_direction is not None else 0)
    params = n_parameters(m, Np, n_out)
    size = 8 if tr.dtype == "float64" else 4
    n_opt = _OPT_STATES.get(tr.optimizer, 2) + (1 if tr.optimizer != "adam" and any(c.training.momentum for c in cfgs)
                                                else 0)
    B, T = cfg.trajectory.batch_size, cfg.trajectory.sequence_length
    out = {"parameters": E * params * size, "gradients": E * params * size, "optimizer": E * params * size * n_opt,
           "activations": E * B * T * (G * Ng + Np) * size}
    out["total"] = sum(out.values())
    return out


def available_memory_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory available for new allocations on ``device`` (bytes), or None when unknown.

    CPU: ``MemAvailable`` of /proc/meminfo, else ``os.sysconf`` available pages; CUDA:
    ``torch.cuda.mem_get_info``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no driver: unknown
            return None
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_memory(cfgs: RunConfig | Sequence[RunConfig], device: torch.device | str = "cpu") -> dict[str, int]:
    """Raise :class:`ResourceError` when :func:`estimate_memory_bytes` exceeds the available memory.

    Set the environment variable ``GRIDSWEEP_MEMORY_CHECK=0`` to skip the check.
    Returns the estimate.
    """
    cfgs = [cfgs] if isinstance(cfgs, RunConfig) else list(cfgs)
    est = estimate_memory_bytes(cfgs)
    if os.environ.get("GRIDSWEEP_MEMORY_CHECK", "1").strip() == "0":
        return est
    avail = available_memory_bytes(device)
    if avail is not None and est["total"] > avail:
        m, t = cfgs[0].model, cfgs[0].trajectory
        raise ResourceError(
            f"config needs at least {_gib(est['total'])} on {device} ({len(cfgs)} network(s), "
            f"model.hidden_size={m.hidden_size}, model.cell={m.cell!r}, trajectory.batch_size={t.batch_size}, "
            f"trajectory.sequence_length={t.sequence_length}: parameters {_gib(est['parameters'])}, "
            f"optimiser and gradients {_gib(est['optimizer'] + est['gradients'])}, "
            f"activations {_gib(est['activations'])}) but only {_gib(avail)} is available; "
            "reduce model.hidden_size, trajectory.batch_size or the ensemble size "
            "(GRIDSWEEP_MEMORY_CHECK=0 skips this check)")
    return est


@dataclass
class TrainResult:
    """What a finished (or stopped) network reports."""

    config: RunConfig
    status: str  # "done" | "diverged" | "stopped"
    step: int
    metrics: dict[str, float]
    run_dir: Path | None = None
    diverged_at: int | None = None


class Ensemble:
    """E networks of one shape with their targets, optimiser and random streams.

    Parameters
    ----------
    cfgs : sequence of RunConfig
        Configs that agree on :func:`ensemble_key` (they may differ in
        :data:`PER_NETWORK_FIELDS`).
    device : str or torch.device
    compile : bool, optional
        Compile readout, target encoding and loss with ``torch.compile``.
        Default: the environment variable ``GRIDSWEEP_COMPILE`` (``1`` to enable), else
        off. See docs/performance.md for when it pays.

    Notes
    -----
    Speed-only settings (allocator, threads, cache blocking of the loss, compilation,
    trajectories of several steps generated at once, the metrics returned without a
    device sync) are :mod:`gridsweep.runtime`'s; none of
    them changes a number. The training step reads nothing back from a GPU: divergence
    is tracked on the device (``diverged_at`` reads it back when asked).
    """

    def __init__(self, cfgs: Sequence[RunConfig], device: torch.device | str = "cpu", *, compile: bool | None = None):
        cfgs = [validate_config(c) for c in cfgs]
        if not cfgs:
            raise ConfigError("an ensemble needs at least one config")
        keys = {ensemble_key(c) for c in cfgs}
        if len(keys) != 1:
            raise ConfigError("configs differ in fields that must agree within an ensemble "
                              f"(only {', '.join(PER_NETWORK_FIELDS)} may differ)")
        self.cfgs = list(cfgs)
        self.cfg = cfgs[0]
        self.device = torch.device(device)
        check_memory(self.cfgs, self.device)  # before any allocation
        if self.device.type == "cpu":
            tune_cpu_malloc()
        self.dtype = torch_dtype(self.cfg.training.dtype)
        seeds = [c.seed for c in cfgs]
        self.E = len(cfgs)
        self.target: Target = build_target([c.target for c in cfgs], seeds, self.cfg.box,
                                           device=self.device, dtype=self.dtype)
        self.hd: HeadDirectionTarget | None = None
        n_out = self.target.n_outputs
        if self.cfg.head_direction is not None:
            self.hd = build_head_direction(self.cfg.head_direction, seeds, self.dtype).to(self.device)
            n_out += self.hd.n_outputs
        self.model: PathIntegrator = build_model([c.model for c in cfgs], self.target.n_outputs, n_out, seeds,
                                                 device=self.device, dtype=self.dtype)
        t = lambda vals: torch.tensor(vals, dtype=torch.float64, device=self.device)  # noqa: E731
        self.optimizer = EnsembleOptimizer(list(self.model.parameters()), self.cfg.training.optimizer,
                                           t([c.training.learning_rate for c in cfgs]),
                                           t([c.training.momentum for c in cfgs]),
                                           **optimizer_settings(self.cfg.training))
        self.weight_decay = t([c.training.weight_decay for c in cfgs]).to(self.dtype)
        self.grad_clip = t([c.training.grad_clip if c.training.grad_clip else float("inf") for c in cfgs]).to(self.dtype)
        # host-side copies of per-network settings, so the step never reads them back
        self._dropout_rates = [float(c.model.dropout) for c in cfgs]
        self._clip = self.cfg.training.grad_clip_mode if any(c.training.grad_clip for c in cfgs) else None
        self.traj_gens = [torch_generator(s, "trajectories", self.device) for s in seeds]
        # prefetched training trajectories not yet consumed, next first, and per such step the
        # generator states before its draws (gridsweep.runtime.prefetch_steps)
        self._traj_buffer: list[Trajectories] = []
        self._traj_buffer_states: list[list[torch.Tensor]] = []
        #: Target agents per trajectory prefetch (per instance, for tests and benchmarks).
        self.prefetch_rows = PREFETCH_ROWS
        self.dropout_gens = [torch_generator(s, "dropout", self.device) for s in seeds]
        self.active = torch.ones(self.E, dtype=torch.bool, device=self.device)
        self._diverged_step = torch.full((self.E,), -1, dtype=torch.long, device=self.device)
        self.step = 0
        #: Training wall time (s) accumulated over every session up to ``step`` (kept in checkpoints).
        self.train_seconds = 0.0
        self.compiled = compile_requested(compile)
        self._target_blocks: dict[tuple[int, int], tuple[Target, HeadDirectionTarget | None]] = {}
        self._readout_loss = maybe_compile(self._readout_loss_eager, self.compiled)

    # ----------------------------------------------------------------------------------
    @property
    def diverged_at(self) -> list[int | None]:
        """Per network, the step at which it diverged (None if it has not); reads the device."""
        return [None if s < 0 else int(s) for s in self._diverged_step.tolist()]

    @diverged_at.setter
    def diverged_at(self, values: Sequence[int | None]) -> None:
        self._diverged_step = torch.tensor([-1 if v is None else int(v) for v in values], dtype=torch.long,
                                           device=self.device)

    def sample(self, batch: int | None = None, steps: int | None = None,
               gens: Sequence[torch.Generator] | None = None) -> Trajectories:
        """Fresh trajectories (E, B, T, ...) from each network's own generator.

        Integrated under :func:`gridsweep.runtime.trajectory_threads` (one intra-op thread
        for small CPU batches; same numbers, fewer stalls on shared cores). Drawing from
        the networks' own generators (``gens`` None) first drops any prefetched training
        trajectories and rewinds the generators to the next training step's state, so the
        result and the training that follows are those without a prefetch.
        """
        if gens is None:
            self._drop_prefetch()
        with trajectory_threads(self.device, self.E * (batch or self.cfg.trajectory.batch_size)):
            # trajectory.source: simulated (generate, unchanged), ratinabox or file (gridsweep.external)
            return sample_trajectories(self.cfgs, gens or self.traj_gens, batch=batch, steps=steps, dtype=self.dtype)

    def _drop_prefetch(self) -> None:
        """Forget the prefetched trajectories; the generators go back to the next unconsumed step."""
        if self._traj_buffer_states:
            for g, state in zip(self.traj_gens, self._traj_buffer_states[0]):
                g.set_state(state)
        self._traj_buffer.clear()
        self._traj_buffer_states.clear()

    def _training_trajectories(self) -> Trajectories:
        """This training step's trajectories: :meth:`sample`, or the next of K prefetched steps.

        For simulated trajectories (docs/science.md section 2) the noise of K steps
        (:func:`gridsweep.runtime.prefetch_steps`) is drawn from each network's generator in
        the order K calls of :meth:`sample` would draw it, and integrated as one batch of
        shape (K, E, B): every agent is integrated independently, so each step's slice
        equals, bit for bit, what :meth:`sample` would have returned at that step
        (tests/test_trajectory_prefetch.py). The generator state before each prefetched
        step's draws is kept for :meth:`network_state`.
        """
        if not self._traj_buffer:
            tr = self.cfg.trajectory
            B, T = tr.batch_size, tr.sequence_length
            K = (prefetch_steps(self.E * B, self.cfg.training.n_steps - self.step, self.device, self.prefetch_rows)
                 if tr.source == "simulated" else 1)
            if K <= 1:
                return self.sample()
            with trajectory_threads(self.device, self.E * B):  # K x E x B < SERIAL_AGENTS: the same setting
                noises = []
                for _ in range(K):  # as K calls of generate(): per step, network by network
                    self._traj_buffer_states.append([g.get_state() for g in self.traj_gens])
                    noises.append(ensemble_noise(self.traj_gens, B, T, tr, self.cfg.box, dtype=self.dtype))
                stacked = {key: torch.stack([n[key] for n in noises]) for key in noises[0]}  # (K, E, B, ...)
                big = integrate(stacked, tr, self.cfg.box)
            self._traj_buffer = [Trajectories(big.velocities[k], big.start[k], big.positions[k], big.headings[k])
                                 for k in range(K)]
        self._traj_buffer_states.pop(0)
        return self._traj_buffer.pop(0)

    def _dropout_mask(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """0/1 mask of ``shape`` (E, B, T, Ng), network e's slice from its own generator.

        Networks without dropout get ones and leave their generator untouched (a mask of
        ones is what they would draw).
        """
        if not any(r > 0 for r in self._dropout_rates):
            return None
        masks = []
        for rate, g in zip(self._dropout_rates, self.dropout_gens):
            if rate > 0:
                masks.append((torch.rand(shape[1:], generator=g, device=self.device, dtype=self.dtype) < 1 - rate)
                             .to(self.dtype))
            else:
                masks.append(torch.ones(shape[1:], device=self.device, dtype=self.dtype))
        return torch.stack(masks)

    def _readout_loss_eager(self, hidden_tm: torch.Tensor, mask_tm: torch.Tensor | None, positions_tm: torch.Tensor,
                            headings_tm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Readout and per-network loss from time-major hidden states; (E,) and (E, T, B, Nout).

        On the CPU the targets and the loss are computed for a few networks at a time
        (:func:`gridsweep.runtime.loss_blocks`; each network's loss is the same either way).
        """
        out = self.model.readout(hidden_tm, mask_tm)
        sizes = self._loss_chunk_sizes(out)
        parts = zip(sizes, out.split(sizes), positions_tm.split(sizes), headings_tm.split(sizes))
        losses = [self._loss(start, o, p, h) for start, o, p, h in self._with_starts(parts)]
        return (losses[0] if len(losses) == 1 else torch.cat(losses)), out

    #: Largest readout block (bytes) whose loss is computed in one go on the CPU (per instance, for tests).
    _LOSS_BLOCK_BYTES = LOSS_BLOCK_BYTES

    def _loss_chunk_sizes(self, out: torch.Tensor) -> list[int]:
        return loss_blocks(self.E, out[0].numel() * out.element_size(), self.device, self.compiled,
                           self._LOSS_BLOCK_BYTES)

    @staticmethod
    def _with_starts(parts):
        start = 0
        for size, *rest in parts:
            yield (start, *rest)
            start += size

    def _loss(self, start: int, out: torch.Tensor, positions: torch.Tensor, headings: torch.Tensor) -> torch.Tensor:
        """Loss of networks start .. start + len(out) - 1, (n,)."""
        target, hd = self._sub_targets(start, out.shape[0])
        from gridsweep.fused import readout_loss  # GRIDSWEEP_FUSED=reference: target.loss(out, target.encode(x))

        Np = target.n_outputs
        loss = readout_loss(target, out, positions)
        if hd is not None:
            hd_cfg = self.cfg.head_direction
            if hd_cfg is None:  # self.hd is built from it
                raise ConfigError("head-direction targets without a head_direction config section")
            loss = loss + hd_cfg.loss_weight * readout_loss(hd, out, headings, start=Np)
        return loss

    def _sub_targets(self, start: int, n: int) -> tuple[Target, HeadDirectionTarget | None]:
        if n == self.E:
            return self.target, self.hd
        key = (start, n)
        if key not in self._target_blocks:
            idx = list(range(start, start + n))
            self._target_blocks[key] = (self.target.select(idx), None if self.hd is None else self.hd.select(idx))
        return self._target_blocks[key]

    def _forward(self, traj: Trajectories, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss (E,), outputs (E, T, B, Nout) and hidden states (E, T, B, Ng), time-major.

        Time-major order keeps the recurrence's buffers contiguous; the loss is a mean
        over samples, so the order does not change it beyond rounding. In training, the
        Keras dropout masks of the recurrent layer (``model.input_dropout`` /
        ``recurrent_dropout``, family nfl) are drawn first, then the readout dropout mask
        (``model.dropout``, family bare), each network's from its own ``"dropout"`` stream.
        """
        code0 = self.target.encode(traj.start)
        B, T = traj.velocities.shape[1:3]
        rmasks = self.model.sample_dropout_masks(self.dropout_gens, B, T) if train else None
        hidden = self.model.hidden_time_major(traj.velocities, code0, rmasks)
        mask = self._dropout_mask((self.E, *traj.velocities.shape[1:3], hidden.shape[-1])) if train else None
        loss, out = self._readout_loss(hidden, None if mask is None else mask.transpose(1, 2),
                                       traj.positions.transpose(1, 2), traj.headings.transpose(1, 2))
        return loss, out, hidden

    def losses(self, traj: Trajectories, train: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-network readout loss (E,), outputs (E, B, T, Nout) and hidden (E, B, T, Ng).

        Outputs and hidden states are transposed views of time-major tensors.
        """
        loss, out, hidden = self._forward(traj, train)
        return loss, out.transpose(1, 2), hidden.transpose(1, 2)

    def _decoding_error(self, out_tm: torch.Tensor, positions_tm: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            decoded = self.target.decode(out_tm[..., :self.target.n_outputs].detach())
            return decoding_error_cm(decoded, positions_tm)

    def train_step(self) -> StepMetrics:
        """One optimisation step of every active network.

        Returns per-network (E,) metrics ``loss``, ``penalty`` and ``decoding_error_cm``
        (:class:`gridsweep.runtime.StepMetrics`: the last computed when first read).
        Nothing is read back to the host.
        """
        traj = self._training_trajectories()
        loss, out, _ = self._forward(traj, train=True)
        penalty = self.model.recurrent_penalty()
        wd_on = self.step >= self.cfg.training.weight_decay_start
        total = loss + (self.weight_decay * penalty if wd_on else 0.0)
        finite = torch.isfinite(total)
        newly = self.active & ~finite
        self.active = self.active & finite
        self.optimizer.zero_grad()
        torch.where(self.active, total, torch.zeros_like(total)).sum().backward()
        if self._clip == "norm":
            clip_grad_norm_per_network(self.optimizer.params, self.grad_clip)
        elif self._clip == "value":
            clip_grad_value_per_network(self.optimizer.params, self.grad_clip)
        self.optimizer.step(self.active, lr_scale=self.cfg.training.lr_factor(self.step))
        with torch.no_grad():
            # a network's parameter sums are finite iff all its parameters are (short of overflow)
            ok = torch.stack([torch.isfinite(p.reshape(self.E, -1).sum(-1)) for p in self.model.parameters()]).all(0)
            newly = newly | (self.active & ~ok)
            self.active = self.active & ok
            self._diverged_step = torch.where(newly, self.step, self._diverged_step)
        self.step += 1
        positions = traj.positions.transpose(1, 2)
        return StepMetrics(loss.detach(), penalty.detach(), lambda: self._decoding_error(out, positions))

    @torch.no_grad()
    def evaluate(self, n_trajectories: int | None = None, steps: int | None = None, seed_stream: str = "eval",
                 chunk: int = 250) -> torch.Tensor:
        """Decoding error (cm) per network on held-out trajectories, (E,).

        The held-out set comes from each network's ``seed_stream`` generator, restarted
        on every call, so successive evaluations use the same trajectories.
        """
        ev = self.cfg.evaluation
        n = n_trajectories or ev.n_trajectories
        steps = steps or ev.sequence_length
        gens = [torch_generator(c.seed, seed_stream, self.device) for c in self.cfgs]
        errs = []
        for start in range(0, n, chunk):
            traj = self.sample(batch=min(chunk, n - start), steps=steps, gens=gens)
            hidden = self.model.hidden_time_major(traj.velocities, self.target.encode(traj.start))
            out = self.model.readout(hidden)
            err = self._decoding_error(out, traj.positions.transpose(1, 2))
            errs.append(err * traj.positions.shape[1])
        return torch.stack(errs).sum(0) / n

    # -- per-network checkpoints -----------------------------------------------------
    def network_state(self, e: int) -> dict[str, Any]:
        """Everything needed to resume network e alone: weights, optimiser, RNG, step."""
        return {
            "config": self.cfgs[e].to_dict(),
            "step": self.step,
            "model": {k: v[e:e + 1].detach().clone().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.select_state([e]),
            # the state before the next step's draws (prefetched steps not yet consumed are redrawn)
            "traj_rng": (self._traj_buffer_states[0][e].clone() if self._traj_buffer_states
                         else self.traj_gens[e].get_state()),
            "dropout_rng": self.dropout_gens[e].get_state(),
            "active": bool(self.active[e]),
            "diverged_at": self.diverged_at[e],
            "train_seconds": float(self.train_seconds),
        }

    def load_network_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore all E networks from per-network states (they must share one step)."""
        steps = {s["step"] for s in states}
        if len(steps) != 1:
            raise ConfigError(f"cannot resume an ensemble from checkpoints at different steps {sorted(steps)}")
        self.step = steps.pop()
        self._traj_buffer.clear()  # the generators are set below
        self._traj_buffer_states.clear()
        sd = {k: torch.cat([s["model"][k] for s in states]).to(self.device) for k in states[0]["model"]}
        self.model.load_state_dict(sd)
        self.optimizer.load_state_dict(EnsembleOptimizer.stack_states([s["optimizer"] for s in states]))
        for e, s in enumerate(states):
            self.traj_gens[e].set_state(s["traj_rng"])
            self.dropout_gens[e].set_state(s["dropout_rng"])
        self.diverged_at = [s["diverged_at"] for s in states]
        self.active = torch.tensor([s["active"] for s in states], dtype=torch.bool, device=self.device)
        self.train_seconds = max(float(s.get("train_seconds", 0.0)) for s in states)


# --------------------------------------------------------------------------------------
# run directories
# --------------------------------------------------------------------------------------
METRIC_FIELDS = ["step", "loss", "penalty", "train_decoding_error_cm", "eval_decoding_error_cm", "seconds"]


class _RunDir:
    def __init__(self, path: Path, cfg: RunConfig):
        self.path = Path(path)
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        cfg_file = self.path / "config.yaml"
        if cfg_file.exists():
            from gridsweep.config import load_config

            verify_checksum(cfg_file)
            old = load_config(cfg_file)
            if old.hash() != cfg.hash():
                raise ConfigError(f"{self.path} holds a run of a different config; choose another --out")
        else:
            write_text_atomic(cfg_file, cfg.to_yaml(), checksum=True)

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def truncate_metrics(self, step: int) -> None:
        """Drop metric rows logged after ``step`` (they belong to work being redone)."""
        f = self.path / "metrics.csv"
        if not f.exists():
            return
        rows = list(csv.DictReader(f.open()))
        keep = [r for r in rows if int(r["step"]) <= step]
        with atomic_path(f) as tmp, tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            w.writeheader()
            w.writerows(keep)

    def log(self, row: dict[str, Any]) -> None:
        f = self.path / "metrics.csv"
        new = not f.exists()
        with f.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in METRIC_FIELDS})

    def status(self, **kw: Any) -> None:
        write_json_atomic(self.path / "status.json", kw)


def write_summary(run_dir: str | Path, metrics: Mapping[str, Any], *, start: bool = False) -> dict[str, Any]:
    """Write ``RUN_DIR/summary.json``, the flat final metrics of a run: its one writer.

    Parameters
    ----------
    run_dir : path
    metrics : mapping
        Flat metrics (floats, ints, strings).
    start : bool
        True (training, at the end of a run): the file holds exactly ``metrics``
        (``status``, the final training metrics, ``config_hash``). False
        (:func:`gridsweep.evaluation.score_run`): ``metrics`` are merged into the file,
        replacing the keys they share and keeping the others.

    Returns
    -------
    dict
        What the file now holds. Written atomically with its ``.sha256`` sidecar; the
        file merged into is verified first (:func:`gridsweep.files.read_json`).
    """
    path = Path(run_dir) / "summary.json"
    data = {} if start or not path.exists() else dict(read_json(path))
    data.update(metrics)
    write_json_atomic(path, data)
    return data


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True, leave=False)


def _restore(ens: Ensemble, dirs: Sequence[_RunDir], resume: bool) -> int | None:
    """Resume ``ens`` from the run directories' checkpoints when all have one; the step on disk (or None).

    Metric rows logged after that step (work about to be redone) are dropped; without a
    resume every metrics file starts again.
    """
    if dirs and resume and all(d.checkpoint.exists() for d in dirs):
        ens.load_network_states([load_torch(d.checkpoint) for d in dirs])
        for d in dirs:
            d.truncate_metrics(ens.step)
        return ens.step
    for d in dirs:
        d.truncate_metrics(-1)
    return None


def _log_metrics(dirs: Sequence[_RunDir], ens: Ensemble, m: StepMetrics, held_out: torch.Tensor | None,
                 seconds: float) -> None:
    """One metrics.csv row per network (none for a network diverged before the previous step)."""
    step = ens.step
    for e, d in enumerate(dirs):
        div = ens.diverged_at[e]
        if div is not None and div < step - 1:
            continue
        d.log({"step": step, "loss": float(m.loss[e]), "penalty": float(m.penalty[e]),
               "train_decoding_error_cm": float(m.decoding_error_cm[e]),
               "eval_decoding_error_cm": "" if held_out is None else float(held_out[e]), "seconds": round(seconds, 3)})


def train_ensemble(
    cfgs: Sequence[RunConfig],
    out_dirs: Sequence[str | Path] | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    resume: bool = True,
    stop_after: int | None = None,
    callback: Callable[[Ensemble, StepMetrics], None] | None = None,
) -> tuple[Ensemble, list[TrainResult]]:
    """Train E networks of one shape together.

    Parameters
    ----------
    cfgs : sequence of RunConfig
        Must agree on :func:`ensemble_key`.
    out_dirs : sequence of paths, optional
        One run directory per network. Existing checkpoints there are resumed from when
        ``resume`` is true (all networks must be at the same step).
    stop_after : int, optional
        Stop (as if interrupted) once this many steps have been completed; for tests of
        resume and for time-boxed work.
    callback : callable, optional
        Called as ``callback(ensemble, step_metrics)`` after every step
        (:class:`gridsweep.runtime.StepMetrics`).

    Returns
    -------
    (Ensemble, list of TrainResult)

    Notes
    -----
    The held-out decoding error (:meth:`Ensemble.evaluate`) is measured every
    ``training.eval_every`` steps and at the last step; the measurement of the final
    weights is the run's ``decoding_error_cm`` (measured once: a run that ends on an
    evaluation step is not evaluated again). Each network's ``summary.json`` is started
    here (:func:`write_summary`) unless training stopped early.
    """
    ens = Ensemble(cfgs, device=device)
    dirs = [_RunDir(Path(d), c) for d, c in zip(out_dirs, ens.cfgs)] if out_dirs else []
    saved_step = _restore(ens, dirs, resume)  # step of the checkpoints on disk
    tr = ens.cfg.training
    t_start = time.perf_counter() - ens.train_seconds  # the clock runs on from earlier sessions
    held_out, held_out_step = torch.full((ens.E,), float("nan")), None  # last held-out error (E,) and its step
    stopped = False
    bar = _progress(tr.n_steps, ens.step, progress, f"train {ens.cfg.model.cell} x{ens.E}")

    def save_checkpoints() -> None:
        nonlocal saved_step
        ens.train_seconds = time.perf_counter() - t_start
        for e, d in enumerate(dirs):
            save_torch(ens.network_state(e), d.checkpoint)
            d.status(status="running", step=ens.step, checkpoint_step=ens.step)
        saved_step = ens.step

    for d in dirs:
        d.status(status="running", step=ens.step, checkpoint_step=saved_step)
    try:
        while ens.step < tr.n_steps and bool(ens.active.any()):
            m = ens.train_step()
            if callback is not None:
                callback(ens, m)
            step, last = ens.step, ens.step == tr.n_steps
            if step % tr.eval_every == 0 or last:
                held_out, held_out_step = ens.evaluate().cpu(), step
            if dirs and (step % tr.log_every == 0 or held_out_step == step):
                _log_metrics(dirs, ens, m, held_out if held_out_step == step else None, time.perf_counter() - t_start)
            if dirs and (step % tr.checkpoint_every == 0 or last):
                save_checkpoints()
            bar.update(1)
            if step % 10 == 0 or last:
                bar.set_postfix(loss=f"{float(m.loss.mean()):.3f}", err_cm=f"{float(m.decoding_error_cm.mean()):.1f}",
                                active=int(ens.active.sum()))
            if stop_after is not None and step >= stop_after:
                stopped = True
                break
    except KeyboardInterrupt:
        bar.close()
        for d in dirs:
            d.status(status="interrupted", step=saved_step or 0, checkpoint_step=saved_step,
                     interrupted_at_step=ens.step, resume=resume_command(d.path))
        raise
    bar.close()

    if not stopped:
        if dirs and saved_step != ens.step:
            save_checkpoints()
        if held_out_step != ens.step:  # ended without evaluating the final weights (resumed at the end, all diverged)
            held_out = ens.evaluate().cpu()
    ens.train_seconds = elapsed = time.perf_counter() - t_start
    results = []
    for e, cfg in enumerate(ens.cfgs):
        status = "diverged" if ens.diverged_at[e] is not None else ("stopped" if stopped else "done")
        metrics = {"decoding_error_cm": float(held_out[e]), "steps": ens.step, "train_seconds": elapsed,
                   "seconds_per_step_per_network": elapsed / max(1, ens.step) / ens.E}
        if dirs:
            dirs[e].status(status=status, step=ens.step, diverged_at=ens.diverged_at[e], checkpoint_step=saved_step)
            if status != "stopped":
                write_summary(dirs[e].path, {"status": status, **metrics, "config_hash": cfg.hash()}, start=True)
        results.append(TrainResult(cfg, status, ens.step, metrics, dirs[e].path if dirs else None,
                                   ens.diverged_at[e]))
    return ens, results


def train(cfg: RunConfig, out_dir: str | Path | None = None, **kw: Any) -> tuple[Ensemble, TrainResult]:
    """Train one network (an ensemble of one). See :func:`train_ensemble` for options.

    Examples
    --------
    >>> from gridsweep.config import RunConfig
    >>> cfg = RunConfig().with_overrides({"model.hidden_size": 16, "target.n_cells": 16,
    ...     "training.n_steps": 3, "trajectory.batch_size": 4, "evaluation.n_trajectories": 4})
    >>> ens, res = train(cfg, progress=False)
    >>> res.status, res.step
    ('done', 3)
    """
    ens, results = train_ensemble([cfg], [out_dir] if out_dir is not None else None, **kw)
    return ens, results[0]


def resume_command(run_dir: str | Path) -> str:
    """The shell command that resumes the run in ``run_dir`` from its last checkpoint.

    ``gridsweep train RUN/config.yaml --out RUN`` (training resumes from
    ``checkpoints/last.pt`` when the directory holds a run of the same config).
    """
    import shlex

    run_dir = Path(run_dir)
    return f"gridsweep train {shlex.quote(str(run_dir / 'config.yaml'))} --out {shlex.quote(str(run_dir))}"


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", *, allow_diverged: bool = False) -> Ensemble:
    """An ensemble of one holding the trained network of a run directory.

    ``config.yaml`` and ``checkpoints/last.pt`` are verified against their sha256
    sidecars and the checkpoint is read without executing code
    (:func:`gridsweep.files.load_torch`).

    Raises
    ------
    ConfigError
        No run (config or checkpoint missing).
    CorruptFileError
        A file is empty, truncated or fails its checksum (the message names it).
    DivergedError
        The network diverged (non-finite loss or weights) and ``allow_diverged`` is false:
        its maps and scores would be meaningless.
    """
    from gridsweep.config import load_config

    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.exists():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    verify_checksum(cfg_file)
    cfg = load_config(cfg_file)
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not ckpt.exists():
        raise ConfigError(f"{run_dir}: no checkpoint at {ckpt}")
    state = load_torch(ckpt)
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CorruptFileError(f"{ckpt}: not a gridsweep checkpoint (expected a dict with 'model' and 'step')", ckpt)
    if state.get("diverged_at") is not None and not allow_diverged:
        raise DivergedError(f"{run_dir}: the run diverged at step {state['diverged_at']} (non-finite loss or "
                            f"weights; training stopped at step {state['step']}); its rate maps and scores would be "
                            "meaningless. Retrain with a lower training.learning_rate or a training.grad_clip")
    ens = Ensemble([cfg], device=device)
    ens.load_network_states([state])
    return ens
