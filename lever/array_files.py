""".npy and .npz files read with their declared sizes checked first.

NumPy allocates the array a ``.npy`` header declares before it reads a byte
of data, so a 100-byte file that claims 10¹² rows ends in ``MemoryError``
(or the machine swapping). Here the header is read alone: the file must be
a regular file (a FIFO would block the reader forever), its declared size
must match the bytes actually there, and must pass
:func:`lever.resources.check_memory`, before NumPy reads the data. Object
arrays (pickles) are never read.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from .errors import FileFormatError
from .resources import check_memory


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path; FileFormatError unless it is an existing regular file (not a FIFO, device or folder)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file ({what})") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({what}: {exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise FileFormatError(f"{path}: is {kind}; {what} must be a regular file")
    return path


def _declared(handle, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data bytes) a .npy header declares; ``handle`` is left at the start of the data."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"{where}: not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise FileFormatError(f"{where}: holds Python objects, which lever never reads")
    count = 1
    for n in shape:
        count *= int(n)
    return tuple(int(n) for n in shape), dtype, count * dtype.itemsize


def check_npy(path: str | os.PathLike, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """The (shape, dtype) of the ``.npy`` file at ``path``, after checking it is a regular file whose data is
    as large as its header declares and fits in memory; FileFormatError or LeverError otherwise."""
    path = regular_file(path, what)
    try:
        with open(path, "rb") as handle:
            if handle.read(4) == b"PK\x03\x04":
                raise FileFormatError(f"{path}: is an .npz archive; {what} must be a single .npy array "
                                      f"(np.save, not np.savez)")
            handle.seek(0)
            shape, dtype, n_bytes = _declared(handle, str(path))
            left = os.fstat(handle.fileno()).st_size - handle.tell()
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({what}: {exc.strerror or exc})") from None
    if left != n_bytes:
        raise FileFormatError(f"{path}: its header declares {dtype} {shape} ({n_bytes:,} bytes) but "
                              f"{left:,} bytes follow (truncated or crafted)")
    check_memory(n_bytes, f"{path} ({what})")
    return shape, dtype


def load_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """The array of a ``.npy`` file, read only after :func:`check_npy` passed."""
    check_npy(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FileFormatError(f"{path}: not a readable .npy array ({what}: {exc})") from None


def check_npz(path: str | os.PathLike, what: str) -> None:
    """Check every member of the ``.npz`` archive at ``path``: a .npy array whose declared size matches its
    stored size; their sum must fit in memory. FileFormatError or LeverError otherwise."""
    path = regular_file(path, what)
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                where = f"{path}[{info.filename}]"
                if not info.filename.endswith(".npy"):
                    raise FileFormatError(f"{where}: not a .npy member")
                with archive.open(info) as handle:
                    _, _, n_bytes = _declared(handle, where)
                    header = handle.tell()
                if info.file_size - header != n_bytes:
                    raise FileFormatError(f"{where}: its header declares {n_bytes:,} bytes but it holds "
                                          f"{info.file_size - header:,} (truncated or crafted)")
                total += n_bytes
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(f"{path}: not a readable .npz archive ({what}: {exc})") from None
    check_memory(total, f"{path} ({what})")
