"""Reproduce the No Free Lunch claims and write the report.

Register the two commands on the main app with :func:`register`
(``register(app)`` is ``app.command("reproduce")(reproduce_cmd)`` and
``app.command("report")(report_cmd)``), so that ``gridsweep reproduce --preset quick``
and ``gridsweep report SWEEP_DIR`` are plain commands. (``app.add_typer`` would make
them groups that need a sub-subcommand.) :data:`reproduce_app` and :data:`report_app`
are single-command Typer apps for standalone use; ``python -m gridsweep.reproduce``
offers both as ``run`` and ``report`` (:data:`app`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from gridsweep.cli import EdgeCommand, EdgeGroup, check_device, check_out_dir

__all__ = ["app", "reproduce_app", "report_app", "register", "reproduce_cmd", "report_cmd"]

log = logging.getLogger(__name__)

reproduce_app = typer.Typer(add_completion=False, help="Run every sweep behind the NFL claims and write the report.")
report_app = typer.Typer(add_completion=False, help="Write the reproduction report of a sweep directory.")
app = typer.Typer(cls=EdgeGroup, add_completion=False, no_args_is_help=True, help=__doc__.strip().splitlines()[0])


def _say(msg: str) -> None:
    """Progress messages go to stderr (stdout carries only the report path)."""
    typer.echo(msg, err=True)


def reproduce_cmd(
    preset: str = typer.Option("quick", "--preset", help="tiny | quick | quick_seeds | full, or a preset YAML file"),
    executor: str = typer.Option("local", "--executor", help="local | ray | serial"),
    out: Optional[Path] = typer.Option(None, "--out", help="sweep directory (default sweeps_out/reproduce_<preset>)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, show_default="the number of cores",
                                          help="concurrent tasks"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (executor ray)"),
    gpus_per_trial: Optional[float] = typer.Option(None, "--gpus-per-trial", help="GPU share per Ray task"),
    max_trials: Optional[int] = typer.Option(None, "--max-trials", min=0, show_default="all",
                                             help="run at most this many trials now"),
    report: bool = typer.Option(True, help="write the report when every trial has finished"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Build the sweeps behind claims R1-R7, P and the rebuttal checks, run or resume them, write the report.

    Prints the path of the report (last line of stdout).
    """
    from gridsweep.reproduce.run import reproduce

    check_device(device)
    if out is not None:
        check_out_dir(out, "--out", "sweep directory")
    log.debug("reproduce preset %s into %s", preset, out)
    res = reproduce(preset, out, executor=executor, workers=workers, device=device, report=report,
                    address=address, gpus_per_trial=gpus_per_trial, max_trials=max_trials, progress=progress,
                    log=_say)
    if res.interrupted:
        from gridsweep.cli import resume_command

        _say(f"interrupted: unfinished trials are pending in {res.sweep_dir}; resume with: {resume_command()}")
        raise typer.Exit(code=130)
    for cid, v in res.verdicts.items():
        _say(f"  {cid:3s} {v}")
    if res.report_html is not None:
        typer.echo(str(res.report_html))
    else:
        typer.echo(str(res.sweep_dir))


def report_cmd(
    sweep_dir: Path = typer.Argument(..., help="a sweep directory written by `gridsweep reproduce`"),
    out: Optional[Path] = typer.Option(None, "--out", help="report directory (default SWEEP_DIR/report)"),
    predictivity: bool = typer.Option(True, help="compute claim P (the slowest step)"),
    figures: bool = typer.Option(True, help="draw the figures"),
) -> None:
    """Decide every claim from the stored numbers and write report.html, figures and results.json.

    Prints the path of the report (last line of stdout).
    """
    from gridsweep.reproduce.report import build_report

    if out is not None:
        check_out_dir(out, "--out", "report directory")
    r = build_report(sweep_dir, out, log=_say, predictivity=predictivity, figures=figures)
    for cid, v in r.verdicts.items():
        _say(f"  {cid:3s} {v}")
    typer.echo(str(r.html))


def register(main_app: typer.Typer) -> None:
    """Add ``reproduce`` and ``report`` as plain commands of ``main_app``."""
    main_app.command("reproduce")(reproduce_cmd)
    main_app.command("report")(report_cmd)


reproduce_app.command("reproduce", cls=EdgeCommand)(reproduce_cmd)
report_app.command("report", cls=EdgeCommand)(report_cmd)
app.command("run")(reproduce_cmd)
app.command("report")(report_cmd)
