"""What each command that writes owns: output directories carry a marker of their kind.

A library, a sweep and a reproduction each live in a directory of their own.
When a command creates one it writes a marker file, ``DIR/.lever-<kind>``
(:func:`marker_name`), atomically, before any other file; from then on the
directory belongs to that kind. Before writing, every command checks its
target (:func:`check_output_dir`): it refuses an empty path (which would
mean the current directory), a file, a directory holding another kind's
marker or files, and a directory holding files of its own that lever did
not write there. A single output file (a saved policy) is checked by
:func:`check_save_path`: it must have its kind's extension, must not lie
inside a library, sweep or reproduction directory, and replaces only a file
of the same lever format, never one lever did not create.

Directories made by an earlier lever carry no marker: they are recognised by
their manifest (a library's ``manifest.json`` or unfinished ``.staging``
build, ``sweep.json``, ``reproduction.json``), still resume or open, and get
their marker on the next write.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import LeverError
from .fileio import LOCK_NAME, write_json
from .version import __version__

#: The kinds of output directory lever writes.
KINDS = ("library", "sweep", "reproduction")
MARKER_FORMAT = "lever-output"
MARKER_VERSION = 1
#: What marks a directory of each kind written before markers existed: (file name, its JSON "format" or None).
_EARLIER = {"library": (("manifest.json", "lever-policy-library"), (".staging/build.json", None)),
            "sweep": (("sweep.json", "lever-sweep"),),
            "reproduction": (("reproduction.json", "lever-reproduction"),)}


def marker_name(kind: str) -> str:
    """The name of the marker file of a ``kind`` directory (``.lever-library`` …)."""
    return f".lever-{kind}"


def _json_format(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("format") if isinstance(doc, dict) else None


def owner(directory: str | os.PathLike) -> str | None:
    """The kind of lever output ``directory`` holds (its marker, else an earlier lever's manifest), or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for kind in KINDS:
        if (directory / marker_name(kind)).is_file():
            return kind
    for kind in KINDS:
        for name, form in _EARLIER[kind]:
            path = directory / name
            if path.is_file() and (form is None or _json_format(path) == form):
                return kind
    return None


def check_path_text(path, what: str) -> Path:
    """``path`` as a Path; LeverError if it is not a path, is empty (the current directory) or holds NUL."""
    if not isinstance(path, (str, os.PathLike)):
        raise LeverError(f"{what} must be a path, got {type(path).__name__}")
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise LeverError(f"{what} is empty: name it (. for the current directory)")
    if "\0" in text:
        raise LeverError(f"{what} {text!r} holds a NUL character")
    return Path(text)


def check_output_dir(path, kind: str, what: str = "output directory") -> Path:
    """The output directory ``path`` of a ``kind`` command, checked before any work; LeverError if it
    is empty, a file, another kind's directory, or a directory of files lever did not write there."""
    directory = check_path_text(path, what)
    if directory.exists() and not directory.is_dir():
        raise LeverError(f"{what} {directory} is a file, not a directory: choose an empty or new directory")
    if not directory.exists():
        return directory
    found = owner(directory)
    if found is not None and found != kind:
        raise LeverError(f"{what} {directory} holds a lever {found}, not a {kind}: choose another directory")
    if found is None:
        try:
            foreign = sorted(p.name for p in directory.iterdir() if p.name != LOCK_NAME)
        except OSError as exc:
            raise LeverError(f"cannot read {what} {directory}: {exc.strerror or exc}") from None
        if foreign:
            raise LeverError(f"{what} {directory} exists and is not a lever {kind} directory (it holds "
                             f"{', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''}): choose an empty or "
                             f"new directory")
    return directory


def mark_output_dir(directory: Path, kind: str) -> bool:
    """Write ``directory``'s marker of ``kind`` (atomically) unless it has it; call under the directory's lock,
    after :func:`check_output_dir`. Returns whether it wrote the marker now."""
    marker = directory / marker_name(kind)
    if marker.is_file():
        return False
    write_json(marker, MARKER_FORMAT, MARKER_VERSION, {"kind": kind, "lever_version": __version__})
    return True


def unmark_output_dir(directory: Path, kind: str) -> None:
    """Remove ``directory``'s marker (a failed first build leaves nothing behind)."""
    try:
        (directory / marker_name(kind)).unlink()
    except OSError:
        pass


def _is_lever_file(path: Path, form: str) -> bool:
    """Whether ``path`` is a ``.npz`` file of lever format ``form`` (its header alone is read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("header.npy").file_size > 1 << 20:
                return False
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return False
    return isinstance(header, dict) and header.get("format") == form


def check_outside_outputs(path, what: str) -> Path:
    """``path`` (a file to write) as a Path; LeverError if it is empty or lies inside a library, sweep or
    reproduction directory, whose files belong to the command that made it."""
    target = check_path_text(path, what)
    for parent in target.resolve().parents:
        found = owner(parent)
        if found is not None:
            raise LeverError(f"{what} {target} lies inside the lever {found} {parent}, which holds only that "
                             f"{found}'s own files: choose a path outside it")
    return target


def check_save_path(path, suffix: str, form: str, what: str) -> Path:
    """The file ``path`` a ``form`` file (e.g. a composed policy) will be saved to, checked before any work.

    LeverError if it is empty, does not end in ``suffix``, is a directory,
    lies inside a library, sweep or reproduction directory, or already
    exists as anything but a ``form`` file (lever replaces only its own).
    """
    target = check_path_text(path, what)
    if target.suffix.lower() != suffix:
        raise LeverError(f"{what} must end in {suffix}, got {str(target)!r}")
    if target.is_dir():
        raise LeverError(f"{what} {target} is a directory")
    check_outside_outputs(target, what)
    if target.exists() and not _is_lever_file(target, form):
        raise LeverError(f"{what} {target} exists and is not a lever {form} file; lever does not replace it: "
                         f"choose another name")
    return target
