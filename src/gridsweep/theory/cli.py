"""Theory: predict grid spacing from the readout spectrum, phase diagrams, pattern formation.

    gridsweep theory predict CONFIG_OR_RUN [--out DIR] [--runs DIR ...]

CONFIG_OR_RUN is a YAML config, a preset name, a run directory (its config.yaml) or a
sweep directory (trials/*/config.yaml). The prediction is printed; with --out, figures
are written: spectrum.png (image and radial profile), phase_diagram.png,
patterns_box.png and patterns_fourier.png (simulated maps with their SACs) and
prediction.json; with --runs (or a sweep directory), predicted_vs_measured.png and
comparison.csv.

Output: the prediction, the simulated patterns' scores and the comparison table go to
stdout; the files written and notes go to the ``gridsweep.theory.cli`` logger (stderr;
``gridsweep -q`` silences them).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer

from gridsweep.cli import EdgeGroup, check_out_dir
from gridsweep.errors import ConfigError

log = logging.getLogger(__name__)

app = typer.Typer(cls=EdgeGroup, no_args_is_help=True, add_completion=False,
                  help="Readout-covariance theory: predicted spacing, phase diagrams, pattern formation.")


@app.callback()
def _main() -> None:
    """Readout-covariance theory: predicted spacing, phase diagrams, pattern formation."""


def _resolve(arg: str) -> tuple[list[Any], list[Path]]:
    """(configs to predict, run directories found) for the positional argument."""
    from gridsweep.config import load_config
    from gridsweep.theory.compare import find_run_dirs

    p = Path(arg)
    if p.is_dir():
        runs = find_run_dirs([p])
        configs, seen = [], set()
        for r in runs:
            cfg = load_config(r / "config.yaml")
            key = json.dumps({"t": cfg.target.model_dump(mode="json"), "b": cfg.box.model_dump(mode="json")},
                             sort_keys=True)
            if key not in seen:
                seen.add(key)
                configs.append(cfg)
        return configs, (runs if not (p / "config.yaml").is_file() else [])
    return [load_config(arg)], []  # a file or a shipped preset name (gridsweep.presets)


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110)
    log.info("wrote %s", path)


def _figures(cfg: Any, pred: Any, out: Path, seed: int, n_units: int, simulate: bool) -> None:
    from gridsweep.theory.pattern import score_patterns, simulate_patterns
    from gridsweep.theory.phase import amplitude_phase_diagram, phase_diagram, plot_phase_diagram
    from gridsweep.theory.plots import plot_patterns, plot_spectrum

    fig, _ = plot_spectrum(pred.spectrum, pred)
    _save(fig, out / "spectrum.png")
    t = cfg.target
    if t.kind == "dog_general":
        conv = "width" if t.surround_width_ratio is not None else "variance"
        ratio = t.surround_width_ratio or t.surround_variance_ratio
        ys = np.linspace(1.1, 4.0, 30) if conv == "width" else np.linspace(1.2, 16.0, 38)
        pd = amplitude_phase_diagram(np.logspace(-1, 2.3, 45), ys, sigma_e=t.sigma, convention=conv, box=cfg.box)
        fig, _ = plot_phase_diagram(pd, mark=(t.alpha_e / t.alpha_i, ratio))
        _save(fig, out / "phase_diagram.png")
    elif t.kind in ("dos", "dog_equinorm", "sod", "gaussian"):
        conv = "variance" if t.surround_variance_ratio is not None else "width"
        ratio = t.surround_variance_ratio if conv == "variance" else t.surround_width_ratio
        ys = np.linspace(1.1, 4.0, 30) if conv == "width" else np.linspace(1.2, 16.0, 38)
        kind = t.kind if t.kind != "gaussian" else "dos"
        pd = phase_diagram(np.linspace(0.04, 0.40, 37), ys, kind=kind, convention=conv, box=cfg.box)
        fig, _ = plot_phase_diagram(pd, mark=(t.sigma, ratio) if ratio else None)
        _save(fig, out / "phase_diagram.png")
        if t.kind == "gaussian":
            log.info("gaussian targets have no surround: the phase diagram shows the dos family")
    else:
        log.info("no phase diagram for kind %r (no centre-surround parameters)", t.kind)
    if not simulate:
        return
    square = abs(cfg.box.width - cfg.box.height) < 1e-12
    runs = []
    if square:
        runs.append(("box", simulate_patterns(cfg, method="box", n_units=n_units, seed=seed)))
    fit = bool(pred.has_ring)
    runs.append(("fourier", simulate_patterns(pred.spectrum, method="fourier", n_units=n_units, seed=seed,
                                              fit_lattice=fit, domain_size=min(cfg.box.width, cfg.box.height))))
    for name, res in runs:
        sc = score_patterns(res)
        extra = " (torus fitted to the predicted lattice)" if name == "fourier" and fit else ""
        title = (f"pattern formation, {name}{extra}: {t.kind}, predicted spacing "
                 + ("none" if not math.isfinite(pred.spacing_m) else f"{100 * pred.spacing_m:.0f} cm"))
        fig, _ = plot_patterns(res, scores=sc["score60"], spacing_m=sc["spacing_m"], n=n_units, title=title)
        _save(fig, out / f"patterns_{name}.png")
        med = np.nanmedian(sc["score60"]) if np.isfinite(sc["score60"]).any() else math.nan
        sp = sc["spacing_m"][np.isfinite(sc["spacing_m"])]
        typer.echo(f"  simulated ({name}): median grid score {med:.2f}, median spacing "
                   f"{np.median(sp):.3f} m" if sp.size else f"  simulated ({name}): median grid score {med:.2f}, "
                   "no measurable spacing")


@app.command("predict")
def predict_cmd(
    config_or_run: str = typer.Argument(..., help="YAML config, preset name, run directory or sweep directory"),
    out: Optional[Path] = typer.Option(None, "--out", help="write figures and prediction.json here"),
    runs: Optional[List[Path]] = typer.Option(None, "--runs", help="trained run/sweep directories to compare "
                                              "(repeat the option for several)"),
    threshold: float = typer.Option(0.8, help="grid-score threshold (deepmind_minmax) for measured spacing"),
    simulate: bool = typer.Option(True, help="run the pattern-formation simulations (with --out)"),
    units: int = typer.Option(4, min=1, help="simulated units"),
    seed: int = typer.Option(0, help="seed of the simulated patterns' initial maps"),
    resolution: Optional[float] = typer.Option(None, show_default="automatic",
                                               help="grid step (m) for the numerical spectrum"),
) -> None:
    """Predict the grid spacing of a config's readout targets; optionally compare with trained runs."""
    from gridsweep.theory.compare import collect_runs, plot_predicted_vs_measured, summarise_by_sigma
    from gridsweep.theory.predict import predict

    if resolution is not None and not resolution > 0:
        raise ConfigError(f"--resolution {resolution}: must be a grid step > 0 (metres)")
    configs, found_runs = _resolve(config_or_run)
    if out is not None:
        check_out_dir(out)
        out.mkdir(parents=True, exist_ok=True)
    preds = []
    for i, cfg in enumerate(configs):
        p = predict(cfg, resolution=resolution)
        preds.append(p)
        if len(configs) > 1:
            typer.echo(f"[{i + 1}/{len(configs)}] {cfg.name}")
        typer.echo(p.summary())
    if out is not None and configs:
        if len(configs) > 1:
            log.info("figures for the first setting (%s)", configs[0].name)
        _figures(configs[0], preds[0], out, seed, units, simulate)
        payload = [dict(name=c.name, **p.to_dict()) for c, p in zip(configs, preds)]
        (out / "prediction.json").write_text(json.dumps(payload if len(payload) > 1 else payload[0],
                                                        indent=2, default=_json_default))
        log.info("wrote %s", out / "prediction.json")
    compare_paths = list(runs or []) or found_runs
    if compare_paths:
        table = collect_runs(compare_paths, threshold=threshold)
        if table.empty:
            log.warning("no scored runs (analysis/units.parquet) to compare with")
            return
        summary = summarise_by_sigma(table)
        typer.echo(f"\ntheory vs networks ({len(table)} runs; measured = median spacing of units with "
                   f"score60_deepmind_minmax > {threshold:g}):")
        typer.echo(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if out is not None:
            table.to_csv(out / "comparison.csv", index=False)
            log.info("wrote %s", out / "comparison.csv")
            fig, _ = plot_predicted_vs_measured(table, summary=summary)
            _save(fig, out / "predicted_vs_measured.png")


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)
