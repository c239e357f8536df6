"""``gridsweep evaluate RUN --arena ARENA``: a trained network in another arena, no training.

Registered lazily by :mod:`gridsweep.cli` as the command function :func:`evaluate_cmd`;
:data:`app` is the same command as a one-command Typer app (``python -m`` style use and
tests). Writes ``RUN/transfer/<arena>/`` (see :func:`gridsweep.transfer.write_transfer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gridsweep.errors import ConfigError

__all__ = ["app", "evaluate_cmd"]


def evaluate_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory written by `gridsweep train`"),
    arena: str = typer.Option(..., "--arena", help="test arena: training, square, circle, krupic_trapezoid, "
                                                   "stretched_x, or a .yaml file of box fields"),
    out: Optional[Path] = typer.Option(None, help="output directory (default RUN/transfer/<arena>)"),
    samples: Optional[int] = typer.Option(None, min=1, show_default="evaluation.ratemap_samples",
                                          help="positions sampled for rate maps"),
    bins: Optional[int] = typer.Option(None, min=2, show_default="evaluation.bins", help="bins per side"),
    figure: bool = typer.Option(True, help="write transfer.png"),
) -> None:
    """Run a trained network in another arena: rate maps, grid scores, spacing, orientation, ellipticity."""
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    from gridsweep.transfer import evaluate_in_arena, write_transfer

    res = evaluate_in_arena(run_dir, arena, n_samples=samples, bins=bins)
    dest = write_transfer(res, out or run_dir / "transfer" / res.arena_name, figure=figure)
    for k, v in res.summary.items():
        typer.echo(f"{k:45s} {v:.4g}" if isinstance(v, float) else f"{k:45s} {v}")
    typer.echo(f"transfer written to {dest}")


app = typer.Typer(add_completion=False, help="Run a trained network in another arena.")
app.command("evaluate")(evaluate_cmd)
