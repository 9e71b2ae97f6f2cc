"""Composition kernel vs the same computation in numpy, and vs a plain memory copy.

Run: ``python -m pytest benchmarks/bench_compose.py --benchmark-only -s``

One batch of B = 8,000 combinations of k = 3 policies (the exhaustive
search of 20 candidates per component) on a 16×16 layout's stacked tables:
the Numba kernel (masked weighted Q-sum and argmax, prange over
combinations) against numpy doing the same gather, sum, mask and argmax,
and the kernel's rate of Q bytes read against ``np.copyto`` of a buffer of
the same size, all measured in the same run.
"""

import numba
import numpy as np
import pytest

from benchmarks.conftest import median_seconds
from lever import Layout, Objective
from lever.compose import OPERATORS, PolicyStack
from lever.kernels.compose import compose_batch
from lever.kernels.constants import N_SETS

N_POLICIES = 60
N_COMBOS = 8_000
K = 3


@pytest.fixture(scope="module")
def tables():
    layout = Layout.generate("grid16", seed=1)
    rng = np.random.default_rng(0)
    shape = (N_POLICIES, layout.n_states, 4)
    q = rng.normal(size=shape).astype(np.float32)
    visits = rng.integers(0, 5, size=shape) * (rng.random(shape) < 0.7)
    stack = PolicyStack.from_arrays(layout, q, visits, np.zeros(shape, dtype=np.int32),
                                    np.zeros(shape + (N_SETS,)))
    combos = rng.integers(0, N_POLICIES, size=(N_COMBOS, K)).astype(np.int64)
    return stack, visits > 0, combos


def numpy_compose(q, supported, combos, betas):
    """The same operator in numpy: gather, weighted sum, mask to the union support, argmax."""
    summed = np.einsum("bk,bksa->bsa", betas, q[combos])
    union = supported[combos].any(axis=1)
    actions = np.where(union, summed, -np.inf).argmax(axis=2).astype(np.int32)
    actions[~union.any(axis=2)] = -1
    return actions


def numpy_compose_max(q, supported, combos, betas):
    """GPI in numpy: max over the members that visited (s, a), masked argmax."""
    visited = supported[combos]
    best = np.where(visited, betas[:, :, None, None] * q[combos], -np.inf).max(axis=1)
    union = visited.any(axis=1)
    actions = best.argmax(axis=2).astype(np.int32)
    actions[~union.any(axis=2)] = -1
    return actions


@pytest.mark.parametrize("operator", ["sum", "max"])
def test_compose_kernel_vs_numpy(benchmark, tables, neighbour, operator):
    stack, supported, combos = tables
    betas = np.ones(combos.shape)
    actions = np.empty((N_COMBOS, stack.layout.n_states), dtype=np.int32)
    covered = np.empty(N_COMBOS, dtype=np.int64)
    code = OPERATORS[operator]
    values = stack.values(Objective.parse("path"), operator)
    compose_batch(values, stack.support, combos, betas, code, actions, covered)  # compile
    reference = numpy_compose if operator == "sum" else numpy_compose_max
    np.testing.assert_array_equal(actions, reference(stack.q, supported, combos, betas))
    benchmark.pedantic(compose_batch, args=(values, stack.support, combos, betas, code, actions, covered),
                       rounds=15, iterations=1, warmup_rounds=1)
    kernel_s = benchmark.stats.stats.median
    # Two cores shared with other work make the threaded figure noisy; one thread is the steady one.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_thread_s = median_seconds(lambda: compose_batch(values, stack.support, combos, betas, code,
                                                            actions, covered), repeats=9)
    finally:
        numba.set_num_threads(threads)
    numpy_s = median_seconds(lambda: reference(stack.q, supported, combos, betas), repeats=5)

    q_bytes = combos.size * stack.layout.n_states * 4 * stack.q.itemsize
    source = np.ones(q_bytes // 8)
    target = np.empty_like(source)
    copy_s = median_seconds(lambda: np.copyto(target, source), repeats=7)
    figures = {
        "combinations": N_COMBOS, "k": K, "operator": operator,
        "threads": threads, "kernel_median_s": kernel_s, "kernel_one_thread_median_s": one_thread_s,
        "numpy_median_s": numpy_s, "speedup_one_thread_vs_numpy": numpy_s / one_thread_s,
        "kernel_combos_per_s": N_COMBOS / kernel_s, "numpy_combos_per_s": N_COMBOS / numpy_s,
        "speedup_vs_numpy": numpy_s / kernel_s,
        "q_bytes_per_batch": q_bytes,
        "kernel_q_bytes_per_s": q_bytes / kernel_s, "copyto_bytes_per_s": q_bytes / copy_s,
        "kernel_vs_copyto": copy_s / kernel_s, "one_thread_vs_copyto": copy_s / one_thread_s,
        "neighbour": neighbour,
    }
    benchmark.extra_info.update(figures)
    print(f"\ncompose {operator}, {neighbour}: kernel {kernel_s * 1e3:.2f} ms ({N_COMBOS / kernel_s:,.0f} combos/s, "
          f"{threads} threads; 1 thread {one_thread_s * 1e3:.2f} ms, {numpy_s / one_thread_s:.1f}x numpy), "
          f"numpy {numpy_s * 1e3:.2f} ms ({N_COMBOS / numpy_s:,.0f} combos/s): {numpy_s / kernel_s:.1f}x; "
          f"Q read {q_bytes / kernel_s / 1e9:.2f} GB/s vs np.copyto {q_bytes / copy_s / 1e9:.2f} GB/s "
          f"of {q_bytes / 1e6:.0f} MB ({copy_s / kernel_s:.2f}x; 1 thread {copy_s / one_thread_s:.2f}x; "
          f"target >= 0.8x)")
