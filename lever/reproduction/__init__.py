"""The study's protocol, end to end: snapshot libraries, every query, mode and method, the scratch
baseline, the controlled experiments behind its three findings, and a report beside its numbers."""

from .cell import COLUMNS, EXPERIMENTS, CellRunner
from .library import Entry, SnapshotLibrary
from .report import write_report
from .runner import Reproduction, ReproduceConfig, reproduce

__all__ = ["COLUMNS", "EXPERIMENTS", "CellRunner", "Entry", "Reproduction", "ReproduceConfig",
           "SnapshotLibrary", "reproduce", "write_report"]
