"""The small exception hierarchy of gridsweep.

Every error the library raises on purpose derives from :class:`GridsweepError`, so a
caller can catch the family in one clause. Messages name the field, the value and what
is allowed.
"""

from __future__ import annotations


class GridsweepError(Exception):
    """Base class of every error gridsweep raises on purpose."""


class ConfigError(GridsweepError, ValueError):
    """A configuration or sweep spec is invalid (unknown key, wrong type, bad value)."""


class DataError(GridsweepError, ValueError):
    """Input arrays or files have the wrong shape, units or content."""


class AnalysisError(GridsweepError, ValueError):
    """An analysis cannot be computed from the given input."""


class DivergedError(GridsweepError, FloatingPointError):
    """Training produced a NaN or infinite loss or parameter."""


class StoreError(GridsweepError, RuntimeError):
    """The results store is missing, corrupt or inconsistent."""


class CorruptFileError(DataError):
    """A file is empty, truncated, fails its sha256 checksum or cannot be parsed.

    ``path`` is the file; the message names it and says what failed.
    """

    def __init__(self, message: str, path: object = None):
        super().__init__(message)
        self.path = path


class UnsafeFileError(DataError):
    """A file could execute code when read (a pickle) and was refused.

    Such files are read only when the caller opts in explicitly (``allow_pickle=True``).
    """


class ResourceError(GridsweepError, MemoryError):
    """A config needs more memory than the machine has available (refused before allocating)."""


def format_validation_error(err: object, source: str = "", prefix: str = "") -> str:
    """One line for a pydantic ``ValidationError``: where, which field, what is wrong.

    The single formatter of validation errors in gridsweep (configs, sweep specs,
    reproduction presets, theory targets and the command line all use it).

    Parameters
    ----------
    err : pydantic.ValidationError
        Anything with an ``errors()`` method returning pydantic's error dicts.
    source : str
        Where the data came from (a file path, ``file:line``); prefixed as ``source: ``.
    prefix : str
        Dotted location of the validated model inside a bigger document (``target``),
        prefixed to the field name.

    Returns
    -------
    str
        ``"SOURCE: FIELD: MESSAGE (got VALUE)"``; unknown keys read ``FIELD: unknown key``
        and the allowed values of a ``Literal`` are named by pydantic's message. When
        several fields are wrong, ``(and N more)`` is appended.
    """
    errors = err.errors()  # type: ignore[attr-defined]
    if not errors:
        return f"{source}: invalid" if source else "invalid"
    first = errors[0]
    parts = [str(p) for p in first.get("loc", ())]
    loc = ".".join(([prefix] if prefix else []) + parts) or "(top level)"
    kind = first.get("type", "")
    msg = "unknown key" if kind == "extra_forbidden" else str(first.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = first.get("input")
    text = f"{loc}: {msg}"
    if kind not in ("extra_forbidden", "missing") and not isinstance(value, (dict, list)):
        text += f" (got {value!r})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    where = f"{source}: " if source else ""
    return one_line(where + text)


def validation_error_loc(err: object, indices: bool = False) -> str:
    """Dotted location of the first error of a pydantic ``ValidationError`` ("" at top level).

    List/tuple indices are left out unless ``indices``.
    """
    errors = err.errors()  # type: ignore[attr-defined]
    if not errors:
        return ""
    return ".".join(str(p) for p in errors[0].get("loc", ()) if indices or not isinstance(p, int))


def format_yaml_error(err: BaseException) -> str:
    """One line for a YAML parse error: the problem and its line/column.

    A ``!!python/...`` tag (rejected by ``yaml.safe_load``) is named as such.
    """
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem is None:
        return one_line(str(err))
    text = str(problem)
    if "constructor for the tag" in text and "python/" in text:
        text = text.replace("could not determine a constructor for the tag", "tag") + \
            " is not allowed (only plain YAML: mappings, lists, numbers, strings)"
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return one_line(text)


def one_line(text: str) -> str:
    """``text`` with runs of whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())
