"""Tabular SARSA and Q-learning with ε-greedy exploration, logging the support and snapshots.

The whole training run is one kernel call: outputs are allocated by the
caller and filled in place, nothing is allocated per step. Randomness comes
from the ``rng`` argument (a ``numpy.random.Generator``), so runs are
independent of any global state and identical, bit for bit, to NumPy code
drawing from the same generator.
"""

import numpy as np
from numba import njit

from .constants import N_COMPONENTS
from .rollout import greedy_action
from .world import N_TERMS, objective_reward, set_reward, set_rewards, step


@njit(cache=True, inline="always")
def epsilon_greedy(q, state, epsilon, rng):
    """A uniformly random action with probability ε, else the greedy one (lowest index on ties)."""
    if rng.random() < epsilon:
        return rng.integers(0, q.shape[1])
    return greedy_action(q, state)


@njit(cache=True)
def train_tabular(world, start, masks, coefs, n_episodes, max_steps, alpha, gamma,
                  epsilon_start, epsilon_decay, epsilon_min, sarsa, rng, snapshot_interval,
                  q, q_vec, visits, first_visit, next_state, reward_model, episode_returns,
                  snapshot_q, snapshot_visits, term_model, fresh_action):
    """Train one tabular policy on the objective Σ coefs[i] · (reward of set masks[i]).

    world: :class:`~lever.kernels.world.World`; start: start cell; masks
    int64 (M,), coefs float64 (M,): the objective; sarsa: True for SARSA,
    False for Q-learning; rng: ``numpy.random.Generator``. ε starts at
    ``epsilon_start`` and is multiplied by ``epsilon_decay`` after each
    episode, floored at ``epsilon_min``.

    fresh_action False (the study's v3 loop): the a′ drawn for the update is
    the next step's action, the update is Q += α(target − Q) and a terminal
    step does not bootstrap. True (the first public release's loop): every
    step draws a fresh ε-greedy action before it moves (a′ is still drawn,
    for the update only), the update is Q ← (1−α)Q + α(r + γQ[s′, a′]) and
    nothing is masked at termination (the exit and hazard rows are never
    updated, so they stay 0).

    Filled in place (S states, A actions, C components, N_SETS sets):
    q float64 (S, A); q_vec float64 (S, A, C), the same TD update on each
    single component's reward, or shape (0, 0, 0) to skip; visits int64
    (S, A); first_visit int32 (S, A), the episode of the first visit, -1 if
    none; next_state int32 (S, A), -1 where never visited; reward_model
    float64 (S, A, N_SETS), every component set's reward on the first visit;
    term_model float64 (S, A, N_TERMS), the step's terms on the first visit
    (what the rules read, so a step can be relabelled in another phase);
    episode_returns float64 (E,), undiscounted objective return;
    snapshot_q float64 (N, S, A) and snapshot_visits int64 (N, S, A), the
    tables after every episode e with e % snapshot_interval == 0 (N = that
    count; shape (0, ...) with snapshot_interval 0).
    """
    learn_vector = q_vec.shape[0] > 0
    gold_taken = np.zeros(world.gold_dist.shape[1], dtype=np.uint8)
    terms = np.empty(N_TERMS)
    epsilon = epsilon_start
    n_snapshots = 0
    for episode in range(n_episodes):
        gold_taken[:] = 0
        lever_on = np.int64(0)
        state = start
        action = np.int64(0)
        if not fresh_action:
            action = epsilon_greedy(q, state, epsilon, rng)
        total = 0.0
        for _ in range(max_steps):
            if fresh_action:
                action = epsilon_greedy(q, state, epsilon, rng)
            nxt, lever_on, done = step(world, state, action, gold_taken, lever_on, terms)
            r = objective_reward(terms, masks, coefs)
            total += r
            if visits[state, action] == 0:
                first_visit[state, action] = episode
                next_state[state, action] = nxt
                set_rewards(terms, reward_model[state, action])
                term_model[state, action] = terms
            visits[state, action] += 1

            next_action = epsilon_greedy(q, nxt, epsilon, rng)
            bootstrap = next_action if sarsa else greedy_action(q, nxt)
            if fresh_action:
                q[state, action] = (1.0 - alpha) * q[state, action] + alpha * (r + gamma * q[nxt, bootstrap])
            else:
                target = r
                if not done:
                    target += gamma * q[nxt, bootstrap]
                q[state, action] += alpha * (target - q[state, action])
            if learn_vector:
                for c in range(N_COMPONENTS):
                    target_c = set_reward(terms, 1 << c)
                    if fresh_action:
                        q_vec[state, action, c] = ((1.0 - alpha) * q_vec[state, action, c]
                                                   + alpha * (target_c + gamma * q_vec[nxt, bootstrap, c]))
                        continue
                    if not done:
                        target_c += gamma * q_vec[nxt, bootstrap, c]
                    q_vec[state, action, c] += alpha * (target_c - q_vec[state, action, c])
            if done:
                break
            state = nxt
            action = next_action
        episode_returns[episode] = total
        if snapshot_interval > 0 and episode % snapshot_interval == 0:
            snapshot_q[n_snapshots] = q
            snapshot_visits[n_snapshots] = visits
            n_snapshots += 1
        epsilon = max(epsilon_min, epsilon * epsilon_decay)
