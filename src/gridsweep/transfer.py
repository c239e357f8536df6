"""Transfer: a trained network run, without training, in another arena.

:func:`evaluate_in_arena` loads a run, collects the hidden units' rate maps in the
training arena and in a test arena with the same protocol (``evaluation.ratemap_samples``
positions along trajectories of the training sequence length, ``evaluation.bins`` bins
per side of each arena's bounding box, bins outside the arena NaN), and scores both with
:func:`gridsweep.analysis.unit_table`: grid scores of every variant, spacing, orientation
and ellipticity per unit, side by side (docs/arenas.md, docs/science.md section 6).

What transfers: the network's weights and its readout targets (place-cell centres of the
*training* arena, used for the initial state and the decoding error). What changes: the
trajectories, drawn by the same motion model in the test arena from the same seeded
stream. Evaluated in its own training arena, a run reproduces exactly the maps and the
dense-protocol unit table of :func:`gridsweep.evaluation.score_run`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gridsweep.config import BoxConfig, RunConfig
from gridsweep.errors import ConfigError

__all__ = ["ARENA_PRESETS", "TRANSFER_PRESETS", "resolve_arena", "TransferResult", "evaluate_in_arena", "write_transfer",
           "plot_transfer"]

#: Named test arenas (``--arena NAME``); a YAML file of ``box`` fields works too.
ARENA_PRESETS: dict[str, dict[str, Any]] = {
    "square": {"shape": "rectangle", "width": 2.2, "height": 2.2},
    "circle": {"shape": "circle", "radius": 1.1},
    "krupic_trapezoid": {"shape": "krupic_trapezoid"},
    "stretched_x": {"shape": "rectangle", "width": 3.3, "height": 2.2},  # the square stretched 1.5x along x
}

#: Run preset (``configs/<name>.yaml``, trained in the square) -> the arenas it is tested in.
TRANSFER_PRESETS: dict[str, tuple[str, ...]] = {"arena_transfer": ("krupic_trapezoid", "stretched_x")}

GEOMETRY_COLUMNS = ("spacing_m", "orientation_deg", "ellipticity")


def resolve_arena(arena: str | dict | BoxConfig, training: BoxConfig | None = None) -> tuple[str, BoxConfig]:
    """A test arena and its name from a preset name, ``"training"``, a YAML file or a mapping.

    A YAML file holds either the ``box`` fields or a run config with a ``box`` section.
    """
    if isinstance(arena, BoxConfig):
        return arena.shape, arena
    if isinstance(arena, dict):
        return str(arena.get("shape", "rectangle")), _box(arena, "arena")
    name = str(arena)
    if name == "training":
        if training is None:
            raise ConfigError("--arena training: no training arena given")
        return "training", training
    if name in ARENA_PRESETS:
        return name, _box(ARENA_PRESETS[name], f"arena preset {name!r}")
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("box"), dict):
            data = data["box"]
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of box fields (shape, radius, vertices, holes, ...)")
        return path.stem, _box(data, str(path))
    raise ConfigError(f"--arena {name!r}: not a preset ({', '.join(['training', *ARENA_PRESETS])}) "
                      f"nor a .yaml file of box fields")


def _box(data: dict, source: str) -> BoxConfig:
    from pydantic import ValidationError

    from gridsweep.errors import format_validation_error

    try:
        return BoxConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


@dataclass(frozen=True)
class TransferResult:
    """Maps and per-unit tables of one network in its training arena and a test arena.

    Attributes
    ----------
    train, test : gridsweep.analysis.RateMaps
        (U, bins, bins) maps over each arena's bounding box, NaN outside the arena.
    table : pandas.DataFrame
        One row per unit: ``unit`` and, suffixed ``_train`` / ``_test``, every score column
        of :func:`gridsweep.analysis.unit_table` and ``spacing_m``, ``orientation_deg``,
        ``ellipticity``.
    summary : dict
        Flat numbers: decoding error (cm) in each arena, medians and fractions above 0.3.
    train_box, test_box : BoxConfig
    arena_name : str
    """

    train: Any
    test: Any
    table: Any
    summary: dict
    train_box: BoxConfig
    test_box: BoxConfig
    arena_name: str


def _in_arena(ens: Any, box: BoxConfig) -> Any:
    """A view of ``ens`` whose trajectories come from ``box`` (weights and targets shared)."""
    cfgs = [RunConfig.model_validate({**c.to_dict(), "box": box.model_dump()}) for c in ens.cfgs]
    view = copy.copy(ens)
    view.cfgs, view.cfg = cfgs, cfgs[0]
    return view


def evaluate_in_arena(run_dir: str | Path, arena: str | dict | BoxConfig, *, n_samples: int | None = None,
                      bins: int | None = None, device: str = "cpu") -> TransferResult:
    """Rate maps, grid scores and geometry of a trained run in its arena and in ``arena``.

    Parameters
    ----------
    run_dir : path
        A run directory (docs/architecture.md).
    arena : str or mapping or BoxConfig
        See :func:`resolve_arena`.
    n_samples, bins : int, optional
        Default ``evaluation.ratemap_samples`` and ``evaluation.bins`` of the run.

    Returns
    -------
    TransferResult

    Notes
    -----
    Both arenas use :func:`gridsweep.evaluation.collect_ratemaps` with the run's seed and
    the ``"ratemaps"`` stream, so the training-arena maps are those of ``score_run``; bin
    width is the bounding box side / ``bins`` in each arena (docs/science.md section 6).
    """
    from gridsweep.analysis import unit_table
    from gridsweep.evaluation import collect_ratemaps
    from gridsweep.training import load_run

    ens = load_run(run_dir, device=device)
    name, box = resolve_arena(arena, ens.cfg.box)
    test_view = _in_arena(ens, box)
    rm_train = collect_ratemaps(ens, n_samples=n_samples, bins=bins)[0]
    rm_test = collect_ratemaps(test_view, n_samples=n_samples, bins=bins)[0]
    t_train = unit_table(rm_train.maps, rm_train.bin_size[0])
    t_test = unit_table(rm_test.maps, rm_test.bin_size[0])
    cols = [c for c in t_train.columns if c not in ("unit", "reason")]
    table = t_train[["unit"]].copy()
    for c in cols:
        table[f"{c}_train"] = t_train[c].to_numpy()
        table[f"{c}_test"] = t_test[c].to_numpy()
    err_train = float(ens.evaluate()[0])
    err_test = float(test_view.evaluate()[0])
    score = "score60_deepmind_minmax"
    summary: dict[str, Any] = {"arena": name, "decoding_error_cm_train": err_train, "decoding_error_cm_test": err_test}
    for side in ("train", "test"):
        s = table[f"{score}_{side}"].to_numpy(dtype=float)
        summary[f"median_{score}_{side}"] = float(np.nanmedian(s)) if np.isfinite(s).any() else float("nan")
        summary[f"frac_units_above_0.3_{side}"] = float(np.mean(s > 0.3))
        for g in GEOMETRY_COLUMNS:
            v = table[f"{g}_{side}"].to_numpy(dtype=float)
            summary[f"median_{g}_{side}"] = float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
    return TransferResult(rm_train, rm_test, table, summary, ens.cfg.box, box, name)


def write_transfer(result: TransferResult, out_dir: str | Path, *, figure: bool = True) -> Path:
    """Write ``ratemaps_train.npz``, ``ratemaps_test.npz``, ``units.parquet``, ``units.csv``,
    ``summary.json`` (and ``transfer.png``) into ``out_dir``."""
    from gridsweep.files import save_npz, write_json_atomic, write_parquet

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for side, rm in (("train", result.train), ("test", result.test)):
        save_npz(out / f"ratemaps_{side}.npz", maps=rm.maps.astype(np.float32), occupancy=rm.occupancy,
                 extent=np.asarray(rm.extent), bin_size_m=np.asarray(rm.bin_size[0]))
    write_parquet(result.table, out / "units.parquet")
    result.table.to_csv(out / "units.csv", index=False)
    write_json_atomic(out / "summary.json", {**result.summary, "test_box": result.test_box.model_dump(),
                                             "train_box": result.train_box.model_dump()})
    if figure:
        import matplotlib.pyplot as plt

        fig, _ = plot_transfer(result)
        fig.savefig(out / "transfer.png", dpi=110)
        plt.close(fig)
    return out


def plot_transfer(result: TransferResult, n: int = 4, score: str = "score60_deepmind_minmax"):
    """The ``n`` best units (by training-arena score) in both arenas, and train vs test scores.

    Returns
    -------
    fig, ax : matplotlib Figure and (2, n + 1) array of Axes
        Row 0: training arena, row 1: test arena (walls drawn); last column: the score of
        every unit in the test arena against the training arena (top), and the spacing
        (bottom).
    """
    import matplotlib.pyplot as plt

    from gridsweep.arenas import arena_of

    s_train = result.table[f"{score}_train"].to_numpy(dtype=float)
    order = np.argsort(np.where(np.isfinite(s_train), -s_train, np.inf))[:n]
    fig, ax = plt.subplots(2, n + 1, figsize=(2.4 * (n + 1), 4.8), squeeze=False)
    for row, (rm, box, side) in enumerate(((result.train, result.train_box, "train"),
                                           (result.test, result.test_box, "test"))):
        walls = arena_of(box).boundaries()
        for j in range(n):
            a = ax[row, j]
            if j < len(order):
                u = int(order[j])
                a.imshow(rm.maps[u], origin="lower", extent=rm.extent, cmap="jet", interpolation="nearest")
                for w in walls:
                    a.plot(w[:, 0], w[:, 1], color="k", lw=1)
                val = result.table[f"{score}_{side}"].iloc[u]
                a.set_title(f"unit {u} {side}\n{score.split('_')[0]} {val:.2f}", fontsize=8)
            a.set_xticks([])
            a.set_yticks([])
    s_test = result.table[f"{score}_test"].to_numpy(dtype=float)
    ax[0, n].scatter(s_train, s_test, s=6)
    lim = [np.nanmin([s_train, s_test]) if np.isfinite([s_train, s_test]).any() else -1, 2]
    ax[0, n].plot(lim, lim, color="grey", lw=0.8)
    ax[0, n].set_xlabel(f"{result.train_box.shape}", fontsize=8)
    ax[0, n].set_ylabel(f"{result.arena_name}", fontsize=8)
    ax[0, n].set_title("grid score", fontsize=8)
    sp_tr = result.table["spacing_m_train"].to_numpy(dtype=float)
    sp_te = result.table["spacing_m_test"].to_numpy(dtype=float)
    ax[1, n].scatter(sp_tr, sp_te, s=6)
    ax[1, n].set_title("spacing (m)", fontsize=8)
    ax[1, n].set_xlabel("train", fontsize=8)
    ax[1, n].set_ylabel("test", fontsize=8)
    fig.tight_layout()
    return fig, ax
