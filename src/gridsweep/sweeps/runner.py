"""Running a sweep: expand, store, group, execute, record; resumable at any moment.

:func:`run_sweep` is what ``gridsweep sweep run`` calls. Re-running it on the same
directory resumes: trials left ``running`` by a killed process go back to ``pending``,
``done`` / ``diverged`` ones are skipped (their rows and files are never touched again),
``failed`` ones are retried only with ``retry_failed``. Ctrl-C (SIGINT) or SIGTERM stop
cleanly: running work is abandoned, its trials are set back to ``pending`` and the
store stays consistent. Training itself resumes from the checkpoints in each trial
directory when a whole ensemble can (see :func:`gridsweep.sweeps.worker.prepare_checkpoints`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gridsweep.errors import ConfigError
from gridsweep.files import write_text_atomic
from gridsweep.sweeps.executors import DEFAULT_WORKER, WorkerDied, make_executor
from gridsweep.sweeps.planning import group_key, memory_budget, plan_tasks
from gridsweep.sweeps.spec import SpecError, SweepSpec, load_spec
from gridsweep.sweeps.store import SweepLock, TrialStore

__all__ = ["run_sweep", "SweepReport", "default_out_dir"]


@dataclass
class SweepReport:
    """What one call of :func:`run_sweep` did."""

    name: str
    out_dir: Path
    n_trials: int  # trials in the spec
    n_new: int  # added to the store by this call
    n_requeued: int  # running -> pending at start (a killed run), + failed with retry_failed
    n_to_run: int  # pending trials this call set out to run
    n_recorded: int  # results recorded by this call
    counts: dict[str, int]  # store counts at the end
    interrupted: bool
    seconds: float
    executor: str
    n_tasks: int = 0
    ensemble_sizes: list[int] = field(default_factory=list)


def default_out_dir(spec: SweepSpec) -> Path:
    return Path("sweeps_out") / spec.name


class _Interrupt(KeyboardInterrupt):
    pass


def run_sweep(spec: SweepSpec | str | Path, out: str | Path | None = None, *, executor: str = "local",
              workers: int | None = None, max_trials: int | None = None, ensemble_size: int | None = None,
              address: str | None = None, gpus_per_trial: float | None = None, device: str = "cpu",
              analysis: str | Callable | None = "auto", retry_failed: bool = False, max_attempts: int = 3,
              memory_fraction: float = 0.25, worker: str | Callable = DEFAULT_WORKER, threads: int | None = None,
              progress: bool = True, log: Callable[[str], None] | None = None) -> SweepReport:
    """Run (or resume) a sweep into ``out`` (default ``sweeps_out/<name>``).

    Parameters
    ----------
    spec : SweepSpec or path
    executor : {"local", "ray", "serial"}
    workers : int, optional
        Concurrent tasks (local processes / local Ray CPUs); default: the number of
        cores. ``0`` with ``local`` runs in this process.
    max_trials : int, optional
        Run at most this many pending trials in this call.
    ensemble_size : int, optional
        Networks per ensemble task (default: from the memory estimate).
    address, gpus_per_trial : Ray cluster address and GPU share per task.
    device : ``cpu`` or ``cuda``.
    analysis : analysis hook (see :mod:`gridsweep.sweeps.hooks`).
    retry_failed : bool
        Re-queue ``failed`` trials.
    max_attempts : int
        A trial whose worker process dies this many times is recorded ``failed``.
    worker : str or callable
        The worker function (``module:function``); the default trains.

    Returns
    -------
    SweepReport
    """
    t0 = time.perf_counter()
    say = log or (lambda s: None)
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    if max_trials is not None and max_trials < 0:
        raise ConfigError(f"--max-trials must be >= 0 (got {max_trials})")
    if ensemble_size is not None and ensemble_size < 1:
        raise ConfigError(f"--ensemble-size must be >= 1 (got {ensemble_size})")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"--device {device!r}: expected cpu or cuda")
    # A W&B random search without run_cap runs until stopped: each call draws max_trials
    # more trials from its seeded stream (the store says how many were drawn before).
    open_ended = spec.needs_count
    if open_ended and not max_trials:
        raise ConfigError(f"{spec.source}: a W&B random search without run_cap runs until stopped; start it with "
                          "--max-trials N (each run draws and trains N more trials)")
    trials = [] if open_ended else _nonempty(spec)
    keys = {t.trial_id: group_key(t.config) for t in trials}
    out_dir = Path(out) if out is not None else default_out_dir(spec)
    lock = SweepLock(out_dir).acquire()
    store = None
    ex = None
    try:
        store = TrialStore(out_dir)
        if open_ended:
            spec = spec.with_trials(sum(store.counts().values()) + int(max_trials or 0))
            trials = _nonempty(spec)
            keys = {t.trial_id: group_key(t.config) for t in trials}
        (out_dir / "trials").mkdir(exist_ok=True)
        write_text_atomic(out_dir / "spec.yaml", spec.text or "")
        n_new = store.add_trials({"trial_id": t.trial_id, "config": t.config.to_dict(), "params": t.params,
                                  "ensemble_key": keys[t.trial_id], "spec_index": t.index} for t in trials)
        n_requeued = store.requeue(("running",))
        if n_requeued:
            say(f"re-queued {n_requeued} trial(s) left running by an earlier process")
        if retry_failed:
            n_requeued += store.requeue(("failed",))
        status = store.statuses()
        pending = [t for t in trials if status.get(t.trial_id) == "pending"]
        if max_trials is not None:
            pending = pending[:max_trials]
        # nothing to run: do not start worker processes or Ray
        ex = make_executor(executor if pending else "serial", workers=workers, device=device, analysis=analysis,
                           worker=worker, address=address, gpus_per_trial=gpus_per_trial, threads=threads)
        store.set_meta(name=spec.name, spec_source=spec.source, base=spec.base, n_trials=len(trials))
        if pending:
            store.set_meta(last_run={"executor": ex.name, "workers": ex.slots, "device": device,
                                     "started": time.time(), "pid": os.getpid()})
        budget = None
        if ensemble_size is None:
            budget = memory_budget(device, concurrent=ex.slots, fraction=memory_fraction, gpus_per_task=gpus_per_trial)
        tasks = plan_tasks([(t.trial_id, t.config, keys[t.trial_id], str(store.trial_dir(t.trial_id)))
                            for t in pending], workers=ex.slots, ensemble_size=ensemble_size, budget=budget)
        report = SweepReport(spec.name, out_dir, len(trials), n_new, n_requeued, len(pending), 0, {}, False, 0.0,
                             ex.describe() if pending else "nothing to run", len(tasks), [t.size for t in tasks])
        _execute(store, ex, tasks, report, max_attempts, progress, spec.name)
        ex.close()
        report.counts = store.counts()
        report.seconds = time.perf_counter() - t0
        store.set_meta(last_finished=time.time())
        return report
    except BaseException:
        if ex is not None:
            ex.abort()
        if store is not None:
            store.requeue(("running",))
        raise
    finally:
        if store is not None:
            store.close()
        lock.release()


def _nonempty(spec: SweepSpec) -> list:
    """The spec's trials; a SpecError when every point was skipped (nothing gridsweep can train)."""
    trials = spec.expand()
    if not trials:
        raise SpecError(f"{spec.source}:1: nothing to train: {spec.skipped_summary()}")
    return trials


def _execute(store: TrialStore, ex: Any, tasks: list, report: SweepReport, max_attempts: int, progress: bool,
             name: str) -> None:
    from tqdm.auto import tqdm

    queue = deque(tasks)
    inflight: dict[str, Any] = {}
    bar = tqdm(total=report.n_to_run, disable=not progress, desc=f"sweep {name}", unit="trial", dynamic_ncols=True)
    tally = {"done": 0, "diverged": 0, "failed": 0}
    main = threading.current_thread() is threading.main_thread()
    old_term = old_int = None
    stop: list[int] = []
    if main:
        # Ctrl-C and SIGTERM are noted here and acted on at the loop's next safe point (at
        # most one ex.wait timeout later): an exception raised at an arbitrary point could
        # land inside the store's transaction or in the pool starting a worker process, and
        # leave a half-started worker that the abort below cannot see.
        # A serial executor trains in this thread, inside submit: there the signal must
        # interrupt at once, or Ctrl-C would wait for the task to end.
        in_process = bool(getattr(ex, "in_process", False))

        def on_signal(signum: int, frame: Any) -> None:
            stop.append(signum)
            if in_process:
                raise _Interrupt()
        old_term = signal.signal(signal.SIGTERM, on_signal)
        old_int = signal.signal(signal.SIGINT, on_signal)
    try:
        while queue or inflight:
            if stop:
                raise _Interrupt()
            while queue and len(inflight) < ex.slots + 1 and not stop:
                task = queue.popleft()
                claimed = store.claim(task.trial_ids, task.task_id)
                if len(claimed) != len(task.trial_ids):  # cannot happen under the lock; stay safe
                    keep = [i for i, t in enumerate(task.trial_ids) if t in claimed]
                    task.trial_ids = [task.trial_ids[i] for i in keep]
                    task.configs = [task.configs[i] for i in keep]
                    task.dirs = [task.dirs[i] for i in keep]
                    if not keep:
                        continue
                inflight[task.task_id] = task
                ex.submit(task)
            for task, results, exc in ex.wait(timeout=0.5):
                inflight.pop(task.task_id, None)
                if exc is None:
                    got = {r["trial_id"] for r in results}
                    missing = [t for t in task.trial_ids if t not in got]
                    results = [r for r in results if r["trial_id"] in set(task.trial_ids)]
                    results += [{"trial_id": t, "status": "failed", "error": "worker returned no result"}
                                for t in missing]
                    store.record(results)
                    report.n_recorded += len(results)
                    for r in results:
                        tally[r["status"]] = tally.get(r["status"], 0) + 1
                    bar.set_postfix(tally, refresh=False)
                    bar.update(len(results))
                elif isinstance(exc, WorkerDied):
                    rows = {t: (store.get(t) or {}).get("attempts", 0) for t in task.trial_ids}
                    give_up = [t for t, a in rows.items() if a >= max_attempts]
                    retry = [t for t in task.trial_ids if t not in give_up]
                    if give_up:
                        store.mark_failed(give_up, f"{exc} (after {max_attempts} attempts)")
                        report.n_recorded += len(give_up)
                        tally["failed"] += len(give_up)
                        bar.update(len(give_up))
                    if retry:
                        store.requeue(("running",), ids=retry)
                        keep = [i for i, t in enumerate(task.trial_ids) if t in retry]
                        task.trial_ids = [task.trial_ids[i] for i in keep]
                        task.configs = [task.configs[i] for i in keep]
                        task.dirs = [task.dirs[i] for i in keep]
                        queue.append(task)
                else:
                    from gridsweep.sweeps.worker import _error_text

                    store.mark_failed(task.trial_ids, _error_text(exc, "executor: "))
                    report.n_recorded += len(task.trial_ids)
                    tally["failed"] += len(task.trial_ids)
                    bar.update(len(task.trial_ids))
                bar.set_postfix(tally, refresh=False)
    except KeyboardInterrupt:
        # Ctrl-C / SIGTERM: abandon running work, keep it re-queueable, leave the store consistent.
        if main:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            ex.abort()
            store.requeue(("running",))
        finally:
            if main:
                signal.signal(signal.SIGINT, signal.default_int_handler)
        report.interrupted = True
    finally:
        bar.close()
        if main and old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if main and old_int is not None:
            signal.signal(signal.SIGINT, old_int)
