"""Neural predictivity of trained networks against recordings, with dimension-matched nulls.

``gridsweep neural fit --model RUN_OR_SWEEP --data FILE`` scores every model (a run, or
each trial of a sweep) against a recorded dataset (NWB, Nayebi-format ``.npz``/``.pkl``
or gridsweep's dataset ``.npz``) next to PR-matched null models, and writes a per-cell
table (parquet + csv), a summary table and the predictivity-vs-PR figure.
``gridsweep neural simulate`` writes a synthetic MEC session as NWB.

Output: the summary table and the path written (last line) go to stdout; notes on how
model maps were fitted to the data go to the ``gridsweep.neural.cli`` logger (stderr;
``gridsweep -q`` silences them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import typer

from gridsweep.cli import EdgeGroup, check_out_dir
from gridsweep.errors import DataError

log = logging.getLogger(__name__)

app = typer.Typer(cls=EdgeGroup, no_args_is_help=True, help="Neural predictivity with dimension-matched nulls.")

RATEMAPS = Path("analysis") / "ratemaps.npz"


@app.callback()
def _group() -> None:
    """Neural predictivity with dimension-matched nulls."""


def _read_ratemaps(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    from gridsweep.files import load_npz
    from gridsweep.neural.io import validate_maps

    z = load_npz(path)  # checksum-verified, no pickle
    if "maps" not in z:
        raise DataError(f"{path}: no 'maps' array (expected keys maps, occupancy, extent, bin_size_m)")
    maps = np.asarray(z["maps"], dtype=float)
    extent = tuple(float(v) for v in z["extent"]) if "extent" in z else (np.nan,) * 4
    if maps.ndim != 3:
        raise DataError(f"{path}: maps must be (U, n, n); got shape {maps.shape}")
    return validate_maps(maps, str(path)), extent


def find_model_maps(model: Path) -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    """Rate maps of a run directory, of every trial of a sweep directory, or of one ``ratemaps.npz``.

    Returns
    -------
    dict name -> (maps (U, n, n), extent)
    """
    model = Path(model)
    if model.is_file() and model.suffix == ".npz":
        return {model.stem: _read_ratemaps(model)}
    if (model / RATEMAPS).is_file():
        return {model.name: _read_ratemaps(model / RATEMAPS)}
    trials = sorted((model / "trials").glob(f"*/{RATEMAPS.as_posix()}")) if (model / "trials").is_dir() else []
    if trials:
        return {p.parents[1].name: _read_ratemaps(p) for p in trials}
    raise DataError(
        f"{model}: no rate maps found: expected {RATEMAPS} (a run), trials/<trial_id>/{RATEMAPS} "
        "(a sweep) or a ratemaps .npz file; run `gridsweep score` first"
    )


def _loader_kwargs(data: Path, bin_width: float | None, position_unit: str, arena: str | None) -> dict[str, Any]:
    suffix = data.suffix.lower()
    if suffix == ".nwb":
        return {"bin_width": bin_width, "position_unit": position_unit}
    if suffix in (".pkl", ".pickle") or (suffix == ".npz" and arena is not None):
        return {"arena": arena}
    return {}


@app.command()
def fit(
    model: Path = typer.Option(..., "--model", help="Run directory, sweep directory, or a ratemaps .npz."),
    data: Path = typer.Option(..., "--data", help="NWB file, Nayebi-format .npz/.pkl, or a gridsweep dataset .npz."),
    out: Path | None = typer.Option(None, "--out", help="Output directory (default: RUN/analysis/neural or SWEEP/neural)."),
    method: str = typer.Option("ridge", "--method", help="Mapping: ridge | pls | one_to_one."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bin split and the null draws."),
    nulls: str = typer.Option("smooth_fields,random_fourier", "--nulls", help="Comma-separated null families, or 'none'."),
    ceiling: str = typer.Option("auto", "--ceiling", help="auto | split_half | split_half_sb | inter_animal | none."),
    n_folds: int = typer.Option(5, "--n-folds", min=2, help="Folds of the spatial-bin cross-validation."),
    min_ceiling: float = typer.Option(0.0, "--min-ceiling", help="Cells with a lower ceiling get no r / ceiling."),
    untrained: Path | None = typer.Option(None, "--untrained", help="ratemaps .npz of untrained networks (adds an 'untrained' null)."),
    bin_width: float | None = typer.Option(None, "--bin-width", help="NWB only: bin width in metres (default 0.05)."),
    position_unit: str = typer.Option("auto", "--position-unit", help="NWB only: auto | m | cm | mm."),
    arena: str | None = typer.Option(None, "--arena", help="Nayebi format: which arena."),
) -> None:
    """Score model rate maps against recorded cells, next to PR-matched nulls."""
    from gridsweep.neural.comparison import NullSpec, compare_predictivity
    from gridsweep.neural.io import load_dataset
    from gridsweep.neural.plots import plot_predictivity_vs_pr
    from gridsweep.neural.predictivity import MAPPINGS, SplitSpec

    if method not in MAPPINGS:
        raise DataError(f"--method {method!r} is not known; allowed: {sorted(MAPPINGS)}")
    models = find_model_maps(model)
    dataset = load_dataset(data, **_loader_kwargs(data, bin_width, position_unit, arena))
    specs: list[NullSpec] = [] if nulls.strip().lower() == "none" else [NullSpec(k.strip()) for k in nulls.split(",") if k.strip()]
    if untrained is not None:
        specs.append(NullSpec("untrained", maps=_read_ratemaps(untrained)[0]))
    if out is None:
        out = model / "analysis" / "neural" if (model / RATEMAPS).is_file() else (model.parent if model.is_file() else model) / "neural"
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    dw = dataset.extent[1] - dataset.extent[0]
    for name, (maps, ext) in models.items():
        mw = ext[1] - ext[0]
        if maps.shape[1:] != dataset.shape:
            log.info("%s: model grid %s resampled to the data grid %s (bilinear)", name, maps.shape[1:], dataset.shape)
        if np.isfinite(mw) and abs(mw - dw) > 0.05 * dw:
            log.info("%s: model box %.2f m wide mapped onto a %.2f m arena (rescaled)", name, mw, dw)
    comp = compare_predictivity(
        {k: v[0] for k, v in models.items()},
        dataset,
        specs,
        method=method,
        split=SplitSpec(n_folds=n_folds),
        ceiling=ceiling,
        seed=seed,
        min_ceiling=min_ceiling,
    )
    comp.cells.to_parquet(out / "cells.parquet", index=False)
    comp.cells.to_csv(out / "cells.csv", index=False)
    comp.summary.to_csv(out / "summary.csv", index=False)
    fig, _ = plot_predictivity_vs_pr(comp.summary)
    fig.savefig(out / "predictivity_vs_pr.png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    cols = ["name", "participation_ratio", "median_r", "median_normalized_r"]
    typer.echo(comp.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    typer.echo(f"wrote {out}")


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Output .nwb file."),
    duration_s: float = typer.Option(600.0, "--duration", help="Session length in seconds."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated session."),
    arena_size_m: float = typer.Option(1.0, "--arena-size", help="Side of the square arena (m)."),
) -> None:
    """Write a synthetic MEC session (grid, border, HD, spatial cells) as NWB."""
    from gridsweep.neural.synthetic import simulate_recording

    rec = simulate_recording(duration_s=duration_s, arena_size_m=arena_size_m, seed=seed)
    rec.write_nwb(out)
    typer.echo(f"wrote {out}: {rec.dataset.n_cells} cells, {rec.trajectory.times.size} samples")
