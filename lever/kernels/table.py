"""Kernels of a tabular world: a deterministic table step, training, rollouts, successor features, value iteration.

A :class:`Table` holds one world's transition tables (S states, A actions,
F reward features): ``next_state`` int32 (S, A), ``reward`` float64
(S, A, F), ``terminates`` bool (S, A). A step from (s, a) is a table
lookup: the next state, the reward vector and whether the episode ends.
An objective is a weight vector over the F features; its reward is
``weights · reward[s, a]``. Nothing here has episode state beyond the
current state, so a deterministic policy's rollout that re-enters a state
repeats itself exactly. The GridWorld's kernels are untouched by these.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .constants import END_DEAD_END, END_STEP_CAP, END_TERMINATED
from .features import ROLLOUT_BLOCK
from .rollout import greedy_action
from .training import epsilon_greedy


class Table(NamedTuple):
    """The arrays of one tabular world, C-contiguous: next_state int32 (S, A), reward float64 (S, A, F),
    terminates bool (S, A)."""

    next_state: np.ndarray
    reward: np.ndarray
    terminates: np.ndarray


@njit(cache=True, inline="always")
def weighted_reward(table, state, action, weights):
    """``weights · reward[state, action]``, weights float64 (F,)."""
    r = 0.0
    for f in range(weights.shape[0]):
        r += weights[f] * table.reward[state, action, f]
    return r


@njit(cache=True, inline="always")
def draw_start(starts, rng):
    """A start state, uniform over ``starts`` int64 (K,); no draw when K = 1."""
    if starts.shape[0] == 1:
        return starts[0]
    return starts[rng.integers(0, starts.shape[0])]


@njit(cache=True)
def train_table(table, starts, weights, n_episodes, max_steps, alpha, gamma, epsilon_start, epsilon_decay,
                epsilon_min, sarsa, rng, snapshot_interval, q, q_vec, visits, first_visit, next_state,
                reward_model, episode_returns, snapshot_q, snapshot_visits):
    """SARSA or Q-learning of the objective ``weights`` (F,) on a :class:`Table`, logging the support.

    As :func:`lever.kernels.training.train_tabular`, with the table's step:
    each episode starts at a state drawn uniformly from ``starts`` int64
    (K,) (no draw when K = 1) and ends where ``terminates[s, a]`` or after
    ``max_steps`` steps. Filled in place: q float64 (S, A); q_vec float64
    (S, A, F), the same TD update on each feature, or shape (0, 0, 0) to
    skip; visits int64 (S, A); first_visit int32 (S, A); next_state int32
    (S, A), -1 where never visited; reward_model float64 (S, A, F), the
    reward vector of each visited pair; episode_returns float64 (E,);
    snapshot_q (N, S, A), snapshot_visits (N, S, A) after every episode e
    with e % snapshot_interval == 0.
    """
    learn_vector = q_vec.shape[0] > 0
    n_features = weights.shape[0]
    epsilon = epsilon_start
    n_snapshots = 0
    for episode in range(n_episodes):
        state = draw_start(starts, rng)
        action = epsilon_greedy(q, state, epsilon, rng)
        total = 0.0
        for _ in range(max_steps):
            nxt = table.next_state[state, action]
            done = table.terminates[state, action]
            r = weighted_reward(table, state, action, weights)
            total += r
            if visits[state, action] == 0:
                first_visit[state, action] = episode
                next_state[state, action] = nxt
                for f in range(n_features):
                    reward_model[state, action, f] = table.reward[state, action, f]
            visits[state, action] += 1

            next_action = epsilon_greedy(q, nxt, epsilon, rng)
            bootstrap = next_action if sarsa else greedy_action(q, nxt)
            target = r
            if not done:
                target += gamma * q[nxt, bootstrap]
            q[state, action] += alpha * (target - q[state, action])
            if learn_vector:
                for f in range(n_features):
                    target_f = table.reward[state, action, f]
                    if not done:
                        target_f += gamma * q_vec[nxt, bootstrap, f]
                    q_vec[state, action, f] += alpha * (target_f - q_vec[state, action, f])
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


@njit(cache=True)
def rollout_table(table, start, actions, max_steps, gamma, vector_return, discounted_return, path):
    """Follow an action-per-state table int32 (S,) (-1 = no action: a dead end) from ``start``.

    Filled in place: vector_return float64 (F,), the undiscounted return of
    every feature; discounted_return float64 (F,), Σ γ^t r_t (t = 0 first);
    path int32 (max_steps + 1,), the visited states padded with -1, or an
    empty array to skip. Returns ``(steps, end)``, end an ``END_*`` code.
    """
    n_features = vector_return.shape[0]
    vector_return[:] = 0.0
    discounted_return[:] = 0.0
    record = path.shape[0] > 0
    if record:
        path[:] = -1
        path[0] = start
    pos = start
    steps = 0
    discount = 1.0
    end = END_STEP_CAP
    while steps < max_steps:
        action = actions[pos]
        if action < 0:
            end = END_DEAD_END
            break
        for f in range(n_features):
            r = table.reward[pos, action, f]
            vector_return[f] += r
            discounted_return[f] += discount * r
        done = table.terminates[pos, action]
        pos = table.next_state[pos, action]
        steps += 1
        discount *= gamma
        if record:
            path[steps] = pos
        if done:
            end = END_TERMINATED
            break
    return steps, end


#: (policy, start) pairs (P·K) from which :func:`successor_features_table` runs in parallel (see
#: :func:`lever.threads.pick`), measured on Taxi (404 states, 6 actions) by
#: ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``.
PARALLEL_MIN_TABLE_ROLLOUTS = 1 << 14


@njit(cache=True, parallel=True)
def successor_features_table(table, actions, starts, max_steps, gamma, skip_cycles, psi, steps, ends):
    """ψ(s) = Σ_t γ^t r_t of every (policy, start) pair, φ = the reward vector (F,), in parallel.

    actions int32 (P, S), -1 = no action (a dead end); starts int64 (K,).
    Filled in place: psi float64 (P, K, F); steps int32 (P, K); ends int8
    (P, K). A rollout that re-enters a state repeats its cycle exactly (no
    episode state); with ``skip_cycles`` the whole number of laps that fit
    under the cap is summed in closed form from the first lap, and only the
    remainder is stepped (equal to stepping to the cap up to rounding).
    """
    n_jobs = actions.shape[0] * starts.shape[0]
    for block in prange((n_jobs + ROLLOUT_BLOCK - 1) // ROLLOUT_BLOCK):
        _successor_table_range(table, actions, starts, max_steps, gamma, skip_cycles, psi, steps, ends,
                               block * ROLLOUT_BLOCK, min(n_jobs, (block + 1) * ROLLOUT_BLOCK))


@njit(cache=True)
def successor_features_table_serial(table, actions, starts, max_steps, gamma, skip_cycles, psi, steps, ends):
    """:func:`successor_features_table` on one thread, the same results."""
    _successor_table_range(table, actions, starts, max_steps, gamma, skip_cycles, psi, steps, ends,
                           0, actions.shape[0] * starts.shape[0])


@njit(cache=True)
def _successor_table_range(table, actions, starts, max_steps, gamma, skip_cycles, psi, steps, ends, lo, hi):
    # (policy, start) pairs lo..hi-1 of successor_features_table, with the scratch allocated once.
    n_starts = starts.shape[0]
    n_states = actions.shape[1]
    n_features = psi.shape[2]
    entered_at = np.empty(n_states if skip_cycles else 0, dtype=np.int64)
    lap = np.empty(n_features)
    for job in range(lo, hi):
        p = job // n_starts
        k = job - p * n_starts
        entered_at[:] = -1
        lap[:] = 0.0
        for f in range(n_features):
            psi[p, k, f] = 0.0
        pos = starts[k]
        if skip_cycles:
            entered_at[pos] = 0
        discount = 1.0
        t = 0
        end = END_STEP_CAP
        phase = 0 if skip_cycles else 2  # 0 looking for a cycle, 1 stepping its lap again, 2 done
        lap_end = 0
        lap_len = 0
        lap_discount = 1.0
        while t < max_steps:
            action = actions[p, pos]
            if action < 0:
                end = END_DEAD_END
                break
            for f in range(n_features):
                r = table.reward[pos, action, f]
                psi[p, k, f] += discount * r
                if phase == 1:
                    lap[f] += lap_discount * r
            if phase == 1:
                lap_discount *= gamma
            done = table.terminates[pos, action]
            pos = table.next_state[pos, action]
            t += 1
            discount *= gamma
            if done:
                end = END_TERMINATED
                break
            if phase == 0:
                if entered_at[pos] >= 0:
                    phase = 1
                    lap_len = t - entered_at[pos]
                    lap_end = t + lap_len
                else:
                    entered_at[pos] = t
            elif phase == 1 and t == lap_end:
                phase = 2
                repeats = (max_steps - t) // lap_len
                if lap_discount == 1.0:
                    factor = float(repeats)
                else:
                    factor = (1.0 - lap_discount ** repeats) / (1.0 - lap_discount)
                for f in range(n_features):
                    psi[p, k, f] += discount * factor * lap[f]
                t += repeats * lap_len
                discount *= lap_discount ** repeats
        steps[p, k] = t
        ends[p, k] = end


@njit(cache=True)
def replay_greedy_log_table(table, start, actions, max_steps, visits, next_state, reward_model):
    """Log one greedy episode of ``actions`` int32 (S,) from ``start``: visits int64 (S, A), next_state
    int32 (S, A) (-1 where not logged) and reward_model float64 (S, A, F), filled in place. Returns the steps."""
    visits[:] = 0
    next_state[:] = -1
    reward_model[:] = 0.0
    pos = start
    steps = 0
    while steps < max_steps:
        action = actions[pos]
        if action < 0:
            break
        if visits[pos, action] == 0:
            next_state[pos, action] = table.next_state[pos, action]
            reward_model[pos, action, :] = table.reward[pos, action, :]
        visits[pos, action] += 1
        steps += 1
        if table.terminates[pos, action]:
            break
        pos = table.next_state[pos, action]
    return steps


@njit(cache=True)
def value_iteration_table(table, weights, gamma, tol, max_iters, q):
    """Optimal Q of ``weights`` (F,) on the whole table: q float64 (S, A), filled in place.

    Q(s, a) = w · r(s, a) + γ max_a' Q(s', a'), not bootstrapped where the
    transition terminates. Sweeps in state order, in place (Gauss-Seidel),
    from Q = 0, until no entry moves more than ``tol`` or ``max_iters``
    sweeps. Returns the sweeps done.
    """
    n_states, n_actions = q.shape[0], q.shape[1]
    q[:] = 0.0
    sweeps = 0
    while sweeps < max_iters:
        sweeps += 1
        delta = 0.0
        for s in range(n_states):
            for a in range(n_actions):
                target = weighted_reward(table, s, a, weights)
                if not table.terminates[s, a]:
                    nxt = table.next_state[s, a]
                    best = q[nxt, 0]
                    for a2 in range(1, n_actions):
                        if q[nxt, a2] > best:
                            best = q[nxt, a2]
                    target += gamma * best
                change = abs(target - q[s, a])
                if change > delta:
                    delta = change
                q[s, a] = target
        if delta <= tol:
            break
    return sweeps
