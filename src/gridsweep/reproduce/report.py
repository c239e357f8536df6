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
from gridsweep.reproduce.claims import CLAIMS, Claim, PaperNumber, published_claims
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
from gridsweep.reproduce.verdicts import (
    COMMON_RULE,
    PROTOCOL_CLAIMS,
    PROTOCOL_LABELS,
    RULE_TEXT,
    RULES,
    SCORE_COL,
    SPACING_COL,
    ClaimResult,
    Measured,
    evaluate_all,
    fragility,
    grid_label,
    has_protocol,
    prepare_runs,
)

__all__ = ["build_report", "Report", "FIGURES_OF"]

#: Which figures each claim's section shows.
FIGURES_OF = {
    "R1": ["fractions"], "R2": ["survival", "top_ratemaps"], "R3": ["periods"], "R4": ["theory"],
    "R5": ["pct_vs_sigma"], "R6": ["multifield"], "R7": ["dog"], "B1": ["dog"], "B2": ["multifield"],
    "P": ["predictivity"],
}
CAPTIONS = {
    "summary": "Every claim: the published number (black diamond) against this run (dot, 95% interval), one panel "
               "per claim, titled with the verdict. Quantities without a published number show this run only.",
    "fractions": "Fraction of runs with low decoding error and, among those, with grid units (criterion in the "
                 "legend), per target kind. Error bars: 95% Wilson intervals over networks; diamonds: NeurIPS Fig. 2; "
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


def _paper_text(nums: list[PaperNumber]) -> str:
    return "; ".join(f"{_num(n.value)}{(' ' + n.unit) if n.unit else ''}" for n in nums)


def _agrees(nums: list[PaperNumber], m: Measured | None) -> str:
    """Whether the published number lies in this run's interval: 'yes', 'no', or why it cannot be told."""
    if not nums or m is None:
        return "-"
    vals = [n.number for n in nums]
    nums_f = [v for v in vals if v is not None]
    e = m.estimate
    if len(nums_f) < len(vals) or e is None:
        return "not comparable"
    if not e.defined or not e.has_interval:
        return "cannot tell (no interval)"
    inside = [e.lo <= v <= e.hi for v in nums_f]
    return "yes" if all(inside) else "no"


def comparison_rows(claim: Claim, res: ClaimResult) -> list[dict[str, Any]]:
    """One row per quantity: the published number(s) and this run's estimate under one label.

    Published numbers and measurements are joined on their ``key``; a published number
    without a measurement, or a measurement without a published number, is a row with
    one side empty.
    """
    by_key: dict[str, list[PaperNumber]] = {}
    for n in claim.numbers:
        if n.key:
            by_key.setdefault(n.key, []).append(n)
    rows, used = [], set()
    meas_by_key = {m.key: m for m in res.measured if m.key}
    for n in claim.numbers:
        if n.key and n.key in used:
            continue
        nums = by_key.get(n.key, [n]) if n.key else [n]
        m = meas_by_key.get(n.key) if n.key else None
        used.add(n.key)
        rows.append({"key": n.key, "label": m.label if m is not None else n.label, "paper": _paper_text(nums),
                     "source": "; ".join(dict.fromkeys(x.source for x in nums)),
                     "paper_label": " / ".join(x.label for x in nums),
                     "run": m.text() if m is not None else ("not measured in this run" if n.key else "-"),
                     "agrees": _agrees(nums, m), "measured": m, "paper_numbers": nums})
    for m in res.measured:
        if m.key and m.key in used:
            continue
        rows.append({"key": m.key, "label": m.label, "paper": "not reported", "source": "", "paper_label": "",
                     "run": m.text(), "agrees": "-", "measured": m, "paper_numbers": []})
    return rows


def _rule_params(cid: str, rules: Any) -> str:
    keys = ["min_networks", "min_runs", "low_error_cm", "grid_threshold", "grid_min_fraction", "ci",
            "min_boot_seeds"]
    keys += {"R3": ["min_units", "multimodality_alpha", "mode_ratio_max"], "R4": ["spacing_ratio_band"],
             "R5": ["unit_threshold"], "R6": ["pi_tolerance_cm"], "P": ["p_margin"]}.get(cid, [])
    d = rules.model_dump()
    return ", ".join(f"{k} = {d[k]}" for k in keys if k in d)


def _robust_html(res: ClaimResult) -> str:
    rob = res.robustness
    if not rob:
        return ""
    cls = "robust" if rob.get("robust") else "fragile"
    word, _, rest = rob["text"].partition(": ")
    return f'<p class="{cls}"><strong>{_e(word.capitalize())}:</strong> {_e(rest or word)}</p>'


def _protocol_block(res: ClaimResult, alt: ClaimResult | None) -> str:
    """The verdict under both scoring protocols side by side, each with its untrained null."""
    if alt is None:
        return ""
    cols = []
    for r in (res, alt):
        rows = "".join(f"<tr><td>{_e(m.label)}</td><td>{_e(m.text())}</td></tr>" for m in r.measured
                       if m.estimate is not None and (m.key.startswith(("p_grid", "null", "pct:", "p_anyunit"))))
        cols.append(f'<div class="protocol" data-protocol="{r.protocol}"><h4>{_e(PROTOCOL_LABELS[r.protocol])}</h4>'
                    f'<p class="v-{r.verdict.replace(" ", "-")}"><strong>{_e(r.display)}</strong>: {_e(r.reason)}</p>'
                    f"{_robust_html(r)}<table>{rows}</table></div>")
    return f'<h3>Both scoring protocols</h3><div class="protocols">{"".join(cols)}</div>'


def _section(claim: Claim, res: ClaimResult, figs: dict[str, Path], rules: Any = None,
             alt: ClaimResult | None = None) -> str:
    vcls = "v-" + res.verdict.replace(" ", "-")
    rows = "".join(
        f'<tr data-key="{_e(r["key"])}"><td>{_e(r["label"])}</td>'
        f'<td>{_e(r["paper"])}{(" <span class=src>(" + _e(r["source"]) + ")</span>") if r["source"] else ""}</td>'
        f'<td>{_e(r["run"])}</td><td class="agree-{_e(r["agrees"].split(" ")[0])}">{_e(r["agrees"])}</td></tr>'
        for r in comparison_rows(claim, res)) or '<tr><td colspan="4">nothing measured (see the verdict)</td></tr>'
    fig_html = ""
    for name in FIGURES_OF.get(claim.id, []):
        if name in figs:
            fig_html += (f'<figure data-figure="{name}">{_img(figs[name], name)}'
                         f"<figcaption>{_e(CAPTIONS.get(name, ''))} "
                         f'(<a href="figures/{name}.pdf">PDF</a>)</figcaption></figure>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in res.notes)
    side = "rebuttal (Sorscher et al. 2022)" if claim.side == "rebuttal" else "No Free Lunch (Schaeffer et al. 2022)"
    params = f" Parameters: {_e(_rule_params(claim.id, rules))}." if rules is not None else ""
    return f"""
<section id="claim-{claim.id}" class="claim" data-claim="{claim.id}" data-verdict="{_e(res.verdict)}">
<h2>{claim.id}. {_e(claim.title)}</h2>
<p><em>{_e(side)}.</em> {_e(claim.statement)}</p>
<p class="verdict {vcls}"><strong>Verdict: {_e(res.display)}.</strong> {_e(res.reason[:1].upper() + res.reason[1:])}</p>
{_robust_html(res)}
<table class="comparison"><tr><th>quantity</th><th>paper (source)</th><th>this run [95% interval]</th>
<th>agrees?</th></tr>{rows}</table>
{_protocol_block(res, alt)}
<details class="rule"><summary>Rule</summary><p>{_e(res.rule or RULE_TEXT.get(claim.id, ''))} {_e(COMMON_RULE)}{params}</p>
</details>
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
    # the grid-unit claims under NFL's scoring protocol too, when the runs were scored under it
    alt: dict[str, ClaimResult] = {}
    if has_protocol(runs, "nfl"):
        say("report: verdicts under NFL's scoring protocol")
        alt = evaluate_all(runs, rules, "nfl", claims=PROTOCOL_CLAIMS, modules=spacing, predictivity=pred,
                           untrained=untrained)
    # fragility: each verdict with any one seed left out and the cuts moved by +-10%
    say("report: fragility (seeds left out, cuts moved)")

    def _modules(d: pd.DataFrame) -> pd.DataFrame:
        return spacing_table(d, units)[0]

    extra = {"modules": spacing, "predictivity": pred, "untrained": untrained}
    for proto, res in (("deepmind", results_by_claim), ("nfl", alt)):
        if not res:
            continue
        try:
            rob = fragility(runs if proto == "nfl" else df, rules, res, protocol=proto, modules_fn=_modules, **extra)
        except Exception as err:  # noqa: BLE001 - a failed check must not hide the verdicts; say so
            problems.append(f"fragility check ({proto}) failed: {type(err).__name__}: {err}")
            continue
        for cid, r in res.items():
            r.robustness = rob.get(cid)
    claims = published_claims()
    # figures
    say("report: figures" if figures else "report: figures skipped")
    figs: dict[str, Path] = {}
    box = float((man.get("base", {}).get("box") or {}).get("width", 2.2))
    makers = {
        "summary": lambda: F.fig_summary(claims, results_by_claim, comparison_rows),
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
    record = reproducibility_record(runs, man)
    body = _page(title, preset, man, sweep_dir, counts, results_by_claim, figs, problems, df, claims=claims, alt=alt,
                 record=record)
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
        "claims": {cid: {**r.to_dict(),
                         "paper": [{"label": n.label, "key": n.key, "value": n.value, "source": n.source}
                                   for n in next(c for c in claims if c.id == cid).numbers],
                         "comparison": [{k: row[k] for k in ("key", "label", "paper", "source", "run", "agrees")}
                                        for row in comparison_rows(next(c for c in claims if c.id == cid), r)],
                         **({"protocols": {"nfl": alt[cid].to_dict()}} if cid in alt else {})}
                   for cid, r in results_by_claim.items()},
        "conditions": condition_table(df),
        "reproducibility": record,
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
          results: dict[str, ClaimResult], figs: dict[str, Path], problems: list[str], df: pd.DataFrame,
          claims: tuple[Claim, ...] = CLAIMS, alt: dict[str, ClaimResult] | None = None,
          record: dict[str, Any] | None = None) -> str:
    alt = alt or {}
    base = man.get("base", {})
    m, t, tr = base.get("model", {}), base.get("target", {}), base.get("training", {})
    timing = man.get("timing", {})
    summary = "".join(
        f'<tr><td><a href="#claim-{c.id}">{c.id}</a></td><td>{_e(c.title)}</td>'
        f'<td class="v-{results[c.id].verdict.replace(" ", "-")}">{_e(results[c.id].display)}</td>'
        f'<td>{_e((results[c.id].robustness or {}).get("text", "not checked").split(":")[0])}</td>'
        f'<td>{_e(results[c.id].reason)}</td>'
        + ((f'<td class="v-{alt[c.id].verdict.replace(" ", "-")}">{_e(alt[c.id].display)}</td>'
            if c.id in alt else "<td>one protocol</td>") if alt else "")
        + "</tr>"
        for c in claims if c.id in results)
    tally = ", ".join(f"{sum(r.verdict == v for r in results.values())} {v}"
                      for v in ("reproduced", "not reproduced", "inconclusive"))
    rules = "".join(f"<tr><td><code>{_e(k)}</code></td><td>{_e(v)}</td></tr>"
                    for k, v in preset.rules.model_dump().items())
    status = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    sections = "".join(_section(c, results[c.id], figs, preset.rules, alt.get(c.id)) for c in claims
                       if c.id in results)
    summary_fig = (f'<figure data-figure="summary">{_img(figs["summary"], "summary")}<figcaption>'
                   f'{_e(CAPTIONS["summary"])}</figcaption></figure>') if "summary" in figs else ""
    rec = "".join(f"<tr><td>{_e(k)}</td><td>{_e(json.dumps(v) if isinstance(v, (dict, list)) else v)}</td></tr>"
                  for k, v in (record or {}).items())
    probs = "".join(f"<li>{_e(p)}</li>" for p in problems)
    secs = pd.to_numeric(df.drop_duplicates("trial_id").get("seconds"), errors="coerce").sum() \
        if "seconds" in df else float("nan")
    return f"""
<h1>{_e(title)}</h1>
<p>Schaeffer, Khona &amp; Fiete, <em>No Free Lunch from Deep Learning in Neuroscience</em> (NeurIPS 2022), its claims
R1&ndash;R7 and P, and two checks from the rebuttal of Sorscher et al. (2022), B1 and B2. Published numbers are from
docs/science.md section 1; every verdict below is computed from the numbers stored in
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
<table id="summary"><tr><th>claim</th><th></th><th>verdict</th><th>robust?</th><th>because</th>
{'<th>NFL protocol</th>' if alt else ''}</tr>{summary}</table>
{summary_fig}
{f'<h3>Problems</h3><ul class="problems">{probs}</ul>' if probs else ''}
{sections}
<h2 id="appendix">Appendix</h2>
<h3>Conditions</h3>
{_conditions_table(df)}
<h3>Verdict-rule parameters</h3>
<table>{rules}</table>
{glossary(preset.rules)}
<h3 id="reproducibility">Reproducibility record</h3>
<table>{rec}</table>
<p>Tables: <code>tables/*.csv</code>; machine-readable verdicts: <code>results.json</code>.</p>
"""


def glossary(rules: Any) -> str:
    """The terms the verdicts use, each defined once, with this preset's values."""
    crit = grid_label(rules)
    terms = [
        ("network", "one trained recurrent network (one trial of the sweep: one config and one seed)."),
        ("seed", "the random draw behind a network: initial weights, place-cell centres and trajectories."),
        ("low error", f"a network path-integrates (has low error) when its held-out decoding error is below "
                      f"{rules.low_error_cm:g} cm (NeurIPS: 10 cm; the ICML sweep used 15 cm). Diverged networks "
                      "count as not path-integrating."),
        ("grid score", "the rotational-symmetry score of a unit's rate-map autocorrelogram (DeepMind min-max "
                       "variant, NFL's), from -2 to 2; hexagonal patterns score high."),
        ("grid unit", f"a unit whose grid score exceeds {rules.grid_threshold:g}."),
        ("criterion (has grid units)", f"a network has grid units when {crit}. NFL's rule is one unit above 0.8; "
                                       "a preset sets a fraction of units where untrained networks already pass "
                                       "NFL's rule."),
        ("untrained null", "the same networks rebuilt at step 0 (same config and seed) and scored the same way: how "
                           "often the criterion holds without learning."),
        ("P(grid | low error)", "of the networks with low error, the fraction that have grid units."),
        ("95% interval", f"for fractions of networks: the Wilson score interval; otherwise a bootstrap over seeds "
                         f"when there are at least {rules.min_boot_seeds} seeds, else an interval over networks "
                         "(t, least squares, order statistics or Fisher z) or none. 'no interval' is printed "
                         "rather than a zero-width interval."),
        ("separated", "two intervals that do not overlap."),
        ("gives grids", "the interval of P(grid | low error) lies above 0."),
        ("too few networks", f"a verdict other than inconclusive needs at least {rules.min_networks} networks in "
                             "every compared condition."),
        ("robust / fragile", "a verdict is robust when it stays the same with any one seed left out and with the "
                             "error and grid cuts moved by 10% each way; otherwise fragile, with the change that "
                             "flips it."),
        ("agrees?", "'yes' when the published number lies inside this run's 95% interval, 'no' when outside; "
                    "'not comparable' for descriptions and formulas."),
        ("scoring protocol", "how a network's grid scores are computed: the default summary (DeepMind scorer on "
                             "unsmoothed rate maps) or NFL's protocol (columns prefixed nfl_), shown side by side "
                             "when the runs carry both."),
    ]
    items = "".join(f'<dt id="term-{_e(k.split(" ")[0])}">{_e(k)}</dt><dd>{_e(v)}</dd>' for k, v in terms)
    return f'<h3 id="glossary">Glossary</h3><dl class="glossary">{items}</dl>'


def condition_table(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (group, condition, seed): decoding error, best unit's score, fraction of units > 0.8, period."""
    rows = []
    sub = df[df["status"].isin(["done", "diverged"])]
    for (g, c, seed), d in sub.groupby(["group", "condition", "seed"], sort=False):
        extra = d["sigma"].iloc[0] if g == "sigma" else None
        for _, r in d.iterrows():
            rows.append({"group": g, "condition": c, "label": CONDITION_LABELS.get(c, c), "seed": int(seed),
                         "sigma": None if extra is None else float(r["sigma"]), "status": r["status"],
                         "decoding_error_cm": r.get("decoding_error_cm"), "max_score": r.get(SCORE_COL),
                         "frac_units_above_0.8": r.get("frac_units_above_0.8"), "period_m": r.get(SPACING_COL)})
    return rows


def reproducibility_record(runs: pd.DataFrame, man: dict[str, Any]) -> dict[str, Any]:
    """Commit, package versions, CPU/GPU, torch threads and ensemble sizes behind a report.

    ``trained_with`` is the record :func:`gridsweep.reproduce.run.reproduce` stored in the
    manifest when the networks were trained (absent for older sweeps).
    """
    from gridsweep.reproduce.run import environment_record

    rec = environment_record()
    if "ensemble_size" in runs:
        sizes = pd.to_numeric(runs.drop_duplicates("trial_id")["ensemble_size"], errors="coerce").dropna()
        rec["ensemble_sizes"] = {str(int(k)): int(v) for k, v in sizes.value_counts().sort_index().items()}
    else:
        rec["ensemble_sizes"] = "unknown"
    if man.get("environment"):
        rec["trained_with"] = man["environment"]
    return rec
