"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

- The command-line reference: ``docs/cli.md`` holds the marker ``<!-- cli-reference -->``,
  replaced at build time by the usage, help and options of every ``gridsweep`` command,
  read from the Typer app itself (:func:`render_cli_reference`), so the page cannot
  drift from the code.
- The tutorial notebook ``notebooks/tutorial.ipynb`` is added to the site as
  ``tutorial.ipynb`` (a download link on ``docs/tutorial.md``).
- ``docs/gallery.md`` is written by ``scripts/make_gallery.py`` (git ignores it); when
  it is absent the site gets a page that says how to make it.

``tests/test_docs.py`` imports this file to check that the reference renders and names
every command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- cli-reference -->"
NOTEBOOK = ROOT / "notebooks" / "tutorial.ipynb"
GALLERY_STUB = """# Gallery

No gallery has been made in this checkout. `make docs` makes it (it runs
`scripts/make_gallery.py`, which draws the figures from a run of the `tiny` reproduction
preset, and of `quick` where a report exists, then builds the site).
"""


def iter_commands() -> Iterator[tuple[list[str], Any, Any]]:
    """Every command of ``gridsweep`` as ``(path, click command, click context)``, depth first.

    ``path`` is the list of words after ``gridsweep`` (empty for the root). The lazily
    imported subcommands (``sweep``, ``theory``, ...) are imported here.
    """
    import typer

    from gridsweep.cli import app

    root = typer.main.get_command(app)

    def walk(cmd: Any, path: list[str], parent: Any) -> Iterator[tuple[list[str], Any, Any]]:
        ctx = cmd.make_context(" ".join(["gridsweep", *path]), [], parent=parent, resilient_parsing=True)
        yield path, cmd, ctx
        list_commands = getattr(cmd, "list_commands", None)
        if list_commands is None:
            return
        for name in list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            yield from walk(sub, [*path, name], ctx)

    yield from walk(root, [], None)


def _arg_name(param: Any) -> str:
    name = (param.name or "").upper()
    return f"{name}..." if getattr(param, "nargs", 1) == -1 else name


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_cli_reference() -> str:
    """Markdown: one section per command with its usage line, help text and parameters."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    out: list[str] = []
    for path, cmd, ctx in iter_commands():
        name = " ".join(["gridsweep", *path])
        level = "#" * min(2 + max(len(path) - 1, 0), 4)
        out.append(f"{level} `{name}`" + (" (global options)" if not path else "") + "\n")
        params = cmd.get_params(ctx)
        pieces = ["[OPTIONS]"] if any(p.param_type_name == "option" for p in params) else []
        pieces += [_arg_name(p) for p in params if p.param_type_name == "argument"]
        if hasattr(cmd, "commands"):
            pieces.append("COMMAND [ARGS]...")
        out.append("```text\n" + " ".join([name, *pieces]) + "\n```\n")
        help_text = (cmd.help or cmd.short_help or "").strip()
        if help_text:
            out.append(help_text.replace("\b\n", "") + "\n")
        rows = []
        for param in params:
            if param.param_type_name == "argument":
                rows.append((_arg_name(param), getattr(param, "help", None) or ""))
                continue
            record = param.get_help_record(ctx)
            if record is not None and "--help" not in param.opts:
                rows.append(record)
        if rows:
            out.append("| argument / option | meaning |\n|---|---|")
            out.extend(f"| `{_cell(a)}` | {_cell(b)} |" for a, b in rows)
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# mkdocs events
# --------------------------------------------------------------------------------------
def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add the tutorial notebook to the site as ``tutorial.ipynb``."""
    from mkdocs.structure.files import File

    if NOTEBOOK.is_file():
        files.append(File.generated(config, "tutorial.ipynb", abs_src_path=str(NOTEBOOK)))
    if files.get_file_from_path("gallery.md") is None:  # scripts/make_gallery.py has not run
        files.append(File.generated(config, "gallery.md", content=GALLERY_STUB))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Replace the CLI marker with the rendered reference."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render_cli_reference())
    return markdown
