"""The docs' figure of a network trained in the square and measured in another arena.

Runs :func:`gridsweep.transfer.evaluate_in_arena` on a trained run (no training), saves
the figure (:func:`gridsweep.transfer.plot_transfer`) and prints the markdown that
docs/arenas.md quotes: the run, its training settings, the medians of both arenas and
the commit that made them. Nothing in the printed text is typed by hand.

    python scripts/transfer_figure.py RUN_DIR [--arena krupic_trapezoid] [--out docs/img/transfer_krupic_trapezoid.png]

RUN_DIR is any trained run directory, for example a DoS trial of the quick reproduction
(``sweeps_out/reproduce_quick/trials/<id>``: sigma 0.16 m, 6,000 steps, about 5 minutes
of training on one core).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--arena", default="krupic_trapezoid")
    ap.add_argument("--out", type=Path, default=None, help="figure path (default docs/img/transfer_<arena>.png)")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gridsweep.config import load_config
    from gridsweep.transfer import evaluate_in_arena, plot_transfer

    res = evaluate_in_arena(args.run_dir, args.arena)
    out = args.out or Path("docs/img") / f"transfer_{res.arena_name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, _ = plot_transfer(res)
    fig.savefig(out, dpi=90)
    plt.close(fig)

    cfg = load_config(args.run_dir / "config.yaml")
    s = res.summary
    score = "score60_deepmind_minmax"
    print(f"commit {_commit()}; run {args.run_dir.name}: {cfg.model.cell.upper()} Ng {cfg.model.hidden_size}, "
          f"{cfg.target.kind} sigma {cfg.target.sigma:g} m, Np {cfg.target.n_cells}, {cfg.training.n_steps} steps, "
          f"seed {cfg.seed}; trained in the {cfg.box.width:g} x {cfg.box.height:g} m square, tested in {res.arena_name} "
          f"({res.test_box.width:g} x {res.test_box.height:g} m bounding box); figure {out}")
    print(f"{'':28}{'training arena':>16}{res.arena_name:>18}")
    rows = [("decoding error (cm)", "decoding_error_cm_{}", ".1f"),
            ("median grid score", f"median_{score}_{{}}", ".2f"),
            ("units scoring > 0.3", "frac_units_above_0.3_{}", ".1%"),
            ("median spacing (m)", "median_spacing_m_{}", ".2f"),
            ("median orientation (deg)", "median_orientation_deg_{}", ".1f"),
            ("median ellipticity", "median_ellipticity_{}", ".2f")]
    for label, key, fmt in rows:
        print(f"{label:28}{format(s[key.format('train')], fmt):>16}{format(s[key.format('test')], fmt):>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
