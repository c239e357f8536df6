"""The results store of a sweep: one SQLite file, ``SWEEP_DIR/sweep.db``.

Layout::

    SWEEP_DIR/
      sweep.db              table ``trials`` (one row per trial) + table ``meta`` (key/value)
      sweep.lock            held (flock) by the one process running the sweep
      spec.yaml             copy of the spec last run here
      trials/<trial_id>/    the trial's run directory (docs/architecture.md), incl. analysis/

``trials`` columns: ``trial_id`` (primary key, = ``RunConfig.hash()``), ``status``
(pending | running | done | failed | diverged), ``config`` (JSON of the resolved
config), ``params`` (JSON of the swept values), ``ensemble_key``, ``spec_index``,
``created`` / ``started`` / ``finished`` (unix seconds), ``seconds`` (compute seconds of
the trial: its ensemble's wall time divided by the ensemble size), ``error``,
``attempts``, ``ensemble_size``, ``task_id``; then one column ``m_<metric>`` per final
metric, added with ``ALTER TABLE ADD COLUMN`` (REAL, INTEGER or TEXT) the first time a
metric name appears.

Only the process running the sweep writes (the executors' workers return results to
it); every write is one transaction. A ``done`` row is never written again: results
are recorded only onto rows that are ``running``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

from gridsweep.errors import StoreError

__all__ = ["TrialStore", "SweepLock", "STATUSES", "METRIC_PREFIX", "DB_NAME"]

STATUSES = ("pending", "running", "done", "failed", "diverged")
FINISHED = ("done", "failed", "diverged")
METRIC_PREFIX = "m_"
DB_NAME = "sweep.db"
SCHEMA_VERSION = "1"

_FIXED = [
    ("trial_id", "TEXT PRIMARY KEY"),
    ("status", "TEXT NOT NULL CHECK (status IN ('pending','running','done','failed','diverged'))"),
    ("config", "TEXT NOT NULL"),
    ("params", "TEXT"),
    ("ensemble_key", "TEXT"),
    ("spec_index", "INTEGER"),
    ("created", "REAL"),
    ("started", "REAL"),
    ("finished", "REAL"),
    ("seconds", "REAL"),
    ("error", "TEXT"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("ensemble_size", "INTEGER"),
    ("task_id", "TEXT"),
]
FIXED_COLUMNS = [c for c, _ in _FIXED]


def _q(name: str) -> str:
    """Quote an SQL identifier."""
    if "\x00" in name:
        raise StoreError(f"invalid column name {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _sql_type(value: Any) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "REAL"
    return "TEXT"


def _sql_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    try:  # numpy / torch scalars
        return value.item()
    except AttributeError:
        return json.dumps(value, default=str)


class SweepLock:
    """An exclusive advisory lock on ``SWEEP_DIR/sweep.lock`` (released when the process dies)."""

    def __init__(self, sweep_dir: str | Path):
        self.path = Path(sweep_dir) / "sweep.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - non-POSIX: no locking
            pass
        except OSError:
            fh.close()
            raise StoreError(f"{self.path.parent}: another process is running this sweep "
                             "(only one process may write a sweep directory)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class TrialStore:
    """SQLite results store of one sweep directory.

    Parameters
    ----------
    sweep_dir : path
    create : bool
        Create the directory and database when missing (otherwise raise StoreError).
    """

    def __init__(self, sweep_dir: str | Path, create: bool = True):
        self.dir = Path(sweep_dir)
        self.path = self.dir / DB_NAME
        if not self.path.exists():
            if not create:
                raise StoreError(f"{self.dir}: no sweep here (missing {DB_NAME})")
            self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: cannot open the results store ({err})") from None
        if create:
            with self.transaction():
                cols = ", ".join(f"{_q(c)} {t}" for c, t in _FIXED)
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS trials ({cols})")
                self.conn.execute("CREATE INDEX IF NOT EXISTS trials_status ON trials(status)")
                self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (repr(time.time()),))
        self._metric_types = self._load_metric_columns()

    # -- plumbing ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "TrialStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _load_metric_columns(self) -> dict[str, str]:
        try:
            rows = self.conn.execute("PRAGMA table_info(trials)").fetchall()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: unreadable ({err})") from None
        if not rows:
            raise StoreError(f"{self.path}: no trials table")
        return {r[1][len(METRIC_PREFIX):]: r[2] for r in rows if r[1].startswith(METRIC_PREFIX)}

    @property
    def metric_columns(self) -> dict[str, str]:
        """Metric name -> SQL type of every metric column so far."""
        return dict(self._metric_types)

    def _ensure_metric_columns(self, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if name not in self._metric_types:
                typ = _sql_type(_sql_value(value)) if value is not None else "REAL"
                self.conn.execute(f"ALTER TABLE trials ADD COLUMN {_q(METRIC_PREFIX + name)} {typ}")
                self._metric_types[name] = typ

    # -- meta -------------------------------------------------------------------------
    def set_meta(self, **items: Any) -> None:
        with self.transaction():
            for k, v in items.items():
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:
            return row[0]

    # -- trials -----------------------------------------------------------------------
    def trial_dir(self, trial_id: str) -> Path:
        """The trial's run directory (content-addressed by trial id)."""
        return self.dir / "trials" / trial_id

    def add_trials(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert new pending trials (existing ids are left untouched); returns how many were new.

        Each row: ``trial_id``, ``config`` (dict), ``params`` (dict), ``ensemble_key``,
        ``spec_index``.
        """
        now = time.time()
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO trials (trial_id, status, config, params, ensemble_key, spec_index, created,"
                " attempts) VALUES (?, 'pending', ?, ?, ?, ?, ?, 0)",
                [(r["trial_id"], json.dumps(r["config"], sort_keys=True), json.dumps(r.get("params", {}), default=str),
                  r.get("ensemble_key"), r.get("spec_index"), now) for r in rows])
            return self.conn.total_changes - before

    def requeue(self, statuses: Sequence[str] = ("running",), ids: Sequence[str] | None = None) -> int:
        """Set trials in ``statuses`` back to pending (all, or only ``ids``); returns the count."""
        bad = set(statuses) - {"running", "failed", "diverged"}
        if bad:
            raise StoreError(f"cannot requeue trials that are {sorted(bad)}")
        marks = ",".join("?" * len(statuses))
        with self.transaction():
            if ids is None:
                cur = self.conn.execute(f"UPDATE trials SET status='pending' WHERE status IN ({marks})",
                                        tuple(statuses))
                return cur.rowcount
            n = 0
            for chunk in _chunks(list(ids), 500):
                cur = self.conn.execute(
                    f"UPDATE trials SET status='pending' WHERE status IN ({marks}) AND trial_id IN "
                    f"({','.join('?' * len(chunk))})", tuple(statuses) + tuple(chunk))
                n += cur.rowcount
            return n

    def claim(self, ids: Sequence[str], task_id: str | None = None) -> list[str]:
        """Mark pending trials running (attempts + 1); returns the ids actually claimed."""
        now = time.time()
        claimed = []
        with self.transaction():
            for tid in ids:
                cur = self.conn.execute(
                    "UPDATE trials SET status='running', started=?, attempts=attempts+1, task_id=?, error=NULL "
                    "WHERE trial_id=? AND status='pending'", (now, task_id, tid))
                if cur.rowcount:
                    claimed.append(tid)
        return claimed

    def record(self, results: Sequence[dict[str, Any]]) -> list[str]:
        """Record worker results in one transaction; returns the ids recorded.

        Each result: ``trial_id``, ``status`` (done | diverged | failed), ``metrics``
        (flat dict), ``error``, ``seconds``, ``ensemble_size``. Rows that are not
        ``running`` are left alone (a finished row is never rewritten).
        """
        now = time.time()
        recorded = []
        with self.transaction():
            for r in results:
                status = r["status"]
                if status not in FINISHED:
                    raise StoreError(f"trial {r['trial_id']}: cannot record status {status!r}")
                metrics = {k: _sql_value(v) for k, v in (r.get("metrics") or {}).items()}
                self._ensure_metric_columns(metrics)
                cols = ["status", "finished", "seconds", "error", "ensemble_size"] + \
                       [METRIC_PREFIX + k for k in metrics]
                vals = [status, now, r.get("seconds"), r.get("error"), r.get("ensemble_size")] + list(metrics.values())
                sets = ", ".join(f"{_q(c)}=?" for c in cols)
                cur = self.conn.execute(f"UPDATE trials SET {sets} WHERE trial_id=? AND status='running'",
                                        vals + [r["trial_id"]])
                if cur.rowcount:
                    recorded.append(r["trial_id"])
        return recorded

    def update_metrics(self, trial_id: str, metrics: dict[str, Any]) -> None:
        """Overwrite metric columns of one finished trial (a rescore); status and timing stay."""
        vals = {k: _sql_value(v) for k, v in metrics.items()}
        with self.transaction():
            self._ensure_metric_columns(vals)
            if not vals:
                return
            sets = ", ".join(f"{_q(METRIC_PREFIX + k)}=?" for k in vals)
            cur = self.conn.execute(f"UPDATE trials SET {sets} WHERE trial_id=? AND status='done'",
                                    [*vals.values(), trial_id])
            if not cur.rowcount:
                raise StoreError(f"trial {trial_id}: not a finished ('done') trial of this sweep")

    def mark_failed(self, ids: Sequence[str], error: str) -> None:
        """Record running trials as failed with ``error`` (e.g. their worker process died)."""
        self.record([{"trial_id": t, "status": "failed", "error": error} for t in ids])

    # -- queries ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for status, n in self.conn.execute("SELECT status, COUNT(*) FROM trials GROUP BY status"):
            out[status] = n
        return out

    def ids(self, status: str | Sequence[str] | None = None) -> list[str]:
        if status is None:
            return [r[0] for r in self.conn.execute("SELECT trial_id FROM trials ORDER BY spec_index, trial_id")]
        sts = (status,) if isinstance(status, str) else tuple(status)
        q = f"SELECT trial_id FROM trials WHERE status IN ({','.join('?' * len(sts))}) ORDER BY spec_index, trial_id"
        return [r[0] for r in self.conn.execute(q, sts)]

    def statuses(self, ids: Sequence[str] | None = None) -> dict[str, str]:
        rows = self.conn.execute("SELECT trial_id, status FROM trials").fetchall()
        d = dict(rows)
        return d if ids is None else {i: d[i] for i in ids if i in d}

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row as a dict (metric columns keep their ``m_`` prefix)."""
        q = "SELECT * FROM trials" + (" WHERE status = ?" if status else "") + " ORDER BY spec_index, trial_id"
        cur = self.conn.execute(q, (status,) if status else ())
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def get(self, trial_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM trials WHERE trial_id = ?", (trial_id,))
        r = cur.fetchone()
        return None if r is None else dict(zip([d[0] for d in cur.description], r))


def _chunks(xs: list, n: int) -> Iterator[list]:
    for i in range(0, len(xs), n):
        yield xs[i:i + n]
