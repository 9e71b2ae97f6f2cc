"""Tabular Q-learning and SARSA with ε-greedy exploration, logging the support.

The whole training run is one kernel call: outputs are allocated by the
caller and filled in place, nothing is allocated per step.
"""

import numpy as np
from numba import njit

from .world import step


@njit(cache=True, inline="always")
def _epsilon_greedy(q, state, epsilon):
    # Ties are broken uniformly at random: with γ = 0 most of a fresh table
    # is tied, and always taking the first action would bias exploration.
    n_actions = q.shape[1]
    if np.random.random() < epsilon:
        return np.random.randint(n_actions)
    best = 0
    best_value = q[state, 0]
    n_best = 1
    for a in range(1, n_actions):
        value = q[state, a]
        if value > best_value:
            best_value = value
            best = a
            n_best = 1
        elif value == best_value:
            n_best += 1
            if np.random.randint(n_best) == 0:
                best = a
    return best


@njit(cache=True, inline="always")
def _argmax(q, state):
    best = 0
    for a in range(1, q.shape[1]):
        if q[state, a] > q[state, best]:
            best = a
    return best


@njit(cache=True)
def train_tabular(world, start, weights, n_episodes, max_steps, alpha, gamma,
                  epsilon_start, epsilon_decay, epsilon_min, sarsa, seed,
                  q, q_vec, visits, next_state, reward_model, episode_returns):
    """Train one tabular policy on the composite reward ``weights · r``.

    world: layout tuple; start: start cell; weights: float64 (C,);
    sarsa: True for SARSA, False for Q-learning; seed: RNG seed.
    ε starts at ``epsilon_start`` and is multiplied by ``epsilon_decay``
    after each episode, floored at ``epsilon_min``.
    Filled in place: q float64 (S, A); q_vec float64 (S, A, C), the same TD
    update per reward component, or shape (0, 0, 0) to skip it; visits
    int64 (S, A); next_state int32 (S, A), -1 where never visited;
    reward_model float64 (S, A, C), the reward vector of the first visit;
    episode_returns float64 (n_episodes,), undiscounted composite return.
    """
    np.random.seed(seed)
    n_components = weights.shape[0]
    learn_vector = q_vec.shape[0] > 0
    gold_taken = np.zeros(world[5].shape[0], dtype=np.uint8)
    reward = np.zeros(n_components)
    epsilon = epsilon_start
    for episode in range(n_episodes):
        gold_taken[:] = 0
        lever_on = 0
        state = start
        action = _epsilon_greedy(q, state, epsilon)
        total = 0.0
        for _ in range(max_steps):
            nxt, lever_on, done = step(world, state, action, gold_taken, lever_on, reward)
            r = 0.0
            for c in range(n_components):
                r += weights[c] * reward[c]
            total += r
            if visits[state, action] == 0:
                next_state[state, action] = nxt
                for c in range(n_components):
                    reward_model[state, action, c] = reward[c]
            visits[state, action] += 1

            next_action = _epsilon_greedy(q, nxt, epsilon)
            bootstrap_action = next_action if sarsa else _argmax(q, nxt)
            target = r
            if not done:
                target += gamma * q[nxt, bootstrap_action]
            q[state, action] += alpha * (target - q[state, action])
            if learn_vector:
                for c in range(n_components):
                    target_c = reward[c]
                    if not done:
                        target_c += gamma * q_vec[nxt, bootstrap_action, c]
                    q_vec[state, action, c] += alpha * (target_c - q_vec[state, action, c])
            if done:
                break
            state = nxt
            action = next_action
        episode_returns[episode] = total
        epsilon = max(epsilon_min, epsilon * epsilon_decay)
