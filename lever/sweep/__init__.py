"""Sweeps: composition against training from scratch, cell by cell, resumable and parallel.

:mod:`~lever.sweep.config` says what a sweep crosses, :mod:`~lever.sweep.cell`
computes one cell, :mod:`~lever.sweep.backends` runs cells on processes or
Ray, :mod:`~lever.sweep.runner` keeps the resumable sweep directory, and
:mod:`~lever.sweep.table` writes and reads the results table.
"""

from .backends import BACKENDS
from .cell import CellResult, StrategyRun, library_root, run_cell
from .config import COMPOSITE_GROUPS, STUDY_LIBRARY, SWEEP_PRESETS, Cell, SweepConfig, expand_composites
from .runner import SweepResult, load_finished, run_sweep
from .table import RECORD_COLUMNS, TIMING_COLUMNS, SweepRow, read_table, rows_of, write_table

__all__ = [
    "BACKENDS", "COMPOSITE_GROUPS", "RECORD_COLUMNS", "STUDY_LIBRARY", "SWEEP_PRESETS", "TIMING_COLUMNS", "Cell",
    "CellResult", "StrategyRun", "SweepConfig", "SweepResult", "SweepRow", "expand_composites", "library_root",
    "load_finished", "read_table", "rows_of", "run_cell", "run_sweep", "write_table",
]
