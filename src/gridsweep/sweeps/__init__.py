"""Sweeps of many networks: specs, a SQLite results store, local/Ray executors, export.

Typical use::

    from gridsweep.sweeps import load_spec, run_sweep, load_results, summarise
    spec = load_spec("configs/sweeps/tiny.yaml")
    report = run_sweep(spec, "sweeps_out/tiny", workers=2)
    df = load_results("sweeps_out/tiny")
    summarise(df, error_cm=10, score=0.8, by="target.kind")

See ``docs/sweeps.md``. The command line is :data:`gridsweep.sweeps.cli.app`
(``gridsweep sweep ...``, or ``python -m gridsweep.sweeps ...``).
"""

from gridsweep.sweeps.executors import (
    LocalExecutor,
    RayExecutor,
    SerialExecutor,
    make_executor,
)
from gridsweep.sweeps.planning import Task, network_bytes, plan_tasks
from gridsweep.sweeps.results import (
    export_results,
    load_results,
    summarise,
    sweep_status,
)
from gridsweep.sweeps.runner import SweepReport, run_sweep
from gridsweep.sweeps.spec import (
    SpecError,
    SweepSpec,
    Trial,
    expand,
    load_spec,
    parse_spec,
)
from gridsweep.sweeps.rescore import rescore
from gridsweep.sweeps.store import SweepLock, TrialStore
from gridsweep.sweeps.worker import run_group

__all__ = [
    "SpecError", "SweepSpec", "Trial", "load_spec", "parse_spec", "expand",
    "TrialStore", "SweepLock",
    "Task", "plan_tasks", "network_bytes",
    "LocalExecutor", "RayExecutor", "SerialExecutor", "make_executor",
    "run_group", "run_sweep", "SweepReport",
    "load_results", "export_results", "summarise", "sweep_status", "rescore",
]
