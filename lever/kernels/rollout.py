"""Greedy rollouts of tabular policies in the true environment."""

import numpy as np
from numba import njit

from .constants import END_DEAD_END, END_EXIT, END_HAZARD, END_STEP_CAP, HAZARD
from .world import step


@njit(cache=True, inline="always")
def greedy_action(q, state):
    """Index of the largest ``q[state]`` entry, the lowest index on ties."""
    best = 0
    best_value = q[state, 0]
    for a in range(1, q.shape[1]):
        if q[state, a] > best_value:
            best_value = q[state, a]
            best = a
    return best


@njit(cache=True)
def rollout_actions(world, start, actions, max_steps, weights, return_vec, path):
    """Follow a fixed action-per-state table greedily in the true environment.

    actions: int (S,) action per state, -1 for "no action" (stops the
    rollout as a dead end); weights: float64 (C,); return_vec: float64 (C,)
    out, the undiscounted reward-vector sum; path: int32 (max_steps+1,) out,
    the visited cells padded with -1, or an empty array to skip recording.
    Returns ``(scalar_return, steps, end)``, end an ``END_*`` code of
    :mod:`lever.kernels.constants`.
    """
    gold_taken = np.zeros(world[5].shape[0], dtype=np.uint8)
    reward = np.zeros(return_vec.shape[0])
    return_vec[:] = 0.0
    record = path.shape[0] > 0
    if record:
        path[:] = -1
        path[0] = start
    pos = start
    lever_on = 0
    steps = 0
    end = END_STEP_CAP
    while steps < max_steps:
        action = actions[pos]
        if action < 0:
            end = END_DEAD_END
            break
        pos, lever_on, done = step(world, pos, action, gold_taken, lever_on, reward)
        steps += 1
        for c in range(return_vec.shape[0]):
            return_vec[c] += reward[c]
        if record:
            path[steps] = pos
        if done:
            end = END_HAZARD if world[0][pos] == HAZARD else END_EXIT
            break
    scalar = 0.0
    for c in range(return_vec.shape[0]):
        scalar += weights[c] * return_vec[c]
    return scalar, steps, end


@njit(cache=True)
def greedy_policy(q):
    """Greedy action per state of a Q table (S, A) → int32 (S,)."""
    out = np.empty(q.shape[0], dtype=np.int32)
    for s in range(q.shape[0]):
        out[s] = greedy_action(q, s)
    return out
