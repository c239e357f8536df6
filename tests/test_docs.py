"""Documentation that cannot drift: every code block of README.md and docs/*.md runs.

What runs
---------
Every fenced block tagged ``python``, ``bash``, ``sh``, ``shell`` or ``console`` in
README.md and docs/*.md (untagged and ``text``/``yaml`` blocks are output or file
listings and are not run):

- ``python`` blocks are executed in-process, each in a fresh namespace;
- shell blocks: every line (``console``: every ``$ `` line) must be a ``gridsweep``
  command, run in-process through the CLI (``typer.testing.CliRunner`` on
  ``gridsweep.cli.app``) and expected to exit with status 0.

The blocks of one file run in file order, in one temporary directory per file (so a
block may use the run directory an earlier block of the same file wrote) in which
``configs/`` and ``tests/`` of the repository are reachable.

Directives
----------
An HTML comment on the line directly before a block, items separated by ``;``::

    <!-- docs-test: set training.n_steps=3 evaluation.n_trajectories=8 -->
    <!-- docs-test: skip: why this block cannot run in a test -->
    <!-- docs-test: skip-lines 2,3: why these lines cannot run -->
    <!-- docs-test: slow -->

- ``set K=V ...``: config overrides applied after the block's own: appended as
  ``--set K=V`` to every ``gridsweep`` command that has a ``--set`` option, and appended
  to the overrides of every ``gridsweep.config.load_config`` call of a python block;
- ``skip: REASON`` / ``skip-lines N,M: REASON`` (1-based lines of the block): not run,
  the reason is required (it runs to the end of the comment, so it comes last) and is
  reported as the pytest skip reason;
- ``slow``: the block is marked ``@pytest.mark.slow`` (a block that uses the output of
  a slow block must be marked slow too).

``test_docs_inventory`` prints how many blocks run and how many are skipped.
The tutorial notebook (notebooks/tutorial.ipynb) is executed cell by cell with
``GRIDSWEEP_TUTORIAL_STEPS`` set small; the site builds with ``mkdocs build --strict``
(slow).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"python", "bash", "sh", "shell", "console"}
SHELL_LANGS = RUN_LANGS - {"python"}
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
DIRECTIVE = re.compile(r"^<!--\s*docs-test:(.*?)-->\s*$")
REACHABLE = ("configs", "tests")  # repository paths a block may name relative to the repo root


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: str | None
    overrides: list[str] = field(default_factory=list)
    skip: str | None = None
    skip_lines: dict[int, str] = field(default_factory=dict)
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse_directive(text: str, where: str) -> dict[str, Any]:
    """The items of one ``docs-test:`` comment; a malformed one is a ValueError naming ``where``."""
    out: dict[str, Any] = {"overrides": [], "skip": None, "skip_lines": {}, "slow": False}
    parts = text.split(";")
    while parts:
        item = parts.pop(0).strip()
        if item.startswith("skip"):  # a reason runs to the end of the comment
            item = ";".join([item, *parts]).strip()
            parts = []
        if not item:
            continue
        if item == "slow":
            out["slow"] = True
        elif item.startswith("set "):
            pairs = item[4:].split()
            bad = [p for p in pairs if "=" not in p]
            if not pairs or bad:
                raise ValueError(f"{where}: 'set' takes K=V pairs, got {item!r}")
            out["overrides"] += pairs
        elif item.startswith("skip-lines"):
            m = re.fullmatch(r"skip-lines\s+([\d,\s]+):\s*(\S.*)", item)
            if not m:
                raise ValueError(f"{where}: write 'skip-lines N,M: reason' (a reason is required), got {item!r}")
            for n in m.group(1).replace(" ", "").split(","):
                out["skip_lines"][int(n)] = m.group(2).strip()
        elif item.startswith("skip"):
            m = re.fullmatch(r"skip:\s*(\S.*)", item)
            if not m:
                raise ValueError(f"{where}: write 'skip: reason' (a reason is required), got {item!r}")
            out["skip"] = m.group(1).strip()
        else:
            raise ValueError(f"{where}: unknown docs-test item {item!r} (set, skip, skip-lines, slow)")
    return out


def extract_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file with the directive directly above each."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        d = DIRECTIVE.match(before.strip())
        b = Block(path, line, m.group(1).lower(), m.group(2), d.group(1).strip() if d else None)
        if d:
            for k, v in parse_directive(b.directive or "", f"{path.name}:{line}").items():
                setattr(b, k, v)
        blocks.append(b)
    return blocks


ALL_BLOCKS = [b for f in DOC_FILES for b in extract_blocks(f)]
RUN_BLOCKS = [b for b in ALL_BLOCKS if b.lang in RUN_LANGS]


# --------------------------------------------------------------------------------------
# running one block
# --------------------------------------------------------------------------------------
def shell_commands(block: Block) -> list[tuple[int, str]]:
    """``(line number in block, command)`` of a shell block, continuation lines joined."""
    lines = block.code.splitlines()
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if block.lang == "console":
            if not pending and s.startswith("$ "):
                s = s[2:]
            elif not pending:
                continue  # output
        if not pending:
            start = i
        if s.endswith("\\"):
            pending += s[:-1].rstrip() + " "
            continue
        s = pending + s
        pending = ""
        if s and not s.startswith("#"):
            out.append((start, s))
    return out


def _cli_command(words: list[str]) -> Any:
    """The click command that ``gridsweep WORDS...`` names (the deepest existing one)."""
    import typer

    from gridsweep.cli import app

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("gridsweep", [], resilient_parsing=True)
    for w in words:
        if not hasattr(cmd, "get_command"):
            break
        sub = cmd.get_command(ctx, w)
        if sub is None:
            break
        cmd = sub
        ctx = cmd.make_context(w, [], parent=ctx, resilient_parsing=True)
    return cmd


def run_gridsweep(argv: list[str], overrides: list[str]) -> tuple[int, str]:
    """Run ``gridsweep ARGV`` in-process; ``--set`` overrides are appended where accepted."""
    from typer.testing import CliRunner

    from gridsweep.cli import app

    if overrides:
        cmd = _cli_command([a for a in argv if not a.startswith("-")])
        if any("--set" in getattr(p, "opts", ()) for p in getattr(cmd, "params", [])):
            argv = [*argv, *[x for o in overrides for x in ("--set", o)]]
    res = CliRunner().invoke(app, argv, catch_exceptions=False)
    out = res.output + (getattr(res, "stderr", "") if res.output != getattr(res, "stderr", "") else "")
    return res.exit_code, out


def run_shell_block(block: Block) -> None:
    for n, cmd in shell_commands(block):
        if n in block.skip_lines:
            continue
        argv = shlex.split(cmd, comments=True)
        if not argv:
            continue
        assert argv[0] == "gridsweep", (
            f"{block.id} line {n}: {cmd!r} is not a gridsweep command; mark it "
            "'<!-- docs-test: skip-lines N: reason -->' or '<!-- docs-test: skip: reason -->'")
        assert not set(argv) & {"|", "&&", ";", ">", "<", "||"}, f"{block.id} line {n}: pipes and lists are not run"
        code, out = run_gridsweep(argv[1:], block.overrides)
        assert code == 0, f"{block.id} line {n}: `{cmd}` exited {code}:\n{out[-3000:]}"


def run_python_block(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    import gridsweep.config as config_mod

    if block.overrides:
        original = config_mod.load_config
        extra = list(block.overrides)

        def load_config(path: Any, overrides: Any = None) -> Any:
            if isinstance(overrides, dict):
                merged: Any = {**overrides, **dict(o.split("=", 1) for o in extra)}
            else:
                merged = [*(overrides or []), *extra]
            return original(path, merged)

        monkeypatch.setattr(config_mod, "load_config", load_config)
    code = compile(block.code, block.id, "exec")
    ns: dict[str, Any] = {"__name__": "__main__"}  # blocks may guard with if __name__ == "__main__"
    try:
        exec(code, ns)  # noqa: S102 - the documentation's own code
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")


@pytest.fixture(scope="session")
def doc_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """One working directory per documentation file, created on first use."""
    return {}


def _workdir(doc_dirs: dict[Path, Path], tmp_path_factory: pytest.TempPathFactory, path: Path) -> Path:
    if path not in doc_dirs:
        d = tmp_path_factory.mktemp(re.sub(r"\W", "_", path.stem))
        for name in REACHABLE:
            (d / name).symlink_to(ROOT / name, target_is_directory=True)
        doc_dirs[path] = d
    return doc_dirs[path]


def _param(b: Block) -> Any:
    return pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else [])


@pytest.mark.parametrize("block", [_param(b) for b in RUN_BLOCKS])
def test_doc_block(block: Block, doc_dirs: dict[Path, Path], tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    if block.skip:
        pytest.skip(f"docs-test skip: {block.skip}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(_workdir(doc_dirs, tmp_path_factory, block.path))
    if block.lang == "python":
        run_python_block(block, monkeypatch)
    else:
        run_shell_block(block)


# --------------------------------------------------------------------------------------
# the inventory and the checks that need no execution
# --------------------------------------------------------------------------------------
def test_docs_inventory() -> None:
    """Every directive parses, sits on a runnable block, and every skip has a reason; prints the counts."""
    skipped = [b for b in RUN_BLOCKS if b.skip]
    for b in ALL_BLOCKS:
        if b.directive is not None:
            assert b.lang in RUN_LANGS, f"{b.id}: a docs-test directive on a ```{b.lang} block that is never run"
        for n in b.skip_lines:
            assert 1 <= n <= len(b.code.splitlines()), f"{b.id}: skip-lines {n} is outside the block"
    run = len(RUN_BLOCKS) - len(skipped)
    slow = sum(1 for b in RUN_BLOCKS if b.slow and not b.skip)
    lines_skipped = sum(len(b.skip_lines) for b in RUN_BLOCKS if not b.skip)
    print(f"\ndocs blocks: {len(RUN_BLOCKS)} runnable-language blocks in {len(DOC_FILES)} files; "
          f"{run} run ({slow} of them slow), {skipped and len(skipped) or 0} skipped, "
          f"{lines_skipped} single lines skipped")
    for b in skipped:
        print(f"  skip {b.id}: {b.skip}")
    assert run >= len(skipped), "more documentation blocks are skipped than run"


def test_directive_parser_rejects_bad_input() -> None:
    assert parse_directive("set a.b=1 c=2; slow", "x")["overrides"] == ["a.b=1", "c=2"]
    assert parse_directive("skip-lines 2,3: needs CUDA", "x")["skip_lines"] == {2: "needs CUDA", 3: "needs CUDA"}
    for bad in ("skip", "skip:", "skip-lines 2", "set", "set a", "fast"):
        with pytest.raises(ValueError, match="x:"):
            parse_directive(bad, "x")


def test_shell_parsing(tmp_path: Path) -> None:
    p = tmp_path / "x.md"
    p.write_text("<!-- docs-test: skip-lines 2: reason -->\n```console\n$ gridsweep a \\\n  --b 1\nout put\n$ gridsweep c\n```\n")
    (b,) = extract_blocks(p)
    assert b.skip_lines == {2: "reason"}
    assert shell_commands(b) == [(1, "gridsweep a --b 1"), (4, "gridsweep c")]


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_names_every_command() -> None:
    hooks = _hooks()
    paths = [" ".join(p) for p, _, _ in hooks.iter_commands() if p]
    text = hooks.render_cli_reference()
    for p in paths:
        assert f"`gridsweep {p}`" in text
    for expected in ("train", "score", "config show", "sweep run", "theory predict", "neural fit", "reproduce", "report"):
        assert expected in paths


INLINE = re.compile(r"`(gridsweep(?: [a-z][a-z-]*)+)[^`]*`")


def test_commands_named_in_docs_exist() -> None:
    """Every ``gridsweep WORD ...`` in inline code of the docs names a real command."""
    hooks = _hooks()
    groups = {" ".join(p): hasattr(c, "commands") for p, c, _ in hooks.iter_commands()}
    bad = []
    for f in DOC_FILES:
        for m in INLINE.finditer(f.read_text(encoding="utf-8")):
            words = m.group(1).split()[1:]
            path: list[str] = []
            for w in words:
                if " ".join([*path, w]) in groups:
                    path.append(w)
                else:
                    break
            rest = words[len(path):]
            if not path or (groups[" ".join(path)] and rest):
                bad.append(f"{f.name}: `{m.group(0)}`")
    assert not bad, "commands that do not exist: " + "; ".join(bad)


def _public_modules() -> set[str]:
    out = set()
    for p in (ROOT / "src" / "gridsweep").rglob("*.py"):
        parts = list(p.relative_to(ROOT / "src").with_suffix("").parts)
        if parts[-1] == "__main__" or any(x.startswith("_") and x != "__init__" for x in parts):
            continue
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_api_pages_cover_every_public_module() -> None:
    import yaml

    pages = {}
    for p in (ROOT / "docs" / "api").glob("*.md"):
        m = re.search(r"^::: (\S+)", p.read_text(), re.M)
        assert m, f"{p.name}: no '::: module' line"
        pages[m.group(1)] = p.name
    modules = _public_modules()
    assert set(pages) == modules, (f"API pages missing for {sorted(modules - set(pages))}; "
                                   f"pages of modules that do not exist: {sorted(set(pages) - modules)}")
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))["nav"]
    flat = json.dumps(nav)
    missing = [name for name in pages.values() if f"api/{name}" not in flat]
    assert not missing, f"API pages not in the mkdocs.yml nav: {missing}"
    for f in DOC_FILES:
        if f.name not in ("README.md", "index.md"):
            assert f.name in flat, f"docs/{f.name} is not in the mkdocs.yml nav"


# --------------------------------------------------------------------------------------
# the tutorial notebook and the site
# --------------------------------------------------------------------------------------
NOTEBOOK = ROOT / "notebooks" / "tutorial.ipynb"


def test_tutorial_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 4
    for name in REACHABLE:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("GRIDSWEEP_TUTORIAL_STEPS", "3")
    ns: dict[str, Any] = {"__name__": "__tutorial__"}
    for i, c in enumerate(cells):
        src = "".join(c["source"])
        ast.parse(src)
        exec(compile(src, f"tutorial.ipynb cell {i}", "exec"), ns)  # noqa: S102
    import matplotlib.pyplot as plt

    plt.close("all")
    assert ns["N_STEPS"] == 3
    assert "prediction" in ns and "measured_spacing_m" in ns


@pytest.mark.slow
def test_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    res = subprocess.run([mkdocs, "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-4000:]
    assert (tmp_path / "site" / "cli.html").is_file()
    assert "gridsweep sweep run" in (tmp_path / "site" / "cli.html").read_text()
    assert (tmp_path / "site" / "tutorial.ipynb").is_file()


def test_gallery_from_a_run_directory(tmp_path: Path) -> None:
    """scripts/make_gallery.py: figures copied and drawn from a run, captions name preset, commit, command."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    import yaml

    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "scripts" / "make_gallery.py")
    assert spec is not None and spec.loader is not None
    gallery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gallery)

    sweep = tmp_path / "reproduce_tiny"
    (sweep / "reproduce").mkdir(parents=True)
    (sweep / "reproduce" / "manifest.json").write_text(json.dumps({"preset": {"name": "tiny", "scale": "S"}}))
    (sweep / "report" / "figures").mkdir(parents=True)
    fig, ax = plt.subplots()
    fig.savefig(sweep / "report" / "figures" / "summary.png")
    plt.close(fig)
    y, x = np.mgrid[0:12, 0:12] / 12.0
    maps = np.stack([np.cos(2 * np.pi * (k + 1) * x) * np.cos(2 * np.pi * y) for k in range(4)])
    for name, best in (("a", 0.2), ("b", 0.9)):
        trial = sweep / "trials" / name
        (trial / "analysis").mkdir(parents=True)
        (trial / "summary.json").write_text(json.dumps({"max_score60_deepmind_minmax": best}))
        (trial / "config.yaml").write_text(yaml.safe_dump({"seed": 1, "model": {"cell": "rnn", "hidden_size": 4},
                                                          "target": {"kind": "dos", "n_cells": 8, "sigma": 0.12},
                                                          "training": {"n_steps": 5}}))
        np.savez(trial / "analysis" / "ratemaps.npz", maps=maps, extent=np.array([-1.1, 1.1, -1.1, 1.1]))
        pd.DataFrame({"unit": range(4), "score60_deepmind_minmax": [0.1, 0.5, best, -0.2],
                      "spacing_m": [0.5, 0.6, 0.7, np.nan]}).to_parquet(trial / "analysis" / "units.parquet")
    docs = tmp_path / "docs"
    assert gallery.main(["--tiny", str(sweep), "--docs", str(docs), "--only"]) == 0
    text = (docs / "gallery.md").read_text()
    assert sorted(p.name for p in (docs / "gallery").glob("*.png")) == ["tiny_ratemaps.png", "tiny_summary.png"]
    assert "trial `b`" in text and "max deepmind_minmax 0.90" in text  # the best trial, not the first
    assert text.count("Preset `tiny`, commit `") == 2 and "gridsweep reproduce --preset tiny --out" in text
    assert "report.html` is missing" in text
    # no run at all: a page that says how to make one, and no figures
    assert gallery.main(["--tiny", str(tmp_path / "none"), "--docs", str(docs), "--only"]) == 0
    assert "No reproduction run was found" in (docs / "gallery.md").read_text()
    assert not list((docs / "gallery").glob("*.png"))
