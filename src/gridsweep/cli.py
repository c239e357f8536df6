"""The ``gridsweep`` command.

Commands: ``train``, ``score``, ``demo``, ``config show|presets``, and the commands of
the subsystems, imported only when used (so ``gridsweep --help`` never imports torch):
``sweep`` (:mod:`gridsweep.sweeps.cli`), ``theory`` (:mod:`gridsweep.theory.cli`),
``neural`` (:mod:`gridsweep.neural.cli`), ``reproduce`` and ``report``
(:mod:`gridsweep.reproduce.cli`). ``python -m gridsweep`` is the same command.

Errors
------
Every entry point (``gridsweep``, ``python -m gridsweep``, ``python -m gridsweep.sweeps``,
a sub-app invoked on its own) runs through :func:`edge_main`, the one place where
exceptions become messages: the library's :mod:`gridsweep.errors`, the operating
system's (permission denied, no such file, is a directory, disk full), YAML errors and
pydantic ``ValidationError`` are printed as ONE line ``error: ...`` on stderr naming the
field or path and what is allowed, without a traceback (``gridsweep -v ...`` prints it).

Exit status: ``0`` success; ``2`` bad input (an argument, option, config, spec, path,
permission or file content); ``1`` a runtime failure (training diverged, disk full,
out of memory, a subsystem that cannot be imported, an unexpected error: a bug, please
report it with the ``-v`` output); ``130`` interrupted (Ctrl-C; the message says how to
resume).

Figures: the command sets ``MPLBACKEND=Agg`` (unless already set) before anything
imports matplotlib; no module forces a backend on import.

Logging: subsystems log through module loggers (``logging.getLogger(__name__)``); the
command shows INFO and above on stderr, ``-q`` only warnings, ``-v`` debug messages
and tracebacks.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import shlex
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.16 vendors click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer
    import click  # type: ignore[no-redef]

from gridsweep.errors import (
    ConfigError,
    DivergedError,
    GridsweepError,
    format_validation_error,
    format_yaml_error,
    one_line,
)

__all__ = ["app", "main", "edge_main", "describe_error", "EdgeGroup", "EdgeCommand", "LAZY_COMMANDS",
           "check_device", "check_out_dir", "check_run_name", "EXIT_BAD_INPUT", "EXIT_RUNTIME", "EXIT_INTERRUPTED"]

from gridsweep.presets import resolve_config_path  # noqa: E402,F401  (re-exported for scripts that used it here)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

_STATE: dict[str, Any] = {"verbose": 0, "argv": [], "prog": "gridsweep"}


# --------------------------------------------------------------------------------------
# the edge: exceptions -> one line
# --------------------------------------------------------------------------------------
def _is_validation_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic")


def _is_yaml_error(exc: BaseException) -> bool:
    yaml = sys.modules.get("yaml")
    return yaml is not None and isinstance(exc, yaml.YAMLError)


def _os_error(exc: OSError) -> tuple[str, int]:
    path = exc.filename if exc.filename is not None else None
    where = f"{path}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "") if path is not None else ""
    prefix = f"{where}: " if where else ""
    if exc.errno == errno.ENOSPC:
        return f"{prefix}no space left on device; free some space or write elsewhere (--out)", EXIT_RUNTIME
    if isinstance(exc, PermissionError):
        return (f"{prefix}permission denied: this user cannot write or read here; choose a writable path "
                "(e.g. --out) or fix the permissions"), EXIT_BAD_INPUT
    if isinstance(exc, FileNotFoundError):
        return f"{prefix}no such file or directory", EXIT_BAD_INPUT
    if isinstance(exc, IsADirectoryError):
        return f"{prefix}is a directory, expected a file", EXIT_BAD_INPUT
    if isinstance(exc, NotADirectoryError):
        return f"{prefix}is not a directory (a file is in the way), expected a directory", EXIT_BAD_INPUT
    if isinstance(exc, FileExistsError):
        return f"{prefix}already exists and is not a directory, expected a directory", EXIT_BAD_INPUT
    if exc.errno in (errno.EROFS,):
        return f"{prefix}read-only file system; write elsewhere (--out)", EXIT_BAD_INPUT
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{prefix}{text}", EXIT_RUNTIME


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one-line message (without ``error: ``) and exit status for an exception.

    Returns
    -------
    (str, int)
        See the module docstring for the exit statuses.
    """
    if isinstance(exc, DivergedError):
        return one_line(str(exc)), EXIT_RUNTIME
    if isinstance(exc, GridsweepError):
        code = EXIT_RUNTIME if isinstance(exc, (MemoryError, ImportError)) else EXIT_BAD_INPUT
        return one_line(str(exc) or type(exc).__name__), code
    if _is_validation_error(exc):
        return format_validation_error(exc), EXIT_BAD_INPUT
    if _is_yaml_error(exc):
        return f"not valid YAML: {format_yaml_error(exc)}", EXIT_BAD_INPUT
    if isinstance(exc, UnicodeDecodeError):
        return "an input file is not text (not UTF-8); give a YAML/CSV text file", EXIT_BAD_INPUT
    if isinstance(exc, OSError):
        msg, code = _os_error(exc)
        return one_line(msg), code
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller network, batch or ensemble (--ensemble-size)", EXIT_RUNTIME
    text = one_line(str(exc))
    return (f"unexpected {type(exc).__name__}{': ' + text if text else ''} "
            "(rerun with -v for the traceback and report it)"), EXIT_RUNTIME


def _usage_message(exc: Any) -> str:
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else _STATE["prog"]
    msg = one_line(exc.format_message())
    return f"{where}: {msg} (see '{where} --help')"


def _say_error(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


class _LogHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (works under capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _set_log_level(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("gridsweep").setLevel(level)
    for h in logging.getLogger("gridsweep").handlers:
        if isinstance(h, _LogHandler):
            h.setLevel(level)
            h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))


def edge_main(run: Callable[..., Any], args: Sequence[str] | None = None, prog_name: str | None = None,
              standalone_mode: bool = True, **extra: Any) -> int:
    """Run a click/typer command's ``main`` and turn every error into one line and an exit status.

    ``run`` is the command's own (click) ``main``, called with ``standalone_mode=False``.

    The single error boundary of the command line (used by :class:`EdgeGroup` and
    :class:`EdgeCommand`, hence by :func:`main` and every sub-app). Returns the exit
    status when ``standalone_mode`` is false, else exits with it.
    """
    argv = list(sys.argv[1:] if args is None else args)
    prog = prog_name or "gridsweep"
    # figures are files, never windows: the commands (and the sweep workers they start,
    # which inherit the environment) draw with Agg; the library forces no backend.
    os.environ.setdefault("MPLBACKEND", "Agg")
    outer = _STATE.copy()
    _STATE.update(verbose=0, argv=argv, prog=prog)
    logger = logging.getLogger("gridsweep")
    handler = _LogHandler()
    old_level = logger.level
    logger.addHandler(handler)
    _set_log_level(0, False)
    code = EXIT_OK
    try:
        rv = run(args=argv, prog_name=prog, standalone_mode=False, **extra)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else EXIT_OK
    except click.exceptions.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            if exc.format_message().strip():  # rich printed the help already; plain click did not
                exc.show()
        else:
            _say_error(_usage_message(exc))
        code = EXIT_BAD_INPUT
    except click.exceptions.ClickException as exc:
        _say_error(one_line(exc.format_message()))
        code = exc.exit_code or EXIT_BAD_INPUT
    except typer.Abort:
        _say_error("aborted")
        code = EXIT_RUNTIME
    except KeyboardInterrupt:
        _say_error("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # the edge: every error becomes one line
        msg, code = describe_error(exc)
        if _STATE["verbose"]:
            traceback.print_exception(exc, file=sys.stderr)
        _say_error(msg)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        _STATE.update(outer)
    if standalone_mode:
        sys.exit(code)
    return code


class EdgeGroup(TyperGroup):
    """A Typer group whose ``main`` is :func:`edge_main` (one-line errors, exit statuses)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
        return edge_main(lambda **kw: TyperGroup.main(self, **kw), args, prog_name, standalone_mode, **extra)


class EdgeCommand(TyperCommand):
    """A single Typer command whose ``main`` is :func:`edge_main`."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             standalone_mode: bool = True, **extra: Any) -> Any:
        return edge_main(lambda **kw: TyperCommand.main(self, **kw), args, prog_name, standalone_mode, **extra)


# --------------------------------------------------------------------------------------
# lazily imported subcommands
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LazyCommand:
    """A subcommand whose module is imported only when the command is used."""

    module: str
    attr: str
    help: str
    group: bool  # True: ``attr`` is a Typer sub-app; False: a command function


LAZY_COMMANDS: dict[str, LazyCommand] = {
    "sweep": LazyCommand("gridsweep.sweeps.cli", "app",
                         "Sweeps of many networks: run (resumable), status, export, rescore, expand.", True),
    "theory": LazyCommand("gridsweep.theory.cli", "app",
                          "Readout-covariance theory: predicted spacing, phase diagrams, pattern formation.", True),
    "neural": LazyCommand("gridsweep.neural.cli", "app", "Neural predictivity with dimension-matched nulls.", True),
    "reproduce": LazyCommand("gridsweep.reproduce.cli", "reproduce_cmd",
                             "Run every sweep behind the NFL claims and write the report.", False),
    "report": LazyCommand("gridsweep.reproduce.cli", "report_cmd",
                          "Write the reproduction report of a sweep directory.", False),
    "evaluate": LazyCommand("gridsweep.transfer_cli", "evaluate_cmd",
                            "Run a trained network in another arena (no training): maps, scores, geometry.", False),
}


class CommandUnavailableError(GridsweepError, ImportError):
    """A subcommand's module cannot be imported (a missing optional dependency)."""


def load_lazy_command(name: str) -> Any:
    """Import the module of subcommand ``name`` and return its click command.

    Raises
    ------
    CommandUnavailableError
        When the import fails; the message names the command, the module and the cause
        (never silently dropped).
    """
    entry = LAZY_COMMANDS[name]
    try:
        mod = importlib.import_module(entry.module)
    except ImportError as err:
        missing = (getattr(err, "name", None) or "").split(".")[0]
        hint = f"; install the missing package (pip install {missing})" if missing and missing != "gridsweep" else ""
        raise CommandUnavailableError(f"'{_STATE['prog']} {name}' is unavailable: importing {entry.module} "
                                      f"failed: {one_line(str(err))}{hint}") from err
    holder = typer.Typer(cls=EdgeGroup)
    if entry.group:
        holder.add_typer(getattr(mod, entry.attr), name=name, help=entry.help)
    else:
        holder.command(name, short_help=entry.help)(getattr(mod, entry.attr))
    group = typer.main.get_command(holder)
    if not hasattr(group, "commands"):  # a Typer app of one command collapses to that command
        return group
    return group.commands[name]


class _MainGroup(EdgeGroup):
    """The top-level group: lists the lazy subcommands without importing them."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(super().list_commands(ctx))
        return names + [n for n in LAZY_COMMANDS if n not in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd
        if self._listing:  # help text: a stub with the registered help, nothing imported
            return TyperCommand(cmd_name, help=LAZY_COMMANDS[cmd_name].help, short_help=LAZY_COMMANDS[cmd_name].help)
        cmd = load_lazy_command(cmd_name)
        self.add_command(cmd, cmd_name)
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


# --------------------------------------------------------------------------------------
# checks shared by the commands
# --------------------------------------------------------------------------------------
_DEVICE = re.compile(r"(cpu|cuda(:\d+)?|mps)")
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def check_device(device: str, option: str = "--device") -> str:
    """``device`` if it names a torch device this machine has; else a ConfigError.

    Allowed: ``cpu``, ``cuda``, ``cuda:N``, ``mps``. CUDA availability is checked
    (importing torch) only for ``cuda*``.
    """
    if not _DEVICE.fullmatch(device or ""):
        raise ConfigError(f"{option} {device!r}: allowed values are cpu, cuda, cuda:N, mps")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {device}: CUDA is not available on this machine; use {option} cpu")
        idx = int(device.split(":")[1]) if ":" in device else 0
        if idx >= torch.cuda.device_count():
            raise ConfigError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def check_run_name(name: str, field: str = "name") -> str:
    """``name`` if it is safe as one directory name (no path separators, no ``..``)."""
    if not _RUN_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"{field}={name!r}: a run name becomes a directory under runs/; use letters, digits, "
                          "'_', '-', '.' (no '/', '\\' or '..'), or give --out")
    return name


def check_out_dir(path: Path, option: str = "--out", what: str = "directory") -> Path:
    """Refuse an output directory that is a file or sits below a file or an unwritable directory."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is a file, expected a {what}")
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, expected a directory")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: {parent} is not writable by this user; choose another {option}")
    if parent.is_dir():  # permission bits do not bind root: probe with a temporary directory
        import tempfile

        try:
            os.rmdir(tempfile.mkdtemp(prefix=".gridsweep-probe-", dir=parent))
        except OSError as err:
            reason = "read-only file system" if err.errno == errno.EROFS else (err.strerror or str(err))
            raise ConfigError(f"{option} {path}: cannot write in {parent} ({reason}); "
                              f"choose another {option}") from None
    return path


def resume_command(extra: Sequence[str] = ()) -> str:
    """The command line that was run (for "resume with: ..." messages), plus ``extra``."""
    argv = list(_STATE["argv"])
    return shlex.join([_STATE["prog"], *argv, *extra])


# --------------------------------------------------------------------------------------
# the app
# --------------------------------------------------------------------------------------
app = typer.Typer(cls=_MainGroup, add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Train, sweep, measure and theorise path-integrating RNNs and their grid cells.")
config_app = typer.Typer(cls=EdgeGroup, no_args_is_help=True, help="Inspect and validate run configs.")
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        from gridsweep import __version__

        typer.echo(f"gridsweep {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: int = typer.Option(0, "-v", "--verbose", count=True,
                                help="debug log messages; print the traceback of an error"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="only warnings and errors on stderr"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """Train, sweep, measure and theorise path-integrating RNNs and their grid cells.

    Errors print one line `error: ...` and exit with status 2 (bad input), 1 (runtime
    failure) or 130 (interrupted); -v shows the traceback.
    """
    _STATE["verbose"] = verbose
    _set_log_level(verbose, quiet)


def _load(config: str, set_: Optional[List[str]]) -> Any:
    from gridsweep.config import load_config

    return load_config(config, set_ or [])


def _interrupted(run_dir: Path, out_given: bool) -> None:
    """Mark the run ``interrupted`` at its last checkpoint and print how to resume."""
    from gridsweep.files import load_torch, write_json_atomic

    ckpt = run_dir / "checkpoints" / "last.pt"
    step = 0
    if ckpt.is_file():
        try:
            step = int(load_torch(ckpt)["step"])
        except Exception:  # a checkpoint being replaced: report step 0 rather than fail here
            step = 0
    if run_dir.is_dir():
        write_json_atomic(run_dir / "status.json", {"status": "interrupted", "step": step})
    cmd = resume_command(() if out_given else ("--out", str(run_dir)))
    _say_error(f"interrupted: {run_dir} is at step {step} (last checkpoint); resume with: {cmd}")


@app.command()
def train(
    config: str = typer.Argument(..., help="YAML config file or preset name (see `gridsweep config presets`)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", show_default="none",
                                             help="override, repeatable: --set model.hidden_size=256"),
    out: Optional[Path] = typer.Option(None, "--out", show_default="runs/<name>-<hash>", help="run directory"),
    device: str = typer.Option("cpu", help="torch device: cpu, cuda, cuda:N, mps"),
    score: bool = typer.Option(True, help="score the run (rate maps, grid scores) when training ends"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train one network and write its run directory (resumes when it exists)."""
    cfg = _load(config, set_)
    check_device(device)
    if out is None:
        check_run_name(cfg.name)
    run_dir = out if out is not None else Path("runs") / f"{cfg.name}-{cfg.hash()}"
    check_out_dir(run_dir)
    from gridsweep.training import train as train_fn

    log.debug("training %s into %s on %s", cfg.name, run_dir, device)
    try:
        ens, res = train_fn(cfg, run_dir, device=device, progress=progress)
    except KeyboardInterrupt:
        _interrupted(run_dir, out is not None)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(f"{res.status} after {res.step} steps; decoding error {res.metrics['decoding_error_cm']:.1f} cm")
    if score and res.status == "done":
        from gridsweep.evaluation import score_run

        m = score_run(run_dir, ens)
        typer.echo(f"max grid score (deepmind_minmax) {m['max_score60_deepmind_minmax']:.2f}; "
                   f"{100 * m['frac_units_above_0.3']:.0f}% of units above 0.3")
    typer.echo(f"run directory: {run_dir}")
    if res.status == "diverged":
        raise DivergedError(f"{run_dir}: training diverged at step {res.diverged_at} (non-finite loss); "
                            "lower training.learning_rate or set training.grad_clip")


@app.command()
def score(
    run_dir: Path = typer.Argument(..., help="a run directory written by `gridsweep train`"),
    samples: Optional[int] = typer.Option(None, min=1, show_default="evaluation.ratemap_samples",
                                          help="positions sampled for rate maps"),
    bins: Optional[int] = typer.Option(None, min=2, show_default="evaluation.bins", help="bins per side"),
) -> None:
    """Evaluate a trained run: decoding error, rate maps, grid scores, spacing; writes analysis/."""
    if not run_dir.exists():
        raise ConfigError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: is a file, expected a run directory written by `gridsweep train`")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    from gridsweep.evaluation import score_run

    m = score_run(run_dir, n_samples=samples, bins=bins)
    for k, v in m.items():
        typer.echo(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")
    typer.echo(f"analysis written to {run_dir / 'analysis'}")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="run directory")) -> None:
    """Train the small demo network on the CPU and print its run directory."""
    train(config="demo_small", set_=[], out=out, device="cpu", score=True, progress=True)


@config_app.command("show")
def config_show(
    config: str = typer.Argument(..., help="YAML config file or preset name"),
    set_: Optional[List[str]] = typer.Option(None, "--set", show_default="none",
                                             help="override, repeatable: --set model.hidden_size=256"),
) -> None:
    """Print the full resolved config (every default filled in)."""
    typer.echo(_load(config, set_).to_yaml(), nl=False)


@config_app.command("presets")
def config_presets() -> None:
    """List the run-config presets shipped with gridsweep."""
    from gridsweep.presets import list_presets, preset_summary

    for name in list_presets("config"):
        typer.echo(f"{name:20s} {preset_summary(name, 'config')}")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``gridsweep`` console entry point; returns the exit status (see the module docstring)."""
    command = typer.main.get_command(app)
    return command.main(args=argv, prog_name="gridsweep", standalone_mode=False)


def run_subapp(sub: typer.Typer, prog_name: str, argv: Sequence[str] | None = None) -> int:
    """Run a sub-app on its own (``python -m gridsweep.sweeps``) through the same edge."""
    return typer.main.get_command(sub).main(args=argv, prog_name=prog_name, standalone_mode=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
