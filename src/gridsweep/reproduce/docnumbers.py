"""Numbers in docs/reproduce.md are generated, never typed: marked blocks written from
the preset files and from a preset's ``results.json``.

A block is delimited by ``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END GENERATED: NAME -->``
lines; :func:`update_doc` replaces what lies between them and leaves the rest of the
file alone. Blocks:

``presets``        one row per preset, read from its YAML file and the spec it builds
``rules``          the verdict rules, verbatim from :mod:`gridsweep.reproduce.verdicts`
``results-NAME``   verdicts and per-network numbers from preset NAME's ``results.json``,
                   naming the commit that produced them (or a note saying how to make one)

``python scripts/doc_numbers.py [--results PATH] [--preset quick]`` runs it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gridsweep.errors import GridsweepError
from gridsweep.reproduce.presets import PRESET_NAMES, load_preset

__all__ = ["preset_rows", "rules_block", "results_block", "replace_block", "update_doc", "DocError"]


class DocError(GridsweepError):
    """A document without the marked block to regenerate."""


def _fmt_int(n: Any) -> str:
    return f"{int(n):,}"


def preset_rows(names: tuple[str, ...] = PRESET_NAMES) -> str:
    """A markdown table with one row per preset, every cell read from the preset (and its spec)."""
    from gridsweep.reproduce.run import build_spec

    head = ("| preset | base | network | training | trials | seeds | readout widths sigma (m) | multi-field cap "
            "| grid criterion | expected time |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in names:
        p = load_preset(name)
        _, mem, base, _ = build_spec(p)
        m, t, tr = base["model"], base["target"], base["training"]
        ms = tr.get("lr_milestones") or []
        sched = f", x{tr.get('lr_gamma', 0.1):g} at step {', '.join(_fmt_int(x) for x in ms)}" if ms else ""
        sig = p.groups.sigma.sigmas if p.groups.sigma.enabled else []
        ratios = p.groups.sigma.surround_width_ratios
        sig_txt = f"{len(sig)}: " + ", ".join(f"{x:g}" for x in sig) + (
            f" x surround ratios {', '.join(f'{r:g}' for r in ratios)}" if ratios else "")
        if not sig:  # no sigma sweep: every network has the base's width
            sig_txt = f"1: {t['sigma']:g} (no sigma sweep)"
        crit = ("max score > " + f"{p.rules.grid_threshold:g}" if p.rules.grid_min_fraction is None else
                f">= {100 * p.rules.grid_min_fraction:g}% of units > {p.rules.grid_threshold:g}")
        cap = p.groups.multifield.max_fields if p.groups.multifield.enabled else None
        rows.append(
            f"| `{name}` | `{p.base}` | {m['cell'].upper()} / {m['activation']}, Ng {m['hidden_size']}, "
            f"Np {t['n_cells']} | {_fmt_int(tr['n_steps'])} steps, {tr.get('optimizer', 'adam')} "
            f"{tr['learning_rate']:g}{sched} | {len({x['trial_id'] for x in mem})} | {_seed_counts(mem)} | "
            f"{sig_txt} | {cap if cap is not None else 'none'} | {crit} | "
            f"{f'{p.expected_minutes:g} min' if p.expected_minutes else 'not stated'} |")
    return head + "\n" + "\n".join(rows)


def _seed_counts(mem: list[dict[str, Any]]) -> str:
    """Seeds per condition of a preset's memberships: "5" or, when they differ, "2-5"."""
    per: dict[tuple[Any, ...], set[int]] = {}
    for x in mem:
        per.setdefault((x["group"], x["condition"], x.get("sigma"), x.get("surround_width_ratio"),
                        x.get("amplitude_ratio"), x.get("extra")), set()).add(int(x["seed"]))
    counts = sorted({len(v) for v in per.values()})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def rules_block() -> str:
    """Every rule as the code states it (docs/reproduce.md, "How verdicts are decided")."""
    from gridsweep.reproduce.claims import CLAIMS
    from gridsweep.reproduce.verdicts import COMMON_RULE, RULE_TEXT

    out = [COMMON_RULE, ""]
    for c in CLAIMS:
        out += [f"**{c.id} ({c.title}).**", RULE_TEXT[c.id], ""]
    return "\n".join(out).rstrip()


def _cell(v: Any, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and v != v) else format(v, fmt)


def results_block(results: dict[str, Any] | None, source: str = "", preset: str = "quick") -> str:
    """Verdicts, their robustness and the per-network numbers of one ``results.json``.

    Without results: a note saying how to generate them.
    """
    if not results:
        return (f"No `results.json` of the `{preset}` preset was found when this block was generated. Run\n"
                f"`gridsweep reproduce --preset {preset}` (it writes `sweeps_out/reproduce_{preset}/report/"
                f"results.json`), then `python scripts/doc_numbers.py --preset {preset}` to fill this block.")
    rec = results.get("reproducibility") or {}
    trained = rec.get("trained_with") or {}
    commit = trained.get("commit") or rec.get("commit") or "unknown"
    vers = trained.get("versions") or rec.get("versions") or {}
    lines = [f"Generated by `scripts/doc_numbers.py` from `{source}` (preset `{results.get('preset')}`, "
             f"report of {results.get('generated', '?')}); networks trained at commit `{commit}`"
             f"{', torch ' + str(vers.get('torch')) if vers.get('torch') else ''}"
             f"{', on ' + str(trained.get('cpu') or rec.get('cpu')) if (trained.get('cpu') or rec.get('cpu')) else ''}"
             f"{', loss path ' + str(trained.get('loss_path')) if trained.get('loss_path') else ''}.",
             "", "| claim | verdict | robust? | because |", "|---|---|---|---|"]
    for cid, c in results.get("claims", {}).items():
        rob = (c.get("robustness") or {}).get("text", "not checked")
        lines.append(f"| {cid} | {c.get('verdict_text', c['verdict'])} | {rob} | "
                     f"{c['reason'].replace('|', '/')} |")
    conds = results.get("conditions") or []
    if conds:
        lines += ["", "| group | condition | seed | error (cm) | best unit | units > 0.8 | period (m) |",
                  "|---|---|---|---|---|---|---|"]
        for r in conds:
            lab = r["label"] + (f", sigma {r['sigma']:g}" if r.get("sigma") is not None else "")
            frac = r.get("frac_units_above_0.8")
            lines.append(f"| {r['group']} | {lab} | {r['seed']} | {_cell(r.get('decoding_error_cm'), '.1f')} | "
                         f"{_cell(r.get('max_score'), '.2f')} | "
                         f"{'-' if frac is None else format(100 * frac, '.1f') + '%'} | "
                         f"{_cell(r.get('period_m'), '.2f')} |")
    return "\n".join(lines)


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the block ``name`` holding ``content``; :class:`DocError` without its markers."""
    begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pat.search(text):
        raise DocError(f"no block {name!r}: add the lines '{begin}' and '{end}' where it belongs")
    return pat.sub(lambda _: f"{begin}\n{content}\n{end}", text, count=1)


def update_doc(doc: str | Path, preset: str = "quick", results: str | Path | None = None) -> list[str]:
    """Regenerate the blocks of ``doc`` that it has; returns the names of the blocks written.

    ``results`` defaults to ``sweeps_out/reproduce_<preset>/report/results.json`` when it exists.
    """
    doc = Path(doc)
    text = doc.read_text()
    path = Path(results) if results is not None else Path("sweeps_out") / f"reproduce_{preset}" / "report" / \
        "results.json"
    data = json.loads(path.read_text()) if path.is_file() else None
    blocks = {"presets": preset_rows(), "rules": rules_block(),
              f"results-{preset}": results_block(data, str(path), preset)}
    written = []
    for name, content in blocks.items():
        if f"<!-- BEGIN GENERATED: {name} -->" in text:
            text = replace_block(text, name, content)
            written.append(name)
    doc.write_text(text)
    return written
