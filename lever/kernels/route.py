"""Route search on the union of logged transitions: the study's first public release's composition.

In the first release's world (:data:`~lever.kernels.constants.RULES_FIRST_RELEASE`)
every move raises row + col, so no cell is entered twice and the logged
transitions of any set of policies form a DAG. The release composes a query
by a longest-path dynamic programme over that DAG with the exact step
rewards, and reports the return of replaying the best route to the exit.

Its rewards depend on the history only through the lever (pulled or not)
and, at the exit, the gold collected so far, so the DP's state is
(cell, lever pulled, gold collected) with the gold count kept only when the
objective has gold. :func:`route_rewards` fills the reward of every edge and
state once per (world, objective) with :func:`~lever.kernels.world.step`
itself; :func:`best_routes` then searches many unions at once, in parallel
over combinations. Returns are summed in route order, exactly as a replay
sums them, so a route's value equals its replayed return bit for bit.
"""

import numpy as np
from numba import njit, prange

from .constants import EXIT, GOLD_BIT, HAZARD, LEVER, WALL
from .world import N_TERMS, set_reward, step


@njit(cache=True)
def route_rewards(world, mask, edge_reward, exit_reward):
    """The reward of every edge of the move table for the component set ``mask``.

    world: a first-release :class:`~lever.kernels.world.World` (rewards that
    depend on the history only through the lever and the gold count);
    edge_reward float64 (S, A, 2) out: the reward of (s, a) with the lever
    pulled before (index 1) or not (0), for edges that land neither on the
    exit nor a hazard nor in place; exit_reward float64 (S, A, 2, Gc) out:
    the reward of an edge into the exit with the lever state and c gold
    collected before (Gc = G + 1 with gold in ``mask``, else 1). Other
    entries are 0.
    """
    n_cells, n_actions = world.moves.shape
    n_gold = world.gold_dist.shape[1]
    gold_taken = np.zeros(n_gold, dtype=np.uint8)
    terms = np.empty(N_TERMS)
    edge_reward[:] = 0.0
    exit_reward[:] = 0.0
    for s in range(n_cells):
        kind = world.cells[s]
        if kind == WALL or kind == HAZARD or kind == EXIT:
            continue
        for a in range(n_actions):
            nxt = world.moves[s, a]
            if nxt == s or world.cells[nxt] == HAZARD:
                continue
            for lever_on in range(2):
                if world.cells[nxt] != EXIT:
                    gold_taken[:] = 0
                    step(world, s, a, gold_taken, np.int64(lever_on), terms)
                    edge_reward[s, a, lever_on] = set_reward(terms, mask)
                    continue
                for collected in range(exit_reward.shape[3]):
                    gold_taken[:] = 0
                    gold_taken[:collected] = 1
                    step(world, s, a, gold_taken, np.int64(lever_on), terms)
                    exit_reward[s, a, lever_on, collected] = set_reward(terms, mask)


#: Combinations per parallel task of :func:`best_routes` (scratch is allocated once per task).
ROUTE_BLOCK = 16

#: DP states searched (B · S · 2 · Gc) from which :func:`best_routes` runs in parallel (see
#: :func:`lever.threads.pick`): about 40 combinations on a first-release-grid16 layout with gold in the
#: objective (26,112 states each), measured by ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``.
PARALLEL_MIN_ROUTE_STATES = 1 << 20


@njit(cache=True, parallel=True)
def best_routes(world, start, order, support, combos, mask, edge_reward, exit_reward, values, lengths,
                route_actions):
    """The best route from ``start`` to the exit on each combination's union of logged transitions.

    order: int64 (S,) the cells by ascending row + col (a topological order
    of the DAG); support: uint8 (P, S) bit a set where policy p logged
    (s, a) (:func:`~lever.kernels.compose.support_bits`); combos: int64
    (B, m) rows of ``support``; mask: the objective's component set;
    edge_reward, exit_reward: from :func:`route_rewards`. Bumps (moves that
    stay) and moves into a hazard are never part of a route.

    Filled per combination b: values float64 (B,), the route's return
    (-inf where no logged route reaches the exit); lengths int32 (B,), its
    moves (0 where none); route_actions int32 (B, L), its actions padded
    with -1 (L ≥ H + W). Ties keep the route found first (cells in
    ``order``, then lever state, gold count and action, ascending).
    """
    for block in prange((combos.shape[0] + ROUTE_BLOCK - 1) // ROUTE_BLOCK):
        _best_routes_range(world, start, order, support, combos, mask, edge_reward, exit_reward, values, lengths,
                           route_actions, block * ROUTE_BLOCK, min(combos.shape[0], (block + 1) * ROUTE_BLOCK))


@njit(cache=True)
def best_routes_serial(world, start, order, support, combos, mask, edge_reward, exit_reward, values, lengths,
                       route_actions):
    """:func:`best_routes` on one thread, the same results."""
    _best_routes_range(world, start, order, support, combos, mask, edge_reward, exit_reward, values, lengths,
                       route_actions, 0, combos.shape[0])


@njit(cache=True)
def _best_routes_range(world, start, order, support, combos, mask, edge_reward, exit_reward, values, lengths,
                       route_actions, lo, hi):
    # Combinations lo..hi-1 of best_routes, with the scratch allocated once.
    n_cells, n_actions = world.moves.shape
    n_counts = exit_reward.shape[3]
    count_gold = (mask & GOLD_BIT) != 0
    n_states = n_cells * 2 * n_counts
    value = np.empty(n_states)
    parent = np.empty(n_states, dtype=np.int64)
    for b in range(lo, hi):
        value[:] = -np.inf
        parent[:] = -1
        value[start * 2 * n_counts] = 0.0
        best = -np.inf
        best_state = -1
        best_action = -1
        for i in range(n_cells):
            s = order[i]
            kind = world.cells[s]
            if kind == WALL or kind == HAZARD or kind == EXIT:
                continue
            bits = 0
            for j in range(combos.shape[1]):
                bits |= support[combos[b, j], s]
            if bits == 0:
                continue
            for lever_on in range(2):
                for collected in range(n_counts):
                    state = (s * 2 + lever_on) * n_counts + collected
                    v = value[state]
                    if v == -np.inf:
                        continue
                    for a in range(n_actions):
                        if (bits >> a) & 1 == 0:
                            continue
                        nxt = world.moves[s, a]
                        landing = world.cells[nxt]
                        if nxt == s or landing == HAZARD:
                            continue
                        if landing == EXIT:
                            total = v + exit_reward[s, a, lever_on, collected]
                            if total > best:
                                best = total
                                best_state = state
                                best_action = a
                            continue
                        pulled = 1 if landing == LEVER else lever_on
                        count = collected + (1 if count_gold and world.gold_id[nxt] >= 0 else 0)
                        target = (nxt * 2 + pulled) * n_counts + count
                        reached = v + edge_reward[s, a, lever_on]
                        if reached > value[target]:
                            value[target] = reached
                            parent[target] = state * n_actions + a
        route_actions[b, :] = -1
        values[b] = best
        lengths[b] = 0
        if best_state < 0:
            continue
        # Walk the parents back to the start, then write the actions in route order.
        n = 1
        state = best_state
        while parent[state] >= 0:
            n += 1
            state = parent[state] // n_actions
        lengths[b] = n
        route_actions[b, n - 1] = best_action
        state = best_state
        k = n - 2
        while parent[state] >= 0:
            route_actions[b, k] = parent[state] % n_actions
            state = parent[state] // n_actions
            k -= 1
