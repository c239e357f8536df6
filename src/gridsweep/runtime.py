"""How fast the training step runs, never what it computes.

Everything here is runtime tuning of :class:`gridsweep.training.Ensemble`: switching any
of it off changes the wall time of a step and nothing else (the numbers are equal, or
equal to rounding where said). The science (trajectories, targets, model, loss,
optimiser; docs/science.md sections 2-4) lives in its own modules; measurements quoted
below are those of docs/performance.md, which also lists the switches.

The knobs
---------
``torch_dtype``
    The config's ``training.dtype`` name as a torch dtype (``float32`` or ``float64``).
``tune_cpu_malloc`` (``GRIDSWEEP_MALLOC_TUNE=0`` turns it off)
    glibc serves allocations above its mmap threshold (at most 32 MB) with a fresh
    ``mmap``, so every CPU step page-faulted its large temporaries in again: about half
    of an E = 16 step (``sys`` time 53 s vs 10 s in the same benchmark). Raising the
    mmap and trim thresholds lets freed blocks be reused: 2x on E = 16, Ng 128.
    Process-wide, applied once, by the first CPU ensemble.
``trajectory_threads`` (``SERIAL_AGENTS``)
    With 2 intra-op threads on shared cores, every op that opens an OpenMP parallel
    region waits for a descheduled thread: ``torch.cos`` on 200 numbers took 3-18 ms
    instead of 2 us. The trajectory integrator is ~30 such ops per time step, so on the
    CPU batches of fewer than ``SERIAL_AGENTS`` (2^20) agents are integrated with one
    thread (the toggle costs 0.2 us). Same numbers either way.
``prefetch_steps`` (``GRIDSWEEP_TRAJ_PREFETCH=0`` turns it off; ``PREFETCH_ROWS``)
    The trajectory integrator costs ~40 tiny ops per time step whatever the batch, so
    at Ng 128 (E x B = 200 agents) one step's trajectories took 3.2-4.5 ms of a 35-40 ms
    step, almost all per-op overhead. The simulated trajectories of K consecutive
    training steps are generated at once (K x E x B of about ``PREFETCH_ROWS`` agents):
    each network's generator draws the K steps' noise in the order K separate calls
    would, and the integrator, which treats every agent independently, gives every agent
    the same bits in a batch of K x B as in a batch of B (tests/test_trajectory_prefetch.py;
    on this CPU also under ``ATEN_CPU_CAPABILITY`` avx2 and default, whose vector bodies
    and scalar tails split the batch differently). Checkpoints store the
    generator state of the next unconsumed step. Per step at E = 1, B = 200 (2-core CPU,
    one thread): 5.5 ms alone, 1.5 / 0.9 / 0.74 / 0.69 ms at 1,000 / 3,000 / 6,000 /
    12,000 agents (K 5 / 15 / 30 / 60); at E = 4: 4.2 ms alone, 1.9 ms at 6,000.
    On by default on the CPU; elsewhere only with ``GRIDSWEEP_TRAJ_PREFETCH=1`` (not yet
    checked bit for bit on a GPU).
``loss_blocks`` (``LOSS_BLOCK_BYTES``)
    On the CPU (eager, E > 1) targets and loss are computed for a few networks at a
    time, at most 8 MB of readout per block, so the ~20 elementwise intermediates of the
    DoS encoding stay in cache: 10-17 % on E = 16-64. Each network's loss is the same
    either way (``tests/test_ensemble_equivalence.py``).
``compile_requested`` / ``maybe_compile`` (``GRIDSWEEP_COMPILE=1`` turns it on)
    ``torch.compile`` of readout + target encoding + loss. The first step pays the
    compilation (about 25 s on the 2-core CPU, 5-8 s with a warm inductor cache); then
    5-15 % faster CPU steps at Ng 128-1024. Results equal eager to rounding.
``StepMetrics``
    What a training step returns without reading anything back from the device; the
    training decoding error (a top-k over (E, B, T, Np) that the step itself does not
    need) is computed only when first read, i.e. when the loop logs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import torch

__all__ = ["DTYPES", "torch_dtype", "tune_cpu_malloc", "SERIAL_AGENTS", "intra_op_threads", "trajectory_threads",
           "PREFETCH_ROWS", "prefetch_steps", "LOSS_BLOCK_BYTES", "loss_blocks", "compile_requested", "maybe_compile", "StepMetrics"]

#: ``training.dtype`` names and their torch dtypes.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a ``training.dtype`` name (``float32`` or ``float64``)."""
    return DTYPES[name]


# --------------------------------------------------------------------------------------
# allocator
# --------------------------------------------------------------------------------------
_MALLOC_TUNED = False


def tune_cpu_malloc() -> None:
    """Keep freed memory in the process heap instead of returning it to the OS (glibc only).

    Sets glibc's ``M_MMAP_THRESHOLD`` to 1 GiB and ``M_TRIM_THRESHOLD`` to 2 GiB - 1 with
    ``mallopt`` (see the module docstring for why and what it measured). Applied once per
    process; ``GRIDSWEEP_MALLOC_TUNE=0`` leaves the allocator alone; a libc without
    ``mallopt`` is left alone. The same effect for any torch program:
    ``MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=8000000000``.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("GRIDSWEEP_MALLOC_TUNE", "1").strip() == "0":
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


# --------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------
#: Below this many agents (E * B) the CPU integrates trajectories with one thread.
SERIAL_AGENTS = 1 << 20


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, restoring the previous number after."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def trajectory_threads(device: torch.device, n_agents: int) -> contextlib.AbstractContextManager[Any]:
    """The thread setting under which ``n_agents`` trajectories are integrated on ``device``.

    One intra-op thread on the CPU when ``n_agents < SERIAL_AGENTS`` and torch uses more
    than one; otherwise no change (``contextlib.nullcontext``).
    """
    if device.type == "cpu" and n_agents < SERIAL_AGENTS and torch.get_num_threads() > 1:
        return intra_op_threads(1)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------
# trajectories of several training steps at once
# --------------------------------------------------------------------------------------
#: Agents (K x E x B) whose trajectories are integrated together when prefetching.
PREFETCH_ROWS = 6000


def prefetch_steps(agents_per_step: int, steps_left: int, device: torch.device,
                   rows: int = PREFETCH_ROWS) -> int:
    """K, the number of training steps whose simulated trajectories are generated at once.

    Parameters
    ----------
    agents_per_step : int
        E x B, the agents one training step integrates.
    steps_left : int
        Training steps still to run (K never exceeds it).
    device : torch.device
    rows : int
        Target number of agents per prefetch.

    Returns
    -------
    int
        ``min(rows // agents_per_step, steps_left)``, at least 1 (1: no prefetch). 1 when
        ``GRIDSWEEP_TRAJ_PREFETCH`` is ``0``/``off``/``false``/``no``; off a CPU, 1 unless it
        is ``1``/``on``/``true``/``yes``. On the CPU, K x E x B stays below
        :data:`SERIAL_AGENTS`, so the prefetch runs on one thread as a single step does.
    """
    env = os.environ.get("GRIDSWEEP_TRAJ_PREFETCH", "").strip().lower()
    if env in ("0", "off", "false", "no"):
        return 1
    if device.type != "cpu" and env not in ("1", "on", "true", "yes"):
        return 1
    k = min(rows // max(1, agents_per_step), steps_left)
    if device.type == "cpu":
        k = min(k, (SERIAL_AGENTS - 1) // max(1, agents_per_step))
    return max(1, k)


# --------------------------------------------------------------------------------------
# cache blocking of the loss
# --------------------------------------------------------------------------------------
#: Largest readout block (bytes) whose loss is computed in one go on the CPU.
LOSS_BLOCK_BYTES = 8 << 20


def loss_blocks(n_networks: int, bytes_per_network: int, device: torch.device, compiled: bool,
                block_bytes: int = LOSS_BLOCK_BYTES) -> list[int]:
    """Sizes of the consecutive network blocks whose targets and loss are computed together.

    Parameters
    ----------
    n_networks : int
        E.
    bytes_per_network : int
        Bytes of one network's readout (T x B x Nout elements).
    device : torch.device
    compiled : bool
        A compiled loss is one fused kernel: never blocked.
    block_bytes : int
        Largest block on the CPU.

    Returns
    -------
    list of int
        Block sizes summing to ``n_networks``: ``[E]`` on a GPU, when compiled or for one
        network; else blocks of ``max(1, block_bytes // bytes_per_network)`` networks.
    """
    n = n_networks
    if device.type == "cpu" and not compiled and n > 1:
        n = max(1, min(n_networks, block_bytes // bytes_per_network))
    return [min(n, n_networks - a) for a in range(0, n_networks, n)]


# --------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------
F = TypeVar("F", bound=Callable[..., Any])


def compile_requested(compile: bool | None) -> bool:
    """Whether to compile: the argument when given, else ``GRIDSWEEP_COMPILE`` (1/true/yes/on), else off."""
    if compile is None:
        return os.environ.get("GRIDSWEEP_COMPILE", "0").strip().lower() in ("1", "true", "yes", "on")
    return bool(compile)


def maybe_compile(fn: F, enabled: bool) -> F:
    """``torch.compile(fn, dynamic=False)`` when ``enabled``, else ``fn`` itself."""
    return torch.compile(fn, dynamic=False) if enabled else fn  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# metrics of a step without device syncs
# --------------------------------------------------------------------------------------
class StepMetrics(Mapping):
    """Per-network metrics of one training step, each an (E,) tensor on the training device.

    Parameters
    ----------
    loss : torch.Tensor, (E,)
        Readout loss (detached).
    penalty : torch.Tensor, (E,)
        Recurrent-weight penalty (detached).
    decode : callable
        ``decode() -> (E,)`` training decoding error in cm of this step's outputs.

    Notes
    -----
    Nothing is read back to the host: ``loss`` and ``penalty`` are the step's own
    tensors, and ``decoding_error_cm`` is computed by ``decode`` the first time it is
    read (then kept, and the references to the step's outputs are dropped), so a loop
    that logs every ``log_every`` steps pays for decoding only then. Readable as
    attributes (``m.loss``) or, for callbacks written against a dict, by key
    (``m["loss"]``, ``set(m) == {"loss", "penalty", "decoding_error_cm"}``).
    """

    KEYS = ("loss", "penalty", "decoding_error_cm")

    def __init__(self, loss: torch.Tensor, penalty: torch.Tensor, decode: Callable[[], torch.Tensor]):
        self.loss = loss
        self.penalty = penalty
        self._decode: Callable[[], torch.Tensor] | None = decode
        self._error: torch.Tensor | None = None

    @property
    def decoding_error_cm(self) -> torch.Tensor:
        """Training decoding error (cm), (E,); computed on first read."""
        if self._error is None:
            assert self._decode is not None
            self._error = self._decode()
            self._decode = None  # drop the references to this step's outputs
        return self._error

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)
