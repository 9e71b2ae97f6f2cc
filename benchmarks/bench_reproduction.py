"""The whole reproduction's wall time, and the compute the study's own protocol spends on the same cells.

By default grid8 (5 seeds × X1, X5, X10); ``LEVER_BENCH_FULL=1`` runs the
grid16 reproduction of README (5 seeds × 3 budgets; target ≤ 10 minutes on
2 cores). The study's compute for the same protocol is estimated from its
published times (first release): per cell, 8 library policies
and one scratch run per query at its per-policy training time, plus each
mode's targeted, hybrid and exhaustive times (without its language-model
decomposition) for each of the mode's queries.
"""

import os
import time

from lever.protocol import QUERIES
from lever.published import load_published
from lever.reproduction import ReproduceConfig, reproduce

FULL = os.environ.get("LEVER_BENCH_FULL") == "1"


def study_compute_s(config: ReproduceConfig) -> float:
    """Seconds the study's published times add up to for ``config``'s cells (no decomposition)."""
    table = {(r["budget"], r["mode"]): r for r in load_published().table("grid16-dense")}
    total = 0.0
    for _, budget in config.cells:
        scratch = sum(table[(budget, m)]["scratch_time_s"] for m in ("trivial", "double", "triple")) / 3
        n_queries = len({q.query for q in QUERIES})
        total += (8 + n_queries) * scratch
        for query in QUERIES:
            row = table[(budget, query.mode)]
            total += row["targeted_time"] + row["hybrid_time"] + row["exhaustive_time"]
    return total


def test_reproduction_wall_time(benchmark, capsys, tmp_path):
    config = ReproduceConfig(setting="grid16" if FULL else "grid8", seeds=(0, 1, 2, 3, 4),
                             budgets=("X1", "X5", "X10"))
    reproduce(ReproduceConfig(setting="grid8", seeds=(0,), budgets=("X1",)), tmp_path / "warm",
              progress=False)  # compile outside the timing
    runs = iter(range(100))

    def run():
        return reproduce(config, tmp_path / f"run{next(runs)}", progress=False)

    began = time.perf_counter()
    result = benchmark.pedantic(run, rounds=1, iterations=1)
    wall = time.perf_counter() - began
    study = study_compute_s(config)
    benchmark.extra_info.update(setting=config.setting, cells=len(config.cells), wall_s=wall,
                                study_compute_s=study, ratio=study / wall, rows=len(result.rows))
    comparison = (f"the study's published times for the same protocol on 16x16 add up to {study:,.0f} s "
                  f"({study / 3600:.1f} h): {study / wall:,.0f}x" if FULL else
                  "the study published 16x16 times only: LEVER_BENCH_FULL=1 runs grid16 to compare")
    with capsys.disabled():
        print(f"\n[reproduction {config.setting}, {len(config.cells)} cells, {len(result.rows)} rows] "
              f"{wall:.1f} s wall on {os.cpu_count()} cores; {comparison}")
