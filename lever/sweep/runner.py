"""Running a sweep into its directory: resumable cell by cell, on a process pool or Ray.

Each finished cell is written atomically to ``OUT/cells/<key>.json`` the
moment it ends, so an interrupted sweep loses only the cells in flight, and
running the same sweep again skips every cell already on disk.
``OUT/sweep.json`` holds the configuration, its hash and the lever version;
an output directory that holds another configuration is refused rather
than mixed. Libraries are cached under ``OUT/libraries`` and shared by every
cell that needs them. The final table (:mod:`lever.sweep.table`) goes to
``OUT/results.csv`` (and ``results.parquet`` when pyarrow is importable).

A sweep holds the directory's exclusive lock (:func:`lever.fileio.exclusive_lock`,
``OUT/.lock``) while it runs, so a second sweep into the same directory
stops at once with a clear error. Each cell file carries the sha256 of its
result; a cell file that is truncated or edited by hand is not silently
recomputed but reported on resume (a :class:`FileFormatError` naming it):
delete it and run the sweep again to recompute that cell.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import FileFormatError, LeverError, check_choice
from ..fileio import exclusive_lock, read_json, write_json
from ..ownership import check_output_dir, mark_output_dir
from ..version import __version__
from ..library.workers import check_jobs, worker_count
from .backends import BACKENDS, make_backend
from .cell import CellResult, build_cell_library, library_root, run_cell
from .config import Cell, SweepConfig
from .table import SweepRow, rows_of, write_table

log = logging.getLogger(__name__)

SWEEP_FORMAT = "lever-sweep"
CELL_FORMAT = "lever-sweep-cell"
#: Format versions of ``sweep.json`` and of the cell files (cells: 2 since they store the search's own
#: record, 3 since they carry the sha256 of their result).
FORMAT_VERSION = 1
CELL_VERSION = 3


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: its table and where it lives.

    ``rows`` every table line in cell order; ``computed`` cells computed by
    this run, ``reused`` cells found already on disk; ``csv``/``parquet``
    (None without pyarrow) the table files; ``wall_time`` this run's seconds.
    """

    config: SweepConfig
    out: Path
    rows: tuple[SweepRow, ...]
    computed: int
    reused: int
    csv: Path
    parquet: Path | None
    wall_time: float


def _check_out_dir(config: SweepConfig, out: Path) -> None:
    """Refuse a directory that holds anything but this very sweep; claim it otherwise."""
    manifest = out / "sweep.json"
    if manifest.exists():
        stored = read_json(manifest, SWEEP_FORMAT, FORMAT_VERSION)
        if stored.get("config_hash") != config.hash:
            previous = stored.get("config")
            if not isinstance(previous, dict):
                raise FileFormatError(f"{manifest}: config: expected an object, got {previous!r}; delete {out} "
                                      f"to start over, or choose another output directory")
            changed = sorted(k for k, v in config.to_dict().items() if previous.get(k) != v)
            raise LeverError(f"{out} holds a sweep with another configuration (hash {stored.get('config_hash')}, "
                             f"this one {config.hash}; differs in {', '.join(changed) or 'format'}): "
                             f"choose another output directory, or delete that one to start over")
        return
    _write_manifest(config, out, finished=False)


def _write_manifest(config: SweepConfig, out: Path, finished: bool, n_cells: int | None = None) -> None:
    write_json(out / "sweep.json", SWEEP_FORMAT, FORMAT_VERSION,
               {"config": config.to_dict(), "config_hash": config.hash, "lever_version": __version__,
                "finished": finished, "n_cells": n_cells})


def _cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.key}.json"


def _result_digest(result: dict) -> str:
    """sha256 of a cell's result as canonical JSON (keys sorted, no spaces)."""
    return hashlib.sha256(json.dumps(result, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _load_cell(path: Path, config: SweepConfig, cell: Cell) -> CellResult:
    """The result stored in a cell file; :class:`FileFormatError` naming it, and saying to delete it, if unusable."""
    try:
        return _read_cell(path, config, cell)
    except FileFormatError as exc:
        raise FileFormatError(f"{exc}; delete it to recompute that cell") from None


def _read_cell(path: Path, config: SweepConfig, cell: Cell) -> CellResult:
    document = read_json(path, CELL_FORMAT, CELL_VERSION)
    if document.get("config_hash") != config.hash:
        raise FileFormatError(f"{path}: cell of another sweep configuration ({document.get('config_hash')})")
    result = document.get("result")
    if not isinstance(result, dict) or document.get("sha256") != _result_digest(result):
        raise FileFormatError(f"{path}: cell result does not match its checksum (truncated or edited by hand)")
    try:
        result = CellResult.from_dict(result)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FileFormatError(f"{path}: not a valid sweep cell ({exc!r})") from None
    if result.cell != cell:
        raise FileFormatError(f"{path}: holds cell {result.cell.key}, expected {cell.key}")
    return result


def _save_cell(out: Path, config: SweepConfig, result: CellResult) -> None:
    payload = result.to_dict()
    write_json(_cell_path(out, result.cell), CELL_FORMAT, CELL_VERSION,
               {"config_hash": config.hash, "sha256": _result_digest(payload), "result": payload})


def load_finished(config: SweepConfig, out: str | os.PathLike) -> dict[Cell, CellResult]:
    """The cells of ``config`` already persisted under ``out`` (an empty dict for a fresh directory).

    Raises :class:`FileFormatError` naming a cell file that is truncated,
    edited by hand or of another configuration (delete it to recompute it).
    """
    out = Path(out)
    finished = {}
    for cell in config.cells():
        path = _cell_path(out, cell)
        if path.exists():
            finished[cell] = _load_cell(path, config, cell)
    return finished


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, jobs: int | None = None,
              backend: str = "process", address: str | None = None, progress: bool = True) -> SweepResult:
    """Run (or resume) ``config`` into the directory ``out``; returns the whole table.

    ``jobs`` worker processes for the ``"process"`` backend (default: the
    number of cores; never more than the cores or the cells to compute; 1
    runs in this process); ``backend="ray"`` runs the
    same cell function as Ray tasks on the instance at ``address`` (an
    already initialised instance is used as is; otherwise ``ray.init`` is
    called with ``address``, None starting a local one); Ray workers
    import lever and write the libraries under ``out``, so on a cluster of
    several machines lever must be installed on every node and ``out`` must
    be a shared filesystem path. Cells already persisted are not
    recomputed. Raises :class:`LeverError` before any work for a bad
    backend or jobs (not an integer >= 1), an output directory that holds
    another sweep, or one another process is sweeping into right now.
    Ctrl-C stops the workers at once (cells in flight are lost, finished
    ones kept) and raises :class:`KeyboardInterrupt`.
    """
    began = time.perf_counter()
    if not isinstance(config, SweepConfig):
        raise LeverError(f"config must be a SweepConfig, got {type(config).__name__}")
    check_choice("backend", backend, BACKENDS)
    check_jobs(jobs)
    if backend == "process" and address is not None:
        raise LeverError("an address is for the ray backend only")
    out = check_output_dir(out, "sweep", "sweep directory")
    with exclusive_lock(out, "sweep"):
        check_output_dir(out, "sweep", "sweep directory")  # again, now that no one else writes it
        mark_output_dir(out, "sweep")
        return _run_locked(config, out, jobs, backend, address, progress, began)


def _run_locked(config: SweepConfig, out: Path, jobs: int | None, backend: str, address: str | None,
                progress: bool, began: float) -> SweepResult:
    """The body of :func:`run_sweep`, run while holding the sweep directory's exclusive lock."""
    _check_out_dir(config, out)
    cells = config.cells()
    finished = load_finished(config, out)
    todo = [cell for cell in cells if cell not in finished]
    reused = len(finished)
    if reused:
        log.info("resuming %s: %d of %d cells already done", out, reused, len(cells))

    if todo:
        executor = make_backend(backend, worker_count(jobs, len(todo)), address)
        _run_cells(config, out, todo, finished, executor, progress, total=len(cells))

    rows = tuple(row for cell in cells for row in rows_of(finished[cell]))
    csv_path, parquet_path = write_table(rows, out)
    _write_manifest(config, out, finished=True, n_cells=len(cells))
    return SweepResult(config, out, rows, len(todo), reused, csv_path, parquet_path,
                       time.perf_counter() - began)


def _run_cells(config: SweepConfig, out: Path, todo: list[Cell], finished: dict, executor, progress: bool,
               total: int) -> None:
    """Build the missing libraries, then compute cells as their library becomes ready; persist each one."""
    from tqdm.auto import tqdm

    by_library: dict[tuple, list[Cell]] = {}
    for cell in todo:
        by_library.setdefault(cell.library_key, []).append(cell)
    pending: dict = {}  # handle -> ("library", key) or ("cell", cell)
    libraries = tqdm(total=len(by_library), unit="library", desc="building libraries", position=0,
                     disable=not progress, dynamic_ncols=True)
    bar = tqdm(total=total, initial=total - len(todo), unit="cell", desc="sweep", position=1,
               disable=not progress, dynamic_ncols=True)
    cancelled = True
    try:
        for key in by_library:
            root = str(library_root(out, *key))
            pending[executor.submit(build_cell_library, config, *key, root)] = ("library", key)
        while pending:
            for handle in executor.next_done(set(pending)):
                kind, what = pending.pop(handle)
                result = executor.result(handle)
                if kind == "library":
                    libraries.update(1)
                    for cell in by_library[what]:
                        pending[executor.submit(run_cell, config, cell, result)] = ("cell", cell)
                else:
                    _save_cell(out, config, result)
                    finished[what] = result
                    bar.update(1)
        cancelled = False
    finally:
        bar.close()
        libraries.close()
        executor.close(pending, cancel=cancelled)
