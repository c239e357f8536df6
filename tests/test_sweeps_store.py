"""The SQLite results store, the sweep lock, export and the NFL queries."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest

from gridsweep.errors import StoreError
from gridsweep.sweeps.results import export_results, load_results, summarise
from gridsweep.sweeps.store import SweepLock, TrialStore


def rows(n: int):
    return [{"trial_id": f"t{i}", "config": {"seed": i, "model": {"hidden_size": 16, "cell": "rnn"}},
             "params": {"seed": i}, "ensemble_key": "k", "spec_index": i} for i in range(n)]


def test_lifecycle_metric_columns_and_guards(tmp_path):
    with TrialStore(tmp_path) as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.add_trials(rows(3)) == 3
        assert st.add_trials(rows(4)) == 1  # existing ids untouched
        assert st.counts()["pending"] == 4
        assert st.claim(["t0", "t1"], "task") == ["t0", "t1"]
        assert st.claim(["t0"]) == []  # already running
        rec = st.record([
            {"trial_id": "t0", "status": "done", "seconds": 1.5, "ensemble_size": 2,
             "metrics": {"decoding_error_cm": 4.5, "n_units": 16, "score_variant": "deepmind_minmax",
                         "max_score60_x": np.float32(0.25), "frac_units_above_0.3": 0.0}},
            {"trial_id": "t1", "status": "diverged", "metrics": {"decoding_error_cm": float("nan")}},
            {"trial_id": "t2", "status": "done", "metrics": {"decoding_error_cm": 1.0}},  # not running: ignored
        ])
        assert rec == ["t0", "t1"]
        types = st.metric_columns
        assert types["decoding_error_cm"] == "REAL" and types["n_units"] == "INTEGER"
        assert types["score_variant"] == "TEXT" and "frac_units_above_0.3" in types
        r0 = st.get("t0")
        assert r0["status"] == "done" and r0["attempts"] == 1 and r0["m_n_units"] == 16
        assert r0["m_max_score60_x"] == pytest.approx(0.25) and r0["task_id"] == "task"
        assert st.get("t2")["status"] == "pending"
        # a done row is never rewritten
        st.conn.execute("UPDATE trials SET status='running' WHERE trial_id='t3'")
        assert st.record([{"trial_id": "t0", "status": "failed", "error": "x"}]) == []
        assert st.get("t0") == r0
        assert st.requeue(("running",)) == 1 and st.get("t3")["status"] == "pending"
        with pytest.raises(StoreError):
            st.requeue(("done",))
    # reopening sees the same columns
    with TrialStore(tmp_path, create=False) as st:
        assert "score_variant" in st.metric_columns


def test_every_write_is_one_transaction(tmp_path):
    with TrialStore(tmp_path) as st:
        st.add_trials(rows(2))
        st.claim(["t0", "t1"])
        with pytest.raises(StoreError):  # the second result is invalid: nothing of the batch lands
            st.record([{"trial_id": "t0", "status": "done", "metrics": {"a": 1.0}},
                       {"trial_id": "t1", "status": "bogus"}])
        assert st.get("t0")["status"] == "running"
        assert "a" not in st._load_metric_columns()  # the ALTER TABLE was rolled back too


def test_lock_is_exclusive(tmp_path):
    with SweepLock(tmp_path):
        with pytest.raises(StoreError, match="another process"):
            SweepLock(tmp_path).acquire()
    SweepLock(tmp_path).acquire().release()


def test_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no sweep"):
        TrialStore(tmp_path / "nope", create=False)


def test_export_and_summarise(tmp_path):
    with TrialStore(tmp_path) as st:
        st.add_trials(rows(4))
        st.claim(["t0", "t1", "t2", "t3"])
        st.record([{"trial_id": f"t{i}", "status": "done",
                    "metrics": {"decoding_error_cm": e, "max_score60_deepmind_minmax": s, "score_variant": "dm"}}
                   for i, (e, s) in enumerate([(5.0, 0.9), (8.0, 0.1), (30.0, 0.95), (2.0, 0.2)])])
    df = load_results(tmp_path)
    assert {"trial_id", "status", "decoding_error_cm", "model.hidden_size", "model.cell", "seed"} <= set(df.columns)
    s = summarise(df, error_cm=10, score=0.8)
    assert s.loc["all", "frac_low_error"] == 0.75
    assert s.loc["all", "frac_low_error_and_grid"] == 0.25
    assert math.isclose(s.loc["all", "frac_grid_given_low_error"], 1 / 3)
    by = summarise(df, by="seed")
    assert list(by["n_done"]) == [1, 1, 1, 1]
    for suffix in ("parquet", "csv"):
        out = export_results(tmp_path, tmp_path / f"r.{suffix}")
        back = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
        assert len(back) == 4 and list(back["decoding_error_cm"]) == [5.0, 8.0, 30.0, 2.0]
        assert "model.hidden_size" in back.columns
    with pytest.raises(StoreError):
        export_results(tmp_path, tmp_path / "r.xlsx")


def test_store_file_is_plain_sqlite(tmp_path):
    with TrialStore(tmp_path) as st:
        st.add_trials(rows(1))
    con = sqlite3.connect(tmp_path / "sweep.db")
    assert con.execute("SELECT trial_id, status FROM trials").fetchall() == [("t0", "pending")]
