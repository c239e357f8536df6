"""Re-analyse finished trials without retraining them.

When a scorer changes (a new grid-score variant, another rate-map resolution, a custom
hook), :func:`rescore` reloads each finished trial's final checkpoint, runs an analysis
hook on it and updates that trial's metric columns in the store. Training metrics,
status and timing are left as they were; each trial's update is its own transaction,
so an interrupted rescore keeps what it finished and can simply be run again.
A trial whose checkpoint cannot be read (missing, corrupt, diverged) or whose analysis
raises is recorded ``failed`` with the reason, and the rescore goes on with the next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from gridsweep.errors import StoreError

__all__ = ["rescore"]


def rescore(sweep_dir: str | Path, analysis: str | Callable = "scores", *, ids: Sequence[str] | None = None,
            progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``analysis`` again on every ``done`` trial (or on ``ids``) and store its metrics.

    Parameters
    ----------
    sweep_dir : path
        A sweep directory (docs/sweeps.md).
    analysis : str or callable
        A hook name or callable (:mod:`gridsweep.sweeps.hooks`); default ``scores``
        (:func:`gridsweep.evaluation.score_run` without figures).
    ids : sequence of str, optional
        Only these trials; each must be ``done``.

    Returns
    -------
    dict
        ``{"rescored": [trial ids], "failed": {trial id: reason}, "metrics": sorted metric
        names written}``.

    Raises
    ------
    StoreError
        No sweep at ``sweep_dir``, another process holds it, or a requested trial is
        unknown or not ``done``.
    """
    from tqdm.auto import tqdm

    from gridsweep.sweeps.hooks import flat_metrics, resolve_hook
    from gridsweep.sweeps.store import SweepLock, TrialStore
    from gridsweep.training import load_run

    say = log or (lambda s: None)
    hook = resolve_hook(analysis)
    sweep_dir = Path(sweep_dir)
    with TrialStore(sweep_dir, create=False) as store, SweepLock(sweep_dir):
        if ids is None:
            todo = store.ids("done")
        else:
            status = store.statuses(list(ids))
            bad = [f"{t} ({status.get(t, 'unknown')})" for t in ids if status.get(t) != "done"]
            if bad:
                raise StoreError(f"rescore: only finished ('done') trials have weights to analyse; not: {', '.join(bad)}")
            todo = list(ids)
        names: set[str] = set()
        done: list[str] = []
        failed: dict[str, str] = {}
        for tid in tqdm(todo, desc=f"rescore {sweep_dir.name}", unit="trial", disable=not progress):
            run_dir = store.trial_dir(tid)
            try:
                metrics = flat_metrics(hook(run_dir, load_run(run_dir), 0))
            except Exception as exc:  # noqa: BLE001 - recorded; the rescore goes on
                reason = f"rescore: {type(exc).__name__}: {exc}"
                failed[tid] = reason
                _mark_done_failed(store, tid, reason)
                say(f"{tid}: failed ({reason})")
                continue
            store.update_metrics(tid, metrics)
            names.update(metrics)
            done.append(tid)
        say(f"rescored {len(done)} trial(s) of {sweep_dir} with {getattr(hook, '__name__', hook)}"
            + (f"; {len(failed)} failed" if failed else ""))
    return {"rescored": done, "failed": failed, "metrics": sorted(names)}


def _mark_done_failed(store: Any, trial_id: str, reason: str) -> None:
    """Record a finished trial whose weights cannot be analysed as ``failed`` with ``reason`` (one transaction)."""
    from gridsweep.sweeps.worker import MAX_ERROR_CHARS

    with store.transaction():
        store.conn.execute("UPDATE trials SET status='failed', error=? WHERE trial_id=? AND status='done'",
                           [reason[:MAX_ERROR_CHARS], trial_id])
