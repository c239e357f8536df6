"""``gridsweep sweep``: run, inspect and export sweeps.

    gridsweep sweep run SPEC [--out DIR] [--executor local|ray] [--workers N] [--max-trials K]
                             [--ensemble-size E] [--address ADDR] [--gpus-per-trial F]
                             [--device cpu|cuda] [--analysis auto|score_run|scores|weight_stats|none|mod:fn]
    gridsweep sweep status DIR
    gridsweep sweep export DIR --to results.parquet|results.csv
    gridsweep sweep expand SPEC [--trials N]   # validate and count, run nothing
    gridsweep sweep rescore DIR [--analysis scores] [--trial ID ...]   # re-analyse, no retraining

Exit codes (see :mod:`gridsweep.cli`): 0 success, 2 invalid spec, arguments or paths
(one line ``error: ...`` on stderr), 1 a runtime failure, 130 interrupted (Ctrl-C; resume
by running the same command again). ``sweep run`` refuses to run a different spec into
an existing sweep directory unless ``--merge`` is given, and refuses an ``--out`` that
is a run directory or a file.

Output: results (tables, counts, the path written) go to stdout; progress and notes go
to the ``gridsweep.sweeps.cli`` logger (stderr; ``gridsweep -q`` silences them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from gridsweep.cli import EdgeGroup, check_out_dir
from gridsweep.errors import ConfigError

__all__ = ["app", "main"]

log = logging.getLogger(__name__)

app = typer.Typer(cls=EdgeGroup, help="Sweeps of many networks: run (resumable), status, export.",
                  no_args_is_help=True, add_completion=False)


def _load_spec(spec: Path):
    """:func:`gridsweep.sweeps.spec.load_spec`, with YAML and encoding errors naming the file."""
    import yaml

    from gridsweep.errors import format_yaml_error
    from gridsweep.sweeps.spec import load_spec

    try:
        return load_spec(spec)
    except UnicodeDecodeError:
        raise ConfigError(f"{spec}: not a YAML text file (not UTF-8)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{spec}: not valid YAML: {format_yaml_error(err)}") from None


def _check_sweep_out(out: Path, spec_text: str, merge: bool) -> None:
    """Refuse an ``--out`` that is a file or a run directory, or holds a sweep of a different spec."""
    import yaml

    check_out_dir(out, "--out", "sweep directory")
    if (out / "config.yaml").is_file() or (out / "checkpoints").is_dir():
        raise ConfigError(f"--out {out}: is a run directory (config.yaml/checkpoints), not a sweep directory; "
                          "choose another --out")
    old = out / "spec.yaml"
    if merge or not old.is_file():
        return
    try:
        same = yaml.safe_load(old.read_text()) == yaml.safe_load(spec_text)
    except yaml.YAMLError:
        same = False
    if not same:
        raise ConfigError(f"--out {out}: holds a sweep of a different spec ({old} differs); give --merge to add "
                          "this spec's trials to it, or choose another --out")


def _check_run_options(executor: str, device: str, max_trials: int | None, ensemble_size: int | None) -> None:
    """The option checks of :func:`gridsweep.sweeps.runner.run_sweep`, made before the command logs anything."""
    if executor not in ("local", "ray", "serial"):
        raise ConfigError(f"--executor {executor!r}: expected local, ray or serial")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"--device {device!r}: expected cpu or cuda")
    if max_trials is not None and max_trials < 0:
        raise ConfigError(f"--max-trials must be >= 0 (got {max_trials})")
    if ensemble_size is not None and ensemble_size < 1:
        raise ConfigError(f"--ensemble-size must be >= 1 (got {ensemble_size})")


@app.command()
def run(
    spec: Path = typer.Argument(..., help="sweep spec YAML (gridsweep or W&B format)"),
    out: Optional[Path] = typer.Option(None, "--out", help="sweep directory (default sweeps_out/<name>)"),
    executor: str = typer.Option("local", "--executor", help="local | ray | serial"),
    workers: Optional[int] = typer.Option(None, "--workers", help="concurrent tasks (default: number of cores; "
                                          "0 = run in this process)"),
    max_trials: Optional[int] = typer.Option(None, "--max-trials", help="run at most K pending trials now "
                                             "(a W&B random search without run_cap: draw and run K more)"),
    ensemble_size: Optional[int] = typer.Option(None, "--ensemble-size",
                                                help="networks per ensemble (default: from a memory estimate)"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)"),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial",
                                                   help="GPU share per Ray task, e.g. 0.25"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
    analysis: str = typer.Option("auto", "--analysis",
                                 help="auto | score_run | scores | weight_stats | none | package.module:function"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="re-queue failed trials"),
    threads: Optional[int] = typer.Option(None, "--threads",
                                          help="torch threads per worker (default: cores / workers)"),
    memory_fraction: float = typer.Option(0.25, "--memory-fraction",
                                          help="share of available memory for ensembles (automatic sizing)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    merge: bool = typer.Option(False, "--merge", help="allow a different spec into an existing sweep directory "
                               "(its trials are added to the store)"),
) -> None:
    """Run SPEC, or resume it where it stopped."""
    from gridsweep.sweeps.runner import run_sweep

    from gridsweep.sweeps.runner import default_out_dir

    if gpus_per_trial is not None and gpus_per_trial <= 0:
        raise ConfigError(f"--gpus-per-trial {gpus_per_trial}: must be > 0")
    if gpus_per_trial and device == "cpu":
        device = "cuda"
    _check_run_options(executor, device, max_trials, ensemble_size)  # before anything is logged
    sp = _load_spec(spec)
    if sp.needs_count and max_trials is None:
        raise ConfigError(f"{spec}: a W&B random search without run_cap runs until stopped; start it with "
                          "--max-trials N (each run draws and trains N more trials)")
    _check_sweep_out(out if out is not None else default_out_dir(sp), sp.text or "", merge)
    if sp.needs_count:
        log.info("sweep %s: random search without run_cap from %s: drawing %s more trial(s) (random_seed %s)",
                 sp.name, spec, max_trials, sp.random_seed)
    else:
        log.info("sweep %s: %s trials from %s%s", sp.name, sp.size, spec,
                 f" ({sp.skipped_summary()})" if sp.skipped else "")
    rep = run_sweep(sp, out, executor=executor, workers=workers, max_trials=max_trials,
                    ensemble_size=ensemble_size, address=address, gpus_per_trial=gpus_per_trial, device=device,
                    analysis=analysis, retry_failed=retry_failed, memory_fraction=memory_fraction, threads=threads,
                    progress=progress, log=log.info)
    c = rep.counts
    typer.echo(f"{rep.out_dir}: ran {rep.n_recorded} trial(s) in {rep.n_tasks} task(s) on {rep.executor} "
               f"in {rep.seconds:.1f} s; done {c['done']}, diverged {c['diverged']}, failed {c['failed']}, "
               f"pending {c['pending']}")
    if rep.interrupted:
        from gridsweep.cli import resume_command

        typer.echo(f"interrupted: running trials were re-queued (status pending); resume with: {resume_command()}",
                   err=True)
        raise typer.Exit(130)


@app.command()
def status(
    sweep_dir: Path = typer.Argument(..., help="sweep directory"),
    top: int = typer.Option(10, "--top", help="rows in the best-trials tables"),
) -> None:
    """Counts by status, ETA and the best trials."""
    import pandas as pd

    from gridsweep.sweeps.results import format_eta, sweep_status

    info = sweep_status(sweep_dir, top=top)
    c = info["counts"]
    typer.echo(f"sweep {info['name']} ({sweep_dir}): {info['total']} trials")
    typer.echo("  " + "  ".join(f"{k} {v}" for k, v in c.items()))
    mean = info["mean_trial_seconds"]
    typer.echo(f"  mean trial time {mean:.2f} s" if mean is not None else "  mean trial time: no trial finished yet")
    typer.echo(f"  ETA {format_eta(info['eta_seconds'])} (at {info['workers']} worker(s))")
    with pd.option_context("display.width", 160, "display.max_columns", 12, "display.precision", 4):
        if info["best_by_error"] is not None:
            typer.echo("\nbest trials by decoding error (cm):")
            typer.echo(info["best_by_error"].to_string(index=False))
        if info["best_by_score"] is not None:
            typer.echo(f"\nbest trials by {info['score_col']}:")
            typer.echo(info["best_by_score"].to_string(index=False))


@app.command()
def export(
    sweep_dir: Path = typer.Argument(..., help="sweep directory"),
    to: Path = typer.Option(..., "--to", help="results.parquet or results.csv"),
) -> None:
    """One row per trial: flattened config (dotted names) + metrics."""
    from gridsweep.sweeps.results import export_results

    check_out_dir(to.parent, "--to", "directory")
    path = export_results(sweep_dir, to)
    typer.echo(f"wrote {path}")


@app.command()
def rescore(
    sweep_dir: Path = typer.Argument(..., help="sweep directory"),
    analysis: str = typer.Option("scores", "--analysis",
                                 help="scores | score_run | weight_stats | package.module:function"),
    trial: Optional[list[str]] = typer.Option(None, "--trial", help="only this trial id (repeatable)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Re-run the analysis on finished trials from their checkpoints and update their metrics."""
    from gridsweep.sweeps.rescore import rescore as _rescore

    out = _rescore(sweep_dir, analysis, ids=trial or None, progress=progress)
    typer.echo(f"{sweep_dir}: rescored {len(out['rescored'])} trial(s); {len(out['metrics'])} metric(s) updated")


@app.command()
def expand(
    spec: Path = typer.Argument(..., help="sweep spec YAML"),
    show: int = typer.Option(5, "--show", help="print the first N trials"),
    n_trials: Optional[int] = typer.Option(None, "--trials", help="W&B random search: draw N trials "
                                           "(required without run_cap, which runs until stopped)"),
) -> None:
    """Validate SPEC and count its trials and ensemble groups; runs nothing."""
    from gridsweep.sweeps.planning import group_key

    sp = _load_spec(spec)
    if n_trials is not None:
        sp = sp.with_trials(n_trials)
    elif sp.needs_count:
        typer.echo(f"sweep {sp.name}: random search without run_cap (runs until stopped, as in W&B); "
                   f"the file is valid; give --trials N to draw N trials (random_seed {sp.random_seed})")
        return
    trials = sp.expand()
    groups = {group_key(t.config) for t in trials}
    typer.echo(f"sweep {sp.name}: {len(trials)} trials in {len(groups)} ensemble group(s)")
    if sp.n_duplicates:
        typer.echo(f"  {sp.n_duplicates} point(s) merged: they resolve to the config of an earlier trial")
    if sp.skipped:
        typer.echo(f"  {sp.skipped_summary()}")
    for t in trials[:show]:
        typer.echo(f"  {t.trial_id}  " + ", ".join(f"{k}={v}" for k, v in t.params.items()))


def main() -> None:  # pragma: no cover - `python -m gridsweep.sweeps`
    from gridsweep.cli import run_subapp

    raise SystemExit(run_subapp(app, "gridsweep sweep"))
