"""Composition, offline rollouts and planning on the support, for tabular worlds of any action count.

The same contracts as :mod:`lever.kernels.compose` and
:mod:`lever.kernels.planning` (P policies, S states, A <= 8 actions, F
reward features, B combinations ``combos`` int64 (B, k), support uint8
(P, S) bit masks), with two differences a tabular world needs: the action
count is read from the tables rather than fixed at 4, and termination is
``terminates[s, a]`` bool (S, A) of the world, not the kind of the cell
entered. A tabular world has no history, so the logged rewards hold on
every visit and no lap correction applies.
"""

import numpy as np
from numba import njit, prange

from .compose import BLOCK, OP_SUM, logging_member
from .constants import END_DEAD_END, END_STEP_CAP, END_TERMINATED


#: Q entries read (B·k·S·A) from which :func:`compose_any_batch` runs in parallel, and combinations (B) from
#: which :func:`offline_rollout_table_batch` does (see :func:`lever.threads.pick`), measured on Taxi
#: (404 states, 6 actions) by ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``.
PARALLEL_MIN_ANY_COMPOSE_ENTRIES = 1 << 21
PARALLEL_MIN_TABLE_OFFLINE_ROLLOUTS = 1 << 11


@njit(cache=True, inline="always")
def masked_argmax(acc, row, n_actions, bits):
    """Argmax of ``acc[row : row + A]`` over the actions whose bit is set, lowest index on ties, -1 if none."""
    best = -1
    best_value = -np.inf
    for a in range(n_actions):
        if (bits >> a) & 1 and (best < 0 or acc[row + a] > best_value):
            best = a
            best_value = acc[row + a]
    return best


@njit(cache=True)
def _compose_any_range(values, support, combos, betas, operator, actions, covered, lo, hi):
    # Combinations lo..hi-1 of compose_any_batch, scratch allocated once.
    k = combos.shape[1]
    n_states, n_actions = values.shape[1], values.shape[2]
    n_entries = n_states * n_actions
    acc = np.empty(n_entries)
    union = np.empty(n_states, dtype=np.uint8)
    for b in range(lo, hi):
        union[:] = 0
        if operator == OP_SUM:
            acc[:] = 0.0
        else:
            acc[:] = -np.inf
        for i in range(k):
            p = combos[b, i]
            beta = betas[b, i]
            member = values[p].reshape(n_entries)
            for s in range(n_states):
                union[s] |= support[p, s]
            if operator == OP_SUM:
                for j in range(n_entries):
                    acc[j] += beta * member[j]
            else:
                for j in range(n_entries):
                    acc[j] = max(acc[j], beta * member[j])
        n_covered = 0
        for s in range(n_states):
            bits = np.int64(union[s])
            for a in range(n_actions):
                n_covered += (bits >> a) & 1
            actions[b, s] = masked_argmax(acc, s * n_actions, n_actions, bits)
        covered[b] = n_covered


@njit(cache=True, parallel=True)
def compose_any_batch(values, support, combos, betas, operator, actions, covered):
    """:func:`lever.kernels.compose.compose_batch` for any action count A (values float (P, S, A))."""
    n_blocks = (combos.shape[0] + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        _compose_any_range(values, support, combos, betas, operator, actions, covered,
                           block * BLOCK, min(combos.shape[0], (block + 1) * BLOCK))


@njit(cache=True)
def compose_any_batch_serial(values, support, combos, betas, operator, actions, covered):
    """:func:`compose_any_batch` on one thread, for small batches."""
    _compose_any_range(values, support, combos, betas, operator, actions, covered, 0, combos.shape[0])


@njit(cache=True)
def _offline_table_range(combos, actions, support, next_state, reward_model, terminates, start, max_steps,
                         weights, returns, return_vecs, steps, ends, paths, lo, hi):
    # Rollouts lo..hi-1 of offline_rollout_table_batch.
    n_features = weights.shape[0]
    record = paths.shape[0] > 0
    for b in range(lo, hi):
        for f in range(n_features):
            return_vecs[b, f] = 0.0
        if record:
            for t in range(paths.shape[1]):
                paths[b, t] = -1
            paths[b, 0] = start
        pos = start
        n_steps = 0
        end = END_STEP_CAP
        while n_steps < max_steps:
            action = actions[b, pos]
            if action < 0:
                end = END_DEAD_END
                break
            p = logging_member(combos[b], support, pos, action)
            if p < 0:
                end = END_DEAD_END
                break
            for f in range(n_features):
                return_vecs[b, f] += reward_model[p, pos, action, f]
            nxt = next_state[p, pos, action]
            n_steps += 1
            if record:
                paths[b, n_steps] = nxt
            done = terminates[pos, action]
            pos = nxt
            if done:
                end = END_TERMINATED
                break
        total = 0.0
        for f in range(n_features):
            total += weights[f] * return_vecs[b, f]
        returns[b] = total
        steps[b] = n_steps
        ends[b] = end


@njit(cache=True, parallel=True)
def offline_rollout_table_batch(combos, actions, support, next_state, reward_model, terminates, start,
                                max_steps, weights, returns, return_vecs, steps, ends, paths):
    """Roll B action tables (B, S) out through their combination's empirical model, on a tabular world.

    next_state int32 (P, S, A); reward_model float64 (P, S, A, F), the
    logged reward vectors; terminates bool (S, A); weights float64 (F,).
    Out: returns (B,) = weights · return_vecs; return_vecs (B, F),
    undiscounted; steps int64 (B,); ends int8 (B,); paths int32
    (B, max_steps + 1) or shape (0, 0). A pair no member logged, or a -1
    action, ends the rollout as a dead end.
    """
    n_blocks = (combos.shape[0] + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        _offline_table_range(combos, actions, support, next_state, reward_model, terminates, start, max_steps,
                             weights, returns, return_vecs, steps, ends, paths,
                             block * BLOCK, min(combos.shape[0], (block + 1) * BLOCK))


@njit(cache=True)
def offline_rollout_table_batch_serial(combos, actions, support, next_state, reward_model, terminates, start,
                                       max_steps, weights, returns, return_vecs, steps, ends, paths):
    """:func:`offline_rollout_table_batch` on one thread, for small batches."""
    _offline_table_range(combos, actions, support, next_state, reward_model, terminates, start, max_steps,
                         weights, returns, return_vecs, steps, ends, paths, 0, combos.shape[0])


@njit(cache=True)
def plan_table(combo, support, next_state, reward_model, terminates, weights, gamma, tol, max_iters, q_out,
               actions):
    """Value iteration under ``weights`` (F,) on one combination's union support, on a tabular world.

    combo int64 (k,); q_out float64 (S, A), -inf off the support; actions
    int32 (S,), greedy on the support (lowest index on ties), -1 where the
    union supports nothing. Q(s, a) = w · r(s, a) + γ max_a' Q(s', a') with
    (s', r) from the first member that logged (s, a), not bootstrapped where
    ``terminates[s, a]``; a successor with no supported action is worth 0.
    Sweeps in place until no entry moves more than ``tol`` or ``max_iters``.
    Returns the sweeps done.
    """
    n_states, n_actions = q_out.shape[0], q_out.shape[1]
    # Sweeps visit only the states the union supports, in index order: a large world whose library
    # covers a sliver of it (four-room) is planned at the cost of that sliver, with the same floats.
    live = np.empty(n_states, dtype=np.int64)
    n_live = 0
    for s in range(n_states):
        union = 0
        for i in range(combo.shape[0]):
            union |= support[combo[i], s]
        for a in range(n_actions):
            q_out[s, a] = 0.0 if (union >> a) & 1 else -np.inf
        if union:
            live[n_live] = s
            n_live += 1
    sweeps = 0
    while sweeps < max_iters:
        sweeps += 1
        delta = 0.0
        for i_live in range(n_live):
            s = live[i_live]
            for a in range(n_actions):
                if q_out[s, a] == -np.inf:
                    continue
                p = logging_member(combo, support, s, a)
                target = 0.0
                for f in range(weights.shape[0]):
                    target += weights[f] * reward_model[p, s, a, f]
                if not terminates[s, a]:
                    nxt = next_state[p, s, a]
                    best = -np.inf
                    for a2 in range(n_actions):
                        if q_out[nxt, a2] > best:
                            best = q_out[nxt, a2]
                    if best > -np.inf:
                        target += gamma * best
                change = abs(target - q_out[s, a])
                if change > delta:
                    delta = change
                q_out[s, a] = target
        if delta <= tol:
            break
    for s in range(n_states):
        actions[s] = masked_argmax(q_out.reshape(n_states * n_actions), s * n_actions, n_actions,
                                   np.int64(0xFF))
        if actions[s] >= 0 and q_out[s, actions[s]] == -np.inf:
            actions[s] = -1
    return sweeps
