"""The compiled core: ``@njit(cache=True)`` functions over plain arrays only.

Nothing here knows about classes, files or objectives by name; the modules
above (``lever.layouts``, ``lever.training``, ...) build the arrays and call
these functions.

Numba's on-disk cache is keyed on each kernel's own source file, not on the
files of the kernels it calls, so an edit to ``world.py`` alone would leave
the cached machine code of ``training.py`` stale. On import this package
therefore hashes every ``*.py`` file beside it and, where a cache directory
of this package holds a stamp of another hash, deletes that directory's
cached kernels first. Where no cache directory is writable (a read-only
install and home), kernels are cached in a temporary directory instead,
with a warning, rather than failing.
"""

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numba

STAMP_NAME = "lever-kernels.stamp"
_HERE = Path(__file__).resolve().parent


def source_hash(directory: Path = _HERE) -> str:
    """sha256 over the names and bytes of every ``*.py`` file in ``directory``, sorted by name."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_directories(directory: Path = _HERE) -> list[Path]:
    """Where Numba may cache the kernels of ``directory``: in-tree, user-provided, user-wide."""
    # Numba's name for a source directory inside a shared cache directory.
    subpath = f"{directory.name}_{hashlib.sha1(str(directory).encode()).hexdigest()}"
    found = [directory / "__pycache__"]
    if numba.config.CACHE_DIR:
        found.append(Path(numba.config.CACHE_DIR) / subpath)
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    found.append(Path(cache_home) / "numba" / subpath)
    return found


def refresh_cache(directory: Path = _HERE) -> list[Path]:
    """Delete cached kernels compiled from other sources; returns the directories purged.

    A directory is purged when its stamp is missing or holds another source
    hash; the current hash is then stamped there (the in-tree directory and
    the one Numba uses now are created, so the first kernels cached there
    are stamped from the start).
    Unwritable directories are skipped (Numba will not cache there either).
    """
    current = source_hash(directory)
    purged = []
    active = active_cache_directory(directory)
    for i, cache in enumerate(cache_directories(directory)):
        stamp = cache / STAMP_NAME
        try:
            if i == 0 or cache == active:
                # Stamped before Numba writes there: a directory it created unstamped would be purged
                # as stale on the next run.
                cache.mkdir(parents=True, exist_ok=True)
            if not cache.is_dir() or (stamp.is_file() and stamp.read_text() == current):
                continue
            stale = list(cache.glob("*.nbi")) + list(cache.glob("*.nbc"))
            for cached in stale:
                cached.unlink()
            stamp.write_text(current)
            if stale:
                purged.append(cache)
                logging.getLogger(__name__).info("kernel sources changed: purged %d cached kernels in %s",
                                                 len(stale), cache)
        except OSError:
            continue
    return purged


def active_cache_directory(directory: Path = _HERE) -> Path:
    """Where Numba caches the kernels of ``directory`` now: as its own locators choose, in order."""
    candidates = cache_directories(directory)
    if numba.config.CACHE_DIR:
        return candidates[1]
    return candidates[0] if os.access(candidates[0], os.W_OK) else candidates[-1]


#: Kernel modules whose compilation dominates a first run (a layout's BFS alone is quick).
HEAVY_MODULES = ("training", "rollout", "features", "compose", "planning")
#: The kernel modules of a tabular world.
TABLE_MODULES = ("table", "table_compose")


def cache_is_cold(directory: Path = _HERE, modules: tuple[str, ...] = HEAVY_MODULES) -> bool:
    """True when a kernel module of ``modules`` (by default the heavy ones) in ``directory`` has nothing cached
    yet (a first run, sources just edited)."""
    cache = active_cache_directory(directory)
    return not cache.is_dir() or not all(any(cache.glob(f"{module}.*.nbi")) for module in modules)


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def ensure_cache_location(directory: Path = _HERE) -> None:
    """Point Numba at a temporary cache directory when none of its own locations is writable."""
    if any(_writable(path) for path in cache_directories(directory)):
        return
    fallback = Path(tempfile.gettempdir()) / f"lever-numba-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    warnings.warn(f"no writable Numba cache directory for lever's kernels; caching in {fallback}",
                  RuntimeWarning, stacklevel=2)
    numba.config.CACHE_DIR = str(fallback)


ensure_cache_location()
refresh_cache()
