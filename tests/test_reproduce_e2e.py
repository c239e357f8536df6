"""The tiny preset end to end: train every sweep, resume after an interruption, report,
and verdicts that follow the stored numbers (minutes; marked slow)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from gridsweep.reproduce.claims import CLAIMS
from gridsweep.reproduce.report import build_report
from gridsweep.sweeps import load_results
from test_reproduce_helpers import set_metric

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from gridsweep.reproduce.cli import reproduce_app

    out = tmp_path_factory.mktemp("e2e") / "tiny"
    runner = CliRunner()
    # an interrupted first call: only part of the trials, no report yet
    r1 = runner.invoke(reproduce_app, ["--preset", "tiny", "--out", str(out), "--workers", "2", "--max-trials", "4",
                                       "--no-progress"])
    assert r1.exit_code == 0, r1.output
    first = load_results(out)
    assert (first["status"] == "done").sum() >= 4 and not (out / "report" / "report.html").exists()
    # the same command again resumes and finishes
    r2 = runner.invoke(reproduce_app, ["--preset", "tiny", "--out", str(out), "--workers", "2", "--no-progress"])
    assert r2.exit_code == 0, r2.output
    return out, r2.output, first


def test_tiny_preset_trains_everything_once_and_resumes(tiny):
    out, output, first = tiny
    df = load_results(out)
    man = json.loads((out / "reproduce" / "manifest.json").read_text())
    assert set(df["trial_id"]) == {m["trial_id"] for m in man["memberships"]}
    assert (df["status"] == "done").all()
    assert df["max_score60_deepmind_minmax"].notna().all()  # scored, not just trained
    done_first = first.loc[first["status"] == "done", ["trial_id", "finished"]]
    again = df.set_index("trial_id").loc[done_first["trial_id"], "finished"]
    assert list(again) == list(done_first["finished"])  # finished trials were not redone
    assert output.strip().splitlines()[-1].endswith("report.html")


def test_tiny_report_structure(tiny):
    out, _, _ = tiny
    html = (out / "report" / "report.html").read_text()
    secs = re.findall(r'<section id="claim-(\w+)".*?</section>', html, re.S)
    assert secs == [c.id for c in CLAIMS]
    for body in re.findall(r'(<section id="claim-\w+".*?</section>)', html, re.S):
        assert 'class="comparison"' in body and "Verdict: " in body
    assert "Machinery test only" in html
    res = json.loads((out / "report" / "results.json").read_text())
    assert set(res["claims"]) == {c.id for c in CLAIMS}
    # the grid criterion's null: every finished target-sweep network, rebuilt untrained and scored
    import pandas as pd
    null = pd.read_csv(out / "report" / "tables" / "untrained.csv")
    man = json.loads((out / "reproduce" / "manifest.json").read_text())
    assert set(null["trial_id"]) == {m["trial_id"] for m in man["memberships"] if m["group"] == "targets"}
    assert null["max_score60_deepmind_minmax"].notna().all()
    assert any("untrained" in m["label"] for m in res["claims"]["R2"]["measured"])
    rec = res["reproducibility"]
    assert set(rec) >= {"commit", "versions", "cpu", "gpu", "torch_threads", "ensemble_sizes", "trained_with"}
    assert set(rec["versions"]) == {"gridsweep", "torch", "numpy", "scipy"}
    for name in ("summary", "fractions", "survival", "top_ratemaps", "periods", "pct_vs_sigma", "theory", "multifield", "dog",
                 "predictivity"):
        assert (out / "report" / "figures" / f"{name}.png").exists()
        assert (out / "report" / "figures" / f"{name}.pdf").exists()


def test_tiny_verdicts_follow_stored_numbers(tiny, tmp_path):
    out, _, _ = tiny
    base = json.loads((out / "report" / "results.json").read_text())["claims"]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report"))
    # make every target network path-integrate; only DoS runs get a grid unit
    set_metric(copy, lambda m: m["group"] == "targets", "decoding_error_cm", 4.0)
    set_metric(copy, lambda m: m["group"] == "targets", "max_score60_deepmind_minmax", 0.1)
    set_metric(copy, lambda m: m["group"] == "targets" and m["condition"] == "dos", "max_score60_deepmind_minmax", 1.3)
    rep = build_report(copy, predictivity=False, figures=False)
    assert base["R2"]["verdict"] != "reproduced"
    # 2 seeds: too few networks to decide, whatever the numbers; the estimates follow them
    res = json.loads(rep.results_json.read_text())["claims"]["R2"]
    assert res["verdict_text"] == "inconclusive (too few networks: n=2)"
    est = {m["key"]: m for m in res["measured"] if m.get("key")}
    assert (est["p_grid:dos"]["k"], est["p_grid:dos"]["n"]) == (2, 2) and est["p_grid:gaussian"]["k"] == 0
    # and the other way round: a non-DoS target with grids everywhere
    set_metric(copy, lambda m: m["group"] == "targets" and m["condition"] == "gaussian",
               "max_score60_deepmind_minmax", 1.3)
    res = json.loads(build_report(copy, predictivity=False, figures=False).results_json.read_text())["claims"]["R2"]
    assert {m.get("key"): m for m in res["measured"]}["p_grid:gaussian"]["k"] == 2
