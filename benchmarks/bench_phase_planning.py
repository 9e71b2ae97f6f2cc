"""Planning on (cell, lever phase) against planning on the cell alone, per query, on the study's grid16 libraries.

The long-horizon query (path+gold+hazard+lever) in every mode, on one
(layout seed, budget) cell's snapshot library: the hybrid (k = 3) search,
then each planning, timed apart and together. Printed side by side: the
median seconds per query of the search, of the search plus the cell-only
plan, and of the search plus the phase plan, and the ratio of the two
plans. ``LEVER_BENCH_SEED`` / ``LEVER_BENCH_BUDGET`` choose the cell (0, X1).
"""

import os
import statistics
import time

import pytest

from lever.compose import plan_on_support
from lever.worlds.objectives import Objective
from lever.phase_plan import phase_plan_on_support
from lever.protocol import HYBRID_K
from lever.reproduction.cell import LONG_GAMMA, LONG_QUERY, CellRunner, search
from lever.reproduction.library import SnapshotLibrary

SEED = int(os.environ.get("LEVER_BENCH_SEED", "0"))
BUDGET = os.environ.get("LEVER_BENCH_BUDGET", "X1")


@pytest.fixture(scope="module")
def cell():
    runner = CellRunner("grid16", SEED, BUDGET)
    return runner, SnapshotLibrary.build(runner.layout, runner.config)


def _median(run, repeats=21) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def test_phase_plan_vs_position_plan(benchmark, cell, capsys):
    runner, library = cell
    objective = Objective.parse(LONG_QUERY)
    queries = [q for q in runner.queries if q.query == LONG_QUERY]
    choices = [search(library, q, HYBRID_K, objective, "study") for q in queries]
    for choice in choices:  # compile outside the timing
        plan_on_support(library.stack, choice.rows, objective, gamma=LONG_GAMMA)
        phase_plan_on_support(library.stack, choice.rows, objective, gamma=LONG_GAMMA)

    def phase_all():
        return [phase_plan_on_support(library.stack, c.rows, objective, gamma=LONG_GAMMA) for c in choices]

    benchmark.pedantic(phase_all, rounds=11, iterations=1)
    lines = []
    for query, choice in zip(queries, choices):
        searching = _median(lambda: search(library, query, HYBRID_K, objective, "study"))
        position = _median(lambda: plan_on_support(library.stack, choice.rows, objective, gamma=LONG_GAMMA))
        phase = _median(lambda: phase_plan_on_support(library.stack, choice.rows, objective, gamma=LONG_GAMMA))
        sweeps = phase_plan_on_support(library.stack, choice.rows, objective, gamma=LONG_GAMMA).iterations
        benchmark.extra_info[query.mode] = {"search_s": searching, "position_plan_s": position,
                                            "phase_plan_s": phase, "phase_sweeps": sweeps}
        lines.append(f"  {query.mode:<8} search {searching * 1e3:7.2f} ms | + cell-only plan "
                     f"{(searching + position) * 1e3:7.2f} ms | + phase plan {(searching + phase) * 1e3:7.2f} ms "
                     f"(plans: cell-only {position * 1e3:.2f} ms, phase {phase * 1e3:.2f} ms in {sweeps} sweeps, "
                     f"cell-only / phase {position / phase:.0f}x)")
    with capsys.disabled():
        print(f"\ngrid16 seed {SEED} {BUDGET}, {LONG_QUERY}, hybrid k={HYBRID_K}, medians of 21:")
        print("\n".join(lines))
