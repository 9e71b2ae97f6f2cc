"""Every parallel kernel against its serial twin, over a grid of work sizes: where the thresholds come from.

Run: ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``

For each kernel and size, the median wall time of the serial twin, of the
parallel kernel (at Numba's thread count), and of the path
:func:`lever.threads.pick` chooses with the kernel's ``PARALLEL_MIN_*``
threshold. The figure that matters is *dispatched / serial* speed (the
target is ≥ 0.9× at every size, idle and beside a busy neighbour); the
parallel / serial column is what a threshold is read from: the smallest
size from which the parallel kernel wins in both runs.
"""

import statistics
import time

import numba
import numpy as np
import pytest

from lever import Layout, TabularWorld
from lever.compose import PolicyStack
from lever.kernels import compose as kc
from lever.kernels import features as kf
from lever.kernels import route as kr
from lever.kernels import table as kt
from lever.kernels import table_compose as ktc
from lever.kernels import world as kw
from lever.kernels.constants import EXIT, N_ACTIONS, N_SETS
from lever.route import RouteSearch
from lever.threads import pick

LAYOUT = Layout.generate("grid16", seed=0)
#: The tabular kernels' world: Taxi's 404 reachable states, 6 actions, 1 reward feature.
TAXI = TabularWorld.from_gymnasium("Taxi-v4")
#: The route search's world and objective, as in ``bench_route.py``.
ROUTE_LAYOUT = Layout.generate("first-release-grid16", seed=0)
ROUTE_OBJECTIVE = "path+gold+hazard+lever"
#: Seconds each timing aims at (repeats are chosen to fill it).
BUDGET_S = 0.3


def paired(serial, parallel, rounds: int = 9) -> tuple[float, float]:
    """Median seconds per call of ``serial()`` and ``parallel()``, timed in alternating rounds.

    Each round times as many calls of each as fit in about ``BUDGET_S / rounds``; alternating
    keeps a change in the machine's load from favouring one side.
    """
    calls = []
    for run in (serial, parallel):
        run()
        began = time.perf_counter()
        run()
        calls.append(max(1, int(BUDGET_S / rounds / max(time.perf_counter() - began, 1e-6))))
    times = ([], [])
    for _ in range(rounds):
        for side, run in enumerate((serial, parallel)):
            began = time.perf_counter()
            for _ in range(calls[side]):
                run()
            times[side].append((time.perf_counter() - began) / calls[side])
    return statistics.median(times[0]), statistics.median(times[1])


def step_args(n):
    rng = np.random.default_rng(0)
    free = np.flatnonzero(LAYOUT.passable & (LAYOUT.cells.ravel() != EXIT))
    return (LAYOUT.world, rng.choice(free, size=n).astype(np.int64), rng.integers(0, 4, size=n).astype(np.int64),
            np.zeros((n, LAYOUT.gold.size), dtype=np.uint8), np.zeros(n, dtype=np.int64), np.array([15]),
            np.array([1.0]), np.zeros(n), np.zeros((n, N_SETS)), np.zeros(n, dtype=np.bool_))


def tables(p):
    rng = np.random.default_rng(1)
    shape = (p, LAYOUT.n_states, 4)
    visits = rng.integers(0, 3, size=shape) * (rng.random(shape) < 0.6)
    support = np.empty(shape[:2], dtype=np.uint8)
    kc.support_bits_serial(visits, support)
    next_state = np.repeat(LAYOUT.world.moves[None], p, axis=0).astype(np.int32)
    return rng.normal(size=shape), visits, support, next_state, rng


def compose_args(b):
    q, _, support, _, rng = tables(60)
    combos = rng.integers(0, 60, size=(b, 3)).astype(np.int64)
    return (q, support, combos, np.ones((b, 3)), kc.OP_SUM, np.empty((b, LAYOUT.n_states), dtype=np.int32),
            np.empty(b, dtype=np.int64))


def offline_args(b):
    q, _, support, next_state, rng = tables(60)
    combos = rng.integers(0, 60, size=(b, 3)).astype(np.int64)
    actions = np.empty((b, LAYOUT.n_states), dtype=np.int32)
    kc.compose_batch_serial(q, support, combos, np.ones((b, 3)), kc.OP_SUM, actions, np.empty(b, dtype=np.int64))
    reward_model = rng.normal(size=q.shape + (N_SETS,))
    weights = np.zeros(N_SETS)
    weights[1] = 1.0
    return (combos, actions, support, next_state, reward_model, LAYOUT.world.cells, LAYOUT.start,
            LAYOUT.max_steps, weights, np.empty(b), np.empty((b, N_SETS)), np.empty(b, dtype=np.int64),
            np.empty(b, dtype=np.int8), np.empty((0, 0), dtype=np.int32))


def support_args(p):
    _, visits, _, _, _ = tables(p)
    return visits, np.empty((p, LAYOUT.n_states), dtype=np.uint8)


def mask_args(p):
    q, _, support, _, _ = tables(p)
    return q, support, np.empty_like(q)


def greedy_args(p):
    return (tables(p)[0],)


def features_args(p):
    q = tables(p)[0]
    actions = kf.greedy_policies_serial(q)
    starts = np.random.default_rng(2).choice(LAYOUT.n_states, size=16, replace=False).astype(np.int64)
    return (LAYOUT.world, actions, starts, LAYOUT.max_steps, 0.95, True, True,
            np.empty((p, 16, N_SETS + 6)), np.empty((p, 16), dtype=np.int32), np.empty((p, 16), dtype=np.int8))


def taxi_tables(p):
    rng = np.random.default_rng(3)
    shape = (p, TAXI.n_states, TAXI.n_actions)
    visits = rng.integers(0, 3, size=shape) * (rng.random(shape) < 0.6)
    support = np.empty(shape[:2], dtype=np.uint8)
    kc.support_bits_serial(visits, support)
    return rng.normal(size=shape), support, rng


def compose_any_args(b):
    q, support, rng = taxi_tables(60)
    combos = rng.integers(0, 60, size=(b, 3)).astype(np.int64)
    return (q, support, combos, np.ones((b, 3)), kc.OP_SUM, np.empty((b, TAXI.n_states), dtype=np.int32),
            np.empty(b, dtype=np.int64))


def offline_table_args(b):
    q, support, rng = taxi_tables(60)
    combos = rng.integers(0, 60, size=(b, 3)).astype(np.int64)
    actions = np.empty((b, TAXI.n_states), dtype=np.int32)
    ktc.compose_any_batch_serial(q, support, combos, np.ones((b, 3)), kc.OP_SUM, actions,
                                 np.empty(b, dtype=np.int64))
    next_state = np.repeat(TAXI.next_state[None], 60, axis=0)
    reward_model = np.repeat(TAXI.reward[None], 60, axis=0)
    n_features = TAXI.n_features
    return (combos, actions, support, next_state, reward_model, TAXI.terminates, TAXI.start, TAXI.max_steps,
            np.ones(n_features), np.empty(b), np.empty((b, n_features)), np.empty(b, dtype=np.int64),
            np.empty(b, dtype=np.int8), np.empty((0, 0), dtype=np.int32))


def features_table_args(p):
    actions = kf.greedy_policies_serial(taxi_tables(p)[0])
    starts = np.random.default_rng(4).choice(TAXI.n_states, size=16, replace=False).astype(np.int64)
    return (TAXI.table, actions, starts, TAXI.max_steps, 0.95, True, np.empty((p, 16, TAXI.n_features)),
            np.empty((p, 16), dtype=np.int32), np.empty((p, 16), dtype=np.int8))


def route_search():
    rng = np.random.default_rng(5)
    shape = (20, ROUTE_LAYOUT.n_states, N_ACTIONS)
    visits = (rng.random(shape) < 0.7).astype(np.int64)
    next_state = np.where(visits > 0, ROUTE_LAYOUT.world_for("first-release").moves[None], -1).astype(np.int32)
    stack = PolicyStack.from_arrays(ROUTE_LAYOUT, np.zeros(shape), visits, next_state,
                                    np.zeros(shape + (N_SETS,)))
    return RouteSearch(stack, ROUTE_OBJECTIVE), rng


def routes_args(b):
    search, rng = route_search()
    combos = rng.integers(0, 20, size=(b, 4)).astype(np.int64)
    return (search.world, ROUTE_LAYOUT.start, search.order, search.stack.support, combos, search.objective.mask,
            search.edge_reward, search.exit_reward, np.empty(b), np.zeros(b, dtype=np.int32),
            np.full((b, ROUTE_LAYOUT.height + ROUTE_LAYOUT.width), -1, dtype=np.int32))


#: DP states (S · 2 · Gc) one combination's route search covers: the work unit of ``best_routes``.
ROUTE_STATES = route_search()[0].exit_reward.size // N_ACTIONS

# kernel name: (parallel, serial, arguments of a size, work of a size, threshold, sizes)
KERNELS = {
    "step_batch": (kw.step_batch, kw.step_batch_serial, step_args, lambda n: n, kw.PARALLEL_MIN_AGENTS,
                   (1, 64, 1024, 4096, 16384)),
    "compose_batch": (kc.compose_batch, kc.compose_batch_serial, compose_args,
                      lambda b: b * 3 * LAYOUT.n_states * 4, kc.PARALLEL_MIN_COMPOSE_ENTRIES,
                      (8, 64, 512, 2048, 8000)),
    "offline_rollout_batch": (kc.offline_rollout_batch, kc.offline_rollout_batch_serial, offline_args,
                              lambda b: b, kc.PARALLEL_MIN_ROLLOUTS, (8, 64, 512, 2048, 8000)),
    "support_bits": (kc.support_bits, kc.support_bits_serial, support_args, lambda p: p * LAYOUT.n_states * 4,
                     kc.PARALLEL_MIN_ENTRIES, (4, 64, 256, 1024)),
    "mask_unvisited": (kc.mask_unvisited, kc.mask_unvisited_serial, mask_args,
                       lambda p: p * LAYOUT.n_states * 4, kc.PARALLEL_MIN_ENTRIES, (4, 64, 256, 1024)),
    "greedy_policies": (kf.greedy_policies, kf.greedy_policies_serial, greedy_args,
                        lambda p: p * LAYOUT.n_states, kf.PARALLEL_MIN_STATES, (4, 64, 1024, 4096)),
    "successor_features": (kf.successor_features, kf.successor_features_serial, features_args,
                           lambda p: p * 16, kf.PARALLEL_MIN_ROLLOUTS, (1, 8, 32, 128)),
    "compose_any_batch": (ktc.compose_any_batch, ktc.compose_any_batch_serial, compose_any_args,
                          lambda b: b * 3 * TAXI.n_states * TAXI.n_actions, ktc.PARALLEL_MIN_ANY_COMPOSE_ENTRIES,
                          (8, 64, 256, 512, 2048, 8000)),
    "offline_rollout_table_batch": (ktc.offline_rollout_table_batch, ktc.offline_rollout_table_batch_serial,
                                    offline_table_args, lambda b: b, ktc.PARALLEL_MIN_TABLE_OFFLINE_ROLLOUTS,
                                    (8, 64, 512, 2048, 8000)),
    "successor_features_table": (kt.successor_features_table, kt.successor_features_table_serial,
                                 features_table_args, lambda p: p * 16, kt.PARALLEL_MIN_TABLE_ROLLOUTS,
                                 (1, 8, 128, 512, 1024, 2048)),
    "best_routes": (kr.best_routes, kr.best_routes_serial, routes_args, lambda b: b * ROUTE_STATES,
                    kr.PARALLEL_MIN_ROUTE_STATES, (1, 8, 32, 64, 625)),
}


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_parallel_kernel_vs_serial_twin(benchmark, capsys, neighbour, kernel):
    parallel, serial, make_args, work, threshold, sizes = KERNELS[kernel]
    threads = numba.get_num_threads()
    rows = []
    for size in sizes:
        args = make_args(size)
        chosen = pick(parallel, serial, work(size), threshold)
        serial_s, parallel_s = paired(lambda: serial(*args), lambda: parallel(*args))
        rows.append((size, serial_s, parallel_s, serial_s if chosen is serial else parallel_s,
                     "parallel" if chosen is parallel else "serial"))
    args = make_args(sizes[-1])
    benchmark.pedantic(pick(parallel, serial, work(sizes[-1]), threshold), args=args, rounds=5, iterations=1,
                       warmup_rounds=1)
    worst = min(serial_s / chosen_s for _, serial_s, _, chosen_s, _ in rows)
    benchmark.extra_info.update(neighbour=neighbour, threads=threads, threshold=threshold, rows=[
        dict(size=size, serial_s=s, parallel_s=p, dispatched=path) for size, s, p, _, path in rows],
        worst_dispatched_vs_serial=worst)
    with capsys.disabled():
        print(f"\n[{kernel}, {neighbour}, {threads} threads, threshold {threshold:,} work units]")
        for size, serial_s, parallel_s, chosen_s, path in rows:
            print(f"  size {size:>6,}: serial {serial_s * 1e6:10.1f} us, parallel {parallel_s * 1e6:10.1f} us "
                  f"(parallel/serial speed {serial_s / parallel_s:5.2f}x); dispatched: {path:8s} "
                  f"{serial_s / chosen_s:4.2f}x serial")
        print(f"  worst dispatched/serial speed: {worst:.2f}x (target >= 0.9x)")
