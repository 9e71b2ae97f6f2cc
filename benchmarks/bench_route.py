"""Route search kernel vs the pure-Python DP doing the same search.

Run: ``python -m pytest benchmarks/bench_route.py --benchmark-only -s``

The first release's composition on a first-release-grid16 layout: the best
route to the exit on the union of two policies' logged transitions, for
path+gold+hazard+lever (state: cell, lever pulled, gold collected). The
kernel (one call, B combinations in parallel) against the pure-Python DP of
``tests/reference_route.py`` on one combination, and the kernel on a batch
of 625 combinations (an exhaustive search of 4 sub-queries × 5 candidates),
all measured in the same run.
"""

import math

import numba
import numpy as np
import pytest

from benchmarks.conftest import median_seconds
from lever import Layout
from lever.compose import PolicyStack
from lever.kernels.constants import N_ACTIONS, N_SETS
from lever.route import RouteSearch
from tests.reference_route import best_route_dp

OBJECTIVE = "path+gold+hazard+lever"
N_POLICIES = 20
N_COMBOS = 625


@pytest.fixture(scope="module")
def setup():
    layout = Layout.generate("first-release-grid16", seed=0)
    rng = np.random.default_rng(0)
    shape = (N_POLICIES, layout.n_states, N_ACTIONS)
    visits = (rng.random(shape) < 0.7).astype(np.int64)
    next_state = np.where(visits > 0, layout.world_for("first-release").moves[None], -1).astype(np.int32)
    stack = PolicyStack.from_arrays(layout, np.zeros(shape), visits, next_state, np.zeros(shape + (N_SETS,)))
    combos = rng.integers(0, N_POLICIES, size=(N_COMBOS, 4)).astype(np.int64)
    return layout, stack, combos


def test_route_kernel_vs_python(benchmark, setup):
    layout, stack, combos = setup
    search = RouteSearch(stack, OBJECTIVE)
    one = combos[:1]
    routes = search.search(one)  # compile
    bits = np.bitwise_or.reduce(stack.support[list(one[0])], axis=0)
    union = {(s, a) for s in range(layout.n_states) for a in range(N_ACTIONS) if (int(bits[s]) >> a) & 1}
    cells = layout.cells.tolist()
    parts = set(OBJECTIVE.split("+"))
    want = best_route_dp(cells, layout.start, union, parts, True)
    assert math.isclose(routes.values[0], want, rel_tol=1e-12)
    benchmark.pedantic(search.search, args=(one,), rounds=15, iterations=1, warmup_rounds=1)
    kernel_s = benchmark.stats.stats.median
    python_s = median_seconds(lambda: best_route_dp(cells, layout.start, union, parts, True), repeats=3)
    batch_s = median_seconds(lambda: search.search(combos), repeats=5)
    setup_s = median_seconds(lambda: RouteSearch(stack, OBJECTIVE), repeats=5)
    # One union is one task: the thread pool's wake-up dominates a parallel call on busy cores.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_thread_s = median_seconds(lambda: search.search(one), repeats=15)
    finally:
        numba.set_num_threads(threads)
    benchmark.extra_info.update({"kernel_one_s": kernel_s, "kernel_one_thread_s": one_thread_s,
                                 "python_one_s": python_s, "speedup_vs_python": python_s / one_thread_s,
                                 "batch_625_s": batch_s, "rewards_setup_s": setup_s})
    print(f"\nroute search, {OBJECTIVE}, first-release-grid16 seed 0: one union {kernel_s * 1e3:.3f} ms "
          f"({threads} threads), {one_thread_s * 1e3:.3f} ms (1 thread); Python DP {python_s * 1e3:.1f} ms "
          f"({python_s / one_thread_s:,.0f}x); {N_COMBOS} unions in one call {batch_s * 1e3:.1f} ms "
          f"({N_COMBOS / batch_s:,.0f} unions/s, {python_s * N_COMBOS / batch_s:,.0f}x the Python DP's rate); "
          f"edge rewards {setup_s * 1e3:.2f} ms")
