"""The command-line edge: lazy subcommands, global options, the one error boundary.

Bad inputs, case by case, are in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import errno
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gridsweep import cli
from gridsweep.cli import LAZY_COMMANDS, describe_error, load_lazy_command, main

SRC = Path(cli.__file__).parent

TINY = """\
name: tiny
box: {width: 1.0, height: 1.0}
trajectory: {batch_size: 4, sequence_length: 5}
target: {n_cells: 16}
model: {hidden_size: 16}
training: {n_steps: 3, eval_every: 1, checkpoint_every: 1, log_every: 1}
evaluation: {n_trajectories: 4, sequence_length: 5, ratemap_samples: 500, bins: 8}
"""


def test_python_dash_m_version_and_help_import_no_torch():
    """The one subprocess test: ``python -m gridsweep --version``, and --help without torch."""
    from gridsweep import __version__

    proc = subprocess.run([sys.executable, "-m", "gridsweep", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"gridsweep {__version__}", proc.stderr
    code = ("import sys\nfrom gridsweep.cli import main\nrc = main(['--help'])\n"
            "heavy = [m for m in ('torch', 'scipy', 'matplotlib', 'pandas', 'gridsweep.sweeps.cli') if m in sys.modules]\n"
            "print('HEAVY', heavy, rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY [] 0" in proc.stdout, proc.stdout + proc.stderr
    for name in LAZY_COMMANDS:  # listed without being imported
        assert name in proc.stdout


def test_every_lazy_command_loads_with_its_registered_help():
    for name, entry in LAZY_COMMANDS.items():
        cmd = load_lazy_command(name)
        assert cmd.name == name
        assert cmd.get_short_help_str(200) == entry.help


def test_a_subcommand_that_cannot_be_imported_is_an_error_not_a_silent_drop(monkeypatch, capsys):
    monkeypatch.setitem(LAZY_COMMANDS, "ghost", cli.LazyCommand("gridsweep._no_such_module", "app", "A ghost.", True))
    assert main(["--help"]) == 0
    assert "ghost" in capsys.readouterr().out  # still listed
    assert main(["ghost", "--help"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ghost" in err[0] and "gridsweep._no_such_module" in err[0]


def test_every_option_and_argument_has_help():
    import typer

    def walk(cmd, path):
        for p in cmd.params:
            if p.name in ("help",):
                continue
            assert getattr(p, "help", None), f"{path} {p.name}: no help text"
        for name in getattr(cmd, "commands", {}) or {}:
            yield from walk(cmd.commands[name], f"{path} {name}")
        yield path

    root = typer.main.get_command(cli.app)
    for name in LAZY_COMMANDS:
        root.add_command(load_lazy_command(name), name)
    assert len(list(walk(root, "gridsweep"))) > 15


def test_verbose_prints_the_traceback_and_the_line(capsys):
    assert main(["config", "show", "no_such_preset"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    assert main(["-v", "config", "show", "no_such_preset"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: config 'no_such_preset'")


def test_quiet_and_verbose_set_the_log_level(capsys, monkeypatch):
    import logging

    seen = []

    def fake_presets():
        seen.append(logging.getLogger("gridsweep").getEffectiveLevel())
        logging.getLogger("gridsweep.cli").info("an info line")

    monkeypatch.setattr(cli, "config_presets", fake_presets)
    cli.config_app.registered_commands[-1].callback = fake_presets
    try:
        assert main(["-q", "config", "presets"]) == 0
        assert "an info line" not in capsys.readouterr().err
        assert main(["config", "presets"]) == 0
        assert "an info line" in capsys.readouterr().err
        assert main(["-v", "config", "presets"]) == 0
    finally:
        cli.config_app.registered_commands[-1].callback = cli.config_presets
    assert seen == [logging.WARNING, logging.INFO, logging.DEBUG]


def test_describe_error_statuses():
    from pydantic import ValidationError

    from gridsweep.config import ModelConfig
    from gridsweep.errors import ConfigError, DivergedError, ResourceError

    assert describe_error(ConfigError("a\nb")) == ("a b", 2)
    assert describe_error(DivergedError("nan"))[1] == 1
    assert describe_error(ResourceError("too big"))[1] == 1
    msg, code = describe_error(OSError(errno.ENOSPC, "No space left on device", "/x/y"))
    assert code == 1 and msg.startswith("/x/y: no space left on device")
    assert describe_error(PermissionError(errno.EACCES, "denied", "/r"))[0].startswith("/r: permission denied")
    assert describe_error(IsADirectoryError(errno.EISDIR, "dir", "/d")) == ("/d: is a directory, expected a file", 2)
    try:
        ModelConfig(cell="potato")
    except ValidationError as err:
        msg, code = describe_error(err)
    assert code == 2 and msg.startswith("cell: ") and "'potato'" in msg and "\n" not in msg
    msg, code = describe_error(ZeroDivisionError("boom"))
    assert code == 1 and "ZeroDivisionError" in msg and "-v" in msg


def test_load_config_takes_preset_names_like_the_cli():
    from gridsweep.config import load_config
    from gridsweep.presets import CONFIG_DIR, resolve_config_path

    assert load_config("demo_small") == load_config(CONFIG_DIR / "demo_small.yaml")
    assert resolve_config_path("demo_small.yaml") == CONFIG_DIR / "demo_small.yaml"
    from gridsweep.errors import ConfigError

    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_config("../configs/demo_small")  # no escaping the preset directory by name


def test_library_never_imports_the_cli_and_forces_no_backend():
    offenders, backend = [], []
    for p in SRC.rglob("*.py"):
        text = p.read_text()
        rel = p.relative_to(SRC).as_posix()
        if not (rel.endswith("cli.py") or rel.endswith("__main__.py")) and re.search(r"gridsweep\.cli\b|from gridsweep import cli", text):
            offenders.append(rel)
        if re.search(r"matplotlib\.use\(", text):
            backend.append(rel)
    assert offenders == [] and backend == []


def test_one_validation_error_formatter():
    hits = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
            if re.search(r"errors\(\)\[0\]|def _format_validation_error|def _fail\(", p.read_text())]
    assert hits == ["errors.py"] or hits == []


def test_train_interrupted_prints_how_to_resume_and_the_command_resumes(tmp_path, monkeypatch, capsys):
    import gridsweep.training as training

    real = training.train
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)

    def interrupted(cfg, out_dir=None, **kw):
        real(cfg, out_dir, stop_after=1, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    assert main(["train", "tiny.yaml", "--no-progress", "--no-score"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0] and "step 1" in err[0], err
    run_dir = next((tmp_path / "runs").iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["step"] == 1
    cmd = err[0].split("resume with: ", 1)[1]
    argv = shlex.split(cmd)
    assert argv[0] == "gridsweep" and argv[-2] == "--out" and Path(argv[-1]).resolve() == run_dir.resolve()
    monkeypatch.setattr(training, "train", real)
    assert main(argv[1:]) == 0
    out = capsys.readouterr().out
    assert "done after 3 steps" in out
    assert json.loads((run_dir / "status.json").read_text())["status"] == "done"


def test_sweep_merge_allows_a_different_spec(tmp_path, capsys):
    spec = tmp_path / "a.yaml"
    spec.write_text("name: s\nbase: {model: {hidden_size: 16}, target: {n_cells: 16}}\n"
                    "grid: {training.learning_rate: [1.0e-3]}\n")
    other = tmp_path / "b.yaml"
    other.write_text(spec.read_text().replace("[1.0e-3]", "[2.0e-3]"))
    out = tmp_path / "sw"
    assert main(["sweep", "run", str(spec), "--out", str(out), "--max-trials", "0", "--no-progress"]) == 0
    assert main(["sweep", "run", str(spec), "--out", str(out), "--max-trials", "0", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sweep", "run", str(other), "--out", str(out), "--max-trials", "0", "--no-progress"]) == 2
    assert "--merge" in capsys.readouterr().err
    assert main(["sweep", "run", str(other), "--out", str(out), "--max-trials", "0", "--no-progress",
                 "--merge"]) == 0
