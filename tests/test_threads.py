"""Thread counts and the serial twins: every parallel kernel and its twin give the same arrays, bit for bit."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lever
import lever.threads
from lever import GridSpec, Layout, LeverError
from lever.compose import PolicyStack
from lever.kernels import compose as kc
from lever.kernels import features as kf
from lever.kernels import route as kr
from lever.kernels import table as kt
from lever.kernels import table_compose as ktc
from lever.kernels import world as kw
from lever.kernels.constants import EXIT, N_ACTIONS, N_KINDS, N_SETS
from lever.library.workers import WorkerPool
from lever.route import RouteSearch
from lever.threads import check_threads, pick, run_on_one_thread
from tests.conftest import ROOT
from tests.test_route import OBJECTIVES
from tests.test_route import random_layout as random_route_layout

THREADS = numba.config.NUMBA_NUM_THREADS


def random_layout(seed: int, size: int) -> Layout:
    return Layout.generate(GridSpec(height=size, width=size, n_gold=3, n_walls=3, n_hazards=2, seed=seed))


def both_ways(parallel, serial, make_outputs, *inputs):
    """Outputs of ``serial`` and of ``parallel`` on one thread and on every thread, from fresh copies."""
    results = []
    for kernel, n_threads in ((serial, 1), (parallel, 1), (parallel, THREADS)):
        copies = [x.copy() if isinstance(x, np.ndarray) else x for x in inputs]
        outputs = make_outputs()
        with lever.using_threads(n_threads):
            returned = kernel(*copies, *outputs)
        results.append([x for x in copies if isinstance(x, np.ndarray)] + list(outputs)
                       + ([returned] if returned is not None else []))
    return results


def assert_all_equal(results):
    first, *others = results
    for other in others:
        assert len(other) == len(first)
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 700), record=st.booleans())
def test_step_batch_and_its_serial_twin_agree(seed, n, record):
    layout = random_layout(seed % 50, 6)
    rng = np.random.default_rng(seed)
    free = np.flatnonzero(layout.passable & (layout.cells.ravel() != EXIT))
    inputs = (layout.world, rng.choice(free, size=n).astype(np.int64), rng.integers(0, 4, size=n).astype(np.int64),
              rng.integers(0, 2, size=(n, layout.gold.size)).astype(np.uint8),
              rng.integers(0, 2, size=n).astype(np.int64), np.array([3, 12]), np.array([1.0, 0.5]))

    def outputs():
        return np.zeros(n), np.zeros((n, N_SETS) if record else (0, 0)), np.zeros(n, dtype=np.bool_)

    assert_all_equal(both_ways(kw.step_batch, kw.step_batch_serial, outputs, *inputs))


def tables(rng, layout, n_policies):
    shape = (n_policies, layout.n_states, 4)
    q = (rng.integers(-6, 7, size=shape) / 2).astype(np.float64)
    visits = rng.integers(0, 3, size=shape) * (rng.random(shape) < 0.6)
    support = np.empty(shape[:2], dtype=np.uint8)
    kc.support_bits_serial(visits, support)
    next_state = np.where(visits > 0, layout.world.moves[None], -1).astype(np.int32)
    reward_model = np.where((visits > 0)[..., None], rng.integers(-4, 5, size=shape + (N_SETS,)) / 4, 0.0)
    return q, visits, support, next_state, reward_model


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n_policies=st.integers(1, 40), n_combos=st.integers(1, 300),
       k=st.integers(1, 4), operator=st.sampled_from([kc.OP_SUM, kc.OP_MAX]))
def test_compose_and_offline_kernels_and_their_serial_twins_agree(seed, n_policies, n_combos, k, operator):
    layout = random_layout(seed % 50, 6)
    rng = np.random.default_rng(seed)
    q, visits, support, next_state, reward_model = tables(rng, layout, n_policies)
    s = layout.n_states

    def bits_out():
        return (np.empty((n_policies, s), dtype=np.uint8),)

    assert_all_equal(both_ways(kc.support_bits, kc.support_bits_serial, bits_out, visits))

    def mask_out():
        return (np.empty_like(q),)

    masked = both_ways(kc.mask_unvisited, kc.mask_unvisited_serial, mask_out, q, support)
    assert_all_equal(masked)
    values = masked[0][-1] if operator == kc.OP_MAX else q
    combos = rng.integers(0, n_policies, size=(n_combos, k)).astype(np.int64)
    betas = rng.integers(1, 4, size=(n_combos, k)) / 2

    def compose_out():
        return np.empty((n_combos, s), dtype=np.int32), np.empty(n_combos, dtype=np.int64)

    composed = both_ways(kc.compose_batch, kc.compose_batch_serial, compose_out, values, support, combos, betas,
                         operator)
    assert_all_equal(composed)
    actions = composed[0][-2]
    weights = rng.integers(-2, 3, size=N_SETS) / 2

    def offline_out():
        return (np.empty(n_combos), np.empty((n_combos, N_SETS)), np.empty(n_combos, dtype=np.int64),
                np.empty(n_combos, dtype=np.int8), np.empty((n_combos, layout.max_steps + 1), dtype=np.int32))

    assert_all_equal(both_ways(kc.offline_rollout_batch, kc.offline_rollout_batch_serial, offline_out, combos,
                               actions, support, next_state, reward_model, layout.world.cells, layout.start,
                               layout.max_steps, weights))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n_policies=st.integers(1, 30), n_starts=st.integers(1, 12),
       gamma=st.sampled_from([1.0, 0.9]), cell_kinds=st.booleans(), skip_cycles=st.booleans())
def test_feature_kernels_and_their_serial_twins_agree(seed, n_policies, n_starts, gamma, cell_kinds, skip_cycles):
    layout = random_layout(seed % 50, 6)
    rng = np.random.default_rng(seed)
    q = tables(rng, layout, n_policies)[0]
    greedy = both_ways(kf.greedy_policies, kf.greedy_policies_serial, tuple, q)
    assert_all_equal(greedy)
    actions = greedy[0][-1]
    actions[rng.random(actions.shape) < 0.05] = -1  # some dead ends
    starts = rng.choice(layout.n_states, size=n_starts, replace=False).astype(np.int64)
    dim = N_SETS + (N_KINDS if cell_kinds else 0)

    def outputs():
        return (np.empty((n_policies, n_starts, dim)), np.empty((n_policies, n_starts), dtype=np.int32),
                np.empty((n_policies, n_starts), dtype=np.int8))

    assert_all_equal(both_ways(kf.successor_features, kf.successor_features_serial, outputs, layout.world,
                               actions, starts, layout.max_steps, gamma, cell_kinds, skip_cycles))


def random_table(rng, n_states, n_actions, n_features):
    """A random tabular world's arrays: half-integer rewards, about one transition in eight terminating."""
    return kt.Table(rng.integers(0, n_states, size=(n_states, n_actions)).astype(np.int32),
                    rng.integers(-4, 5, size=(n_states, n_actions, n_features)) / 4,
                    rng.random((n_states, n_actions)) < 0.125)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n_states=st.integers(1, 40), n_actions=st.integers(1, 8),
       n_features=st.integers(1, 3), n_policies=st.integers(1, 30), n_combos=st.integers(1, 300),
       k=st.integers(1, 4), operator=st.sampled_from([kc.OP_SUM, kc.OP_MAX]), record=st.booleans())
def test_tabular_compose_and_offline_kernels_and_their_serial_twins_agree(seed, n_states, n_actions, n_features,
                                                                          n_policies, n_combos, k, operator,
                                                                          record):
    rng = np.random.default_rng(seed)
    table = random_table(rng, n_states, n_actions, n_features)
    shape = (n_policies, n_states, n_actions)
    visits = rng.integers(0, 3, size=shape) * (rng.random(shape) < 0.6)
    support = np.empty(shape[:2], dtype=np.uint8)
    kc.support_bits_serial(visits, support)
    q = (rng.integers(-6, 7, size=shape) / 2).astype(np.float64)
    values = np.where(visits > 0, q, -np.inf) if operator == kc.OP_MAX else q
    combos = rng.integers(0, n_policies, size=(n_combos, k)).astype(np.int64)
    betas = rng.integers(1, 4, size=(n_combos, k)) / 2

    def compose_out():
        return np.empty((n_combos, n_states), dtype=np.int32), np.empty(n_combos, dtype=np.int64)

    composed = both_ways(ktc.compose_any_batch, ktc.compose_any_batch_serial, compose_out, values, support, combos,
                         betas, operator)
    assert_all_equal(composed)
    next_state = np.where(visits > 0, table.next_state[None], -1).astype(np.int32)
    reward_model = np.where((visits > 0)[..., None], table.reward[None], 0.0)
    max_steps = int(rng.integers(1, 3 * n_states + 2))
    weights = rng.integers(-2, 3, size=n_features) / 2

    def offline_out():
        return (np.empty(n_combos), np.empty((n_combos, n_features)), np.empty(n_combos, dtype=np.int64),
                np.empty(n_combos, dtype=np.int8),
                np.empty((n_combos, max_steps + 1) if record else (0, 0), dtype=np.int32))

    assert_all_equal(both_ways(ktc.offline_rollout_table_batch, ktc.offline_rollout_table_batch_serial, offline_out,
                               combos, composed[0][-2], support, next_state, reward_model, table.terminates,
                               int(rng.integers(0, n_states)), max_steps, weights))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), n_states=st.integers(1, 40), n_actions=st.integers(1, 8),
       n_features=st.integers(1, 3), n_policies=st.integers(1, 30), n_starts=st.integers(1, 12),
       gamma=st.sampled_from([1.0, 0.9]), skip_cycles=st.booleans())
def test_tabular_successor_features_and_its_serial_twin_agree(seed, n_states, n_actions, n_features, n_policies,
                                                              n_starts, gamma, skip_cycles):
    rng = np.random.default_rng(seed)
    table = random_table(rng, n_states, n_actions, n_features)
    actions = rng.integers(0, n_actions, size=(n_policies, n_states)).astype(np.int32)
    actions[rng.random(actions.shape) < 0.05] = -1  # some dead ends
    starts = rng.integers(0, n_states, size=n_starts).astype(np.int64)
    max_steps = int(rng.integers(1, 4 * n_states + 2))

    def outputs():
        return (np.empty((n_policies, n_starts, n_features)), np.empty((n_policies, n_starts), dtype=np.int32),
                np.empty((n_policies, n_starts), dtype=np.int8))

    assert_all_equal(both_ways(kt.successor_features_table, kt.successor_features_table_serial, outputs, table,
                               actions, starts, max_steps, gamma, skip_cycles))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), height=st.integers(2, 7), width=st.integers(2, 7),
       objective=st.sampled_from(OBJECTIVES), legacy=st.booleans(), density=st.sampled_from([0.4, 0.7, 1.0]),
       n_combos=st.integers(1, 80), m=st.integers(1, 4))
def test_best_routes_and_its_serial_twin_agree(seed, height, width, objective, legacy, density, n_combos, m):
    rng = np.random.default_rng(seed)
    layout = random_route_layout(rng, height, width)
    shape = (6, layout.n_states, N_ACTIONS)
    visits = (rng.random(shape) < density).astype(np.int64)
    next_state = np.where(visits > 0, layout.world_for("first-release").moves[None], -1).astype(np.int32)
    stack = PolicyStack.from_arrays(layout, np.zeros(shape), visits, next_state, np.zeros(shape + (N_SETS,)))
    search = RouteSearch(stack, objective, legacy_gold_exit=legacy)
    combos = rng.integers(0, 6, size=(n_combos, m)).astype(np.int64)

    def outputs():
        return (np.empty(n_combos), np.zeros(n_combos, dtype=np.int32),
                np.full((n_combos, height + width), -1, dtype=np.int32))

    assert_all_equal(both_ways(kr.best_routes, kr.best_routes_serial, outputs, search.world, layout.start,
                               search.order, stack.support, combos, search.objective.mask, search.edge_reward,
                               search.exit_reward))


def test_set_threads_checks_its_argument_and_using_threads_restores_the_count():
    before = lever.get_threads()
    for bad in (0, -1, THREADS + 1, True, 1.5, "2", None):
        with pytest.raises(LeverError, match="threads must be an integer"):
            lever.set_threads(bad)
    assert check_threads(1) == 1 and check_threads(np.int64(THREADS)) == THREADS
    with lever.using_threads(1) as inside:
        assert inside == 1 == lever.get_threads()
    assert lever.get_threads() == before
    with pytest.raises(RuntimeError):
        with lever.using_threads(1):
            raise RuntimeError("the count comes back even so")
    assert lever.get_threads() == before
    with lever.using_threads(None) as inside:
        assert inside == before
    lever.set_threads(1)
    try:
        assert lever.get_threads() == 1
    finally:
        lever.set_threads(before)


def test_pick_takes_the_serial_twin_below_the_threshold_on_one_thread_or_without_idle_cores(monkeypatch):
    import lever.threads as threads_module

    def parallel(*args):
        return "parallel", lever.get_threads(), args

    assert pick(parallel, "serial", 99, 100) == "serial"
    with lever.using_threads(1):
        assert pick(parallel, "serial", 10 ** 9, 100) == "serial"
    if THREADS < 2:
        return
    with lever.using_threads(2):
        monkeypatch.setattr(threads_module, "idle_cores", lambda: 1)
        assert pick(parallel, "serial", 100, 100) == "serial"
        for idle in (2, 64, None):
            monkeypatch.setattr(threads_module, "idle_cores", lambda idle=idle: idle)
            assert pick(parallel, "serial", 100, 100) is parallel
    if THREADS >= 3:
        with lever.using_threads(3):
            monkeypatch.setattr(threads_module, "idle_cores", lambda: 2)
            assert pick(parallel, "serial", 100, 100)(7) == ("parallel", 2, (7,))
            assert lever.get_threads() == 3


def test_idle_cores_reads_a_count_within_the_cores():
    idle = lever.threads.idle_cores()
    assert idle is None or 0 <= idle <= (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                         else os.cpu_count())


def test_run_on_one_thread_restores_the_count():
    before = lever.get_threads()
    assert run_on_one_thread(lever.get_threads) == 1
    assert lever.get_threads() == before


def test_worker_processes_run_their_kernels_on_one_thread():
    pool = WorkerPool(1)
    try:
        assert pool.submit(lever.get_threads).result(timeout=120) == 1
    finally:
        pool.shutdown()


def test_the_command_line_sets_and_checks_the_thread_count():
    out = subprocess.run([sys.executable, "-m", "lever.cli", "--threads", "0", "train", "--grid", "grid8",
                          "--episodes", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2 and "threads must be an integer from 1" in out.stderr
