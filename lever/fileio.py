"""Atomic, versioned files: write to a temporary name, fsync, rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import FileFormatError


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], binary: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def check_file(path: str | os.PathLike, entry: dict, verify: bool = True) -> None:
    """Check a file against its manifest ``entry`` (``bytes``, ``sha256``): it exists, has that size,
    and (with ``verify``) that checksum. Raises :class:`FileFormatError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise FileFormatError(f"{path}: {size} bytes, the manifest says {entry.get('bytes')} "
                              f"(truncated or replaced)")
    if verify and sha256_file(path) != entry.get("sha256"):
        raise FileFormatError(f"{path}: checksum mismatch (file corrupt or modified)")
