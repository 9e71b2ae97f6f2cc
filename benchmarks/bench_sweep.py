"""End-to-end sweeps: the ``quick`` preset and the study's 16×16 setting, against the study's per-cell cost.

Each round runs the sweep into a fresh directory (libraries built, baselines
trained, every strategy run), so the wall time is the whole job. The study
spent about 11 s (X1) to 125 s (X10) training from scratch per cell, plus
strategy time (targeted ~0.01 s, hybrid(k=3) ~5-24 s, exhaustive ~12-166 s).

``study16`` runs one layout seed by default (42 of its 210 cells) to keep the
benchmark near two minutes on two cores; set ``LEVER_BENCH_STUDY16_SEEDS=5`` for
the whole preset.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from lever.sweep import SweepConfig, run_sweep

#: The study's per-cell seconds (16×16, 5 seeds): training from scratch, and strategy times.
STUDY_SCRATCH_S = {"X1": 11.0, "X10": 125.0}
STUDY_STRATEGY_S = {"targeted": 0.01, "hybrid:3": (5.0, 24.0), "exhaustive": (12.0, 166.0)}


def _run_fresh(config: SweepConfig) -> object:
    with tempfile.TemporaryDirectory(prefix="lever-bench-") as folder:
        return run_sweep(config, Path(folder) / "sweep", progress=False)


def _report(benchmark, name: str, config: SweepConfig, result) -> None:
    cells = len(config.cells())
    seconds = benchmark.stats.stats.median
    per_cell = seconds / cells
    jobs = os.cpu_count() or 1
    by_budget = {}
    for row in result.rows:
        by_budget.setdefault(row.budget, {})[(row.layout_seed, row.composite)] = row.scratch_s
    scratch = {budget: statistics.mean(times.values()) for budget, times in by_budget.items()}
    strategy = {}
    for row in result.rows:
        if not row.planning:
            strategy.setdefault(row.strategy, []).append(row.search_s)
    strategy = {label: statistics.median(times) for label, times in strategy.items()}
    benchmark.extra_info.update({
        "cells": cells, "jobs": jobs, "wall_s": seconds, "cells_per_minute": 60 * cells / seconds,
        "wall_s_per_cell": per_cell, "scratch_s_by_budget": scratch, "strategy_median_s": strategy})
    print(f"\n[{name}] {cells} cells on {jobs} cores: {seconds:.1f} s wall, {60 * cells / seconds:.1f} cells/min, "
          f"{per_cell:.3f} s per cell end to end (libraries, baseline, {len(config.strategies)} strategies"
          f"{' x2 with planning' if config.planning else ''})")
    if config.settings == ("grid16",):
        print(f"[{name}] study per cell: 11-125 s of training alone -> this sweep's whole cell is "
              f"{11 / per_cell:,.0f}x-{125 / per_cell:,.0f}x cheaper")
    for budget, value in scratch.items():
        line = f"[{name}] scratch training {budget}: mean {value * 1e3:.1f} ms"
        if budget in STUDY_SCRATCH_S and config.settings == ("grid16",):
            line += f" (study {STUDY_SCRATCH_S[budget]:.0f} s: {STUDY_SCRATCH_S[budget] / value:,.0f}x)"
        print(line)
    for label, value in strategy.items():
        line = f"[{name}] {label}: median {value * 1e3:.3f} ms per search"
        study = STUDY_STRATEGY_S.get(label)
        if study is not None and config.settings == ("grid16",):
            if isinstance(study, tuple):
                line += f" (study {study[0]:g}-{study[1]:g} s: {study[0] / value:,.0f}x-{study[1] / value:,.0f}x)"
            else:
                line += f" (study {study:g} s: {study / value:,.0f}x)"
        print(line)


def test_quick_preset(benchmark):
    config = SweepConfig.preset("quick")
    result = benchmark.pedantic(_run_fresh, args=(config,), rounds=2, iterations=1, warmup_rounds=0)
    _report(benchmark, "quick", config, result)


def test_study16(benchmark):
    seeds = int(os.environ.get("LEVER_BENCH_STUDY16_SEEDS", "1"))
    config = SweepConfig.preset("study16", layout_seeds=tuple(range(seeds)))
    result = benchmark.pedantic(_run_fresh, args=(config,), rounds=1, iterations=1, warmup_rounds=0)
    _report(benchmark, f"study16 ({seeds} seed{'s' * (seeds > 1)})", config, result)
