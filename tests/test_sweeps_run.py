"""Running sweeps in-process: grouping, divergence, failures, resume, checkpoints, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridsweep.config import RunConfig
from gridsweep.sweeps import load_results, load_spec, run_sweep
from gridsweep.sweeps.cli import app
from gridsweep.sweeps.planning import group_key, network_bytes, plan_tasks
from gridsweep.sweeps.store import TrialStore
from gridsweep.sweeps.worker import prepare_checkpoints, run_group
from gridsweep.training import ensemble_key, train_ensemble

BASE = """\
base:
  target: {n_cells: 16, surround_width_ratio: 2.0}
  model: {hidden_size: 16}
  trajectory: {batch_size: 8}
  training: {n_steps: 12, eval_every: 6, checkpoint_every: 4}
  evaluation: {n_trajectories: 8}
"""


def spec_file(tmp_path: Path, body: str, name: str = "s") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\n" + BASE + body)
    return p


def tree_hashes(d: Path) -> dict[str, str]:
    return {str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.rglob("*"))
            if f.is_file()}


def by_id(df):
    return {r["trial_id"]: r for r in df.to_dict("records")}


# --------------------------------------------------------------------------------------
def test_plan_tasks_groups_and_sizes():
    cfg = RunConfig().with_overrides({"model.hidden_size": 16, "target.n_cells": 16})
    trials = [(f"t{i}", cfg.with_overrides({"seed": i}), "a" if i < 5 else "b", f"d{i}") for i in range(7)]
    tasks = plan_tasks(trials, ensemble_size=2)
    # longest first; equal-cost tasks keep spec order
    assert [t.trial_ids for t in tasks] == [["t0", "t1"], ["t2", "t3"], ["t5", "t6"], ["t4"]]
    assert [t.size for t in plan_tasks(trials, budget=10 ** 12, workers=1)] == [5, 2]
    assert all(t.size == 1 for t in plan_tasks(trials, budget=1, workers=1))
    # fewer groups than workers: split, balanced
    assert sorted(t.size for t in plan_tasks(trials[:5], budget=10 ** 12, workers=2)) == [2, 3]
    big = cfg.with_overrides({"model.hidden_size": 1024, "model.cell": "lstm"})
    assert network_bytes(big) > 50 * network_bytes(cfg)


def test_plan_tasks_starts_the_longest_tasks_first():
    """GRU (3 gate blocks) and multi-field targets cost more per step; they must not start last."""
    from gridsweep.sweeps.planning import step_cost

    cfg = RunConfig().with_overrides({"model.hidden_size": 64, "target.n_cells": 64, "training.n_steps": 100})
    gru = cfg.with_overrides({"model.cell": "gru"})
    mf = cfg.with_overrides({"target.heterogeneity": {"fields_lambda": 3.0, "max_fields": 6}})
    long_run = cfg.with_overrides({"training.n_steps": 1000})
    assert step_cost(gru) > step_cost(cfg) and step_cost(mf) > step_cost(cfg)
    trials = [(n, c, n, n) for n, c in (("rnn", cfg), ("gru", gru), ("mf", mf), ("long", long_run))]
    order = [t.trial_ids[0] for t in plan_tasks(trials, ensemble_size=1)]
    assert order[0] == "long" and order[-1] == "rnn" and set(order[1:3]) == {"gru", "mf"}
    # DoG profiles (two scales) cost more than DoS at equal shapes: they start before DoS
    dog = cfg.with_overrides({"target.kind": "dog_general"})
    assert step_cost(dog) > step_cost(cfg)
    order = [t.trial_ids[0] for t in plan_tasks([("dos", cfg, "dos", "dos"), ("dog", dog, "dog", "dog")],
                                                ensemble_size=1)]
    assert order == ["dog", "dos"]


def test_group_key_keeps_ensembles_independent():
    cfg = RunConfig().with_overrides({"model.hidden_size": 16, "target.n_cells": 16})
    het = cfg.with_overrides({"target.heterogeneity": {"fields_lambda": 3.0}})
    assert ensemble_key(cfg) == ensemble_key(het)
    assert group_key(cfg) != group_key(het)
    assert group_key(cfg.with_overrides({"training.learning_rate": 0.1, "seed": 4})) == group_key(cfg)


def test_grouped_trials_match_trials_run_alone(tmp_path):
    p = spec_file(tmp_path, """\
cases:
  - {target.heterogeneity: null}
  - target.heterogeneity: {fields_lambda: 1.0, max_fields: 4, sigma_range: [0.06, 1.0],
                           surround_width_ratio_range: [1.25, 4.5]}
grid:
  training.learning_rate: [1.0e-3, 1.0e-2]
seeds: 2
""")
    grouped = run_sweep(p, tmp_path / "grouped", executor="serial", threads=1, analysis="weight_stats", progress=False)
    alone = run_sweep(p, tmp_path / "alone", executor="serial", threads=1, analysis="weight_stats", ensemble_size=1,
                      progress=False)
    assert grouped.ensemble_sizes == [4, 4] and alone.ensemble_sizes == [1] * 8
    g, a = by_id(load_results(tmp_path / "grouped")), by_id(load_results(tmp_path / "alone"))
    assert set(g) == set(a) and len(g) == 8
    for tid in g:
        assert g[tid]["status"] == a[tid]["status"] == "done"
        assert g[tid]["ensemble_size"] == 4
        for m in ("decoding_error_cm", "recurrent_weight_norm", "mean_abs_activation"):
            assert g[tid][m] == pytest.approx(a[tid][m], rel=1e-5, abs=1e-6), (tid, m)
        sg = json.loads((tmp_path / "grouped" / "trials" / tid / "summary.json").read_text())
        assert sg["decoding_error_cm"] == pytest.approx(g[tid]["decoding_error_cm"])


def test_divergence_failure_and_resume(tmp_path):
    p = spec_file(tmp_path, """\
set: {training.optimizer: sgd}
grid:
  training.learning_rate: [1.0e-3, 1.0e+6]
seeds: 2
""")
    calls = []

    def flaky(run_dir, ens, index):
        calls.append(run_dir.name)
        if ens.cfgs[index].seed == 1:
            raise RuntimeError("analysis exploded")
        return {"flaky": 1.0}

    rep = run_sweep(p, tmp_path / "out", executor="serial", threads=1, analysis=flaky, progress=False)
    assert rep.counts == {"pending": 0, "running": 0, "done": 1, "failed": 1, "diverged": 2}
    df = load_results(tmp_path / "out")
    div = df[df["status"] == "diverged"]
    assert set(div["training.learning_rate"]) == {1e6} and (div["diverged_at"] >= 0).all()
    failed = df[df["status"] == "failed"].iloc[0]
    assert "analysis exploded" in failed["error"] and failed["seed"] == 1
    assert len(calls) == 2  # diverged networks are not analysed
    before = {r["trial_id"]: r for r in TrialStore(tmp_path / "out").rows()}
    trees = {t: tree_hashes(tmp_path / "out" / "trials" / t) for t in before if before[t]["status"] != "failed"}

    # re-running skips done / diverged / failed and touches nothing
    rep2 = run_sweep(p, tmp_path / "out", executor="serial", threads=1, analysis=flaky, progress=False)
    assert rep2.n_to_run == 0 and rep2.n_new == 0
    assert {r["trial_id"]: r for r in TrialStore(tmp_path / "out").rows()} == before

    # --retry-failed re-runs the failed trial only; training resumes from its final checkpoint
    rep3 = run_sweep(p, tmp_path / "out", executor="serial", threads=1, analysis="none", retry_failed=True, progress=False)
    assert rep3.n_to_run == 1 and rep3.counts["done"] == 2 and rep3.counts["failed"] == 0
    final = {r["trial_id"]: r for r in TrialStore(tmp_path / "out").rows()}
    tid = failed["trial_id"]
    assert final[tid]["status"] == "done" and final[tid]["attempts"] == 2
    assert final[tid]["m_resumed_from_step"] == 12
    for t, h in trees.items():
        assert tree_hashes(tmp_path / "out" / "trials" / t) == h
        assert {k: v for k, v in final[t].items() if k in before[t]} == before[t]
        assert all(v is None for k, v in final[t].items() if k not in before[t])  # columns added later


def test_max_trials_then_resume(tmp_path):
    p = spec_file(tmp_path, "grid:\n  model.cell: [rnn, gru]\nseeds: 3\n")
    r1 = run_sweep(p, tmp_path / "o", executor="serial", threads=1, analysis="none", max_trials=4, progress=False)
    assert r1.counts["done"] == 4 and r1.counts["pending"] == 2
    first = {r["trial_id"]: r for r in TrialStore(tmp_path / "o").rows("done")}
    r2 = run_sweep(p, tmp_path / "o", executor="serial", threads=1, analysis="none", progress=False)
    assert r2.n_to_run == 2 and r2.counts["done"] == 6
    for r in TrialStore(tmp_path / "o").rows("done"):
        if r["trial_id"] in first:
            assert r == first[r["trial_id"]]


def test_run_group_resumes_from_checkpoints_exactly(tmp_path):
    spec = load_spec(spec_file(tmp_path, "grid:\n  training.learning_rate: [1.0e-3, 3.0e-3]\n"))
    cfgs = [t.config for t in spec.expand()]
    fresh = run_group(cfgs, [tmp_path / "f" / str(i) for i in range(2)], analysis="weight_stats", threads=1)
    dirs = [tmp_path / "r" / str(i) for i in range(2)]
    train_ensemble(cfgs, dirs, progress=False, stop_after=8)  # "killed" after step 8 (checkpoint at 8)
    resumed = run_group(cfgs, dirs, analysis="weight_stats")
    assert [r["metrics"]["resumed_from_step"] for r in resumed] == [8, 8]
    for a, b in zip(fresh, resumed):
        assert a["status"] == b["status"] == "done"
        for m in ("decoding_error_cm", "recurrent_weight_norm"):
            assert a["metrics"][m] == b["metrics"][m]
    # checkpoints at different steps (or missing) -> stale ones deleted, fresh start
    dirs2 = [tmp_path / "m" / str(i) for i in range(2)]
    train_ensemble(cfgs[:1], dirs2[:1], progress=False, stop_after=4)
    assert prepare_checkpoints(dirs2) is None
    assert not (dirs2[0] / "checkpoints" / "last.pt").exists()
    again = run_group(cfgs, dirs2, analysis="weight_stats")
    assert [r["metrics"]["decoding_error_cm"] for r in again] == [r["metrics"]["decoding_error_cm"] for r in fresh]
    assert "resumed_from_step" not in again[0]["metrics"]


def test_bad_spec_fails_before_anything_runs(tmp_path):
    p = spec_file(tmp_path, "grid:\n  model.hidden_size: [16, big]\n")
    with pytest.raises(Exception, match=r"s\.yaml:\d+: "):
        run_sweep(p, tmp_path / "never", executor="serial", threads=1, progress=False)
    assert not (tmp_path / "never").exists()
    res = CliRunner().invoke(app, ["run", str(p), "--out", str(tmp_path / "never")])
    assert res.exit_code == 2 and "s.yaml:" in res.output and "hidden_size" in res.output
    assert not (tmp_path / "never").exists()


def test_cli_run_status_export_expand(tmp_path):
    p = spec_file(tmp_path, "grid:\n  training.learning_rate: [1.0e-3, 1.0e-4]\nseeds: 2\n", name="clisweep")
    runner = CliRunner()
    res = runner.invoke(app, ["expand", str(p)])
    assert res.exit_code == 0 and "4 trials in 1 ensemble group" in res.output
    out = tmp_path / "sw"
    res = runner.invoke(app, ["run", str(p), "--out", str(out), "--workers", "1", "--threads", "1", "--analysis", "weight_stats",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "done 4" in res.output and "local x1" in res.output
    res = runner.invoke(app, ["status", str(out)])
    assert res.exit_code == 0, res.output
    assert "done 4" in res.output and "best trials by decoding error" in res.output and "ETA" in res.output
    res = runner.invoke(app, ["export", str(out), "--to", str(tmp_path / "r.parquet")])
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_parquet(tmp_path / "r.parquet")
    assert len(df) == 4 and {"training.learning_rate", "decoding_error_cm", "recurrent_weight_norm"} <= set(df)
    res = runner.invoke(app, ["status", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no sweep" in res.output


def test_score_run_hook_fills_the_grid_score_columns(tmp_path):
    p = spec_file(tmp_path, "set: {evaluation.ratemap_samples: 2000, evaluation.bins: 10}\nseeds: 2\n")
    rep = run_sweep(p, tmp_path / "o", executor="serial", threads=1, analysis="scores", progress=False)
    assert rep.counts["done"] == 2
    df = load_results(tmp_path / "o")
    for col in ("decoding_error_cm", "max_score60_deepmind_minmax", "frac_units_above_0.8", "score_variant"):
        assert col in df.columns and df[col].notna().all(), col
    for tid in df["trial_id"]:
        assert (tmp_path / "o" / "trials" / tid / "analysis" / "units.parquet").exists()
    from gridsweep.sweeps import summarise

    s = summarise(df)
    assert s.attrs["score_col"] == "max_score60_deepmind_minmax" and 0 <= s.loc["all", "frac_grid"] <= 1


def extra_metric_hook(run_dir, ens, index):
    """A custom analysis for rescore: one new metric from the trained weights."""
    return {"w_hh_norm": float(ens.model.W_hh[index].detach().norm())}


def test_rescore_recomputes_stored_metrics_and_adds_new_ones(tmp_path):
    p = spec_file(tmp_path, "set: {evaluation.ratemap_samples: 2000, evaluation.bins: 10}\nseeds: 2\n")
    out = tmp_path / "o"
    run_sweep(p, out, executor="serial", threads=1, analysis="scores", progress=False)
    before = by_id(load_results(out))
    tid = sorted(before)[0]
    with TrialStore(out) as store:  # a stale number in the store
        store.update_metrics(tid, {"max_score60_deepmind_minmax": -5.0})
        with pytest.raises(Exception, match="not a finished"):
            store.update_metrics("nope", {"x": 1.0})
    assert by_id(load_results(out))[tid]["max_score60_deepmind_minmax"] == -5.0
    from gridsweep.sweeps import rescore

    res = rescore(out, "scores", progress=False)
    after = by_id(load_results(out))
    assert sorted(res["rescored"]) == sorted(before)
    for t in before:  # the same checkpoint and seeded streams give the same numbers back
        for col in ("max_score60_deepmind_minmax", "frac_units_above_0.3", "decoding_error_cm"):
            assert after[t][col] == pytest.approx(before[t][col], rel=1e-9, nan_ok=True), col
        assert after[t]["status"] == "done" and after[t]["finished"] == before[t]["finished"]
    # a custom hook through the CLI adds a column, only for the named trial
    r = CliRunner().invoke(app, ["rescore", str(out), "--analysis", "test_sweeps_run:extra_metric_hook",
                                 "--trial", tid, "--no-progress"])
    assert r.exit_code == 0, r.output
    df = by_id(load_results(out))
    assert df[tid]["w_hh_norm"] > 0 and all(df[t]["w_hh_norm"] != df[t]["w_hh_norm"] for t in df if t != tid)
    bad = CliRunner().invoke(app, ["rescore", str(out), "--trial", "0000", "--no-progress"])
    assert bad.exit_code == 2 and "0000 (unknown)" in bad.output
