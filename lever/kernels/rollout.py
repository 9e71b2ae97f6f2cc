"""Greedy rollouts of tabular policies in the true environment."""

import numpy as np
from numba import njit

from .constants import END_DEAD_END, END_EXIT, END_HAZARD, END_STEP_CAP, HAZARD, N_SETS
from .world import N_TERMS, set_rewards, step


@njit(cache=True, inline="always")
def greedy_action(q, state):
    """Index of the largest ``q[state]`` entry, the lowest index on ties (numpy's argmax)."""
    best = 0
    best_value = q[state, 0]
    for a in range(1, q.shape[1]):
        if q[state, a] > best_value:
            best_value = q[state, a]
            best = a
    return best


@njit(cache=True)
def greedy_policy(q):
    """Greedy action per state of a Q table (S, A) → int32 (S,)."""
    out = np.empty(q.shape[0], dtype=np.int32)
    for s in range(q.shape[0]):
        out[s] = greedy_action(q, s)
    return out


@njit(cache=True)
def rollout_actions(world, start, actions, max_steps, set_weights, set_return, path):
    """Follow a fixed action-per-state table in the true environment, from ``start``.

    actions: int32 (S,) action per state, -1 for "no action" (stops the
    rollout as a dead end); set_weights: float64 (N_SETS,), the objective
    as weights over component sets; set_return: float64 (N_SETS,) out, the
    undiscounted return of every component set; path: int32 (max_steps+1,)
    out, the visited cells padded with -1, or an empty array to skip.
    Returns ``(return, steps, end)``: return = set_weights · set_return,
    end an ``END_*`` code.
    """
    gold_taken = np.zeros(world.gold_dist.shape[1], dtype=np.uint8)
    terms = np.empty(N_TERMS)
    rewards = np.empty(N_SETS)
    set_return[:] = 0.0
    record = path.shape[0] > 0
    if record:
        path[:] = -1
        path[0] = start
    pos = start
    lever_on = np.int64(0)
    steps = 0
    end = END_STEP_CAP
    while steps < max_steps:
        action = actions[pos]
        if action < 0:
            end = END_DEAD_END
            break
        pos, lever_on, done = step(world, pos, np.int64(action), gold_taken, lever_on, terms)
        set_rewards(terms, rewards)
        steps += 1
        for m in range(N_SETS):
            set_return[m] += rewards[m]
        if record:
            path[steps] = pos
        if done:
            end = END_HAZARD if world.cells[pos] == HAZARD else END_EXIT
            break
    total = 0.0
    for m in range(N_SETS):
        total += set_weights[m] * set_return[m]
    return total, steps, end
