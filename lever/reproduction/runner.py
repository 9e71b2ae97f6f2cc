"""``lever.reproduction``: the study's protocol end to end, resumable and parallel.

One cell per (layout seed, budget) (:class:`~lever.reproduction.cell.CellRunner`)
runs on the sweep's backends (local processes or Ray) in two tasks: the
training of its library's runs (kept in ``OUT/runs/<seed>-<budget>/`` until
the cell is done), then its searches, baselines and ablations; the progress
bars count both stages. Each finished cell is written at once, atomically,
to ``OUT/cells/<seed>-<budget>.json`` with a checksum of its rows; a re-run
of the same configuration skips them and reuses saved runs, so an
interruption loses at most the work in flight. Ray workers must share
``OUT``'s file system. ``OUT/reproduction.json``
holds the configuration; a directory holding another one is refused. At the
end ``OUT/results.csv`` (one tidy row per experiment, query, mode and
method), ``OUT/report.md`` and ``OUT/figures/`` are written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from ..compose import OPERATORS
from ..errors import FileFormatError, LeverError, check_choice
from ..fileio import atomic_write, exclusive_lock, read_json, write_json
from ..worlds.grid import PRESETS
from ..worlds.objectives import check_rules
from ..protocol import MODES
from ..sweep.backends import make_backend
from ..training import BUDGETS
from .cell import COLUMNS, CellRunner
from .library import SELECTIONS
from .report import write_report

log = logging.getLogger(__name__)

REPRODUCTION_FORMAT = "lever-reproduction"
CELL_FORMAT = "lever-reproduction-cell"
FORMAT_VERSION = 1


def _int_tuple(name: str, values) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise LeverError(f"{name} must be a non-empty list of integers >= 0, got {list(values)!r}")
    if len(set(values)) != len(values):
        raise LeverError(f"{name} repeat an entry: {list(values)}")
    return values


@dataclass(frozen=True)
class ReproduceConfig:
    """What a reproduction runs: the study's protocol on one spec set, for these seeds and budgets.

    ``episodes`` overrides the budgets' episode counts (quick runs and
    tests; the budgets' ε decays are kept); ``ablations`` runs the coverage
    experiments of finding 2. Beyond the study (reported apart): ``rules``
    ``"linear"``, ``selection`` ``"all"`` (every snapshot enters the library
    instead of the study's 60% sample) and ``operator`` ``"max"`` (GPI over
    the members' Q instead of the study's Q-sum).
    """

    setting: str = "grid16"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    budgets: tuple[str, ...] = ("X1", "X5", "X10")
    modes: tuple[str, ...] = MODES
    rules: str = "study"
    train_seed: int = 0
    episodes: int | None = None
    ablations: bool = True
    selection: str = "study"
    operator: str = "sum"

    def __post_init__(self):
        if self.setting not in PRESETS:
            raise LeverError(f"unknown grid setting {self.setting!r}; valid: {', '.join(PRESETS)}")
        object.__setattr__(self, "seeds", _int_tuple("seeds", self.seeds))
        budgets = tuple(self.budgets)
        unknown = [b for b in budgets if b not in BUDGETS[self.setting]]
        if not budgets or unknown or len(set(budgets)) != len(budgets):
            raise LeverError(f"budgets must be distinct names of {', '.join(BUDGETS[self.setting])}, got "
                             f"{list(budgets)}")
        object.__setattr__(self, "budgets", budgets)
        modes = tuple(self.modes)
        if not modes or any(m not in MODES for m in modes):
            raise LeverError(f"modes must be some of {', '.join(MODES)}, got {list(modes)}")
        object.__setattr__(self, "modes", modes)
        check_rules(self.rules)
        check_choice("snapshot selection", self.selection, SELECTIONS)
        check_choice("composition operator", self.operator, OPERATORS)
        if self.episodes is not None and (isinstance(self.episodes, bool) or not isinstance(self.episodes, int)
                                          or self.episodes < 1):
            raise LeverError(f"episodes must be an integer >= 1, got {self.episodes!r}")

    @property
    def cells(self) -> list[tuple[int, str]]:
        """Every (layout seed, budget) cell, seed-major."""
        return [(seed, budget) for seed in self.seeds for budget in self.budgets]

    def to_dict(self) -> dict:
        """This configuration as JSON-ready values."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "ReproduceConfig":
        """A configuration from :meth:`to_dict`'s output."""
        if not isinstance(data, dict):
            raise FileFormatError(f"a reproduction configuration must be an object, got {type(data).__name__}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise FileFormatError(f"malformed reproduction configuration ({exc})") from None

    @property
    def hash(self) -> str:
        """A short hash of the configuration: cells of another configuration are never reused."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _cell_runner(config_doc: dict, seed: int, budget: str) -> CellRunner:
    config = ReproduceConfig.from_dict(config_doc)
    return CellRunner(config.setting, seed, budget, config.rules, config.train_seed, config.episodes,
                      config.modes, config.ablations, config.selection, config.operator)


def train_cell_library(config_doc: dict, seed: int, budget: str, runs_folder: str) -> tuple[int, str]:
    """Train one cell's library runs into ``runs_folder``; module-level so workers and Ray tasks can run it."""
    _cell_runner(config_doc, seed, budget).train_library(runs_folder)
    return seed, budget


def run_cell(config_doc: dict, seed: int, budget: str, runs_folder: str | None = None) -> tuple[int, str, list[dict]]:
    """One cell's rows, its library's runs taken from ``runs_folder`` where saved; module-level for workers."""
    return seed, budget, _cell_runner(config_doc, seed, budget).run(runs_folder)


@dataclass(frozen=True)
class Reproduction:
    """A finished reproduction: its ``rows`` (dicts of :data:`COLUMNS`), files and wall time (s)."""

    config: ReproduceConfig
    rows: list
    out: Path
    report: Path
    wall_time_s: float
    resumed_cells: int


def _rows_digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def _cell_path(out: Path, seed: int, budget: str) -> Path:
    return out / "cells" / f"{seed}-{budget}.json"


def _runs_folder(out: Path, seed: int, budget: str) -> Path:
    # The training runs of a cell's library, kept only until the cell is written.
    return out / "runs" / f"{seed}-{budget}"


def _load_cell(path: Path, config: ReproduceConfig) -> list[dict] | None:
    """A finished cell's rows, or None when absent; a damaged or foreign cell file is a clear error."""
    if not path.exists():
        return None
    doc = read_json(path, CELL_FORMAT, FORMAT_VERSION)
    rows = doc.get("rows")
    if doc.get("config_hash") != config.hash or not isinstance(rows, list) \
            or doc.get("sha256") != _rows_digest(rows):
        raise FileFormatError(f"{path}: cell of another configuration or modified by hand; delete it to "
                              f"recompute that cell")
    return rows


def _prepare(config: ReproduceConfig, out: Path) -> None:
    manifest = out / "reproduction.json"
    if manifest.exists():
        doc = read_json(manifest, REPRODUCTION_FORMAT, FORMAT_VERSION)
        if doc.get("config_hash") != config.hash:
            raise LeverError(f"{out} holds a reproduction of another configuration; choose another --out")
    else:
        write_json(manifest, REPRODUCTION_FORMAT, FORMAT_VERSION,
                   {"config": config.to_dict(), "config_hash": config.hash})


def write_results(rows: list[dict], path: Path) -> Path:
    """Write rows as CSV (columns :data:`COLUMNS`, empty where a column does not apply), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in COLUMNS})
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return path


def _run_stages(config: ReproduceConfig, out: Path, todo: list, finished: dict, executor, pending: dict,
                jobs: int, bars: list) -> None:
    """Each cell in two tasks: train its library's runs, then run the cell on them; write each cell.

    At most ``jobs`` libraries are trained ahead of the cells using them, so
    cells start early and few runs wait on disk.
    """
    doc = config.to_dict()
    waiting = list(todo)

    def train_next() -> None:
        if waiting:
            seed, budget = waiting.pop(0)
            folder = str(_runs_folder(out, seed, budget))
            pending[executor.submit(train_cell_library, doc, seed, budget, folder)] = "library"

    for _ in range(jobs):
        train_next()
    while pending:
        for handle in executor.next_done(set(pending)):
            stage = pending.pop(handle)
            if stage == "library":
                seed, budget = executor.result(handle)
                bars[0].update(1)
                folder = str(_runs_folder(out, seed, budget))
                pending[executor.submit(run_cell, doc, seed, budget, folder)] = "cell"
                train_next()
                continue
            seed, budget, rows = executor.result(handle)
            write_json(_cell_path(out, seed, budget), CELL_FORMAT, FORMAT_VERSION,
                       {"config_hash": config.hash, "sha256": _rows_digest(rows), "rows": rows})
            shutil.rmtree(_runs_folder(out, seed, budget), ignore_errors=True)
            finished[(seed, budget)] = rows
            bars[1].update(1)


def reproduce(config: ReproduceConfig | None = None, out: str | os.PathLike = "reproduction", *,
              jobs: int | None = None, backend: str = "process", address: str | None = None,
              progress: bool = True) -> Reproduction:
    """Run the study's protocol (see the module docstring); returns the rows and where they were written.

    ``jobs`` worker processes (default: the cores, at most one per cell);
    ``backend`` ``"process"`` or ``"ray"`` (``address`` of a Ray cluster).
    """
    config = config or ReproduceConfig()
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise LeverError(f"jobs must be an integer >= 1, got {jobs!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LeverError(f"--out {out} is a file, not a directory")
    with exclusive_lock(out, "reproduction"):
        return _reproduce(config, out, jobs, backend, address, progress)


def _reproduce(config: ReproduceConfig, out: Path, jobs: int | None, backend: str, address: str | None,
               progress: bool) -> Reproduction:
    # The body of reproduce(), run while holding the directory's lock.
    _prepare(config, out)
    began = time.perf_counter()
    finished = {}
    for seed, budget in config.cells:
        rows = _load_cell(_cell_path(out, seed, budget), config)
        if rows is not None:
            finished[(seed, budget)] = rows
    resumed = len(finished)
    todo = [cell for cell in config.cells if cell not in finished]
    if resumed:
        log.info("resuming %s: %d of %d cells already done", out, resumed, len(config.cells))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    executor = make_backend(backend, jobs, address)
    pending: dict = {}
    interrupted = True
    bars = [tqdm(total=len(config.cells), initial=resumed, desc=desc, unit=unit, position=i,
                 disable=not progress, dynamic_ncols=True)
            for i, (desc, unit) in enumerate((("training libraries", "library"), ("reproducing", "cell")))]
    try:
        _run_stages(config, out, todo, finished, executor, pending, jobs, bars)
        interrupted = False
    finally:
        for bar in reversed(bars):
            bar.close()
        executor.close(set(pending), cancel=interrupted)
    try:
        (out / "runs").rmdir()  # every cell is written: no run is kept
    except OSError:
        pass
    rows = [row for cell in config.cells for row in finished[cell]]
    write_results(rows, out / "results.csv")
    wall = time.perf_counter() - began
    report = write_report(rows, out, config.setting, wall_time_s=wall if not resumed else None)
    return Reproduction(config, rows, out, report, wall, resumed)
