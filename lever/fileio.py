"""Atomic, versioned files: write to a temporary name, fsync, rename.

Also the guards around them: directory locks so that one process writes a
directory at a time (:func:`exclusive_lock`, :func:`shared_lock`), strict
JSON reading and writing, manifest paths that cannot leave their directory
(:func:`resolve_inside`) and manifest field type checks (:func:`check_type`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import time
import zipfile
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock; the locks below do nothing there
    fcntl = None

import numpy as np

from .array_files import check_npz
from .errors import FileFormatError, LeverError

#: Name of the lock file inside a locked directory.
LOCK_NAME = ".lock"
#: Deepest nesting :func:`read_json` accepts; lever's own files stay far below it.
MAX_JSON_DEPTH = 64
#: Seconds between two attempts to take a lock held by another process.
_POLL_S = 0.05


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
    """Write ``payload`` atomically as JSON, tagged with its ``kind`` and format ``version``.

    Raises :class:`LeverError` and writes nothing if ``payload`` holds NaN or
    an infinity, which JSON cannot represent.
    """
    document = {"format": kind, "version": version, **payload}
    try:
        text = json.dumps(document, indent=1, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        if "out of range float" not in str(exc).lower():
            raise  # a circular reference: a bug in the caller, not bad data
        raise LeverError(f"{path}: {kind} data contains NaN or infinity; not written") from None
    atomic_write(path, lambda handle: handle.write(text))


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether lists and dicts in ``document`` nest more than ``limit`` levels deep."""
    stack = [(document, 1)] if isinstance(document, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def read_text(path: str | os.PathLike, kind: str, missing: str = "no such file") -> str:
    """The UTF-8 text of a ``kind`` file; FileFormatError naming it if it is missing (``missing`` says
    how), a directory, unreadable or not UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(f"{path}: {missing}") from None
    except IsADirectoryError:
        raise FileFormatError(f"{path}: is a directory, not a {kind} file") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: not a valid {kind} file (not UTF-8 text)") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_json(path: str | os.PathLike, kind: str, version: int | tuple[int, ...]) -> dict:
    """Read a file written by :func:`write_json`, checking its kind and version.

    ``version`` is the format version this lever reads, or a tuple of the
    versions it still reads (a reader that upgrades older files). Raises :class:`FileFormatError` naming the file if it is missing, a
    directory, unreadable, not UTF-8 JSON, holds ``NaN`` or ``Infinity``,
    nests more than :data:`MAX_JSON_DEPTH` levels, or is of another kind or
    another format version.
    """
    path = Path(path)

    def reject_constant(token: str) -> None:
        raise FileFormatError(f"{path}: not a valid {kind} file ({token} is not allowed)")

    def finite_float(token: str) -> float:
        value = float(token)
        if value in (float("inf"), float("-inf")):
            reject_constant(token)
        return value

    text = read_text(path, kind)
    try:
        document = json.loads(text, parse_constant=reject_constant, parse_float=finite_float)
    except FileFormatError:
        raise
    except RecursionError:
        raise FileFormatError(f"{path}: not a valid {kind} file (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of too many digits
        raise FileFormatError(f"{path}: not a valid {kind} file ({exc})") from None
    if _deeper_than(document, MAX_JSON_DEPTH):
        raise FileFormatError(
            f"{path}: not a valid {kind} file (nested more than {MAX_JSON_DEPTH} levels deep)")
    if not isinstance(document, dict) or document.get("format") != kind:
        raise FileFormatError(f"{path}: not a {kind} file")
    found = document.get("version")
    accepted = version if isinstance(version, tuple) else (version,)
    if type(found) is not int or found not in accepted:  # not True or 1.0 for 1
        readable = " or ".join(str(v) for v in accepted)
        raise FileFormatError(f"{path}: {kind} format version {found!r}, this lever reads {readable}")
    return document


#: How :func:`check_type` names types: as JSON calls them.
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer",
               float: "a number", bool: "true or false", type(None): "null"}


def _type_name(cls: type) -> str:
    return _JSON_NAMES.get(cls, cls.__name__)


def check_type(value: Any, expected_type: type | tuple[type, ...], where: str) -> Any:
    """Return ``value`` if it is an instance of ``expected_type``, else raise :class:`FileFormatError`.

    For checking the fields of a manifest just read, e.g.
    ``entries = check_type(doc.get("entries"), dict, f"{path}: entries")``.
    The message reads ``"WHERE: expected an object, got null"``. ``True`` and
    ``False`` are not accepted as integers unless ``bool`` is expected.
    """
    expected = expected_type if isinstance(expected_type, tuple) else (expected_type,)
    if isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected):
        return value
    names = " or ".join(_type_name(cls) for cls in expected)
    raise FileFormatError(f"{where}: expected {names}, got {_type_name(type(value))}")


def resolve_inside(root: str | os.PathLike, relative: str) -> Path:
    """The resolved path of manifest entry ``relative`` under ``root``, checked to stay inside it.

    ``relative`` must be a non-empty string without NUL characters, not
    absolute and without ``..`` components; once symlinks are followed
    (:meth:`Path.resolve`) the path must still lie inside ``root.resolve()``.
    Raises :class:`FileFormatError` otherwise, so a crafted manifest cannot
    make lever read (or overwrite) files elsewhere. Returns the resolved path.
    """
    if not isinstance(relative, str) or not relative or "\0" in relative or not Path(relative).parts:
        raise FileFormatError(f"{root}: manifest entry {relative!r} is not a valid file name")
    outside = FileFormatError(f"{root}: manifest entry {relative!r} points outside the directory")
    candidate = Path(relative)
    if candidate.is_absolute() or candidate.anchor or ".." in candidate.parts:
        raise outside
    try:
        base = Path(root).resolve()
        resolved = (base / candidate).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise FileFormatError(f"{root}: manifest entry {relative!r} cannot be resolved ({exc})") from None
    if resolved == base or not resolved.is_relative_to(base):
        raise outside
    return resolved


def _holder(fd: int) -> str:
    """Who holds the lock on ``fd``, for an error message; best effort."""
    try:  # readers alone block a writer if a shared lock can still be had
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "read by another lever process"
    except OSError:
        pass
    try:
        pid = int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError):
        return "written by another lever process"
    return f"written by another lever process (pid {pid})"


def _open_lock_file(directory: Path, what: str, exclusive: bool) -> int | None:
    """A descriptor of ``directory/.lock``, created with the umask if missing.

    A writer creates the directory too. A reader who cannot open or create the
    file (no such directory, a read-only one) gets ``None`` and reads unlocked:
    the read itself then reports any missing file.
    """
    path = directory / LOCK_NAME
    if exclusive:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # 0o666 less the umask
        except OSError as exc:
            raise LeverError(f"cannot lock {what} {directory}: {exc.strerror or exc}") from exc
    for flags in (os.O_RDONLY | os.O_CREAT, os.O_RDONLY):
        try:
            return os.open(path, flags, 0o666)
        except OSError:
            pass
    return None


@contextmanager
def _lock(directory: str | os.PathLike, what: str, wait: float, exclusive: bool) -> Iterator[None]:
    directory = Path(directory)
    fd = _open_lock_file(directory, what, exclusive) if fcntl is not None else None
    if fd is None:
        if fcntl is None and exclusive:
            directory.mkdir(parents=True, exist_ok=True)
        yield
        return
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise LeverError(f"cannot lock {what} {directory}: {exc.strerror or exc}") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeverError(f"{what} {directory} is being {_holder(fd)}; "
                                 "wait for it to finish or choose another directory")
            time.sleep(min(_POLL_S, left))
        if exclusive:  # name the holder for anyone who has to wait; best effort
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            except OSError:
                pass
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def exclusive_lock(directory: str | os.PathLike, what: str = "library",
                   wait: float = 0.0) -> AbstractContextManager[None]:
    """Context manager: hold an exclusive lock on ``directory`` while writing it.

    Takes ``fcntl.flock(LOCK_EX)`` on ``directory/.lock`` (creating the
    directory, and the file with the umask's permissions, if missing) and
    records this process's pid in it. If another process holds the lock, it
    retries for up to ``wait`` seconds, then raises :class:`LeverError`
    ``"WHAT DIRECTORY is being written by another lever process (pid N); wait
    for it to finish or choose another directory"`` (``what`` names the kind of
    directory, e.g. ``"library"``; the message says "read" if readers hold it).

    The lock is released on leaving the block, and by the kernel if the
    process dies, even by ``kill -9``: a stale lock file never blocks anyone.
    Each call opens the lock file anew, so the lock also keeps threads of one
    process apart, and it is not re-entrant: a second lock on the same
    directory in the same process waits and fails like one from another
    process. Where :mod:`fcntl` is missing (Windows) it only creates the
    directory and locks nothing.
    """
    return _lock(directory, what, wait, exclusive=True)


def shared_lock(directory: str | os.PathLike, what: str = "library",
                wait: float = 30.0) -> AbstractContextManager[None]:
    """Context manager: hold a shared lock on ``directory`` while reading it.

    Any number of readers may hold it at once; a writer holding
    :func:`exclusive_lock` keeps them out, so they never see a half-written
    directory. Waits up to ``wait`` seconds for the writer to finish, then
    raises :class:`LeverError` as :func:`exclusive_lock` does. A directory
    that does not exist, or whose lock file cannot be opened or created
    (read-only), is read without a lock. Where :mod:`fcntl` is missing
    (Windows) it does nothing.
    """
    return _lock(directory, what, wait, exclusive=False)


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


def write_arrays(path: str | os.PathLike, kind: str, version: int, arrays: dict, meta: dict) -> None:
    """Save named arrays and a JSON-ready ``meta`` dict as one ``.npz`` file, atomically, tagged with
    its ``kind`` and format ``version`` (strict JSON: NaN or infinity in ``meta`` is refused)."""
    try:
        header = json.dumps({"format": kind, "version": version, **meta}, allow_nan=False)
    except ValueError:
        raise LeverError(f"{path}: the metadata contains NaN or infinity; not written") from None
    atomic_write(path, lambda handle: np.savez(handle, header=np.array(header), **arrays), binary=True)


def read_arrays(path: str | os.PathLike, kind: str, version: int | tuple[int, ...]) -> tuple[dict, dict]:
    """Read a file written by :func:`write_arrays`: (arrays, meta); FileFormatError naming the file
    if it is missing, not such a file, of another kind or of another format version (``version``: the
    one this lever reads, or a tuple of the versions it still reads)."""
    path = Path(path)
    check_npz(path, f"a {kind} file")  # sizes declared by the headers, checked before numpy allocates
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"{path}: not a readable {kind} file ({exc})") from None
    try:
        meta = json.loads(str(arrays.pop("header")))
    except (KeyError, ValueError):
        raise FileFormatError(f"{path}: not a {kind} file (no readable header)") from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        raise FileFormatError(f"{path}: not a {kind} file")
    accepted = version if isinstance(version, tuple) else (version,)
    if meta.get("version") not in accepted:
        readable = " or ".join(str(v) for v in accepted)
        raise FileFormatError(f"{path}: {kind} format version {meta.get('version')!r}, this lever reads {readable}")
    return arrays, meta
