"""Make the documentation gallery (docs/gallery.md and docs/gallery/*.png) from real runs.

Nothing here is drawn by hand: the figures are the report figures of a reproduction run
(``SWEEP/report/figures/*.png``, written by ``gridsweep reproduce`` / ``gridsweep
report``) and rate maps of the trial with the highest grid score, drawn from its
``analysis/ratemaps.npz`` and ``analysis/units.parquet`` with
``gridsweep.analysis.plot_top_units``. Each caption states the preset, the commit and
the command that made the run.

Usage::

    python scripts/make_gallery.py                 # sweeps_out/reproduce_tiny (+ reproduce_quick if it has a report)
    python scripts/make_gallery.py --run-tiny      # first run `gridsweep reproduce --preset tiny` if no tiny run exists
    python scripts/make_gallery.py --sweep sweeps_out/reproduce_quick   # any reproduction sweep directory

``make docs`` runs it with ``--run-tiny`` (the tiny preset takes about 3-5 minutes on
2 CPU cores) before ``mkdocs build``. docs/gallery.md and docs/gallery/ are generated
(git ignores them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TINY = ROOT / "sweeps_out" / "reproduce_tiny"
DEFAULT_QUICK = ROOT / "sweeps_out" / "reproduce_quick"

# What each report figure shows (gridsweep.reproduce.figures); unknown names get a plain caption.
FIGURE_TEXT = {
    "summary": "Every claim at a glance: the measured quantity per group with its bootstrap interval over seeds.",
    "fractions": "Fraction of networks (and of units) with grid cells, per readout target kind (claims R1-R2).",
    "survival": "Survival curves of unit grid scores: the fraction of units above each score, per target kind.",
    "pct_vs_sigma": "Grid-cell prevalence against the place-cell width sigma (claim R4).",
    "periods": "Measured grid period against the place-cell width sigma, with the theory's prediction.",
    "theory": "Predicted against measured grid spacing per setting (docs/theory.md).",
    "dog": "Difference-of-Gaussians readouts: unit-integral (DoS) against equi-norm DoG (claim R7).",
    "multifield": "Homogeneous against heterogeneous multi-field place cells (claim R5).",
    "predictivity": "Neural predictivity of the networks against dimension-matched null models (claim P).",
    "top_ratemaps": "Rate maps of the top-scoring units of a low-error run, as the report shows them.",
}


def git_commit() -> str:
    """``git rev-parse --short HEAD`` of this checkout, ``+dirty`` when it has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def run_commit(sweep: Path) -> str:
    """The commit recorded by the run's report (results.json), else this checkout's."""
    res = sweep / "report" / "results.json"
    if res.is_file():
        try:
            data = json.loads(res.read_text())
        except ValueError:
            data = {}
        for key in ("environment", "env"):
            commit = (data.get(key) or {}).get("commit") if isinstance(data.get(key), dict) else None
            if commit and commit != "unknown":
                return str(commit)[:12]
    return git_commit()


def preset_of(sweep: Path) -> str:
    """The preset name recorded in SWEEP/reproduce/manifest.json (else the directory name)."""
    man = sweep / "reproduce" / "manifest.json"
    if man.is_file():
        try:
            return str(json.loads(man.read_text())["preset"]["name"])
        except (ValueError, KeyError, TypeError):
            pass
    return sweep.name.removeprefix("reproduce_")


def has_trials(sweep: Path) -> bool:
    return any(sweep.glob("trials/*/analysis/ratemaps.npz"))


def ensure_tiny(sweep: Path) -> None:
    """Run the tiny preset into ``sweep`` (resumes an unfinished one)."""
    cmd = [sys.executable, "-m", "gridsweep", "reproduce", "--preset", "tiny", "--out", str(sweep), "--no-progress"]
    print("make_gallery: running " + " ".join(cmd[2:]), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, check=False)  # a failing report still leaves figures to show


def best_trial(sweep: Path) -> tuple[Path, float] | None:
    """The finished trial with the highest max grid score (deepmind_minmax), from its summary.json."""
    best: tuple[Path, float] | None = None
    for summ in sorted(sweep.glob("trials/*/summary.json")):
        trial = summ.parent
        if not (trial / "analysis" / "ratemaps.npz").is_file():
            continue
        try:
            score = float(json.loads(summ.read_text()).get("max_score60_deepmind_minmax", float("nan")))
        except (ValueError, TypeError):
            continue
        if score == score and (best is None or score > best[1]):
            best = (trial, score)
    return best


def draw_ratemaps(trial: Path, out_png: Path, n: int = 8) -> str:
    """Top units of one trial (rate map + SAC); returns a one-line description of the trial."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import yaml

    from gridsweep.analysis import autocorrelogram, plot_top_units

    with np.load(trial / "analysis" / "ratemaps.npz") as z:
        maps, extent = z["maps"], tuple(float(v) for v in z["extent"])
    units = pd.read_parquet(trial / "analysis" / "units.parquet")
    scores = units["score60_deepmind_minmax"].to_numpy(float)
    spacing = units["spacing_m"].to_numpy(float) if "spacing_m" in units else None
    fig, _ = plot_top_units(maps, autocorrelogram(maps), scores, spacing, extent=extent, n=min(n, len(maps)), cols=4,
                            variant="deepmind_minmax")
    fig.savefig(out_png, dpi=90, bbox_inches="tight")
    plt.close(fig)
    cfg = yaml.safe_load((trial / "config.yaml").read_text())
    t, m = cfg.get("target", {}), cfg.get("model", {})
    return (f"trial `{trial.name}`: {m.get('cell')} with {m.get('hidden_size')} units, "
            f"{t.get('kind')} targets (Np {t.get('n_cells')}, sigma {t.get('sigma')} m), "
            f"{cfg.get('training', {}).get('n_steps')} training steps, seed {cfg.get('seed')}")


def transfer_section(sweep: Path, out_dir: Path, preset: str, commit: str) -> list[str]:
    """Figures of ``gridsweep evaluate TRIAL --arena A`` runs found in the sweep's trials (``TRIAL/transfer/A/``)."""
    lines: list[str] = []
    for fig in sorted(sweep.glob("trials/*/transfer/*/transfer.png")):
        trial, arena = fig.parents[2], fig.parent.name
        summary = fig.parent / "summary.json"
        extra = ""
        if summary.is_file():
            try:
                d = json.loads(summary.read_text())
                keys = [k for k in d if isinstance(d[k], (int, float)) and ("score" in k or "spacing" in k)][:6]
                extra = "; " + ", ".join(f"{k} {d[k]:.3g}" for k in keys) if keys else ""
            except (ValueError, TypeError):
                extra = ""
        dst = out_dir / f"{preset}_transfer_{trial.name}_{arena}.png"
        shutil.copyfile(fig, dst)
        try:
            shown = trial.resolve().relative_to(ROOT)
        except ValueError:
            shown = trial
        lines += [f"![transfer to {arena}, preset {preset}](gallery/{dst.name})", "",
                  f"*A network of preset `{preset}` (trial `{trial.name}`), trained in its square box and measured, "
                  f"without training, in the arena `{arena}`{extra}. Made by `gridsweep evaluate {shown} --arena {arena}` "
                  f"at commit `{commit}`.*", ""]
    return lines


def gallery_section(sweep: Path, out_dir: Path) -> list[str]:
    """Copy the report figures, draw the rate maps, return the markdown of one sweep's section."""
    preset = preset_of(sweep)
    commit = run_commit(sweep)
    try:
        shown = sweep.resolve().relative_to(ROOT)
    except ValueError:
        shown = sweep
    command = f"gridsweep reproduce --preset {preset} --out {shown}"
    stamp = f"Preset `{preset}`, commit `{commit}`, made by `{command}`"
    lines = [f"## Preset `{preset}`", ""]
    man = sweep / "reproduce" / "manifest.json"
    if man.is_file():
        try:
            scale = json.loads(man.read_text())["preset"].get("scale", "")
        except (ValueError, KeyError, TypeError):
            scale = ""
        if scale:
            lines += [f"Scale: {scale}", ""]
    if not (sweep / "report" / "report.html").is_file():
        lines += ["The report of this run was not written (`report.html` is missing); the figures below are "
                  "those it drew before stopping.", ""]
    best = best_trial(sweep)
    if best is not None:
        png = out_dir / f"{preset}_ratemaps.png"
        desc = draw_ratemaps(best[0], png)
        lines += [f"![rate maps, preset {preset}](gallery/{png.name})", "",
                  f"*Rate maps and spatial autocorrelograms of the 8 top-scoring units of the trial with the highest "
                  f"grid score (max deepmind_minmax {best[1]:.2f}); {desc}. Drawn by scripts/make_gallery.py from "
                  f"`analysis/ratemaps.npz`. {stamp}.*", ""]
    lines += transfer_section(sweep, out_dir, preset, commit)
    order = list(FIGURE_TEXT)
    figures = sorted((sweep / "report" / "figures").glob("*.png"),
                     key=lambda f: (order.index(f.stem) if f.stem in order else len(order), f.name))
    for fig in figures:
        dst = out_dir / f"{preset}_{fig.name}"
        shutil.copyfile(fig, dst)
        text = FIGURE_TEXT.get(fig.stem, f"Report figure `{fig.name}`.")
        lines += [f"![{fig.stem}, preset {preset}](gallery/{dst.name})", "",
                  f"*{text} From the run's report (`report/figures/{fig.name}`). {stamp}.*", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", type=Path, default=DEFAULT_TINY, help="the tiny run's sweep directory")
    ap.add_argument("--sweep", type=Path, action="append", default=[],
                    help="another reproduction sweep directory with a report (repeatable; default: "
                         "sweeps_out/reproduce_quick when it has one)")
    ap.add_argument("--run-tiny", action="store_true", help="run the tiny preset first when no tiny run exists")
    ap.add_argument("--only", action="store_true",
                    help="only the sweeps named by --tiny/--sweep (do not add sweeps_out/reproduce_quick by default)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs", help="the docs directory to write into")
    args = ap.parse_args(argv)

    if args.run_tiny and not (has_trials(args.tiny) and (args.tiny / "report" / "figures").is_dir()):
        ensure_tiny(args.tiny)
    sweeps = [s for s in [args.tiny, *args.sweep] if has_trials(s)]
    if not args.sweep and not args.only and (DEFAULT_QUICK / "report" / "report.html").is_file():
        sweeps.append(DEFAULT_QUICK)
    out_dir = args.docs / "gallery"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    lines = ["# Gallery", "",
             "Figures of real runs, made by `scripts/make_gallery.py` (`make docs` runs it): the report figures of "
             "a reproduction run and rate maps of its best trial. Each caption names the preset, the commit and "
             "the command. The `tiny` preset tests the machinery, not the science: its networks are too small and "
             "too short-trained to path-integrate or grow grid cells. See [reproduce](reproduce.md) and "
             "[the quick preset](quick-preset.md) for runs at which they do.", ""]
    if not sweeps:
        lines += ["No reproduction run was found. Make one with `gridsweep reproduce --preset tiny` "
                  "(a few minutes) or run `python scripts/make_gallery.py --run-tiny`.", ""]
    for s in sweeps:
        lines += gallery_section(s, out_dir)
    (args.docs / "gallery.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"make_gallery: {len(list(out_dir.glob('*.png')))} figures from {len(sweeps)} run(s) "
          f"into {args.docs / 'gallery.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
