"""Executors: where ensemble tasks run.

Every executor calls the same worker function (:func:`gridsweep.sweeps.worker.run_group`
by default) and hands the result dicts back to the one process that runs the sweep,
which alone writes the store.

``local``
    N worker processes (``concurrent.futures.ProcessPoolExecutor``, spawn context; N
    defaults to the number of cores; torch threads per worker = cores / N). Workers
    ignore SIGINT and die with the parent, so a killed or interrupted sweep leaves no
    process writing into trial directories.
``ray``
    Ray core tasks, on an existing cluster (``address``) or on a local Ray started for
    the run (``ray.init(num_cpus=..., include_dashboard=False)``). ``gpus_per_task`` is
    the (fractional) GPU share each task requests. Trial directories must be on storage
    every node sees at the same path.
``serial``
    in the calling process, one task at a time (debugging, tests, benchmarks).
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import multiprocessing as mp
import os
from typing import Any, Callable

from gridsweep.errors import ConfigError
from gridsweep.sweeps.planning import Task

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "RayExecutor", "make_executor", "cpu_count",
           "WorkerDied", "DEFAULT_WORKER"]

DEFAULT_WORKER = "gridsweep.sweeps.worker:run_group"

Outcome = tuple[Task, "list[dict[str, Any]] | None", "BaseException | None"]


class WorkerDied(RuntimeError):
    """A worker process (or Ray worker) died while running a task."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _resolve_worker(worker: str | Callable) -> Callable:
    if callable(worker):
        return worker
    mod, _, name = worker.partition(":")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"worker function {worker!r} cannot be imported ({err})") from None


class Executor:
    """Interface: ``submit`` tasks, ``wait`` for outcomes, ``abort`` running work, ``close``."""

    name = "base"
    slots = 1  # tasks that run at once
    in_process = False  # whether tasks run in the caller's thread

    def __init__(self, device: str = "cpu", analysis: Any = "auto", worker: str | Callable = DEFAULT_WORKER,
                 threads: int | None = None):
        self.device = device
        self.analysis = analysis
        self.worker = worker
        self.threads = threads

    def _kwargs(self) -> dict[str, Any]:
        return {"analysis": self.analysis, "threads": self.threads}

    @property
    def n_inflight(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def submit(self, task: Task) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def wait(self, timeout: float = 0.5) -> list[Outcome]:  # pragma: no cover - interface
        raise NotImplementedError

    def abort(self) -> None:
        """Stop running work now (results not yet returned are lost)."""

    def close(self) -> None:
        """Release resources after all work has returned."""

    def describe(self) -> str:
        return f"{self.name} x{self.slots}"


class SerialExecutor(Executor):
    """Runs each task in the calling process when it is submitted."""

    name = "serial"
    in_process = True

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._fn = _resolve_worker(self.worker)
        self._done: list[Outcome] = []

    @property
    def n_inflight(self) -> int:
        return len(self._done)

    def submit(self, task: Task) -> None:
        try:
            res = self._fn(task.configs, task.dirs, self.device, **self._kwargs())
            self._done.append((task, res, None))
        except Exception as exc:  # noqa: BLE001
            self._done.append((task, None, exc))

    def wait(self, timeout: float = 0.5) -> list[Outcome]:
        out, self._done = self._done, []
        return out


class LocalExecutor(Executor):
    """A pool of spawned worker processes on this machine."""

    name = "local"

    def __init__(self, workers: int | None = None, **kw: Any):
        super().__init__(**kw)
        self.slots = max(1, int(workers or cpu_count()))
        if self.threads is None:
            self.threads = max(1, cpu_count() // self.slots)
        self._fn = _resolve_worker(self.worker)  # fail early, in the parent
        self._futures: dict[cf.Future, Task] = {}
        self._pool: cf.ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            from gridsweep.sweeps.worker import init_worker

            threads = self.threads
            if threads is None:  # __init__ sets it; None here is a bug
                raise ConfigError("LocalExecutor.threads is None; expected a thread count per worker")
            self._pool = cf.ProcessPoolExecutor(max_workers=self.slots, mp_context=mp.get_context("spawn"),
                                                initializer=init_worker, initargs=(threads, os.getpid()))
        return self._pool

    @property
    def n_inflight(self) -> int:
        return len(self._futures)

    def submit(self, task: Task) -> None:
        pool = self._ensure_pool()
        try:
            fut = pool.submit(self._fn, task.configs, task.dirs, self.device, **self._kwargs())
        except cf.process.BrokenProcessPool:
            self._discard_pool()
            fut = self._ensure_pool().submit(self._fn, task.configs, task.dirs, self.device, **self._kwargs())
        self._futures[fut] = task

    def wait(self, timeout: float = 0.5) -> list[Outcome]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[Outcome] = []
        broken = False
        for fut in done:
            task = self._futures.pop(fut)
            exc = fut.exception()
            if exc is None:
                out.append((task, fut.result(), None))
            else:
                if isinstance(exc, cf.process.BrokenProcessPool):
                    broken = True
                    exc = WorkerDied(f"a worker process died while running task {task.task_id} "
                                     f"(or another task of its pool): {exc}")
                out.append((task, None, exc))
        if broken:
            self._discard_pool()
        return out

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            p.join(timeout=5)

    def abort(self) -> None:
        self._futures.clear()
        self._discard_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray core tasks on an existing cluster or a local Ray started for the run."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, gpus_per_task: float | None = None,
                 cpus_per_task: float = 1.0, **kw: Any):
        super().__init__(**kw)
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'gridsweep[ray]' (ray>=2.9,<3)") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(num_cpus=int(workers or cpu_count()), num_gpus=None, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR, configure_logging=True,
                         object_store_memory=256 * 1024 ** 2)
                self._started = True
        if self.threads is None:
            self.threads = max(1, int(cpus_per_task))
        opts: dict[str, Any] = {"num_cpus": cpus_per_task, "max_retries": 0}
        if gpus_per_task:
            opts["num_gpus"] = float(gpus_per_task)
        self._remote = ray.remote(_resolve_worker(self.worker)).options(**opts)
        res = ray.cluster_resources()
        slots = int(res.get("CPU", 1) // cpus_per_task)
        if gpus_per_task:
            slots = min(slots, int(res.get("GPU", 0) // gpus_per_task)) or 1
        self.slots = max(1, slots if not workers or address else min(slots, int(workers)))
        self._refs: dict[Any, Task] = {}

    @property
    def n_inflight(self) -> int:
        return len(self._refs)

    def submit(self, task: Task) -> None:
        ref = self._remote.remote(task.configs, task.dirs, self.device, **self._kwargs())
        self._refs[ref] = task

    def wait(self, timeout: float = 0.5) -> list[Outcome]:
        if not self._refs:
            return []
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out: list[Outcome] = []
        for ref in ready:
            task = self._refs.pop(ref)
            try:
                out.append((task, ray.get(ref), None))
            except Exception as exc:  # noqa: BLE001 - worker crash, lost node, ...
                out.append((task, None, WorkerDied(f"ray task {task.task_id} failed: {type(exc).__name__}: {exc}")))
        return out

    def abort(self) -> None:
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        self._refs.clear()
        self.close()

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False

    def describe(self) -> str:
        return f"ray x{self.slots}"


def make_executor(kind: str = "local", *, workers: int | None = None, device: str = "cpu", analysis: Any = "auto",
                  worker: str | Callable = DEFAULT_WORKER, address: str | None = None,
                  gpus_per_trial: float | None = None, threads: int | None = None) -> Executor:
    """An executor by name: ``local``, ``ray`` or ``serial``."""
    kw = dict(device=device, analysis=analysis, worker=worker, threads=threads)
    if kind == "local":
        if workers == 0:
            return SerialExecutor(**kw)
        return LocalExecutor(workers=workers, **kw)
    if kind == "serial":
        return SerialExecutor(**kw)
    if kind == "ray":
        return RayExecutor(workers=workers, address=address, gpus_per_task=gpus_per_trial, **kw)
    raise ConfigError(f"executor {kind!r}: expected local, ray or serial")
