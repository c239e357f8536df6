"""Safe files: atomic writes, sha256 sidecars, and readers that never execute code.

Every file gridsweep writes for later reading goes through :func:`atomic_path` (or one
of the writers built on it): the content is written to a temporary file in the same
directory, flushed and ``fsync``-ed, then renamed over the target with ``os.replace``
(atomic on POSIX), and the directory is ``fsync``-ed. A reader therefore sees either
the old or the new file, never a half-written one.

Result files also get a checksum sidecar ``NAME.sha256`` in ``sha256sum`` format
(``<64 hex digits>  NAME`` per line). The readers here verify it before parsing and
raise :class:`~gridsweep.errors.CorruptFileError` naming the file when the bytes differ
(a truncated, zeroed or bit-flipped file). While a file is being replaced the sidecar
briefly lists both the old and the new digest, so a crash at any point leaves a pair
that verifies (see docs/reliability.md).

No reader executes code: checkpoints are read with ``torch.load(weights_only=True)``,
``.npz`` with ``allow_pickle=False``, YAML with ``safe_load``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal

from gridsweep.errors import CorruptFileError

__all__ = [
    "UnverifiedFileWarning",
    "atomic_path",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "sha256_file",
    "checksum_path",
    "verify_checksum",
    "read_json",
    "load_npz",
    "save_npz",
    "read_parquet",
    "write_parquet",
    "load_torch",
    "save_torch",
]

Verify = Literal["auto", "require", "off"]
_CHUNK = 1 << 20


class UnverifiedFileWarning(UserWarning):
    """A file was read without a checksum sidecar (written before checksums existed)."""


# --------------------------------------------------------------------------------------
# checksums
# --------------------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    """Hex sha256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksum_path(path: str | Path) -> Path:
    """The sidecar of ``path``: ``NAME.sha256`` next to it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _read_digests(path: Path) -> list[str] | None:
    """Digests the sidecar of ``path`` accepts; None when there is no sidecar."""
    side = checksum_path(path)
    try:
        text = side.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{side}: unreadable checksum file ({err})", side) from None
    digests = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        d = parts[0].lower()
        if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
            raise CorruptFileError(f"{side}: malformed checksum line {line[:80]!r} "
                                   "(expected '<64 hex digits>  NAME')", side)
        digests.append(d)
    if not digests:
        raise CorruptFileError(f"{side}: empty checksum file", side)
    return digests


def verify_checksum(path: str | Path, verify: Verify = "auto") -> bool:
    """Check ``path`` against its ``.sha256`` sidecar.

    Parameters
    ----------
    path : path
    verify : {"auto", "require", "off"}
        ``auto``: verify when a sidecar exists, else warn (:class:`UnverifiedFileWarning`)
        and accept; ``require``: a missing sidecar is an error; ``off``: do nothing.

    Returns
    -------
    bool
        True when the file was verified.

    Raises
    ------
    CorruptFileError
        The file is missing, or its digest is not one the sidecar lists.
    """
    path = Path(path)
    if verify == "off":
        return False
    if not path.is_file():
        raise CorruptFileError(f"{path}: file not found", path)
    digests = _read_digests(path)
    if digests is None:
        if verify == "require":
            raise CorruptFileError(f"{path}: no checksum file {checksum_path(path).name}; cannot verify it", path)
        warnings.warn(f"{path}: no checksum file {checksum_path(path).name}; read without verification",
                      UnverifiedFileWarning, stacklevel=3)
        return False
    actual = sha256_file(path)
    if actual not in digests:
        size = path.stat().st_size
        raise CorruptFileError(
            f"{path}: checksum mismatch (sha256 {actual[:12]}..., expected {digests[0][:12]}... from "
            f"{checksum_path(path).name}; {size} bytes): the file is corrupt or was changed after it was written",
            path)
    return True


# --------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------
def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # not supported on this platform/filesystem
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    # keeps the real suffix last (np.savez appends ".npz" to names without it)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def _replace_text(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, checksum: bool = False) -> Iterator[Path]:
    """Write a file atomically: yield a temporary path, then rename it onto ``path``.

    The caller writes the complete content to the yielded path (any writer that takes
    a filename). On a clean exit the temporary file is ``fsync``-ed and renamed over
    ``path`` with ``os.replace``, and the directory is ``fsync``-ed; on an exception it
    is removed and ``path`` is left as it was.

    With ``checksum=True`` the sidecar ``NAME.sha256`` is updated too: first to list the
    old and the new digest, then (after the rename) the new one only, so the pair
    verifies whenever the process stops.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt", checksum=True) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text(), verify_checksum(d / "a.txt")
    ('hello', True)
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write of {path}: the writer produced no file at {tmp}")
        _fsync_file(tmp)
        if checksum:
            new = sha256_file(tmp)
            side = checksum_path(path)
            old: list[str] = []
            if path.exists() and side.exists():
                with contextlib.suppress(CorruptFileError):
                    old = (_read_digests(path) or [])[:1]
            if old and old != [new]:
                _replace_text(side, f"{new}  {path.name}\n{old[0]}  {path.name}\n")
            os.replace(tmp, path)
            _replace_text(side, f"{new}  {path.name}\n")
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes, *, checksum: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, checksum=checksum) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str, *, checksum: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, checksum=checksum) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any, *, checksum: bool = True) -> None:
    """Write JSON (indent 2; numpy/torch scalars as floats) atomically with a sha256 sidecar."""
    write_text_atomic(path, json.dumps(data, indent=2, default=float), checksum=checksum)


# --------------------------------------------------------------------------------------
# readers that never execute code
# --------------------------------------------------------------------------------------
def _check_nonempty(path: Path, what: str) -> None:
    if not path.is_file():
        raise CorruptFileError(f"{path}: {what} not found", path)
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path}: empty file (0 bytes); expected a {what}", path)


def read_json(path: str | Path, *, verify: Verify = "auto") -> Any:
    """Parse a JSON file after verifying its checksum; CorruptFileError names the file."""
    path = Path(path)
    _check_nonempty(path, "JSON file")
    verify_checksum(path, verify)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(f"{path}: not valid JSON ({err})", path) from None


def save_npz(path: str | Path, *, compressed: bool = True, checksum: bool = True, **arrays: Any) -> None:
    """``np.savez[_compressed]`` written atomically with a sha256 sidecar."""
    import numpy as np

    with atomic_path(path, checksum=checksum) as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)


def load_npz(path: str | Path, *, verify: Verify = "auto") -> dict[str, Any]:
    """All arrays of an ``.npz`` (read eagerly, ``allow_pickle=False``) after verifying its checksum.

    Raises
    ------
    CorruptFileError
        Missing, empty, failing its checksum, not a zip archive, a damaged member, or
        an object array (which would need pickle).
    """
    import zipfile

    import numpy as np

    path = Path(path)
    _check_nonempty(path, ".npz archive")
    verify_checksum(path, verify)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickled" in str(err):
            raise CorruptFileError(f"{path}: holds object arrays, which need pickle (refused: it can run code)",
                                   path) from None
        raise CorruptFileError(f"{path}: not a readable .npz archive ({err})", path) from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, RuntimeError) as err:
        raise CorruptFileError(f"{path}: not a readable .npz archive ({type(err).__name__}: {err})", path) from None


def write_parquet(df: Any, path: str | Path, *, checksum: bool = True, **kw: Any) -> None:
    """``DataFrame.to_parquet`` written atomically with a sha256 sidecar."""
    with atomic_path(path, checksum=checksum) as tmp:
        df.to_parquet(tmp, **kw)


def read_parquet(path: str | Path, *, verify: Verify = "auto") -> Any:
    """``pandas.read_parquet`` after verifying the checksum; CorruptFileError names the file."""
    import pandas as pd

    path = Path(path)
    _check_nonempty(path, "parquet table")
    verify_checksum(path, verify)
    try:
        return pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for damaged files
        raise CorruptFileError(f"{path}: not a readable parquet table ({type(err).__name__}: {err})", path) from None


def save_torch(obj: Any, path: str | Path, *, checksum: bool = True) -> None:
    """``torch.save`` written atomically with a sha256 sidecar.

    ``obj`` should hold only tensors and plain data (dict, list, str, int, float, bool,
    None) so that :func:`load_torch` can read it back without executing code.
    """
    import torch

    with atomic_path(path, checksum=checksum) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, *, verify: Verify = "auto", map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` after verifying the checksum.

    Raises
    ------
    CorruptFileError
        Missing, empty, failing its checksum, truncated or otherwise unreadable, or
        holding objects other than tensors and plain data (refused: unpickling them could
        execute code).
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    _check_nonempty(path, "checkpoint")
    verify_checksum(path, verify)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CorruptFileError(f"{path}: refused: holds objects other than tensors and plain data, "
                               f"which could execute code when loaded ({first[:200]})", path) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CorruptFileError(f"{path}: not a readable checkpoint ({type(err).__name__}: {first[:200]})",
                               path) from None
