"""The sweep's results table: one line per cell and strategy, written as CSV (and parquet).

A line carries the strategy's :class:`~lever.search.StrategyResult` fields
under their own names (:data:`RECORD_COLUMNS`) next to the cell's columns.
The cell's baseline columns (``scratch_*``) repeat on each of its lines.

* ``return_ratio = true_return / scratch_return`` when ``scratch_return > 0``;
  when training from scratch earned nothing positive (``scratch_return <= 0``)
  a ratio has no meaningful sign or scale, so it is ``nan`` and the report
  counts such lines apart. ``return_difference = true_return -
  scratch_return`` is always defined.
* ``speedup = scratch_s / search_s``: the from-scratch training time of the
  cell divided by the strategy's time, both measured in the same worker
  process after an untimed warm-up (so one-off compilation never counts
  against either side). Scratch time is the training kernel's wall time for
  the whole budget (milliseconds to seconds: one run measures it). Strategy
  time ``search_s`` (microseconds to milliseconds) is the median over
  ``timing_repeats`` runs of one :func:`lever.search.search` call
  (retrieval, composition, scoring, planning when asked, and the final
  evaluations), starting from the layout's tables already loaded, as a
  trained policy would be.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import FileFormatError
from ..fileio import atomic_write, read_text
from ..worlds.objectives import Objective

if TYPE_CHECKING:  # pragma: no cover
    from .cell import CellResult


@dataclass(frozen=True)
class SweepRow:
    """One line of the results table: one strategy (with or without planning) in one cell.

    Cell columns: ``setting`` … ``episodes``; ``strategy`` the label
    (``hybrid:3``) and ``planning`` whether planning on the support was
    asked; ``scratch_return``, ``scratch_end``, ``scratch_s`` the
    from-scratch baseline; ``search_s`` the median seconds of the whole
    search; ``return_ratio``, ``return_difference``, ``speedup`` derived
    from this line's own columns (module docstring). Every other column is
    the :class:`~lever.search.StrategyResult` field of the same name
    (``policy_ids`` joined by ``;``).
    """

    setting: str
    budget: str
    layout_seed: int
    composite: str
    n_components: int
    long_horizon: bool
    layout_id: str
    episodes: int
    strategy: str
    planning: bool
    planned: bool
    scratch_return: float
    scratch_end: str
    scratch_s: float
    score: float
    offline_return: float
    offline_end: str
    true_return: float
    true_end: str
    true_steps: int
    return_ratio: float
    return_difference: float
    speedup: float
    search_s: float
    retrieval_s: float
    composition_s: float
    scoring_s: float
    planning_s: float
    combinations_tried: int
    support_coverage: float
    route_on_support: float
    policy_ids: str


#: Columns copied from the strategy's result record, under the record's own field names.
RECORD_COLUMNS = ("planned", "score", "offline_return", "offline_end", "true_return", "true_end", "true_steps",
                  "retrieval_s", "composition_s", "scoring_s", "planning_s", "combinations_tried",
                  "support_coverage", "route_on_support", "policy_ids")
#: Columns whose values depend on the machine's speed, not on the configuration.
TIMING_COLUMNS = ("scratch_s", "search_s", "retrieval_s", "composition_s", "scoring_s", "planning_s", "speedup")


def return_ratio(true_return: float, scratch_return: float) -> float:
    """``true_return / scratch_return``; ``nan`` when ``scratch_return <= 0`` (see module docstring)."""
    return true_return / scratch_return if scratch_return > 0 else math.nan


def speedup(scratch_s: float, search_s: float) -> float:
    """From-scratch time over strategy time (``inf`` if the strategy took no measurable time)."""
    return scratch_s / search_s if search_s > 0 else math.inf


def rows_of(result: "CellResult") -> list[SweepRow]:
    """The table lines of one cell, in strategy order (without planning first)."""
    cell = result.cell
    components = Objective.parse(cell.composite).components  # a weighted composite's names too
    rows = []
    for run in result.runs:
        record = {name: getattr(run.result, name) for name in RECORD_COLUMNS}
        record["policy_ids"] = ";".join(str(i) for i in run.result.policy_ids)
        rows.append(SweepRow(
            setting=cell.setting, budget=cell.budget, layout_seed=cell.layout_seed, composite=cell.composite,
            n_components=len(components), long_horizon="lever" in components, layout_id=result.layout_id,
            episodes=result.episodes, strategy=run.label, planning=run.planning,
            scratch_return=result.scratch_return, scratch_end=result.scratch_end, scratch_s=result.scratch_s,
            return_ratio=return_ratio(run.result.true_return, result.scratch_return),
            return_difference=run.result.true_return - result.scratch_return,
            speedup=speedup(result.scratch_s, run.search_s), search_s=run.search_s, **record))
    return rows


def _column_types() -> dict[str, type]:
    hints = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: hints[f.type] for f in fields(SweepRow)}


def write_table(rows: Sequence[SweepRow], out: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write ``results.csv`` (and ``results.parquet`` when pyarrow is importable) under ``out``, atomically."""
    out = Path(out)
    names = [f.name for f in fields(SweepRow)]

    def write_csv(handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([repr(v) if isinstance(v, float) else v for v in (getattr(row, n) for n in names)])

    csv_path = out / "results.csv"
    atomic_write(csv_path, write_csv)
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return csv_path, None
    columns = {name: [getattr(row, name) for row in rows] for name in names}
    table = pyarrow.table(columns)
    parquet_path = out / "results.parquet"
    atomic_write(parquet_path, lambda handle: pyarrow.parquet.write_table(table, handle), binary=True)
    return csv_path, parquet_path


def read_table(path: str | os.PathLike) -> list[SweepRow]:
    """Read a results table written by :func:`write_table` (a CSV file, or a sweep directory)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "results.csv").exists():
            raise FileFormatError(f"{path}: directory holds no results.csv (not a finished lever sweep)")
        path = path / "results.csv"
    text = read_text(path, "lever sweep table", missing="no such results file")
    try:
        return _parse_table(path, csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise FileFormatError(f"{path}: not a lever sweep table ({exc})") from None


def _parse_table(path: Path, reader) -> list[SweepRow]:
    # The rows of a CSV reader over a results file, each field converted to its column's type.
    header = next(reader, None)
    types = _column_types()
    if header != list(types):
        raise FileFormatError(f"{path}: not a lever sweep table (columns differ from {list(types)})")
    rows = []
    for number, values in enumerate(reader, start=2):
        if len(values) != len(header):
            raise FileFormatError(f"{path}: line {number} has {len(values)} fields, expected {len(header)}")
        try:
            parsed = {name: (values[i] == "True") if types[name] is bool else types[name](values[i])
                      for i, name in enumerate(header)}
        except ValueError as exc:
            raise FileFormatError(f"{path}: line {number}: {exc}") from None
        rows.append(SweepRow(**parsed))
    return rows
