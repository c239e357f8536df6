"""The reproduction report: one self-contained HTML page, figures as PNG and PDF, and
the verdicts as JSON.

:func:`build_report` reads a reproduction sweep directory (see
:mod:`gridsweep.reproduce.data`), applies the verdict rules of
:mod:`gridsweep.reproduce.verdicts` to the stored numbers and writes::

    OUT/report.html          one page, every figure embedded as a base64 data URI
    OUT/results.json         verdicts, measured estimates, paper numbers, preset, counts
    OUT/figures/*.png, *.pdf
    OUT/tables/*.csv         runs, spacing per sigma, theory, predictivity

Default OUT: ``SWEEP_DIR/report``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Callable

import numpy as np
import pandas as pd

from gridsweep.reproduce import figures as F
from gridsweep.reproduce.claims import CLAIMS, Claim
from gridsweep.reproduce.data import (
    load_runs,
    predictivity_table,
    spacing_table,
    theory_table,
    trial_configs,
    unit_spacings,
    untrained_table,
)
from gridsweep.reproduce.presets import CONDITION_LABELS, Preset
from gridsweep.reproduce.verdicts import RULE_TEXT, RULES, SCORE_COL, ClaimResult, grid_label, prepare_runs

__all__ = ["build_report", "Report", "FIGURES_OF"]

#: Which figures each claim's section shows.
FIGURES_OF = {
    "R1": ["fractions"], "R2": ["survival", "top_ratemaps"], "R3": ["periods"], "R4": ["theory"],
    "R5": ["pct_vs_sigma"], "R6": ["multifield"], "R7": ["dog"], "B1": ["dog"], "B2": ["multifield"],
    "P": ["predictivity"],
}
CAPTIONS = {
    "fractions": "Fraction of runs with low decoding error and, among those, with grid units (criterion in the "
                 "legend), per target kind. Error bars: 95% bootstrap intervals over seeds; diamonds: NeurIPS Fig. 2; "
                 "grey crosses: the same networks untrained.",
    "survival": "Survival function, over low-error runs of each target kind, of the quantity the grid criterion "
                "thresholds (a run's maximum grid score, or its fraction of units above the threshold); dashed "
                "grey: the same networks untrained.",
    "top_ratemaps": "Rate maps of the four best units (grid score above each map) of the best run per target kind.",
    "periods": "Distribution of grid periods (units with score > 0.8) per readout width, with modes, and the "
               "period against sigma with adjacent-mode ratios.",
    "theory": "Left: numerical readout spectra per target kind (dotted: ring k*). Middle: measured period against "
              "the theory's hexagonal spacing. Right: closed-form DoS phase diagram with the trained networks of the "
              "sigma sweep (filled: a unit above the threshold).",
    "pct_vs_sigma": "Percentage of units above the unit threshold against sigma (mean over seeds, 95% CI).",
    "multifield": "Single- vs multi-field place cells: path integration, grid units, and the best unit of each condition.",
    "dog": "DoS against equi-norm and unit-integral DoG targets (and the amplitude-ratio sweep when run).",
    "predictivity": "Left: predictivity (median held-out r on synthetic MEC recordings) against participation ratio "
                    "for trained networks (stars) and participation-ratio-matched nulls. Right: Nayebi et al.'s "
                    "published values.",
}


@dataclass
class Report:
    """What :func:`build_report` wrote and decided."""

    out_dir: Path
    html: Path
    results_json: Path
    verdicts: dict[str, str]
    figures: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _counts(runs: pd.DataFrame) -> dict[str, int]:
    u = runs.drop_duplicates("trial_id")
    return {k: int(v) for k, v in u["status"].value_counts().items()}


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _section(claim: Claim, res: ClaimResult, figs: dict[str, Path]) -> str:
    vcls = "v-" + res.verdict.replace(" ", "-")
    paper = "".join(f"<tr><td>{_e(n.label)}</td><td>{_e(_num(n.value))}{(' ' + _e(n.unit)) if n.unit else ''}</td>"
                    f"<td>{_e(n.source)}</td></tr>" for n in claim.numbers)
    meas = "".join(f"<tr><td>{_e(m.label)}</td><td>{_e(m.text())}</td></tr>" for m in res.measured) or \
        '<tr><td colspan="2">nothing measured (see the verdict)</td></tr>'
    fig_html = ""
    for name in FIGURES_OF.get(claim.id, []):
        if name in figs:
            fig_html += (f'<figure data-figure="{name}">{_img(figs[name], name)}'
                         f"<figcaption>{_e(CAPTIONS.get(name, ''))} "
                         f'(<a href="figures/{name}.pdf">PDF</a>)</figcaption></figure>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in res.notes)
    side = "rebuttal (Sorscher et al. 2022)" if claim.side == "rebuttal" else "No Free Lunch (Schaeffer et al. 2022)"
    return f"""
<section id="claim-{claim.id}" class="claim" data-claim="{claim.id}" data-verdict="{_e(res.verdict)}">
<h2>{claim.id}. {_e(claim.title)}</h2>
<p><em>{_e(side)}.</em> {_e(claim.statement)}</p>
<h3>What the paper reported <span class="rule">({_e(claim.section)})</span></h3>
<table class="paper"><tr><th>quantity</th><th>published</th><th>source</th></tr>{paper}</table>
<h3>What this run measured</h3>
<table class="measured"><tr><th>quantity</th><th>estimate [95% CI over seeds]</th></tr>{meas}</table>
<p class="verdict {vcls}"><strong>Verdict: {_e(res.verdict)}</strong> &mdash; {_e(res.reason)}</p>
<p class="rule"><strong>Rule.</strong> {_e(res.rule or RULE_TEXT.get(claim.id, ''))}</p>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
{fig_html}
</section>"""


def _conditions_table(df: pd.DataFrame) -> str:
    rows = []
    for (g, c), sub in df.groupby(["group", "condition"], sort=False):
        done = sub[sub["status"] == "done"]
        rows.append(f"<tr><td>{_e(g)}</td><td>{_e(CONDITION_LABELS.get(c, c))}</td><td>{len(sub)}</td>"
                    f"<td>{len(done)}</td><td>{_fmt(done['decoding_error_cm'].median())}</td>"
                    f"<td>{_fmt(done[SCORE_COL].median())}</td><td>{_fmt(done[SCORE_COL].max())}</td></tr>")
    return ("<table><tr><th>group</th><th>condition</th><th>runs</th><th>done</th><th>median error (cm)</th>"
            "<th>median max score</th><th>best max score</th></tr>" + "".join(rows) + "</table>")


def _fmt(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(f) else f"{f:.3g}"


def build_report(sweep_dir: str | Path, out: str | Path | None = None, *, log: Callable[[str], None] | None = None,
                 results: pd.DataFrame | None = None, predictivity: bool = True, figures: bool = True) -> Report:
    """Decide every claim from a reproduction sweep directory and write the report.

    Parameters
    ----------
    sweep_dir : path
        Written by :func:`gridsweep.reproduce.run.reproduce`.
    out : path, optional
        Default ``SWEEP_DIR/report``.
    results : DataFrame, optional
        The store's table (:func:`gridsweep.sweeps.load_results`), when already loaded.
    predictivity : bool
        Compute claim P (synthetic recordings, ridge fits, matched nulls; the slowest step).
    figures : bool
        Draw the figures (False: verdicts and tables only, for quick re-decisions).
    """
    t0 = time.perf_counter()
    say = log or (lambda s: None)
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out) if out is not None else sweep_dir / "report"
    runs, man = load_runs(sweep_dir, results)
    fig_dir, tab_dir = out_dir / "figures", out_dir / "tables"
    fig_dir.mkdir(parents=True, exist_ok=True)
    tab_dir.mkdir(parents=True, exist_ok=True)
    preset = Preset.model_validate(man["preset"])
    rules = preset.rules
    problems: list[str] = []
    counts = _counts(runs)
    unfinished = counts.get("pending", 0) + counts.get("running", 0) + counts.get("missing", 0)
    if unfinished:
        problems.append(f"{unfinished} trial(s) have not finished (pending, running or missing); rerun "
                        "`gridsweep reproduce` with the same preset and --out to complete them.")
    variants = set(runs.loc[runs["status"] == "done", "score_variant"].dropna().astype(str))
    if variants - {"deepmind_minmax"}:
        problems.append(f"runs summarised with grid-score variant(s) {sorted(variants)}; the thresholds of the rules "
                        "are NFL's, for deepmind_minmax")
    if counts.get("failed"):
        problems.append(f"{counts['failed']} trial(s) failed; see `gridsweep sweep status {sweep_dir}`.")
    # theory (R4)
    say("report: theory predictions")
    try:
        configs = trial_configs(sweep_dir)
    except Exception as err:  # noqa: BLE001 - the store was readable a moment ago; report and go on
        configs = {}
        problems.append(f"trial configs unreadable: {err}")
    theory, spectra, prob = theory_table(runs, configs)
    if prob:
        problems.append(prob)
    if len(theory):
        runs = runs.merge(theory, on="trial_id", how="left")
        runs["has_ring"] = runs["has_ring"].astype("boolean").fillna(False).astype(bool)
    # spacing (R3)
    say("report: grid periods")
    df = prepare_runs(runs, rules)
    units = unit_spacings(df[df["group"] == "sigma"])
    spacing, prob = spacing_table(df, units)
    if prob:
        problems.append(prob)
    # predictivity (P)
    pred = pd.DataFrame()
    if predictivity and preset.predictivity.enabled:
        say("report: neural predictivity (synthetic MEC, matched nulls)")
        try:
            pred, prob = predictivity_table(df, preset.predictivity, log=say)
        except Exception as err:  # noqa: BLE001 - P is one claim; the others must still be reported
            pred, prob = pd.DataFrame(), f"predictivity failed: {type(err).__name__}: {err}"
        if prob:
            problems.append(prob)
    # the untrained null of the grid criterion (R1, R2)
    untrained = pd.DataFrame()
    if configs:
        say("report: untrained networks (the grid criterion's null)")
        try:
            untrained = untrained_table(runs, configs, sweep_dir, log=say)
        except Exception as err:  # noqa: BLE001 - a missing null leaves R1/R2 without it, and says so
            problems.append(f"untrained null failed: {type(err).__name__}: {err}")
    # verdicts
    say("report: verdicts")
    results_by_claim = {cid: fn(df, rules, modules=spacing, predictivity=pred, untrained=untrained)
                        for cid, fn in RULES.items()}
    # figures
    say("report: figures" if figures else "report: figures skipped")
    figs: dict[str, Path] = {}
    box = float((man.get("base", {}).get("box") or {}).get("width", 2.2))
    makers = {
        "fractions": lambda: F.fig_fractions(df, rules, untrained),
        "survival": lambda: F.fig_survival(df, rules, untrained),
        "top_ratemaps": lambda: F.fig_top_ratemaps(df, "targets"),
        "periods": lambda: F.fig_periods(units, spacing, rules),
        "pct_vs_sigma": lambda: F.fig_pct_vs_sigma(df, rules),
        "theory": lambda: F.fig_theory(df, spectra, rules, box_size=box),
        "multifield": lambda: F.fig_multifield(df, rules),
        "dog": lambda: F.fig_dog(df, rules),
        "predictivity": lambda: F.fig_predictivity(pred),
    }
    for name, make in (makers.items() if figures else ()):
        try:
            fig = make()
        except Exception as err:  # noqa: BLE001 - a figure must never sink the report; say why it is missing
            problems.append(f"figure {name} failed: {type(err).__name__}: {err}")
            fig = F.placeholder(name, f"figure failed: {type(err).__name__}: {err}")
        figs[name] = F.save(fig, fig_dir, name)
    # tables
    df.drop(columns=[c for c in ("spectrum",) if c in df.columns]).to_csv(tab_dir / "runs.csv", index=False)
    spacing.to_csv(tab_dir / "spacing_per_sigma.csv", index=False)
    theory.to_csv(tab_dir / "theory.csv", index=False)
    if len(untrained):
        untrained.to_csv(tab_dir / "untrained.csv", index=False)
    if len(pred):
        pred.to_csv(tab_dir / "predictivity.csv", index=False)
    # page
    title = f"gridsweep reproduction of No Free Lunch: preset '{preset.name}'"
    html_path = out_dir / "report.html"
    body = _page(title, preset, man, sweep_dir, counts, results_by_claim, figs, problems, df)
    try:
        from gridsweep import __version__ as version
    except ImportError:  # pragma: no cover
        version = "?"
    html_path.write_text(Template((Path(__file__).parent / "template.html").read_text()).substitute(
        title=_e(title), body=body, version=_e(version)))
    res_json = out_dir / "results.json"
    res_json.write_text(json.dumps(_json_safe({
        "preset": preset.name, "scale": preset.scale, "sweep_dir": str(sweep_dir), "counts": counts,
        "rules": preset.rules.model_dump(mode="json"),
        "claims": {cid: {**r.to_dict(), "paper": [{"label": n.label, "value": n.value, "source": n.source}
                                                  for n in next(c for c in CLAIMS if c.id == cid).numbers]}
                   for cid, r in results_by_claim.items()},
        "problems": problems, "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }), indent=1))
    rep = Report(out_dir, html_path, res_json, {k: v.verdict for k, v in results_by_claim.items()}, figs, problems,
                 time.perf_counter() - t0)
    say(f"report: {html_path} ({rep.seconds:.0f} s)")
    return rep


def _schedule(training: dict[str, Any]) -> str:
    """' (x0.1 at step 4500)' for a step schedule, '' for a constant rate."""
    ms = training.get("lr_milestones") or []
    if not ms:
        return ""
    return f" (x{training.get('lr_gamma', 0.1):g} at step{'s' if len(ms) > 1 else ''} {', '.join(map(str, ms))})"


def _page(title: str, preset: Preset, man: dict[str, Any], sweep_dir: Path, counts: dict[str, int],
          results: dict[str, ClaimResult], figs: dict[str, Path], problems: list[str], df: pd.DataFrame) -> str:
    base = man.get("base", {})
    m, t, tr = base.get("model", {}), base.get("target", {}), base.get("training", {})
    timing = man.get("timing", {})
    summary = "".join(
        f'<tr><td><a href="#claim-{c.id}">{c.id}</a></td><td>{_e(c.title)}</td>'
        f'<td class="v-{results[c.id].verdict.replace(" ", "-")}">{_e(results[c.id].verdict)}</td>'
        f'<td class="rule">{_e(results[c.id].reason)}</td></tr>'
        for c in CLAIMS if c.id in results)
    tally = ", ".join(f"{sum(r.verdict == v for r in results.values())} {v}"
                      for v in ("reproduced", "not reproduced", "inconclusive"))
    rules = "".join(f"<tr><td><code>{_e(k)}</code></td><td>{_e(v)}</td></tr>"
                    for k, v in preset.rules.model_dump().items())
    status = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    sections = "".join(_section(c, results[c.id], figs) for c in CLAIMS if c.id in results)
    probs = "".join(f"<li>{_e(p)}</li>" for p in problems)
    secs = pd.to_numeric(df.drop_duplicates("trial_id").get("seconds"), errors="coerce").sum() \
        if "seconds" in df else float("nan")
    return f"""
<h1>{_e(title)}</h1>
<p>Schaeffer, Khona &amp; Fiete, <em>No Free Lunch from Deep Learning in Neuroscience</em> (NeurIPS 2022), its claims
R1&ndash;R7 and P, and two checks from the rebuttal of Sorscher et al. (2022), B1 and B2. Published numbers are from
SCIENCE.md section 1; every verdict below is computed from the numbers stored in
<code>{_e(sweep_dir)}</code> by the rule printed under it.</p>
<div class="scale" id="scale"><strong>Scale of this run: preset <code>{_e(preset.name)}</code>.</strong>
{_e(preset.scale)}<br>
Base config <code>{_e(preset.base)}</code>: {_e(m.get('cell'))} / {_e(m.get('activation'))}, Ng = {_e(m.get('hidden_size'))},
Np = {_e(t.get('n_cells'))}, sigma_E = {_e(t.get('sigma'))} m, {_e(tr.get('n_steps'))} steps, learning rate
{_e(tr.get('learning_rate'))}{_e(_schedule(tr))}. Trials: {_e(status)}; compute {_fmt(secs / 60 if secs == secs else float('nan'))}
trial-minutes{(', wall time ' + _fmt(timing.get('wall_seconds', float('nan')) / 60) + ' min') if timing else ''}.
{_e(preset.description)}
Verdicts at this scale are about these networks; "inconclusive" means the rule could not decide with the runs
available, and says why.</div>
<h2>Summary</h2>
<p>{_e(tally)}.</p>
<table id="summary"><tr><th>claim</th><th></th><th>verdict</th><th>because</th></tr>{summary}</table>
{f'<h3>Problems</h3><ul class="problems">{probs}</ul>' if probs else ''}
{sections}
<h2 id="appendix">Appendix</h2>
<h3>Conditions</h3>
{_conditions_table(df)}
<h3>Verdict-rule parameters</h3>
<table>{rules}</table>
<p class="rule">Definitions: a run path-integrates when its held-out decoding error is below
low_error_cm; it has grid units when {_e(grid_label(preset.rules))} (deepmind min-max variant, rate maps without
smoothing; NFL's rule is one unit above grid_threshold, and a preset sets grid_min_fraction where an untrained
network's best unit already passes it). Intervals are percentile bootstrap intervals over seeds ({preset.rules.n_boot}
resamples, seed {preset.rules.bootstrap_seed}). Tables: <code>tables/*.csv</code>; machine-readable verdicts:
<code>results.json</code>.</p>
"""
