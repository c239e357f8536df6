"""Analysis hooks: what turns a finished trial into the metrics of its row.

A hook is ``hook(run_dir, ensemble, index) -> dict`` of flat metrics (floats, ints,
strings); ``ensemble`` is the trained :class:`gridsweep.training.Ensemble` still in
memory and ``index`` the network's position in it. Hooks are named by a string so that
worker processes (local or Ray) can import them:

``auto`` (default), ``score_run``
    :func:`gridsweep.evaluation.score_run` (decoding error, grid scores of every unit,
    spacing, ...; writes ``analysis/`` into the trial directory). ``auto`` is kept as
    the default's name; the two are the same hook.
``scores``
    ``score_run`` without the figures (same metrics, faster).
``weight_stats``
    cheap statistics of the trained weights (norms, activity); no grid scores.
``none``
    training metrics only.
``package.module:function``
    any importable function with the hook signature.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gridsweep.errors import ConfigError
from gridsweep.files import write_json_atomic
from gridsweep.training import Ensemble

__all__ = ["HOOKS", "auto_hook", "flat_metrics", "no_analysis", "resolve_hook", "score_run_hook", "scores_hook",
           "weight_stats"]

Hook = Callable[[Path, Ensemble, int], dict[str, Any]]


def _single(ens: Ensemble, index: int) -> Ensemble:
    """Network ``index`` of an ensemble as an ensemble of one (shares nothing)."""
    if ens.E == 1:
        return ens
    sub = Ensemble([ens.cfgs[index]], device=ens.device)
    sub.load_network_states([ens.network_state(index)])
    return sub


def score_run_hook(run_dir: Path, ens: Ensemble, index: int, **kw: Any) -> dict[str, Any]:
    """:func:`gridsweep.evaluation.score_run` on network ``index`` (``kw`` go to it)."""
    from gridsweep.evaluation import score_run

    return score_run(run_dir, ensemble=ens, index=index, **kw)


def scores_hook(run_dir: Path, ens: Ensemble, index: int) -> dict[str, Any]:
    """:func:`score_run_hook` without the figures (faster; same metrics)."""
    return score_run_hook(run_dir, ens, index, figures=False)


#: The default hook (``--analysis auto``): :func:`score_run_hook`.
auto_hook: Hook = score_run_hook


@torch.no_grad()
def weight_stats(run_dir: Path, ens: Ensemble, index: int) -> dict[str, Any]:
    """Cheap, deterministic statistics of network ``index``; writes ``analysis/weight_stats.json``."""
    net = _single(ens, index)
    w = [p for p in net.model.recurrent_weights()]
    norm = float(torch.sqrt(torch.stack([(p.double() ** 2).sum() for p in w]).sum()))
    gens = [torch.Generator(device=net.device).manual_seed(12345)]
    traj = net.sample(batch=16, gens=gens)
    hidden = net.model.hidden(traj.velocities, net.target.encode(traj.start))
    active = (hidden.abs().amax(dim=(0, 1, 2)) > 1e-6).sum()
    out = {"recurrent_weight_norm": norm, "n_active_units": int(active), "mean_abs_activation":
           float(hidden.abs().mean()), "analysis": "weight_stats"}
    d = Path(run_dir) / "analysis"
    d.mkdir(parents=True, exist_ok=True)
    write_json_atomic(d / "weight_stats.json", out)
    return out


def no_analysis(run_dir: Path, ens: Ensemble, index: int) -> dict[str, Any]:
    """No analysis: the trial keeps its training metrics."""
    return {}


HOOKS: dict[str, Hook] = {"auto": auto_hook, "score_run": score_run_hook, "scores": scores_hook,
                          "weight_stats": weight_stats,
                          "none": no_analysis}


def resolve_hook(name: str | Callable | None) -> Hook:
    """A hook from a name (see module docstring) or a callable."""
    if name is None:
        return auto_hook
    if callable(name):
        return name
    if name in HOOKS:
        return HOOKS[name]
    if ":" not in name:
        raise ConfigError(f"analysis hook {name!r}: expected one of {sorted(HOOKS)} or 'package.module:function'")
    mod, _, fn = name.partition(":")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"analysis hook {name!r} cannot be imported ({err})") from None
    if not callable(obj):
        raise ConfigError(f"analysis hook {name!r} is not callable")
    return obj


def flat_metrics(d: dict[str, Any]) -> dict[str, Any]:
    """Keep JSON-scalar metrics (numpy/torch scalars unwrapped; others as strings)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if hasattr(v, "item") and callable(v.item):
            try:
                v = v.item()
            except (ValueError, RuntimeError):
                v = str(v)
        if v is None or isinstance(v, (bool, int, str)):
            out[str(k)] = v
        elif isinstance(v, float):
            out[str(k)] = v if math.isfinite(v) or math.isinf(v) else float("nan")
        else:
            out[str(k)] = str(v)
    return out
