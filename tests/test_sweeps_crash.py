"""Faults: SIGKILL at random moments, Ctrl-C, worker processes that die.

The crash test runs ``python -m gridsweep.sweeps run`` in a subprocess, SIGKILLs it
several times at seeded random moments, resumes, and checks that every trial ends
``done`` exactly once and that no finished result (its row, the files of its run
directory) changed after it was first recorded.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import tiny_grid_spec

from gridsweep.sweeps import run_sweep
from gridsweep.sweeps.store import TrialStore
from gridsweep.sweeps.worker import noop_group

pytestmark = pytest.mark.slow

SPEC = tiny_grid_spec("crash", 400, 100, 20)
N_TRIALS = 8


def _cmd(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "gridsweep.sweeps", "run", str(spec), "--out", str(out), "--workers", "2",
            "--threads", "1", "--ensemble-size", "1", "--analysis", "weight_stats", "--no-progress"]


def _query(out: Path, sql: str) -> list[tuple]:
    db = out / "sweep.db"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # table not created yet
        return []


def _n(out: Path, status: str) -> int:
    rows = _query(out, f"SELECT COUNT(*) FROM trials WHERE status = '{status}'")
    return rows[0][0] if rows else 0


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _tree(d: Path) -> dict[str, str]:
    return {str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.rglob("*"))
            if f.is_file()}


def _check_finished(out: Path, seen: dict[str, tuple[dict, dict]]) -> None:
    """Record newly finished trials; assert earlier ones are unchanged."""
    if not (out / "sweep.db").exists():
        return
    with TrialStore(out, create=False) as st:
        rows = {r["trial_id"]: r for r in st.rows()}
    for tid, (row, tree) in seen.items():
        now = rows[tid]
        assert now["status"] == row["status"], f"{tid} changed status after it finished"
        assert {k: v for k, v in now.items() if k in row} == row, f"row of finished trial {tid} changed"
        assert all(v is None for k, v in now.items() if k not in row)
        assert _tree(out / "trials" / tid) == tree, f"files of finished trial {tid} changed"
    for tid, row in rows.items():
        if row["status"] == "done" and tid not in seen:
            seen[tid] = (row, _tree(out / "trials" / tid))


def test_sigkill_at_random_moments_then_resume(tmp_path):
    spec = tmp_path / "crash.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    rng = random.Random(20240611)
    seen: dict[str, tuple[dict, dict]] = {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills, done_at_kill = 0, []
    for round_ in range(3):
        done_before = _n(out, "done")
        log = open(tmp_path / f"run{round_}.log", "w")
        proc = subprocess.Popen(_cmd(spec, out), stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        target = min(N_TRIALS - 4, done_before + rng.randint(0, 2))
        _wait(lambda: proc.poll() is not None or (_n(out, "running") > 0 and _n(out, "done") >= target),
              120, "the sweep to make progress")
        time.sleep(rng.uniform(0.0, 0.5))
        kids = _children(proc.pid)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
            done_at_kill.append(_n(out, "done"))
        proc.wait(timeout=30)
        log.close()
        # worker processes die with their parent: nothing keeps writing into trial dirs
        _wait(lambda: not any(_alive(k) for k in kids), 15, f"orphaned workers {kids} to exit")
        _check_finished(out, seen)
    assert kills >= 3
    assert any(0 < d < N_TRIALS for d in done_at_kill), done_at_kill  # some kills landed mid-sweep
    res = subprocess.run(_cmd(spec, out), capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    _check_finished(out, seen)
    rows = _query(out, "SELECT trial_id, status, attempts FROM trials")
    assert len(rows) == N_TRIALS and {r[1] for r in rows} == {"done"}
    assert len(seen) == N_TRIALS
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(r[0] for r in rows)
    # a re-run finds nothing to do and changes nothing
    res = subprocess.run(_cmd(spec, out), capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0 and "ran 0 trial(s)" in res.stdout, res.stdout + res.stderr
    _check_finished(out, seen)


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    spec = tmp_path / "crash.yaml"
    spec.write_text(SPEC.replace("n_steps: 40", "n_steps: 400"))
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(spec, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    _wait(lambda: any((out / "trials").glob("*/metrics.csv")), 120, "training to start")
    kids = _children(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C: the whole process group
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text
    assert "interrupted" in text
    _wait(lambda: not any(_alive(k) for k in kids), 15, "workers to exit")
    assert _n(out, "running") == 0
    assert _n(out, "pending") + _n(out, "done") == N_TRIALS


def dying_worker(configs, trial_dirs, device="cpu", **kw):
    """Dies (like an OOM kill) the first time it sees a task; succeeds the second time."""
    marker = Path(trial_dirs[0]).parent.parent / f"died-{Path(trial_dirs[0]).name}"
    if not marker.exists():
        marker.touch()
        os._exit(3)
    return noop_group(configs, trial_dirs, device, **kw)


def always_dying_worker(configs, trial_dirs, device="cpu", **kw):
    os._exit(3)


def test_worker_process_death_is_retried_then_failed(tmp_path):
    spec = tmp_path / "crash.yaml"
    spec.write_text(SPEC.replace("seeds: 2", "seeds: 1").replace("[1.0e-3, 1.0e-2]", "[1.0e-3]"))
    rep = run_sweep(spec, tmp_path / "a", workers=1, worker=f"{__name__}:dying_worker", ensemble_size=1,
                    progress=False)
    assert rep.counts["done"] == 2
    with TrialStore(tmp_path / "a") as st:
        # each task dies once; a task in flight when its pool broke is retried too
        assert all(2 <= r["attempts"] <= 3 for r in st.rows())
    rep = run_sweep(spec, tmp_path / "b", workers=1, worker=f"{__name__}:always_dying_worker", ensemble_size=2,
                    max_attempts=2, progress=False)
    assert rep.counts["failed"] == 2
    with TrialStore(tmp_path / "b") as st:
        assert all("worker process died" in r["error"] for r in st.rows())
