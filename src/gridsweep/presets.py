"""The one resolver of preset names: shipped run configs and reproduction presets.

gridsweep ships two families of named YAML files:

``config``
    run configs in ``gridsweep/configs/`` (``demo_small``, ``sorscher_ideal``, ...),
    accepted wherever a config path is (``gridsweep train demo_small``,
    ``load_config("demo_small")``, a reproduction preset's ``base:``);
``reproduce``
    reproduction presets in ``gridsweep/reproduce/presets/`` (``tiny``, ``quick``,
    ``full``), accepted by ``gridsweep reproduce --preset``.

:func:`resolve_preset` turns "a path or a name" into a file path the same way for both,
so Python and the command line agree. This module is library code: it imports nothing
from the command line and nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from gridsweep.errors import ConfigError

__all__ = ["CONFIG_DIR", "REPRODUCE_DIR", "PresetKind", "preset_dir", "list_presets", "preset_summary",
           "resolve_preset", "resolve_config_path"]

CONFIG_DIR = Path(__file__).parent / "configs"
REPRODUCE_DIR = Path(__file__).parent / "reproduce" / "presets"
PresetKind = Literal["config", "reproduce"]

_WHAT = {"config": "config", "reproduce": "reproduction preset"}


def preset_dir(kind: PresetKind = "config") -> Path:
    """The directory of the shipped presets of ``kind``."""
    if kind == "config":
        return CONFIG_DIR
    if kind == "reproduce":
        return REPRODUCE_DIR
    raise ConfigError(f"preset kind {kind!r}: allowed kinds are 'config', 'reproduce'")


_ORDER = {"reproduce": ("tiny", "quick", "full")}  # smallest first


def list_presets(kind: PresetKind = "config") -> list[str]:
    """Names of the shipped presets of ``kind`` (file stems): reproduction presets smallest
    first, then alphabetical."""
    names = sorted(p.stem for p in preset_dir(kind).glob("*.yaml"))
    first = [n for n in _ORDER.get(kind, ()) if n in names]
    return first + [n for n in names if n not in first]


def preset_summary(name: str, kind: PresetKind = "config") -> str:
    """The first ``# comment`` line of a shipped preset (empty when it has none)."""
    path = preset_dir(kind) / f"{name}.yaml"
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def resolve_preset(name_or_path: str | Path, kind: PresetKind = "config",
                   relative_to: str | Path | None = None) -> Path:
    """The YAML file meant by ``name_or_path``.

    Tried in order: the path itself (absolute or relative to the working directory),
    the path relative to the directory of the file ``relative_to`` (a preset's
    ``base:``), then a shipped preset ``NAME`` or ``NAME.yaml`` of ``kind``.

    Raises
    ------
    ConfigError
        When the path is a directory, or nothing matches (the message lists the shipped
        presets).
    """
    text = str(name_or_path)
    if not text.strip():
        raise ConfigError(f"{_WHAT[kind]} name is empty; shipped: {', '.join(list_presets(kind))}")
    cands = [Path(text).expanduser()]
    if relative_to is not None and not Path(text).is_absolute():
        cands.append(Path(relative_to).parent / text)
    for cand in cands:
        if cand.is_file():
            return cand
        if cand.is_dir():
            raise ConfigError(f"{cand}: is a directory, expected a {_WHAT[kind]} YAML file or a preset name")
    # a shipped name: never a path with separators (no escaping the preset directory)
    if "/" not in text and "\\" not in text and text not in (".", ".."):
        base = preset_dir(kind)
        for cand in (base / text, base / f"{text}.yaml"):
            if cand.is_file():
                return cand
    raise ConfigError(f"{_WHAT[kind]} {text!r} does not exist (neither a file nor a preset); "
                      f"shipped presets: {', '.join(list_presets(kind))}")


def resolve_config_path(name_or_path: str | Path, relative_to: str | Path | None = None) -> Path:
    """A run-config file path from a path or a preset name (:func:`resolve_preset`, kind ``config``)."""
    return resolve_preset(name_or_path, "config", relative_to)
