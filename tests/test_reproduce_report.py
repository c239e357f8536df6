"""The report on a stand-in reproduction sweep: structure, self-containment, verdicts
that follow the stored numbers, the CLI, and the page in headless Chromium."""

from __future__ import annotations

import functools
import html
import json
import re
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gridsweep.reproduce.browser import check_images, find_chromium, screenshot
from gridsweep.reproduce.claims import CLAIMS
from gridsweep.reproduce.data import ReproductionError
from gridsweep.reproduce.report import build_report
from test_reproduce_helpers import make_fake_sweep, set_metric


def _stand_in_modes(sp):
    """Stand-in for gridsweep.analysis.spacing_modules: one mode, no test rejection."""
    return {"modes_m": [float(np.median(sp))], "mode_ratios": [], "p_multimodal": 0.9}


@pytest.fixture(scope="module")
def cheap_analysis():
    """Closed-form theory (no numerical spectrum) and the stand-in mode finder keep these tests fast."""
    import gridsweep.reproduce.data as data
    import gridsweep.theory as theory

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(theory, "predict", functools.partial(theory.predict, numeric=False))
        try:
            from gridsweep.analysis import spacing_modules  # noqa: F401
        except ImportError:
            mp.setattr(data, "_modes", _stand_in_modes)
        yield


@pytest.fixture(scope="module")
def fake(tmp_path_factory, cheap_analysis):
    d = make_fake_sweep(tmp_path_factory.mktemp("fake") / "sweep", seeds=4, rules={"n_boot": 200})
    rep = build_report(d, predictivity=False)
    return d, rep


def _sections(text: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(
        r'<section id="claim-(\w+)".*?</section>', text, re.S)}


def test_report_has_one_section_per_claim_with_paper_numbers_measurements_and_verdict(fake):
    d, rep = fake
    text = rep.html.read_text()
    secs = _sections(text)
    assert list(secs) == [c.id for c in CLAIMS]
    from gridsweep.reproduce.claims import published_claims

    for c in published_claims():
        s = secs[c.id]
        # ONE table per claim: quantity | paper (source) | this run [95% interval] | agrees?
        assert s.count("<table class=\"comparison\">") == 1 and 'class="verdict' in s
        assert "<th>quantity</th><th>paper (source)</th><th>this run [95% interval]</th>" in s
        table = s.split('<table class="comparison">')[1].split("</table>")[0]
        for row in re.findall(r"<tr data-key=.*?</tr>", table, re.S):
            assert row.count("<td") == 4
        for n in c.numbers:  # every published number is printed, with its source
            assert html.escape(str(n.value) if not isinstance(n.value, int) else f"{n.value:,}") in table
            assert html.escape(n.source) in table
        verdict = re.search(r'data-verdict="([^"]+)"', s).group(1)
        assert verdict == rep.verdicts[c.id]
        assert f"Verdict: {verdict}" in s
        assert 'class="robust"' in s or 'class="fragile"' in s
    assert "Scale of this run" in text and "tiny" in text
    res = json.loads(rep.results_json.read_text())
    assert {k: v["verdict"] for k, v in res["claims"].items()} == rep.verdicts
    assert res["claims"]["R2"]["paper"][-1]["value"] in (0.91, "~0.91")
    # a matched row: published number and this run's estimate under one label, and whether they agree
    row = next(r for r in res["claims"]["R2"]["comparison"] if r["key"] == "p_grid:dos")
    assert row["label"] == "P(grid | low error), DoS" and "0.91" in row["paper"] and "Wilson" in row["run"]
    assert row["agrees"] in ("yes", "no")
    assert 'id="glossary"' in text and "<dt" in text and "low error" in text
    assert 'data-figure="summary"' in text.split('<section id="claim-')[0]  # summary figure at the top


def test_stand_in_numbers_give_the_expected_verdicts(fake):
    _, rep = fake
    for cid in ("R1", "R2", "R3", "R4", "R6", "R7", "B1", "B2"):
        assert rep.verdicts[cid] == "reproduced", cid
    res = json.loads(rep.results_json.read_text())
    assert res["claims"]["R2"]["robustness"]["robust"] is False  # 4 networks per kind: one seed less is too few
    assert "seed" in res["claims"]["R2"]["robustness"]["text"]
    assert rep.verdicts["R5"] == "inconclusive"  # tiny's sigma grid is 0.02 m apart
    assert rep.verdicts["P"] == "inconclusive"  # predictivity switched off


def test_report_is_self_contained_with_png_and_pdf_figures(fake):
    _, rep = fake
    text = rep.html.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) >= 9 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="https?://', text)
    for _name, png in rep.figures.items():
        assert png.exists() and png.with_suffix(".pdf").exists()
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (rep.out_dir / "tables" / "runs.csv").exists()


def test_verdicts_follow_the_stored_numbers(fake, tmp_path, cheap_analysis):
    """Change a stored metric in a copy of the results: the verdict changes accordingly."""
    d, rep = fake
    assert rep.verdicts["R2"] == "reproduced" and rep.verdicts["R7"] == "reproduced"
    copy = tmp_path / "copy"
    shutil.copytree(d, copy, ignore=shutil.ignore_patterns("report"))
    n = set_metric(copy, lambda m: m["group"] == "targets" and m["condition"] == "dog_equinorm",
                   "max_score60_deepmind_minmax", 1.4)
    assert n == 4
    rep2 = build_report(copy, predictivity=False, figures=False)
    assert rep2.verdicts["R2"] == "not reproduced"  # equi-norm DoG now gives grids like DoS
    assert rep2.verdicts["R7"] == "not reproduced"
    assert rep2.verdicts["R6"] == rep.verdicts["R6"]  # untouched claims keep theirs
    # and raising the decoding error of every DoS run makes R2 undecidable
    set_metric(copy, lambda m: m["condition"] == "dos", "decoding_error_cm", 80.0)
    rep3 = build_report(copy, predictivity=False, figures=False)
    assert rep3.verdicts["R2"] == "inconclusive" and "DoS" in json.loads(
        rep3.results_json.read_text())["claims"]["R2"]["reason"]


def test_unfinished_trials_are_reported_as_problems(tmp_path, cheap_analysis):
    d = make_fake_sweep(tmp_path / "s", status_fn=lambda m: "failed" if m["condition"] == "gaussian" else "done")
    rep = build_report(d, predictivity=False, figures=False)
    assert any("failed" in p for p in rep.problems)
    assert "Problems" in rep.html.read_text()


def test_report_of_a_directory_that_is_not_a_reproduction(tmp_path):
    with pytest.raises(ReproductionError, match="not a reproduction sweep directory"):
        build_report(tmp_path)
    with pytest.raises(ReproductionError, match="no such directory"):
        build_report(tmp_path / "nope")


def test_report_cli(fake, tmp_path, cheap_analysis):
    from gridsweep.reproduce.cli import report_app

    d, _ = fake
    out = tmp_path / "rep"
    r = CliRunner().invoke(report_app, [str(d), "--out", str(out), "--no-predictivity", "--no-figures"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].endswith("report.html")
    assert (out / "report.html").exists()
    bad = CliRunner().invoke(report_app, [str(tmp_path / "none")])
    assert bad.exit_code == 2 and "error:" in bad.output


@pytest.mark.skipif(find_chromium() is None,
                    reason="headless Chromium not installed (apt-get install -y chromium); the page check needs it")
def test_report_opens_in_headless_chromium_with_every_figure_decoded(fake, tmp_path):
    _, rep = fake
    res = check_images(rep.html)
    assert res.sections == len(CLAIMS)
    assert res.n_images >= len(rep.figures) and res.broken == [], res.images
    assert res.summary_in_first_screen, (res.summary_top, res.viewport_height)
    # a screenshot of the first screen, kept with the test's output (GRIDSWEEP_TEST_ARTIFACTS, else tmp_path)
    out = Path(os.environ.get("GRIDSWEEP_TEST_ARTIFACTS", tmp_path)) / "report_first_screen.png"
    png = screenshot(rep.html, out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the probe notices a broken image
    text = rep.html.read_text()
    i = text.index("base64,") + len("base64,")
    bad = tmp_path / "bad.html"
    bad.write_text(text[:i] + "AAAA" + text[i + 500:])
    assert check_images(bad).broken


def test_criterion_figures_show_the_fraction_and_the_untrained_null():
    """With grid_min_fraction the survival plot is over unit fractions, with the untrained curve beside it."""
    import pandas as pd

    from gridsweep.reproduce import figures as F
    from gridsweep.reproduce.presets import RuleParams
    from gridsweep.reproduce.verdicts import prepare_runs

    rules = RuleParams(n_boot=200, grid_min_fraction=0.02)
    rows = [{"trial_id": f"{k}{s}", "group": "targets", "condition": k, "seed": s, "status": "done",
             "decoding_error_cm": 5.0, "max_score60_deepmind_minmax": 1.1, "frac_units_above_0.8": f}
            for k, f in (("dos", 0.06), ("gaussian", 0.004)) for s in range(3)]
    df = prepare_runs(pd.DataFrame(rows), rules)
    null = pd.DataFrame(rows).assign(**{"frac_units_above_0.8": 0.004})
    fig = F.fig_survival(df, rules, null)
    ax = fig.axes[0]
    assert "fraction of a run's units" in ax.get_xlabel()
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert any(lbl.startswith("untrained") for lbl in labels)
    dos = next(ln for ln in ax.get_lines() if ln.get_label().startswith("DoS"))
    assert np.max(dos.get_xdata()) == pytest.approx(0.06)
    fig = F.fig_fractions(df, rules, null)
    assert any(c.get_label().startswith("untrained networks: P(>= 2% of units") for c in fig.axes[0].collections)


def test_reproducibility_record_and_robustness_in_results_json(fake):
    _, rep = fake
    res = json.loads(rep.results_json.read_text())
    rec = res["reproducibility"]
    assert set(rec) >= {"commit", "versions", "cpu", "gpu", "torch_threads", "loss_path", "ensemble_sizes"}
    assert set(rec["versions"]) == {"gridsweep", "torch", "numpy", "scipy"} and rec["commit"]
    from gridsweep import fused
    assert rec["loss_path"] == ("auto (eager)" if fused.MODE == "auto" else fused.MODE)  # the path taken, not a word
    n_trials = len(json.loads((rep.out_dir.parent / "reproduce" / "manifest.json").read_text())["memberships"])
    assert set(rec["ensemble_sizes"]) == {"1"} and 0 < rec["ensemble_sizes"]["1"] <= n_trials
    for cid, c in res["claims"].items():
        rob = c["robustness"]
        assert isinstance(rob["robust"], bool) and rob["text"] and len(rob["checks"]) >= 4, cid
    assert {r["seed"] for r in res["conditions"]} == {0, 1, 2, 3}
    assert 'id="reproducibility"' in rep.html.read_text()


def test_both_scoring_protocols_side_by_side(tmp_path, cheap_analysis):
    """With nfl_ summary columns the grid-unit claims show a verdict per protocol."""
    from test_reproduce_helpers import ideal_metrics

    def both(mem, seed):
        m = ideal_metrics(mem, seed)
        # under NFL's protocol every kind has grid units: R2 is not reproduced there
        return {**m, "nfl_max_score60_deepmind_minmax": 1.3, "nfl_frac_units_above_0.3": 0.5}

    d = make_fake_sweep(tmp_path / "s", metric_fn=both, seeds=4, rules={"n_boot": 200})
    rep = build_report(d, predictivity=False, figures=False)
    res = json.loads(rep.results_json.read_text())
    assert res["claims"]["R2"]["verdict"] == "reproduced"
    assert res["claims"]["R2"]["protocols"]["nfl"]["verdict"] == "not reproduced"
    assert "protocols" not in res["claims"]["R3"]  # R3 reads per-unit spacings: one protocol
    sec = _sections(rep.html.read_text())["R2"]
    assert 'data-protocol="deepmind"' in sec and 'data-protocol="nfl"' in sec
    assert sec.count("untrained null") >= 2  # each protocol with its null


def test_ratemap_figures_have_colour_bars_and_published_values(fake):
    import matplotlib.pyplot as plt
    import pandas as pd

    from gridsweep.reproduce import figures as F
    from gridsweep.reproduce.presets import RuleParams
    from gridsweep.reproduce.verdicts import prepare_runs

    d, _ = fake
    df = pd.read_csv(d / "report" / "tables" / "runs.csv")
    rules = RuleParams(n_boot=100)
    df = prepare_runs(df, rules)
    for fig in (F.fig_top_ratemaps(df, "targets"), F.fig_multifield(df, rules)):
        assert any(hasattr(ax, "_colorbar") for ax in fig.axes)  # a colour bar next to the rate maps
        plt.close(fig)
    fig = F.fig_fractions(df, rules)
    assert any(c.get_label().startswith("published") for c in fig.axes[0].collections)
    plt.close(fig)
    fig = F.fig_dog(df, rules)
    assert any(c.get_label() == "published" for c in fig.axes[0].collections)
    plt.close(fig)


def test_a_report_only_call_keeps_who_trained_the_networks(tmp_path, monkeypatch):
    """Rewriting the manifest (every `gridsweep reproduce` call) keeps the training
    environment and timing; only a call that trains networks records a new environment."""
    from gridsweep.reproduce import run as run_mod
    from gridsweep.reproduce.data import load_manifest, write_manifest
    from gridsweep.reproduce.presets import load_preset
    from gridsweep.reproduce.run import build_spec

    p = load_preset("tiny")
    _, mem, base, text = build_spec(p)
    write_manifest(tmp_path, p, base, mem, text)
    monkeypatch.setattr(run_mod, "environment_record", lambda: {"commit": "trainer"})
    run_mod._add_timing(tmp_path, {"wall_seconds": 10.0, "calls": 1}, trained=True)
    write_manifest(tmp_path, p, base, mem, text)  # the next call rewrites the manifest first
    monkeypatch.setattr(run_mod, "environment_record", lambda: {"commit": "reporter"})
    run_mod._add_timing(tmp_path, {"wall_seconds": 12.0, "calls": 2}, trained=False)
    man = load_manifest(tmp_path)
    assert man["environment"] == {"commit": "trainer"} and man["timing"]["calls"] == 2
    run_mod._add_timing(tmp_path, {"wall_seconds": 20.0, "calls": 3}, trained=True)
    assert load_manifest(tmp_path)["environment"] == {"commit": "reporter"}
