"""Logging the support of a policy given as a table: a greedy replay, or given pairs read from the start.

Both fill the arrays a trained policy's log holds (S states, A actions,
N_SETS component sets): ``visits`` int64 (S, A), ``next_state`` int32
(S, A), -1 where not logged, ``reward_model`` float64 (S, A, N_SETS),
every set's reward as :func:`~lever.kernels.world.step` gives it, and
``term_model`` float64 (S, A, N_TERMS), the step's terms.
"""

import numpy as np
from numba import njit

from .constants import N_SETS
from .world import N_TERMS, set_rewards, step


@njit(cache=True)
def replay_greedy_log(world, start, actions, max_steps, visits, next_state, reward_model, term_model):
    """Log one greedy episode of ``actions`` int32 (S,) from ``start`` in the true world.

    The episode runs until the exit, a hazard or ``max_steps`` steps; every
    step counts one visit of its (s, a), and a pair's first visit logs its
    next state and every set's reward in that episode's context (gold
    taken, lever state), as training logs them, and its terms in
    ``term_model`` float64 (S, A, N_TERMS). ``visits``, ``next_state``,
    ``reward_model`` and ``term_model`` are filled in place (zeros / -1 /
    zeros / zeros first).
    Returns the steps taken.
    """
    visits[:] = 0
    next_state[:] = -1
    reward_model[:] = 0.0
    term_model[:] = 0.0
    gold_taken = np.zeros(world.gold_dist.shape[1], dtype=np.uint8)
    terms = np.empty(N_TERMS)
    rewards = np.empty(N_SETS)
    pos = start
    lever_on = np.int64(0)
    steps = 0
    while steps < max_steps:
        action = actions[pos]
        nxt, lever_on, done = step(world, pos, np.int64(action), gold_taken, lever_on, terms)
        if visits[pos, action] == 0:
            next_state[pos, action] = nxt
            set_rewards(terms, rewards)
            for m in range(N_SETS):
                reward_model[pos, action, m] = rewards[m]
            term_model[pos, action] = terms
        visits[pos, action] += 1
        steps += 1
        if done:
            break
        pos = nxt
    return steps


@njit(cache=True)
def log_pairs_from_start(world, support, next_state, reward_model, term_model):
    """Log every pair of ``support`` bool (S, A) as stepped in the episode's starting context.

    Each pair is one step from a fresh episode state (no gold taken, lever
    not pulled): how a log without history is read. ``next_state``,
    ``reward_model`` and ``term_model`` float64 (S, A, N_TERMS) are filled
    in place, -1 / zeros / zeros outside the support.
    """
    next_state[:] = -1
    reward_model[:] = 0.0
    term_model[:] = 0.0
    gold_taken = np.zeros(world.gold_dist.shape[1], dtype=np.uint8)
    terms = np.empty(N_TERMS)
    rewards = np.empty(N_SETS)
    for s in range(support.shape[0]):
        for a in range(support.shape[1]):
            if not support[s, a]:
                continue
            gold_taken[:] = 0
            nxt, _, _ = step(world, s, np.int64(a), gold_taken, np.int64(0), terms)
            next_state[s, a] = nxt
            set_rewards(terms, rewards)
            for m in range(N_SETS):
                reward_model[s, a, m] = rewards[m]
            term_model[s, a] = terms
