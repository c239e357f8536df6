"""The ``gridsweep`` command.

Subcommands: ``train``, ``score``, ``demo``, ``config``, plus the sub-apps contributed
by subsystems (``sweep``, ``theory``, ``neural``, ...). Errors that come from bad input
exit with status 2 and one line naming the field.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from gridsweep.errors import GridsweepError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train, sweep, measure and theorise path-integrating RNNs and their grid cells.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect and validate run configs.")
app.add_typer(config_app, name="config")

PRESET_DIR = Path(__file__).parent / "configs"


def resolve_config_path(name: str) -> Path:
    """A config path, or the name of a preset shipped in ``gridsweep/configs``."""
    p = Path(name)
    if p.exists():
        return p
    for cand in (PRESET_DIR / name, PRESET_DIR / f"{name}.yaml"):
        if cand.exists():
            return cand
    presets = sorted(q.stem for q in PRESET_DIR.glob("*.yaml"))
    raise GridsweepError(f"config {name!r} is neither a file nor a preset; presets: {', '.join(presets)}")


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@app.command()
def train(
    config: str = typer.Argument(..., help="YAML config file or preset name (e.g. sorscher_ideal)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="override, e.g. --set model.hidden_size=256"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<name>-<hash>)"),
    device: str = typer.Option("cpu", help="torch device: cpu, cuda, cuda:1, ..."),
    score: bool = typer.Option(True, help="score the run (rate maps, grid scores) when training ends"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train one network and write its run directory."""
    from gridsweep.config import load_config
    from gridsweep.training import train as train_fn

    try:
        cfg = load_config(resolve_config_path(config), set_ or [])
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise GridsweepError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        run_dir = out or Path("runs") / f"{cfg.name}-{cfg.hash()}"
        ens, res = train_fn(cfg, run_dir, device=device, progress=progress)
        typer.echo(f"{res.status} after {res.step} steps; decoding error {res.metrics['decoding_error_cm']:.1f} cm")
        if score and res.status == "done":
            from gridsweep.evaluation import score_run

            m = score_run(run_dir, ens)
            typer.echo(f"max grid score (deepmind_minmax) {m['max_score60_deepmind_minmax']:.2f}; "
                       f"{100 * m['frac_units_above_0.3']:.0f}% of units above 0.3")
        typer.echo(f"run directory: {run_dir}")
    except GridsweepError as err:
        _fail(err)


@app.command()
def score(
    run_dir: Path = typer.Argument(..., help="a run directory written by `gridsweep train`"),
    samples: Optional[int] = typer.Option(None, help="positions sampled for rate maps"),
    bins: Optional[int] = typer.Option(None, help="bins per side"),
) -> None:
    """Evaluate a trained run: decoding error, rate maps, grid scores, spacing; writes analysis/."""
    from gridsweep.evaluation import score_run

    try:
        if not (run_dir / "config.yaml").exists():
            raise GridsweepError(f"{run_dir}: not a run directory (no config.yaml)")
        m = score_run(run_dir, n_samples=samples, bins=bins)
    except GridsweepError as err:
        _fail(err)
    for k, v in m.items():
        typer.echo(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")
    typer.echo(f"analysis written to {run_dir / 'analysis'}")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="run directory")) -> None:
    """Train the small demo network on the CPU and print its run directory."""
    train(config="demo_small", set_=[], out=out, device="cpu", score=True, progress=True)


@config_app.command("show")
def config_show(config: str, set_: Optional[List[str]] = typer.Option(None, "--set")) -> None:
    """Print the full resolved config (every default filled in)."""
    from gridsweep.config import load_config

    try:
        cfg = load_config(resolve_config_path(config), set_ or [])
    except GridsweepError as err:
        _fail(err)
    typer.echo(cfg.to_yaml(), nl=False)


@config_app.command("presets")
def config_presets() -> None:
    """List the presets shipped with gridsweep."""
    for p in sorted(PRESET_DIR.glob("*.yaml")):
        first = next((ln[2:].strip() for ln in p.read_text().splitlines() if ln.startswith("# ")), "")
        typer.echo(f"{p.stem:20s} {first}")


def _register_subapps() -> None:
    """Attach the sub-apps of the subsystems that provide one."""
    import importlib

    for name, module in (("sweep", "gridsweep.sweeps.cli"), ("theory", "gridsweep.theory.cli"),
                         ("neural", "gridsweep.neural.cli")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("gridsweep"):
                continue
            raise
        app.add_typer(mod.app, name=name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None)


_register_subapps()

from gridsweep.reproduce.cli import register as _register_reproduce  # noqa: E402

_register_reproduce(app)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except GridsweepError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
