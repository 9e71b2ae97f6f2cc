"""Atomic, versioned files: write to a temporary name, fsync, rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import FileFormatError, LeverError


def _umask() -> int:
    """The process's umask.

    os.umask can only be read by setting it, so this sets a restrictive
    value and restores the old one at once. The umask is process-wide: a
    file another thread creates in between gets at most 0o077 permissions,
    never looser ones.
    """
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], binary: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never half of one.
    The file gets the permissions of a plain ``open()``: ``0o666`` less the umask.
    Raises :class:`LeverError` ``"cannot write PATH: REASON"`` if the directory
    cannot be created or written (then no temporary file is left behind);
    exceptions raised by ``write`` itself, other than :class:`OSError`, pass through.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileExistsError:  # mkdir: the parent exists but is a file
        raise LeverError(f"cannot write {path}: {path.parent} is not a directory") from None
    except OSError as exc:
        raise LeverError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0o600 whatever the umask
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise LeverError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


def write_json(path: str | os.PathLike, kind: str, version: int, payload: dict) -> None:
    """Write ``payload`` atomically as JSON, tagged with its ``kind`` and format ``version``."""
    document = {"format": kind, "version": version, **payload}
    atomic_write(path, lambda h: json.dump(document, h, indent=1, sort_keys=True))


def read_json(path: str | os.PathLike, kind: str, version: int) -> dict:
    """Read a file written by :func:`write_json`, checking its kind and version.

    Raises :class:`FileFormatError` naming the file if it is missing,
    not JSON, of another kind, or of another format version.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not a valid {kind} file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != kind:
        raise FileFormatError(f"{path}: not a {kind} file")
    if document.get("version") != version:
        raise FileFormatError(
            f"{path}: {kind} format version {document.get('version')!r}, this lever reads {version}")
    return document


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (files larger than memory are fine)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
