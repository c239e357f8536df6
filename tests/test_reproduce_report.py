"""The report on a stand-in reproduction sweep: structure, self-containment, verdicts
that follow the stored numbers, the CLI, and the page in headless Chromium."""

from __future__ import annotations

import functools
import html
import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from gridsweep.reproduce.browser import check_images, find_chromium
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
    d = make_fake_sweep(tmp_path_factory.mktemp("fake") / "sweep")
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
    for c in CLAIMS:
        s = secs[c.id]
        assert 'class="paper"' in s and 'class="measured"' in s and 'class="verdict' in s
        for n in c.numbers:  # every published number is printed with its label
            assert f"<td>{html.escape(n.label)}</td>" in s
            assert html.escape(str(n.value) if not isinstance(n.value, int) else f"{n.value:,}") in s
        verdict = re.search(r'data-verdict="([^"]+)"', s).group(1)
        assert verdict == rep.verdicts[c.id]
        assert f"Verdict: {verdict}" in s
    assert "Scale of this run" in text and "tiny" in text
    res = json.loads(rep.results_json.read_text())
    assert {k: v["verdict"] for k, v in res["claims"].items()} == rep.verdicts
    assert res["claims"]["R2"]["paper"][-1]["value"] == 0.91


def test_stand_in_numbers_give_the_expected_verdicts(fake):
    _, rep = fake
    for cid in ("R1", "R2", "R3", "R4", "R6", "R7", "B1", "B2"):
        assert rep.verdicts[cid] == "reproduced", cid
    assert rep.verdicts["R5"] == "inconclusive"  # tiny's sigma grid is 0.02 m apart
    assert rep.verdicts["P"] == "inconclusive"  # predictivity switched off


def test_report_is_self_contained_with_png_and_pdf_figures(fake):
    _, rep = fake
    text = rep.html.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) >= 9 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="https?://', text)
    for name, png in rep.figures.items():
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
    assert n == 2
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
