"""The worker function shared by every executor.

:func:`run_group` trains trials that share an ensemble key as one ensemble (each
network writing its own run directory), scores each finished network with the analysis
hook and returns one plain result dict per trial. It never touches the results store:
the process that runs the sweep records what comes back.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["run_group", "prepare_checkpoints", "noop_group", "init_worker", "CheckpointDiscardedWarning"]

MAX_ERROR_CHARS = 4000


def _error_text(exc: BaseException, where: str = "") -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    head = f"{where}{type(exc).__name__}: {exc}"
    text = head + "\n" + tb
    return text[:MAX_ERROR_CHARS]


def prepare_checkpoints(trial_dirs: Sequence[Path]) -> int | None:
    """Decide whether a group can resume: returns the common step, or None after deleting stale checkpoints.

    ``train_ensemble`` resumes only when every network has a checkpoint at the same step;
    otherwise the group starts fresh, so leftover checkpoints are removed first.
    Checkpoints are verified (sha256 sidecar) and read without executing code
    (:func:`gridsweep.files.load_torch`); a corrupt one is reported with a
    :class:`CheckpointDiscardedWarning` naming the file and the group retrains.
    """
    import warnings

    from gridsweep.errors import GridsweepError
    from gridsweep.files import load_torch

    steps: list[int | None] = []
    for d in trial_dirs:
        ck = Path(d) / "checkpoints" / "last.pt"
        if not ck.exists():
            steps.append(None)
            continue
        try:
            steps.append(int(load_torch(ck)["step"]))
        except (GridsweepError, KeyError, TypeError, ValueError) as exc:  # unreadable: retrain from scratch
            warnings.warn(f"{ck}: discarded, the trial restarts from step 0 ({exc})", CheckpointDiscardedWarning,
                          stacklevel=2)
            steps.append(None)
    if steps and None not in steps and len(set(steps)) == 1:
        return steps[0]
    for d in trial_dirs:
        ckdir = Path(d) / "checkpoints"
        for f in [ckdir / "last.pt", ckdir / "last.pt.sha256", ckdir / "last.pt.tmp", *ckdir.glob(".last*.tmp*")]:
            if f.exists():
                f.unlink()
    return None


class CheckpointDiscardedWarning(UserWarning):
    """A trial's checkpoint was unreadable or corrupt and was deleted; the trial retrains."""


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(int(threads))


def run_group(configs: Sequence[Any], trial_dirs: Sequence[str | Path], device: str = "cpu", *,
              analysis: str | Callable | None = "auto", threads: int | None = None) -> list[dict[str, Any]]:
    """Train ``configs`` (sharing one ensemble key) as one ensemble; one result dict per trial.

    Parameters
    ----------
    configs : sequence of RunConfig or dict
    trial_dirs : sequence of paths
        One run directory per config; their names are the trial ids.
    device : str
        ``cpu`` or ``cuda`` (``cuda:N``).
    analysis : str or callable
        Analysis hook (see :mod:`gridsweep.sweeps.hooks`).
    threads : int, optional
        torch intra-op threads for this call.

    Returns
    -------
    list of dict
        ``trial_id``, ``status`` (done | diverged | failed), ``metrics`` (flat dict),
        ``error`` (text or None), ``seconds`` (this trial's share of the wall time),
        ``ensemble_size``, ``host``, ``pid``.

    Notes
    -----
    A network that diverges is ``diverged`` and the others finish. When the ensemble as
    a whole raises (for example one network's config cannot be built), every network is
    retried alone so that only the culprit is recorded ``failed``.
    """
    from gridsweep.config import validate_config
    from gridsweep.sweeps.hooks import flat_metrics, resolve_hook
    from gridsweep.training import train_ensemble

    _set_threads(threads)
    t0 = time.perf_counter()
    dirs = [Path(d) for d in trial_dirs]
    ids = [d.name for d in dirs]
    E = len(dirs)
    base = {"host": socket.gethostname(), "pid": os.getpid(), "ensemble_size": E}
    try:
        cfgs = [validate_config(c) for c in configs]
        hook = resolve_hook(analysis)
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        resumed_from = prepare_checkpoints(dirs)
        ens, results = train_ensemble(cfgs, dirs, device=device, progress=False, resume=True)
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        if E > 1:
            out = []
            for c, d in zip(configs, dirs):
                out.extend(run_group([c], [d], device, analysis=analysis, threads=None))
            return out
        return [{"trial_id": ids[0], "status": "failed", "metrics": {}, "error": _error_text(exc),
                 "seconds": time.perf_counter() - t0, **base}]
    train_wall = time.perf_counter() - t0
    out = []
    for e, (res, d) in enumerate(zip(results, dirs)):
        metrics: dict[str, Any] = dict(res.metrics)
        if resumed_from is not None:
            metrics["resumed_from_step"] = resumed_from
        status, error = res.status, None
        if status == "stopped":  # not expected without stop_after; keep it re-queueable
            status, error = "failed", "training stopped before n_steps"
        if status == "diverged":
            metrics["diverged_at"] = res.diverged_at
        elif status == "done":
            ta = time.perf_counter()
            try:
                metrics.update(flat_metrics(dict(hook(d, ens, e) or {})))
            except Exception as exc:  # noqa: BLE001
                status, error = "failed", _error_text(exc, "analysis: ")
            metrics["analysis_seconds"] = time.perf_counter() - ta
        metrics.pop("trial_id", None)
        out.append({"trial_id": ids[e], "status": status, "metrics": flat_metrics(metrics), "error": error,
                    "seconds": train_wall / E + metrics.get("analysis_seconds", 0.0), **base})
    return out


def noop_group(configs: Sequence[Any], trial_dirs: Sequence[str | Path], device: str = "cpu", *,
               analysis: Any = None, threads: int | None = None) -> list[dict[str, Any]]:
    """A worker that returns immediately (benchmarks of the store and executors)."""
    return [{"trial_id": Path(d).name, "status": "done", "metrics": {"noop": 1.0}, "error": None, "seconds": 0.0,
             "ensemble_size": len(trial_dirs), "host": "", "pid": os.getpid()} for d in trial_dirs]


# --------------------------------------------------------------------------------------
# local worker processes
# --------------------------------------------------------------------------------------
def _set_parent_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphaned writers)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - not Linux: the watchdog thread still works
        pass


def _watch_parent(parent_pid: int, period: float = 0.5) -> None:
    import threading

    def watch() -> None:
        while True:
            time.sleep(period)
            if os.getppid() != parent_pid:
                os._exit(70)

    threading.Thread(target=watch, name="gridsweep-parent-watch", daemon=True).start()


def init_worker(threads: int, parent_pid: int) -> None:
    """Initializer of local worker processes.

    Ignores SIGINT (the parent handles Ctrl-C and ends the workers), dies with its parent
    (PR_SET_PDEATHSIG plus a watchdog thread), and limits OpenMP/MKL threads.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(70)
    _watch_parent(parent_pid)
    # torch is imported lazily by the first task (run_group also sets its thread count);
    # these take effect when it is.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
